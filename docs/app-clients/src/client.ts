// What both ways of waiting share: Amplify's configuration, the typed data client, one bounded
// read of the signed-in user's profile, and the errors the waiting helpers throw.
import { Amplify } from "aws-amplify";
import { generateClient } from "aws-amplify/data";
import outputs from "../amplify_outputs.json";
import type { Schema } from "./schema";

Amplify.configure(outputs);

// The data API's default mode is the API key, which the owner rule on UserProfile refuses:
// every call goes out with the signed-in user's Cognito tokens.
export const client = generateClient<Schema>({ authMode: "userPool" });

export type UserProfile = Schema["UserProfile"]["type"];

/** AppSync answered a read with errors. `permanent` when asking again cannot help. */
export class ProfileReadError extends Error {
  readonly errorTypes: string[];
  readonly permanent: boolean;

  constructor(errors: { errorType: string; message: string }[]) {
    super(`getUserProfile failed: ${errors.map((e) => `${e.errorType}: ${e.message}`).join("; ")}`);
    this.name = "ProfileReadError";
    this.errorTypes = errors.map((e) => e.errorType);
    // Unauthorized means no user is signed in or the profile belongs to someone else.
    this.permanent = this.errorTypes.includes("Unauthorized");
  }
}

/** The profile did not appear within the time the caller was willing to wait. */
export class ProfileNotReadyError extends Error {
  constructor(
    readonly sub: string,
    readonly waitedMs: number,
    options?: ErrorOptions,
  ) {
    super(`the profile of ${sub} did not appear within ${waitedMs} ms`, options);
    this.name = "ProfileNotReadyError";
  }
}

/**
 * `getUserProfile(id: sub)`: the profile, or `null` while the worker has not created it yet.
 * Amplify sets no timeout of its own on a request, so a stalled one is cancelled after
 * `timeoutMs` (it then rejects): a caller with a deadline is never held past it.
 */
export async function getProfile(sub: string, timeoutMs: number): Promise<UserProfile | null> {
  const request = client.models.UserProfile.get({ id: sub });
  const timer = setTimeout(() => client.cancel(request, "getUserProfile timed out"), timeoutMs);
  try {
    const { data, errors } = await request;
    if (errors && errors.length > 0) {
      throw new ProfileReadError(errors);
    }
    return data;
  } finally {
    clearTimeout(timer);
  }
}
