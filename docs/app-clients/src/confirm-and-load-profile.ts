// The sign-up screen's last step: confirm the code, sign in, and wait for the profile the
// pipeline creates asynchronously, with either way of waiting.
import { confirmSignUp, getCurrentUser, signIn } from "aws-amplify/auth";
import { ProfileNotReadyError, type UserProfile } from "./client";
import { waitForProfileByPolling } from "./wait-by-polling";
import { waitForProfileBySubscription } from "./wait-by-subscription";

export async function confirmSignInAndLoadProfile(
  username: string,
  confirmationCode: string,
  password: string,
  way: "subscription" | "polling" = "subscription",
): Promise<UserProfile | null> {
  const confirmed = await confirmSignUp({ username, confirmationCode });
  if (!confirmed.isSignUpComplete) {
    throw new Error(`sign-up needs another step: ${confirmed.nextStep.signUpStep}`);
  }
  // The worker may start creating the profile from here on. Waiting cannot start earlier: the
  // owner rule lets only the signed-in user read or subscribe to the profile.
  const signedIn = await signIn({ username, password });
  if (!signedIn.isSignedIn) {
    throw new Error(`sign-in needs another step: ${signedIn.nextStep.signInStep}`);
  }
  const { userId: sub } = await getCurrentUser();
  try {
    return way === "subscription"
      ? await waitForProfileBySubscription(sub)
      : await waitForProfileByPolling(sub);
  } catch (error) {
    // The account works without its profile; only the profile's data is missing. Let the user
    // in and load the profile later rather than failing the sign-up the user just finished.
    if (error instanceof ProfileNotReadyError) return null;
    throw error;
  }
}
