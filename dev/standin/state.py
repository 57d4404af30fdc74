"""The stand-in's mutable state: the stored UserProfile items, the armed fault rules
with their seeded generator, the global latency and the counters behind
GET /_standin/stats.  One re-entrant lock guards all of it.
"""

from __future__ import annotations

import copy
import random
import threading
from collections import OrderedDict
from typing import Any

from . import faults

# The counters every perId entry starts with.
# "attempts" counts createUserProfile fields, "deleteAttempts" deleteUserProfile fields;
# "faulted" counts both when an injected fault answered them.
PER_ID_COUNTERS = (
    "attempts", "created", "duplicates", "faulted", "deleteAttempts", "deleted", "deleteMissing",
)


class State:
    def __init__(self, seed: int):
        self.seed = seed
        self.lock = threading.RLock()
        self.profiles: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.rules: list[dict[str, Any]] = []
        self.rng = random.Random(seed)
        self.latency_ms: float = 0
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.counters: dict[str, Any] = {
            "requests": 0,
            "authenticated": 0,
            "authFailures": {},
            "sessionTokenRequests": 0,
            "faultsInjected": {},
            "createAttempts": 0,
            "created": 0,
            "duplicates": 0,
            "deleteAttempts": 0,
            "deleted": 0,
            "deleteMissing": 0,
            "operations": {},
            "responses": {},
            "perId": {},
            "lastAuthFailure": None,
        }

    def reset(self) -> None:
        with self.lock:
            self.profiles.clear()
            self.rules = []
            self.rng = random.Random(self.seed)
            self.latency_ms = 0
            self._reset_counters()

    # -- counters
    def bump(self, key: str, sub: str | None = None, n: int = 1) -> None:
        with self.lock:
            if sub is None:
                self.counters[key] += n
            else:
                d = self.counters[key]
                d[sub] = d.get(sub, 0) + n

    def _entry(self, profile_id: str) -> dict[str, Any]:
        """The perId counters of one id, created at their zeros (the caller holds the lock)."""
        entry = self.counters["perId"].get(profile_id)
        if entry is None:
            entry = self.counters["perId"][profile_id] = dict.fromkeys(PER_ID_COUNTERS, 0)
        return entry

    def per_id(self, profile_id: Any, key: str) -> None:
        if not isinstance(profile_id, str):
            return
        with self.lock:
            self._entry(profile_id)[key] += 1

    def record_trace(self, profile_id: Any, trace_header: str | None) -> None:
        """Keeps the last X-Amzn-Trace-Id seen for a profile id, so tests can follow a trace
        from the emitter's invocation to the profile store."""
        if not isinstance(profile_id, str) or not trace_header:
            return
        with self.lock:
            self._entry(profile_id)["traceHeader"] = trace_header

    def record_created_at(self, profile_id: str, micros: int) -> None:
        """Keeps when the profile was stored (the first time since the last reset), in
        microseconds since the Unix epoch on this machine's clock: what a benchmark measures
        a sign-up's lag to."""
        with self.lock:
            self._entry(profile_id).setdefault("createdAtMicros", micros)

    def record_deleted_at(self, profile_id: str, micros: int) -> None:
        """Keeps when the profile was deleted (the first time since the last reset), in
        microseconds since the Unix epoch: the end of a deletion's lag."""
        with self.lock:
            self._entry(profile_id).setdefault("deletedAtMicros", micros)

    def stats(self, ids: list[str] | None = None) -> dict[str, Any]:
        """Counters as JSON. With `ids`, perId holds only those ids (the ones ever seen), so
        a caller following a few ids among many does not copy them all.

        {"requests": n,               # every POST /graphql
         "authenticated": n,          # requests that passed SigV4
         "authFailures": {errorType: n},
         "sessionTokenRequests": n,   # authenticated with a session-token credential
         "faultsInjected": {"status:503": n, "errorType:<T>": n, "latency": n, "disconnect": n},
         "createAttempts": n,         # createUserProfile fields in authenticated requests
                                      #   with a valid document (faulted ones included)
         "created": n, "duplicates": n,
         "deleteAttempts": n,         # deleteUserProfile fields, counted as createAttempts
         "deleted": n,                # profiles removed
         "deleteMissing": n,          # deletes of an id not stored (answered null, no error)
         "operations": {topLevelField: n},
         "responses": {"200": n, ...},
         "perId": {id: {"attempts", "created", "duplicates", "faulted",
                          "deleteAttempts", "deleted", "deleteMissing",
                          "traceHeader" (the last X-Amzn-Trace-Id, when one came),
                          "createdAtMicros" (when it was stored: µs since the epoch, once created),
                          "deletedAtMicros" (when it was deleted, once deleted)}},
         "profiles": n,
         "latencyMs": n,
         "lastAuthFailure": null | {"errorType", "message", "canonicalRequest"?, "stringToSign"?}}
        """
        with self.lock:
            if ids is None:
                out = copy.deepcopy(self.counters)
            else:
                per_id = self.counters["perId"]
                out = copy.deepcopy({k: v for k, v in self.counters.items() if k != "perId"})
                out["perId"] = {i: dict(per_id[i]) for i in ids if i in per_id}
            out["profiles"] = len(self.profiles)
            out["latencyMs"] = self.latency_ms
            return out

    # -- faults
    def set_rules(self, rules: list[dict[str, Any]], seed: int | None) -> None:
        with self.lock:
            self.rules = [faults.arm(r) for r in rules]
            self.rng = random.Random(self.seed if seed is None else seed)
            self._rules_seed = self.seed if seed is None else seed

    def describe_rules(self) -> dict[str, Any]:
        with self.lock:
            rules = [faults.describe(r) for r in self.rules]
            return {"rules": rules, "seed": getattr(self, "_rules_seed", self.seed)}

    def decide_faults(self, field_names: list[str], ids: list[Any]):
        """Return (total_latency_seconds, terminal_rule_or_None)."""
        with self.lock:
            latency, latency_applied, terminal = faults.walk(
                self.rules, self.rng, field_names, ids, self.latency_ms
            )
            fi = self.counters["faultsInjected"]
            if latency_applied:
                fi["latency"] = fi.get("latency", 0) + 1
            if terminal is not None:
                kind = faults.fault_kind(terminal)
                fi[kind] = fi.get(kind, 0) + 1
            return latency / 1000.0, terminal
