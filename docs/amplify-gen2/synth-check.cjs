// Synthesizes docs/amplify-gen2/amplify/backend.ts with the real, pinned @aws-amplify/backend
// (offline: nothing is deployed) and checks what the construct promises in Amplify's own stack
// layout: no circular dependency between the nested stacks, the emitter attached as the pool's
// PostConfirmation trigger inside the auth stack, the worker and the reconciler's function in the
// custom stack (the reconciler's role, which the bus policies name, in auth), and the AppSync
// fields the worker's and the reconciler's policies name.
//
//   ./node_modules/.bin/tsc -p tsconfig.synth.json && node synth-check.cjs
// (make docs-typecheck runs both). Exit status 1 with the reasons when a check fails.
"use strict";
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const Module = require("node:module");

const here = __dirname;
const build = path.join(here, ".synth", "build");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "uc-amplify-synth-"));
const outdir = path.join(work, "cdk.out");
const failures = [];
const check = (ok, message) => ok || failures.push(message);

try {
  // The construct's default code location, relative to where ampx runs; synth only hashes and
  // copies the zips, so any bytes do.
  for (const binary of ["uc-emitter", "uc-worker", "uc-reconciler"]) {
    fs.mkdirSync(path.join(work, "target", "lambda", binary), { recursive: true });
    fs.writeFileSync(path.join(work, "target", "lambda", binary, "bootstrap.zip"), "placeholder");
  }
  process.chdir(work);
  // What `ampx sandbox` passes as CDK context.
  process.env.CDK_CONTEXT_JSON = JSON.stringify({
    "amplify-backend-namespace": "docsapp",
    "amplify-backend-name": "sandbox",
    "amplify-backend-type": "sandbox",
  });
  process.env.CDK_OUTDIR = outdir;

  // tsc leaves the tsconfig path alias in the emitted require(); point it at the emitted construct.
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, ...rest) {
    const target = request === "@userconfirmed/cdk" ? path.join(build, "infra", "cdk", "src", "index.js") : request;
    return resolve.call(this, target, ...rest);
  };
  require(path.join(build, "docs", "amplify-gen2", "amplify", "backend.js"));
  // @aws-amplify/backend synthesizes when ampx sends this message.
  process.emit("message", "amplifySynth");

  const read = (file) => JSON.parse(fs.readFileSync(path.join(outdir, file), "utf8"));
  const report = read("validation-report.json");
  for (const plugin of report.pluginReports) {
    for (const v of plugin.violations ?? []) check(false, `CDK validation ${v.ruleName}: ${v.description}`);
  }

  const [rootFile] = fs.readdirSync(outdir).filter((f) => /^amplify-.*\.template\.json$/.test(f));
  const root = read(rootFile).Resources;
  const stacks = Object.keys(root).filter((id) => root[id].Type === "AWS::CloudFormation::Stack");
  const dependsOn = Object.fromEntries(
    stacks.map((id) => [id, stacks.filter((other) => other !== id && JSON.stringify(root[id]).includes(`"${other}"`))]),
  );
  const group = (prefix) => stacks.find((id) => new RegExp(`^${prefix}[0-9A-F]{8}$`).test(id));
  const [auth, data, custom] = ["auth", "data", "UserConfirmed"].map(group);
  check(auth && data && custom, `nested stacks auth, data, UserConfirmed expected, found ${stacks}`);
  check(dependsOn[auth]?.length === 0, `the auth stack must depend on no other stack: ${dependsOn[auth]}`);
  check(
    JSON.stringify(dependsOn[custom]?.sort()) === JSON.stringify([auth, data].sort()),
    `the UserConfirmed stack must depend on auth and data only: ${dependsOn[custom]}`,
  );
  const seen = new Set();
  const visit = (id, trail) => {
    if (trail.includes(id)) return check(false, `circular dependency: ${[...trail, id].join(" -> ")}`);
    if (seen.has(id)) return;
    seen.add(id);
    for (const next of dependsOn[id]) visit(next, [...trail, id]);
  };
  stacks.forEach((id) => visit(id, []));

  const nested = (prefix) => {
    const file = fs.readdirSync(outdir).find((f) => new RegExp(`${prefix}[0-9A-F]{8}\\.nested\\.template\\.json$`).test(f));
    return read(file).Resources;
  };
  const authResources = nested("auth");
  const ofType = (resources, type) => Object.keys(resources).filter((id) => resources[id].Type === type);
  const [pool] = ofType(authResources, "AWS::Cognito::UserPool");
  const [emitter, ...more] = ofType(authResources, "AWS::Lambda::Function");
  check(emitter && more.length === 0, `one function (the emitter) expected in the auth stack: ${[emitter, ...more]}`);
  check(
    JSON.stringify(authResources[pool].Properties.LambdaConfig) === JSON.stringify({ PostConfirmation: { "Fn::GetAtt": [emitter, "Arn"] } }),
    `the pool's LambdaConfig must be the emitter only: ${JSON.stringify(authResources[pool].Properties.LambdaConfig)}`,
  );
  const customResources = nested("UserConfirmed");
  const byName = (suffix) =>
    ofType(customResources, "AWS::Lambda::Function").find((id) => String(customResources[id].Properties.FunctionName).endsWith(suffix));
  const worker = byName("-worker");
  const reconciler = byName("-reconciler");
  check(
    ofType(customResources, "AWS::Lambda::Function").length === 2 && worker && reconciler,
    `the worker and the reconciler expected in the custom stack: ${ofType(customResources, "AWS::Lambda::Function")}`,
  );
  const variables = Object.keys(customResources[worker]?.Properties.Environment.Variables ?? {});
  check(
    JSON.stringify(variables.sort()) ===
      JSON.stringify([
        "APPSYNC_GRAPHQL_URL", "CONCURRENCY", "DLQ_URL", "EVENT_BUS_NAME", "EVENT_SOURCE", "PROFILE_CREATED_EVENTS",
        // The lifecycle (lifecycleEvents, on by default): the counted statuses and the ListUsers pace.
        "RECONCILE_STATUSES", "STACK_NAME", "USER_LOOKUP_RPS", "USER_POOL_ID", "VERIFY_USER",
      ]),
    `the worker in the custom stack, with the API's URL: ${variables}`,
  );
  // The bus policies that name the worker's role (UserConfirmed, ProfileCreated, ProfileDeleted,
  // UserDeleted) and the dashboard (it names the queues) are in the custom stack: a reference from
  // auth to it would be the cycle. The source's policy (emitter, reconciler) stays in auth.
  for (const type of ["AWS::CloudWatch::Dashboard"]) {
    check(ofType(customResources, type).length === 1 && ofType(authResources, type).length === 0, `${type} in the custom stack only`);
  }
  check(
    ofType(customResources, "AWS::Events::EventBusPolicy").length === 4 && ofType(authResources, "AWS::Events::EventBusPolicy").length === 1,
    "the four bus policies naming the worker's role in the custom stack, the source's one in auth",
  );
  // The lifecycle (lifecycleEvents, on by default): the rule on the default bus and its queue in
  // auth, with the rule DLQ whose policy names the rule; the worker's second event source here.
  const rules = ofType(authResources, "AWS::Events::Rule").map((id) => authResources[id].Properties);
  check(
    rules.length === 2 && ofType(customResources, "AWS::Events::Rule").length === 0 &&
      rules.some((r) => r.EventBusName === "default" && JSON.stringify(r.EventPattern).includes("aws.cognito-idp")),
    `the UserConfirmed rule and the lifecycle rule (default bus) in auth: ${JSON.stringify(rules.map((r) => r.EventBusName))}`,
  );
  check(
    ofType(customResources, "AWS::Lambda::EventSourceMapping").length === 2,
    "the worker's two event sources (worker queue, lifecycle queue) in the custom stack",
  );
  // No trail unless createTrail.
  check(
    ofType(authResources, "AWS::CloudTrail::Trail").length + ofType(customResources, "AWS::CloudTrail::Trail").length === 0,
    "no trail by default (createTrail: false)",
  );
  // The reconciler: its schedules (the pass's, and the orphan sweep's with lifecycleEvents), and
  // the auditor's policy (which names the API), in the custom stack; its role and state parameter
  // in auth, where the bus policies that name the role are.
  for (const [type, count] of [
    ["AWS::Scheduler::Schedule", 2],
    ["AWS::IAM::ManagedPolicy", 1],
    ["AWS::Lambda::EventInvokeConfig", 1],
  ]) {
    check(
      ofType(customResources, type).length === count && ofType(authResources, type).length === 0,
      `${count} ${type} in the custom stack only`,
    );
  }
  const sweepInputs = ofType(customResources, "AWS::Scheduler::Schedule").map((id) => customResources[id].Properties.Target.Input ?? null);
  check(
    JSON.stringify(sweepInputs.sort()) === JSON.stringify([null, '{"orphans": true}']),
    `the pass's schedule (no input) and the orphan sweep's ({"orphans": true}): ${JSON.stringify(sweepInputs)}`,
  );
  check(
    ofType(authResources, "AWS::SSM::Parameter").length === 1 && ofType(customResources, "AWS::SSM::Parameter").length === 0,
    "the reconciler's state parameter in auth",
  );
  // What the roles may call on the API (docs/amplify-gen2.md, section 1: IAM policy is the whole
  // authorization, no schema rule): the worker creates profiles and, following each user's
  // lifecycle, reads and deletes them; the reconciler reads them, and its orphan sweep lists them
  // all and deletes orphaned ones. No update or subscription; no list for the worker.
  const fields = (resource) =>
    [...new Set([...JSON.stringify(resource ?? {}).matchAll(/types\/(\w+)\/fields\/(\w+)/g)].map((m) => `${m[1]}.${m[2]}`))].sort();
  const workerRole = customResources[worker]?.Properties.Role?.["Fn::GetAtt"]?.[0];
  check(
    JSON.stringify(fields(customResources[workerRole])) ===
      JSON.stringify(["Mutation.createUserProfile", "Mutation.deleteUserProfile", "Query.getUserProfile"]),
    `the worker's role: createUserProfile, getUserProfile and deleteUserProfile on the API: ${fields(customResources[workerRole])}`,
  );
  const policies = ofType(customResources, "AWS::IAM::Policy").map((id) => customResources[id]);
  const reconcilerFields = fields(policies.filter((r) => String(r.Properties.PolicyName).startsWith("reconciler-store-")));
  check(
    JSON.stringify(reconcilerFields) ===
      JSON.stringify(["Mutation.deleteUserProfile", "Query.getUserProfile", "Query.listUserProfiles"]),
    `the reconciler's store policies: getUserProfile, listUserProfiles and deleteUserProfile on the API: ${reconcilerFields}`,
  );
  const reconcilerVariables = Object.keys(customResources[reconciler]?.Properties.Environment.Variables ?? {});
  check(
    JSON.stringify(reconcilerVariables.sort()) ===
      JSON.stringify([
        // APPSYNC_GRAPHQL_URL: the store it checks before publishing (the one the worker writes).
        "APPSYNC_GRAPHQL_URL", "EVENT_BUS_NAME", "EVENT_SOURCE", "LIST_USERS_RPS", "RECONCILE_OVERLAP_SECONDS",
        "RECONCILE_PUBLISH_RATE", "RECONCILE_STATUSES", "RECONCILE_WATERMARK_PARAMETER", "STACK_NAME",
        // The orphan sweep's second look in the pool (the worker's lifecycle, at the worker's pace).
        "USER_LOOKUP_RPS", "USER_POOL_ID",
      ]),
    `the reconciler's environment: ${reconcilerVariables}`,
  );
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

if (failures.length) {
  console.error(`amplify/backend.ts synth check failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
console.log("amplify/backend.ts synthesizes with @aws-amplify/backend: nested stacks acyclic, trigger in the auth stack, reconciler in the custom stack");
