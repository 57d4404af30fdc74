/* tslint:disable */
/* eslint-disable */
// What `npx ampx generate graphql-client-code` writes for the docs' UserProfile model (the
// statement; the generated API.ts types are left out, they are erased at build time anyway).

type GeneratedMutation<InputType, OutputType> = string & {
  __generatedMutationInput: InputType;
  __generatedMutationOutput: OutputType;
};

export const createUserProfile = /* GraphQL */ `mutation CreateUserProfile(
  $condition: ModelUserProfileConditionInput
  $input: CreateUserProfileInput!
) {
  createUserProfile(condition: $condition, input: $input) {
    createdAt
    email
    id
    profileOwner
    updatedAt
    __typename
  }
}
` as GeneratedMutation<unknown, unknown>;
