// The construct as plain CloudFormation templates: the stacks synthesized to
// infra/cdk/uc-pipeline.template.json (the SAM template's parameters, for the equivalence test,
// the linters, moto and `dev/local_stack.py deploy --cfn-template`) and to
// example/synth/options.template.json (every option set, against the SAM template's other branches).
import { CfnOutput, CfnParameter, Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as appsync from "aws-cdk-lib/aws-appsync";
import * as cognito from "aws-cdk-lib/aws-cognito";
import * as events from "aws-cdk-lib/aws-events";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as s3 from "aws-cdk-lib/aws-s3";
import type * as logs from "aws-cdk-lib/aws-logs";
import * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";

import { UserConfirmedPipeline } from "../src";

type Spec = {
  type: "String" | "Number";
  default?: string | number;
  allowedPattern?: string;
  allowedValues?: string[];
  minValue?: number;
  maxValue?: number;
  minLength?: number;
  maxLength?: number;
  constraintDescription?: string;
  description: string;
};

// The SAM template's parameters the construct takes as values (types, defaults and constraints
// equal to infra/template.yaml's: dev/tests/test_construct.py compares them). Parameters that
// switch SAM conditions (CreateEventBus, AppSyncGraphqlUrl, AlarmTopicArn, VerifyUser,
// PublishProfileCreated, LifecycleEvents, CreateTrail, ...) are
// construct options decided at synth time instead.
const SAM_PARAMETERS: Record<string, Spec> = {
  NamePrefix: {
    type: "String",
    default: "userconfirmed",
    allowedPattern: "^[a-z][a-z0-9-]{0,23}$",
    constraintDescription: "1-24 characters, lower-case letters, digits and '-', starting with a letter.",
    description: "Prefix of every named resource. Use a different prefix for each copy of the stack in one account and region.",
  },
  UserPoolId: {
    type: "String",
    // Not empty, unlike SAM's: this stack has no trial pool.
    allowedPattern: "^[\\w-]+_[0-9a-zA-Z]+$",
    maxLength: 55,
    constraintDescription: "a Cognito user pool id such as eu-west-1_AbCdEf123.",
    description:
      "Id of the existing Cognito user pool whose PostConfirmation trigger is the emitter (the stack lets that pool invoke it; attach the trigger with uc-ops attach-trigger).",
  },
  AppSyncApiId: {
    type: "String",
    minLength: 1,
    maxLength: 64,
    allowedPattern: "^[A-Za-z0-9]+$",
    constraintDescription: "the AppSync GraphQL API id (letters and digits).",
    description:
      "Id of the AppSync GraphQL API that serves createUserProfile. The worker's role may call Mutation.createUserProfile on this API and nothing else; the worker resolves the endpoint with appsync:GetGraphqlApi.",
  },
  EventSource: {
    type: "String",
    default: "userconfirmed.cognito",
    allowedPattern: "^(?!aws\\.)[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    constraintDescription: "1-100 letters, digits, '.', '_' or '-'; must not start with 'aws.'.",
    description: "The events' source (the emitter's EVENT_SOURCE).",
  },
  ArchiveRetentionDays: {
    type: "Number",
    default: 365,
    minValue: 0,
    maxValue: 36500,
    description:
      "Days the archive keeps UserConfirmed and UserDeleted events for EventBridge replay (a back-filled consumer gets each deletion with the confirmations); 0 = indefinitely. An archived UserConfirmed holds the user's e-mail: the retention is the longest an erased user's address may remain in the archive, so keep it bounded.",
  },
  RuleMaximumRetryAttempts: {
    type: "Number",
    default: 185,
    minValue: 0,
    maxValue: 185,
    description: "Times EventBridge retries delivering an event to the queue before the rule's DLQ.",
  },
  RuleMaximumEventAgeSeconds: {
    type: "Number",
    default: 86400,
    minValue: 60,
    maxValue: 86400,
    description: "Age (seconds) after which EventBridge stops retrying an undelivered event.",
  },
  PublishBudgetMs: {
    type: "Number",
    default: 2000,
    minValue: 600,
    maxValue: 2500,
    description: "The emitter's whole publish budget (attempts, back-off and the SQS fallback), in ms.",
  },
  FailurePolicy: {
    type: "String",
    default: "fail-open",
    allowedValues: ["fail-open", "fail-closed"],
    description: "fail-open = the sign-up succeeds even when the event was lost (alarmed); fail-closed = Cognito shows an error.",
  },
  MaxReceiveCount: {
    type: "Number",
    default: 5,
    minValue: 1,
    maxValue: 1000,
    description: "Receives of one message before SQS moves it to the worker DLQ.",
  },
  WorkerBatchSize: { type: "Number", default: 10, minValue: 1, maxValue: 10, description: "Messages per worker invocation." },
  WorkerBatchingWindowSeconds: {
    type: "Number",
    default: 0,
    minValue: 0,
    maxValue: 300,
    description: "Seconds the event source mapping may wait to fill a batch.",
  },
  WorkerMaximumConcurrency: {
    type: "Number",
    default: 5,
    minValue: 2,
    maxValue: 1000,
    description: "Most concurrent worker invocations the SQS event source starts.",
  },
  WorkerCallConcurrency: {
    type: "Number",
    default: 10,
    minValue: 1,
    maxValue: 100,
    description: "AppSync calls in flight within one worker invocation.",
  },
  WorkerMemorySize: { type: "Number", default: 256, minValue: 128, maxValue: 3008, description: "Worker memory in MB." },
  WorkerUserLookupRate: {
    type: "Number",
    default: 5,
    minValue: 1,
    maxValue: 25,
    description:
      "The worker's USER_LOOKUP_RPS: most Cognito ListUsers calls per second of one worker invocation checking lifecycle events (2 at most at once); keep 2 x this + ReconcileListUsersRate below Cognito's UserList quota, 30/s.",
  },
  LogRetentionDays: {
    type: "Number",
    // A string like AllowedValues (CfnParameter types them string[]), or cfn-lint sees no match.
    default: "30",
    allowedValues: ["1", "3", "5", "7", "14", "30", "60", "90", "120", "150", "180", "365", "400", "545", "731", "1096", "1827", "2192", "2557", "2922", "3288", "3653"],
    description: "Days the functions' log groups keep their logs.",
  },
  QueueVisibilityTimeoutSeconds: {
    type: "Number",
    default: 180,
    minValue: 5,
    maxValue: 43200,
    description: "The worker queue's visibility timeout; keep it at least 6 x the worker's 30 s timeout.",
  },
  ReconcileSchedule: {
    type: "String",
    default: "rate(1 hour)",
    allowedPattern: "^(rate\\([1-9][0-9]{0,4} (minute|minutes|hour|hours|day|days)\\)|cron\\([^()]{9,200}\\))$",
    constraintDescription: "an EventBridge Scheduler rate(...) or cron(...) expression, e.g. rate(1 hour).",
    description: "When the reconciler runs (EventBridge Scheduler, UTC); each invocation runs one pass, or continues one, for at most 15 minutes.",
  },
  ReconcileScheduleState: {
    type: "String",
    default: "ENABLED",
    allowedValues: ["ENABLED", "DISABLED"],
    description: "The reconciler's schedule: ENABLED, or DISABLED (invoke the function by hand to run a pass).",
  },
  OrphanSweepSchedule: {
    type: "String",
    default: "rate(7 days)",
    allowedPattern: "^(rate\\([1-9][0-9]{0,4} (minute|minutes|hour|hours|day|days)\\)|cron\\([^()]{9,200}\\))$",
    constraintDescription: "an EventBridge Scheduler rate(...) or cron(...) expression, e.g. rate(7 days).",
    description:
      "When the reconciler runs the orphan sweep (input {\"orphans\": true}): the safety net that erases the profiles of deleted users. A sweep must finish in one 15-minute invocation (about 240,000 users at ReconcileListUsersRate 5); larger pools sweep from a host.",
  },
  OrphanSweepScheduleState: {
    type: "String",
    default: "ENABLED",
    allowedValues: ["ENABLED", "DISABLED"],
    description: "The orphan sweep's schedule: ENABLED, or DISABLED (invoke the reconciler with {\"orphans\": true} by hand).",
  },
  ReconcileOverlapSeconds: {
    type: "Number",
    default: 3600,
    minValue: 60,
    maxValue: 2592000,
    description: "The reconciler's RECONCILE_OVERLAP_SECONDS: how far before the last pass's watermark a pass also looks (clock skew, ListUsers' eventual consistency; confirmation moves UserLastModifiedDate). Each changed user is published again about overlap / schedule interval times.",
  },
  ReconcilePublishRate: {
    type: "Number",
    default: 50,
    minValue: 1,
    maxValue: 1000,
    description: "The reconciler's RECONCILE_PUBLISH_RATE: most UserConfirmed events it puts on the bus per second.",
  },
  ReconcileListUsersRate: {
    type: "Number",
    default: 5,
    minValue: 1,
    maxValue: 30,
    description: "The reconciler's LIST_USERS_RPS: most Cognito ListUsers calls per second (Cognito's UserList quota: 30/s per account and Region, not adjustable).",
  },
  ReconcileStatuses: {
    type: "String",
    default: "CONFIRMED,EXTERNAL_PROVIDER",
    allowedPattern:
      "^(UNCONFIRMED|CONFIRMED|ARCHIVED|COMPROMISED|UNKNOWN|RESET_REQUIRED|FORCE_CHANGE_PASSWORD|EXTERNAL_PROVIDER)(,(UNCONFIRMED|CONFIRMED|ARCHIVED|COMPROMISED|UNKNOWN|RESET_REQUIRED|FORCE_CHANGE_PASSWORD|EXTERNAL_PROVIDER))*$",
    constraintDescription: "a comma-separated list of Cognito user statuses, no spaces.",
    description: "The reconciler's RECONCILE_STATUSES: the user statuses that should have a profile.",
  },
  ReconcileBehindAlarmSeconds: {
    type: "Number",
    default: 259200,
    minValue: 3600,
    maxValue: 2592000,
    description: "Threshold of the reconciler-behind alarm (OldestUnreconciledChange, seconds since the watermark); default 3 days, independent of the overlap: a whole-pool pass of 10 million users takes about 37 hours at the defaults.",
  },
};

/**
 * The construct with the SAM template's parameters: an existing pool and API by id, code from
 * S3 (the zips of `cargo lambda build`, uploaded by you). A deployable CloudFormation template for
 * teams without SAM, and the template the tests compare with infra/template.yaml.
 */
export class StandaloneStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, {
      ...props,
      description:
        "UserConfirmed pipeline, synthesized from the CDK construct (infra/cdk): Cognito PostConfirmation trigger (uc-emitter) -> EventBridge bus -> rule -> SQS queue (+ DLQs) -> uc-worker Lambda -> AppSync createUserProfile.",
    });
    const param: Record<string, CfnParameter> = {};
    for (const [name, spec] of Object.entries(SAM_PARAMETERS)) {
      param[name] = new CfnParameter(this, name, spec);
    }
    const text = (name: string) => param[name].valueAsString;
    const num = (name: string) => param[name].valueAsNumber;
    const codeBucket = new CfnParameter(this, "CodeS3Bucket", {
      type: "String",
      allowedPattern: "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
      description: "S3 bucket holding the functions' zips (cargo lambda build --release --arm64 --output-format zip).",
    });
    const codeKey = (name: string, binary: string) =>
      new CfnParameter(this, name, {
        type: "String",
        default: `${binary}/bootstrap.zip`,
        allowedPattern: "^[A-Za-z0-9!_.*'()/-]{1,1024}$",
        description: `S3 key of ${binary}'s bootstrap.zip in CodeS3Bucket.`,
      });
    const code = (name: string, binary: string) =>
      new lambda.CfnParametersCode({ bucketNameParam: codeBucket, objectKeyParam: codeKey(name, binary) });

    const pipeline = new UserConfirmedPipeline(this, "Pipeline", {
      userPool: cognito.UserPool.fromUserPoolId(this, "UserPool", text("UserPoolId")),
      graphqlApi: appsync.GraphqlApi.fromGraphqlApiAttributes(this, "Api", { graphqlApiId: text("AppSyncApiId") }),
      // CloudFormation cannot change a pool it does not own (see infra/README.md).
      attachTrigger: false,
      namePrefix: text("NamePrefix"),
      eventSource: text("EventSource"),
      archiveRetentionDays: num("ArchiveRetentionDays"),
      ruleMaximumRetryAttempts: num("RuleMaximumRetryAttempts"),
      ruleMaximumEventAge: Duration.seconds(num("RuleMaximumEventAgeSeconds")),
      publishBudgetMs: num("PublishBudgetMs"),
      failurePolicy: text("FailurePolicy") as "fail-open",
      maxReceiveCount: num("MaxReceiveCount"),
      queueVisibilityTimeout: Duration.seconds(num("QueueVisibilityTimeoutSeconds")),
      workerBatchSize: num("WorkerBatchSize"),
      workerBatchingWindow: Duration.seconds(num("WorkerBatchingWindowSeconds")),
      workerMaximumConcurrency: num("WorkerMaximumConcurrency"),
      workerCallConcurrency: num("WorkerCallConcurrency"),
      workerMemorySize: num("WorkerMemorySize"),
      workerUserLookupRate: num("WorkerUserLookupRate"),
      logRetention: num("LogRetentionDays") as logs.RetentionDays,
      reconcileSchedule: text("ReconcileSchedule"),
      reconcileScheduleState: text("ReconcileScheduleState") as "ENABLED",
      orphanSweepSchedule: text("OrphanSweepSchedule"),
      orphanSweepScheduleState: text("OrphanSweepScheduleState") as "ENABLED",
      reconcileOverlap: Duration.seconds(num("ReconcileOverlapSeconds")),
      reconcilePublishRate: num("ReconcilePublishRate"),
      reconcileListUsersRate: num("ReconcileListUsersRate"),
      reconcileStatuses: [text("ReconcileStatuses")],
      reconcileBehindAlarm: Duration.seconds(num("ReconcileBehindAlarmSeconds")),
      emitterCode: code("EmitterCodeS3Key", "uc-emitter"),
      workerCode: code("WorkerCodeS3Key", "uc-worker"),
      reconcilerCode: code("ReconcilerCodeS3Key", "uc-reconciler"),
    });
    addOutputs(this, pipeline);
  }
}

