"""What every part of the stand-in shares: the logger and its e-mail scrubbing,
the UTC clock, and AppSync/DynamoDB-looking timestamps and request ids.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import secrets
import string

# One logger for the whole package; cli.main() attaches the scrubbing handler to it.
LOG = logging.getLogger("appsync-standin")

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


def scrub(text: str) -> str:
    """Remove anything that looks like an e-mail address."""
    return _EMAIL_RE.sub("<redacted-email>", text)


class ScrubFormatter(logging.Formatter):
    """Formats the whole record (message, traceback) and scrubs e-mail addresses."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def now_utc() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def epoch_micros(moment: _dt.datetime) -> int:
    """Microseconds since the Unix epoch (exact, no float rounding)."""
    return (moment - _EPOCH) // _dt.timedelta(microseconds=1)


def aws_datetime(moment: _dt.datetime) -> str:
    """AWSDateTime as AppSync's $util.time.nowISO8601(): milliseconds and Z."""
    moment = moment.astimezone(_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def dynamodb_request_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(52))
