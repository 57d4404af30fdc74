// Way 2: wait for the profile by reading getUserProfile(id: sub) again and again, with capped
// exponential back-off, until it exists or a deadline passes. No WebSocket, nothing to clean up.
import { ProfileNotReadyError, ProfileReadError, getProfile, type UserProfile } from "./client";

export interface PollOptions {
  /** Give up after this long, whatever happens (default 15 s). */
  timeoutMs?: number;
  /** The first pause between two reads (default 100 ms); it doubles after each miss… */
  firstDelayMs?: number;
  /** …up to this (default 2 s), so a late profile costs a read every 2 s, not a busy loop. */
  maxDelayMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Resolves with the profile of `sub` (the signed-in user) once it exists. Rejects with
 * `ProfileNotReadyError` when `timeoutMs` has passed, or at once with a `ProfileReadError` that
 * retrying cannot fix (`Unauthorized`).
 */
export async function waitForProfileByPolling(
  sub: string,
  { timeoutMs = 15_000, firstDelayMs = 100, maxDelayMs = 2_000 }: PollOptions = {},
): Promise<UserProfile> {
  const deadline = Date.now() + timeoutMs;
  let delayMs = firstDelayMs;
  let lastError: unknown;
  // Bounded by the deadline, not by a count: each read and each pause is cut to the time left.
  for (let remaining = timeoutMs; remaining > 0; remaining = deadline - Date.now()) {
    try {
      const profile = await getProfile(sub, remaining);
      if (profile) return profile;
    } catch (error) {
      if (error instanceof ProfileReadError && error.permanent) throw error;
      // Network errors and AppSync hiccups: the next read may well succeed.
      lastError = error;
    }
    // Jitter (half to all of the delay) keeps clients that confirmed together from reading
    // in lock-step, e.g. after an outage.
    const pauseMs = delayMs / 2 + Math.random() * (delayMs / 2);
    await sleep(Math.min(pauseMs, Math.max(0, deadline - Date.now())));
    delayMs = Math.min(maxDelayMs, delayMs * 2);
  }
  throw new ProfileNotReadyError(sub, timeoutMs, { cause: lastError });
}
