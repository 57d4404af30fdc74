// Stands in for amplify_outputs.json, which `npx ampx sandbox` / `ampx generate outputs` writes
// into each app (and apps do not commit): typed as whatever Amplify.configure accepts.
declare module "*/amplify_outputs.json" {
  const outputs: Parameters<typeof import("aws-amplify").Amplify.configure>[0];
  export default outputs;
}
