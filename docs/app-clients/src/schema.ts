// The app's typed view of the data API: the Amplify docs' UserProfile model, exactly as in
// docs/amplify-gen2/amplify/data/resource.ts (check-sync.py compares the two). A Gen 2 app
// imports `Schema` from its own amplify/data/resource.ts instead; this copy exists because that
// file needs @aws-amplify/backend (and aws-cdk-lib) installed, which a client check should not.
import { type ClientSchema, a } from "@aws-amplify/data-schema";

const schema = a.schema({
  UserProfile: a
    .model({
      email: a.string(),
      profileOwner: a.string(),
    })
    .authorization((allow) => [allow.ownerDefinedIn("profileOwner")]),
});

export type Schema = ClientSchema<typeof schema>;
