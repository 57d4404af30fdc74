// Stands in for Amplify's generated `$amplify/env/post-confirmation` module, which is exactly
// this: the Lambda environment, typed. AMPLIFY_DATA_GRAPHQL_ENDPOINT is set by the harness.
export const env = process.env as Record<string, string>;