/**
 * Every option away from its default, as literals: an existing bus, a back-fill publisher, an
 * alarm topic, the API's endpoint given (no GetGraphqlApi), no schema registry, the worker's
 * strict mode (AdminGetUser), no ProfileCreated events, the trail (createTrail), the reconciler's
 * schedule (disabled) and settings. Compared with the SAM template under the same choices. One
 * exception: lifecycleEvents stays on (the default), so that its DynamoDB grants are compared
 * too; example/selftest.ts checks what lifecycleEvents: false leaves out.
 */
export class OptionsStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const pipeline = new UserConfirmedPipeline(this, "Pipeline", {
      userPool: cognito.UserPool.fromUserPoolId(this, "UserPool", "us-east-1_Options1"),
      graphqlApi: appsync.GraphqlApi.fromGraphqlApiAttributes(this, "Api", { graphqlApiId: "abcdefghijklmnopqrstuvwxyz" }),
      graphqlUrl: "https://abcdefghijklmnopqrstuvwxyz.appsync-api.us-east-1.amazonaws.com/graphql",
      // The other store: profiles in an Amplify Gen 1 model table (the API is then unused).
      profileStore: "dynamodb",
      profileTableName: "UserProfile-abcdefghijklmnopqrstuvwxyz-dev",
      profileTypeName: "Profile",
      attachTrigger: false,
      namePrefix: "uc-options",
      eventSource: "example.signup",
      eventBus: events.EventBus.fromEventBusName(this, "Bus", "default"),
      backfillPublisherArn: "arn:aws:iam::123456789012:role/backfill",
      verifyUser: "cognito",
      publishProfileCreated: false,
      lifecycleEvents: true,
      createTrail: true,
      alarmTopic: sns.Topic.fromTopicArn(this, "Alarms", "arn:aws:sns:us-east-1:123456789012:alarms"),
      createSchemaRegistry: false,
      archiveRetentionDays: 30,
      ruleMaximumRetryAttempts: 10,
      ruleMaximumEventAge: Duration.hours(1),
      publishBudgetMs: 1500,
      failurePolicy: "fail-closed",
      maxReceiveCount: 3,
      queueVisibilityTimeout: Duration.seconds(240),
      workerBatchSize: 5,
      workerBatchingWindow: Duration.seconds(2),
      workerMaximumConcurrency: 7,
      workerCallConcurrency: 4,
      workerMemorySize: 512,
      workerUserLookupRate: 3,
      logRetention: 90 as logs.RetentionDays,
      reconcileSchedule: "cron(0 3 * * ? *)",
      reconcileScheduleState: "DISABLED",
      orphanSweepSchedule: "cron(0 4 ? * SUN *)",
      orphanSweepScheduleState: "DISABLED",
      reconcileOverlap: Duration.days(2),
      reconcilePublishRate: 20,
      reconcileListUsersRate: 2,
      reconcileStatuses: ["CONFIRMED", "EXTERNAL_PROVIDER", "RESET_REQUIRED"],
      reconcileBehindAlarm: Duration.days(1),
      emitterCode: lambda.Code.fromBucket(codeBucket(this), "uc-emitter/bootstrap.zip"),
      workerCode: lambda.Code.fromBucket(codeBucket(this), "uc-worker/bootstrap.zip"),
      reconcilerCode: lambda.Code.fromBucket(codeBucket(this), "uc-reconciler/bootstrap.zip"),
    });
    addOutputs(this, pipeline);
  }
}

/** A fixed bucket name keeps the templates free of asset hashes (the code is never deployed from here). */
export function codeBucket(scope: Construct): s3.IBucket {
  const id = "PlaceholderCodeBucket";
  return (scope.node.tryFindChild(id) as s3.IBucket | undefined) ?? s3.Bucket.fromBucketName(scope, id, "userconfirmed-example-code");
}

/** The SAM template's outputs, same names and order, at the stack's top level. */
export function addOutputs(stack: Stack, pipeline: UserConfirmedPipeline): void {
  // Under their own scope: an output and a parameter may share a name in CloudFormation
  // (EventSource), but not a construct id.
  const scope = new Construct(stack, "Outputs");
  for (const [name, output] of Object.entries(pipeline.outputs)) {
    new CfnOutput(scope, name, { value: output.value, description: output.description }).overrideLogicalId(name);
  }
}
