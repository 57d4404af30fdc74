import { defineAuth } from "@aws-amplify/backend";

// As in the Amplify docs' "Create a user profile record" page, minus the synchronous trigger:
// no `triggers: { postConfirmation }` and no amplify/auth/post-confirmation/ function any more.
// The pool's PostConfirmation trigger is the UserConfirmed emitter, set in amplify/backend.ts.
export const auth = defineAuth({
  loginWith: {
    email: true,
  },
});
