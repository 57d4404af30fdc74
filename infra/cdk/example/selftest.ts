// The construct's refusals and warnings, which the committed templates cannot show: run by
// check.sh after the synth. Each case builds a small app and expects an error or a warning.
import * as assert from "node:assert/strict";

import { App, CfnParameter, Duration, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as appsync from "aws-cdk-lib/aws-appsync";
import * as cognito from "aws-cdk-lib/aws-cognito";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as s3 from "aws-cdk-lib/aws-s3";

import { UserConfirmedPipeline, type UserConfirmedPipelineProps } from "../src";

function setup(extra: Partial<UserConfirmedPipelineProps> = {}, poolScope?: (app: App) => Stack) {
  const app = new App();
  const stack = new Stack(app, "Pipeline");
  const poolStack = poolScope ? poolScope(app) : stack;
  const bucket = s3.Bucket.fromBucketName(stack, "Code", "code");
  const props: UserConfirmedPipelineProps = {
    userPool: new cognito.UserPool(poolStack, "Pool"),
    graphqlApi: appsync.GraphqlApi.fromGraphqlApiAttributes(stack, "Api", { graphqlApiId: "abc" }),
    emitterCode: lambda.Code.fromBucket(bucket, "e.zip"),
    workerCode: lambda.Code.fromBucket(bucket, "w.zip"),
    reconcilerCode: lambda.Code.fromBucket(bucket, "r.zip"),
    ...extra,
  };
  return { app, stack, poolStack, props };
}

const cases: Record<string, () => void> = {
  "a pool that already has a PostConfirmation trigger is an error at synth": () => {
    const { app, stack, props } = setup();
    const other = new lambda.Function(stack, "Other", {
      code: lambda.Code.fromInline("exports.handler = async (e) => e"),
      handler: "index.handler",
      runtime: lambda.Runtime.NODEJS_20_X,
    });
    (props.userPool as cognito.UserPool).addTrigger(cognito.UserPoolOperation.POST_CONFIRMATION, other);
    new UserConfirmedPipeline(stack, "Pipeline", props);
    assert.throws(() => app.synth(), /already has a PostConfirmation trigger/);
  },
  "an imported pool cannot get the trigger": () => {
    const { stack, props } = setup();
    const userPool = cognito.UserPool.fromUserPoolId(stack, "Imported", "us-east-1_Abc");
    assert.throws(() => new UserConfirmedPipeline(stack, "Pipeline", { ...props, userPool }), /attachTrigger: false/);
    new UserConfirmedPipeline(stack, "Permission", { ...props, userPool, attachTrigger: false });
  },
  "literal values outside the template's bounds are refused": () => {
    const bad: Partial<UserConfirmedPipelineProps>[] = [
      { namePrefix: "Upper" },
      { namePrefix: "a-name-prefix-longer-than-24" },
      { eventSource: "aws.cognito" },
      { publishBudgetMs: 3000 },
      { workerMaximumConcurrency: 1 },
      { workerBatchSize: 11 },
      { queueVisibilityTimeout: Duration.hours(13) },
      { ruleMaximumEventAge: Duration.seconds(30) },
      { failurePolicy: "retry" as "fail-open" },
      { backfillPublisherArn: "arn:aws:iam::123456789012:user/someone" },
      { verifyUser: "strict" as "none" },
      { publishProfileCreated: "true" as unknown as boolean },
      { reconcileSchedule: "every hour" },
      { reconcileSchedule: "at(2026-01-01T00:00:00)" },
      { reconcileScheduleState: "OFF" as "ENABLED" },
      { orphanSweepSchedule: "weekly" },
      { orphanSweepSchedule: "at(2026-01-01T00:00:00)" },
      { orphanSweepScheduleState: "OFF" as "ENABLED" },
      { reconcileStatuses: [] },
      { reconcileStatuses: ["CONFIRMED", "ACTIVE"] },
      { reconcileOverlap: Duration.seconds(30) },
      { reconcilePublishRate: 0 },
      // ListUsers' UserList quota is 30 requests per second: the template's MaxValue.
      { reconcileListUsersRate: 31 },
      { reconcileListUsersRate: 0 },
      { reconcileBehindAlarm: Duration.minutes(30) },
      { workerUserLookupRate: 0 },
      { workerUserLookupRate: 26 },
      { lifecycleEvents: "true" as unknown as boolean },
      { createTrail: "yes" as unknown as boolean },
    ];
    for (const extra of bad) {
      const { stack, props } = setup();
      assert.throws(() => new UserConfirmedPipeline(stack, "Pipeline", { ...props, ...extra }), /UserConfirmedPipeline:/, JSON.stringify(extra));
    }
  },
  "reconcileListUsersRate is taken up to ListUsers' quota, 30": () => {
    for (const reconcileListUsersRate of [1, 30]) {
      const { app, stack, props } = setup({ reconcileListUsersRate });
      const pipeline = new UserConfirmedPipeline(stack, "Pipeline", props);
      app.synth();
      const variables = Template.fromStack(stack).toJSON().Resources[stack.getLogicalId(
        pipeline.reconcilerFunction.node.defaultChild as lambda.CfnFunction,
      )].Properties.Environment.Variables;
      assert.equal(variables.LIST_USERS_RPS, String(reconcileListUsersRate));
    }
    const { stack, props } = setup();
    assert.throws(
      () => new UserConfirmedPipeline(stack, "Pipeline", { ...props, reconcileListUsersRate: 31 }),
      /reconcileListUsersRate must be an integer from 1 to 30, not 31/,
    );
  },
  "each contract's schema is registered where it is published": () => {
    // UserConfirmed always; ProfileCreated with publishProfileCreated; UserDeleted with
    // lifecycleEvents; ProfileDeleted with both (the worker publishes it only then).
    for (const publishProfileCreated of [true, false]) {
      for (const lifecycleEvents of [true, false]) {
        for (const createSchemaRegistry of [true, false]) {
          const { app, stack, props } = setup({ publishProfileCreated, lifecycleEvents, createSchemaRegistry });
          const pipeline = new UserConfirmedPipeline(stack, "Pipeline", props);
          app.synth();
          const schemas = Object.values(Template.fromStack(stack).findResources("AWS::EventSchemas::Schema"))
            .map((r) => String(r.Properties.SchemaName).split("@")[1])
            .sort();
          const expected = createSchemaRegistry
            ? [
                "UserConfirmed",
                ...(publishProfileCreated ? ["ProfileCreated"] : []),
                ...(lifecycleEvents ? ["UserDeleted"] : []),
                ...(publishProfileCreated && lifecycleEvents ? ["ProfileDeleted"] : []),
              ].sort()
            : [];
          const label = JSON.stringify({ publishProfileCreated, lifecycleEvents, createSchemaRegistry });
          assert.deepEqual(schemas, expected, label);
          assert.equal(pipeline.userDeletedSchema !== undefined, expected.includes("UserDeleted"), label);
          assert.equal(pipeline.profileDeletedSchema !== undefined, expected.includes("ProfileDeleted"), label);
          assert.equal("UserDeletedSchemaArn" in pipeline.outputs, expected.includes("UserDeleted"), label);
          assert.equal("ProfileDeletedSchemaArn" in pipeline.outputs, expected.includes("ProfileDeleted"), label);
        }
      }
    }
  },
  "verifyUser cannot be a CloudFormation parameter (it decides the worker's statements)": () => {
    const { stack, props } = setup();
    const verifyUser = new CfnParameter(stack, "VerifyUser", { type: "String" }).valueAsString as "none";
    assert.throws(() => new UserConfirmedPipeline(stack, "Pipeline", { ...props, verifyUser }), /verifyUser must be the literal/);
  },
  "publishProfileCreated cannot be a CloudFormation parameter (it decides the worker's statements)": () => {
    const { stack, props } = setup();
    const publishProfileCreated = new CfnParameter(stack, "PublishProfileCreated", { type: "String" }).valueAsString as unknown as boolean;
    assert.throws(
      () => new UserConfirmedPipeline(stack, "Pipeline", { ...props, publishProfileCreated }),
      /publishProfileCreated must be the literal/,
    );
  },
  "with the pool in another stack, strict mode and the queue deny refer only from the worker's stack to the pool's": () => {
    const { app, poolStack, stack, props } = setup({ verifyUser: "cognito" }, (a) => new Stack(a, "Auth"));
    const pipeline = new UserConfirmedPipeline(stack, "Pipeline", props);
    // A reference from the pool's stack to the worker's would be a cycle: synth refuses it.
    app.synth();
    assert.deepEqual(stack.dependencies.map((s) => s.stackName), ["Auth"]);
    assert.deepEqual(poolStack.dependencies, []);
    // The policies that name the worker's role, and the dashboard, stay with the worker.
    for (const id of ["WorkerDeadLetterQueuePolicy", "BusPolicyDenyForeignProfileCreated", "BusPolicyDenyForeignDetailType",
                      "BusPolicyDenyForeignProfileDeleted", "BusPolicyDenyForeignUserDeleted", "Dashboard"]) {
      assert.equal(Stack.of(pipeline.node.findChild(id)), stack, id);
    }
    // The lifecycle rule and queue go with the rule DLQ, whose policy names the rule.
    assert.equal(Stack.of(pipeline.lifecycleRule!), poolStack);
    assert.equal(Stack.of(pipeline.lifecycleQueue!), poolStack);
    assert.equal(Stack.of(pipeline.workerLifecycleEventSource!), stack);
  },
  "lifecycleEvents: false leaves out every lifecycle resource, grant, output and graph": () => {
    const { app, stack, props } = setup({ lifecycleEvents: false });
    const pipeline = new UserConfirmedPipeline(stack, "Pipeline", props);
    app.synth();
    for (const made of [pipeline.lifecycleRule, pipeline.lifecycleQueue, pipeline.workerLifecycleEventSource,
                        pipeline.reconcilerStoreDeletePolicy, pipeline.reconcilerOrphanSweepSchedule]) {
      assert.equal(made, undefined);
    }
    const template = Template.fromStack(stack);
    const text = JSON.stringify(template.toJSON());
    // No lifecycle queue, rule, alarm, dashboard row or grant (the bus policies that name UserDeleted
    // and ProfileDeleted stay: without the grants no principal may publish those).
    for (const absent of ["Lifecycle", "-lifecycle", "lifecycle_age", "aws.cognito-idp", "deleteUserProfile", "AnnounceDeletedUsers", "LookUpUsersInThePool", "PublishLifecycleEvents",
                          "ConsumeLifecycleQueue", "ReadAndDeleteUserProfilesOnly", "orphan-sweep", "orphans"]) {
      assert.ok(!text.includes(absent), absent);
    }
    const roles = template.findResources("AWS::IAM::Role");
    const worker = Object.keys(roles).find((id) => id.includes("WorkerRole"))!;
    assert.ok(!JSON.stringify(roles[worker]).includes("cognito-idp"), "no ListUsers for the worker");
    assert.equal(Object.keys(template.findResources("AWS::Lambda::EventSourceMapping")).length, 1);
    assert.equal(Object.keys(template.findResources("AWS::Events::Rule")).length, 1);
    assert.equal(Object.keys(template.findResources("AWS::Events::EventBusPolicy")).length, 5);
    assert.ok(!Object.keys(pipeline.outputs).some((k) => k.startsWith("Lifecycle")));
    // The pass's schedule only.
    assert.equal(Object.keys(template.findResources("AWS::Scheduler::Schedule")).length, 1);
  },
  "lifecycleEvents (the default) schedules the orphan sweep weekly": () => {
    const { app, stack, props } = setup();
    const pipeline = new UserConfirmedPipeline(stack, "Pipeline", props);
    app.synth();
    const sweep = pipeline.reconcilerOrphanSweepSchedule!;
    assert.ok(sweep);
    assert.equal(sweep.scheduleExpression, "rate(7 days)");
    assert.equal(sweep.state, "ENABLED");
    const target = sweep.target as { input?: string };
    assert.deepEqual(JSON.parse(target.input!), { orphans: true });
    assert.equal(Stack.of(sweep), Stack.of(pipeline.reconcilerSchedule));
  },
  "createTrail does not depend on lifecycleEvents": () => {
    const { app, stack, props } = setup({ lifecycleEvents: false, createTrail: true });
    const pipeline = new UserConfirmedPipeline(stack, "Pipeline", props);
    app.synth();
    assert.ok(pipeline.trail && pipeline.trailBucket);
    assert.equal(Object.keys(Template.fromStack(stack).findResources("AWS::CloudTrail::Trail")).length, 1);
  },
  "createTrail is off by default": () => {
    const { app, stack, props } = setup();
    const pipeline = new UserConfirmedPipeline(stack, "Pipeline", props);
    app.synth();
    assert.equal(pipeline.trail, undefined);
    assert.equal(pipeline.trailBucket, undefined);
    assert.deepEqual(Template.fromStack(stack).findResources("AWS::CloudTrail::Trail"), {});
    assert.deepEqual(Template.fromStack(stack).findResources("AWS::S3::Bucket"), {});
    assert.ok(pipeline.lifecycleRule && pipeline.lifecycleQueue, "lifecycleEvents is on by default");
  },
  "the construct in the pool's stack with the API elsewhere gets a warning": () => {
    const { app, poolStack, props } = setup({}, (a) => new Stack(a, "Auth"));
    const api = appsync.GraphqlApi.fromGraphqlApiAttributes(new Stack(app, "Data"), "Api", { graphqlApiId: "abc" });
    const pipeline = new UserConfirmedPipeline(poolStack, "Pipeline", { ...props, graphqlApi: api });
    const warnings = pipeline.node.metadata.filter((m) => m.type === "aws:cdk:warning").map((m) => String(m.data));
    assert.ok(warnings.some((w) => w.includes("stack of its own")), warnings.join("\n"));
  },
  "with the pool in another stack, the emitter side goes there": () => {
    const { poolStack, stack, props } = setup({}, (a) => new Stack(a, "Auth"));
    const pipeline = new UserConfirmedPipeline(stack, "Pipeline", props);
    assert.equal(Stack.of(pipeline.emitterFunction), poolStack);
    assert.equal(Stack.of(pipeline.queue), poolStack);
    assert.equal(Stack.of(pipeline.workerFunction), stack);
    // The bus policies name the reconciler's role: it (and what its policy names) goes with them;
    // the function, its schedule and the auditor's policy stay here.
    assert.equal(Stack.of(pipeline.reconcilerRole), poolStack);
    assert.equal(Stack.of(pipeline.reconcileStateParameter), poolStack);
    assert.equal(Stack.of(pipeline.reconcilerFunction), stack);
    assert.equal(Stack.of(pipeline.reconcilerSchedule), stack);
    assert.equal(Stack.of(pipeline.reconcilerOrphanSweepSchedule!), stack);
    assert.equal(Stack.of(pipeline.auditorPolicy), stack);
  },
  "the reconciler's schedule and statuses may be CloudFormation parameters": () => {
    const { app, stack, props } = setup();
    const schedule = new CfnParameter(stack, "Schedule", { type: "String" }).valueAsString;
    const statuses = new CfnParameter(stack, "Statuses", { type: "String" }).valueAsString;
    const sweep = new CfnParameter(stack, "OrphanSweep", { type: "String" }).valueAsString;
    const sweepState = new CfnParameter(stack, "OrphanSweepState", { type: "String" }).valueAsString;
    new UserConfirmedPipeline(stack, "Pipeline", {
      ...props,
      reconcileSchedule: schedule,
      reconcileStatuses: [statuses],
      orphanSweepSchedule: sweep,
      orphanSweepScheduleState: sweepState as "ENABLED",
    });
    app.synth();
  },
};

let failed = 0;
for (const [name, run] of Object.entries(cases)) {
  try {
    run();
    console.log(`ok   ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${name}\n     ${String(error).split("\n").join("\n     ")}`);
  }
}
process.exit(failed ? 1 : 0);
