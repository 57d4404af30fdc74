// Way 1: wait for the profile with the owner-filtered onCreateUserProfile subscription, raced
// against getUserProfile reads so a profile created before the subscription was live counts.
import { CONNECTION_STATE_CHANGE, ConnectionState } from "aws-amplify/data";
import { Hub } from "aws-amplify/utils";
import { ProfileNotReadyError, client, getProfile, type UserProfile } from "./client";

const READ_TIMEOUT_MS = 5_000;

/**
 * Resolves with the profile of `sub` (the signed-in user) as soon as it exists. Rejects with
 * `ProfileNotReadyError` after `timeoutMs` (plus at most one last read), or with the
 * subscription's own error if AppSync refuses it.
 */
export function waitForProfileBySubscription(
  sub: string,
  timeoutMs = 15_000,
): Promise<UserProfile> {
  return new Promise<UserProfile>((resolve, reject) => {
    let settled = false;
    let lastReadError: unknown;
    const cleanups: (() => void)[] = [];
    // A subscription can fail synchronously, before its cleanup is registered: run it then.
    const onSettle = (cleanup: () => void) => (settled ? cleanup() : void cleanups.push(cleanup));
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      cleanups.forEach((cleanup) => cleanup());
      outcome();
    };
    const read = async () => {
      try {
        const profile = await getProfile(sub, READ_TIMEOUT_MS);
        if (profile) settle(() => resolve(profile));
      } catch (error) {
        // A failed read is not the end: the subscription may still deliver the profile.
        lastReadError = error;
      }
    };

    // Listening before subscribing, so the connection's first Connected is not missed. Amplify
    // reports Connected once AppSync acknowledged a subscription (start_ack), and again after a
    // reconnect: reading then covers every profile created while we were not yet (or no longer)
    // subscribed.
    onSettle(
      Hub.listen("api", ({ payload }) => {
        if (payload.event !== CONNECTION_STATE_CHANGE) return;
        const data = payload.data as { connectionState?: ConnectionState } | undefined;
        if (data?.connectionState === ConnectionState.Connected) void read();
      }),
    );

    // No owner argument or filter is needed: the resolver Amplify generates filters events on
    // profileOwner against the subscriber's own token claims, so only this user's profile arrives.
    const subscription = client.models.UserProfile.onCreate().subscribe({
      next: (profile) => {
        if (profile?.id === sub) settle(() => resolve(profile));
      },
      error: (error: unknown) => settle(() => reject(error)),
    });
    onSettle(() => subscription.unsubscribe());

    // Most profiles already exist by the time sign-in finished: one read answers at once,
    // without waiting for the WebSocket handshake.
    void read();

    const timer = setTimeout(() => {
      // One last read: it is what turns a missed notification into a late answer, not a wrong one.
      void read().then(() =>
        settle(() => reject(new ProfileNotReadyError(sub, timeoutMs, { cause: lastReadError }))),
      );
    }, timeoutMs);
    onSettle(() => clearTimeout(timer));
  });
}
