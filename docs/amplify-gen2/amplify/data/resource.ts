import { type ClientSchema, a, defineData } from "@aws-amplify/backend";

// The Amplify docs' UserProfile model, unchanged. Only the schema-level
// `.authorization((allow) => [allow.resource(postConfirmation)])` is gone, with its import:
// the UserConfirmed worker and reconciler (created by the construct in amplify/backend.ts, not
// by defineFunction) are IAM principals authorized by their own IAM policies, which Amplify
// Gen 2 data APIs honour without any schema rule (see docs/amplify-gen2.md). appsync:GraphQL
// on these fields only:
//   worker      Mutation.createUserProfile; with the construct's lifecycleEvents (the
//               default) also Query.getUserProfile and Mutation.deleteUserProfile (a user
//               deleted in Cognito loses the profile)
//   reconciler  Query.getUserProfile; with lifecycleEvents also Mutation.deleteUserProfile
//               (orphaned profiles)
// `allow.resource(fn).to(["query", "mutate", "listen"])` could not say this: it takes only a
// defineFunction, and grants whole operation kinds on every model, not fields.
const schema = a.schema({
  UserProfile: a
    .model({
      email: a.string(),
      profileOwner: a.string(),
    })
    .authorization((allow) => [allow.ownerDefinedIn("profileOwner")]),
});

export type Schema = ClientSchema<typeof schema>;

export const data = defineData({
  schema,
  authorizationModes: {
    defaultAuthorizationMode: "apiKey",
    apiKeyAuthorizationMode: {
      expiresInDays: 30,
    },
  },
});
