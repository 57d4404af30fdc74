import { type ClientSchema, a, defineData } from "@aws-amplify/backend";

// The Amplify docs' UserProfile model, unchanged. Only the schema-level
// `.authorization((allow) => [allow.resource(postConfirmation)])` is gone, with its import:
// the UserConfirmed worker (created by the construct in amplify/backend.ts, not by
// defineFunction) is an IAM principal authorized by its own IAM policy (appsync:GraphQL on
// Mutation.createUserProfile only), which Amplify Gen 2 data APIs honour without any schema
// rule (see docs/amplify-gen2.md).
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
