// The UserConfirmedPipeline construct's props and their checks. Each prop mirrors a parameter of
// infra/template.yaml (named in its doc comment) with the same default and the same bounds, so a
// CDK app and a SAM deployment configured alike get the same stack.
import { Duration, Token } from "aws-cdk-lib";
import type * as appsync from "aws-cdk-lib/aws-appsync";
import type * as cognito from "aws-cdk-lib/aws-cognito";
import type * as events from "aws-cdk-lib/aws-events";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";

export type FailurePolicy = "fail-open" | "fail-closed";

/** The worker's strict mode (SAM: `VerifyUser`). */
export type VerifyUser = "none" | "cognito";

/** A reconciler schedule's state (SAM: `ReconcileScheduleState`, `OrphanSweepScheduleState`). */
export type ScheduleState = "ENABLED" | "DISABLED";

/** Cognito's user statuses (`RECONCILE_STATUSES` takes a list of them). */
export const USER_STATUSES = [
  "UNCONFIRMED",
  "CONFIRMED",
  "ARCHIVED",
  "COMPROMISED",
  "UNKNOWN",
  "RESET_REQUIRED",
  "FORCE_CHANGE_PASSWORD",
  "EXTERNAL_PROVIDER",
] as const;

/** Where profiles are created (the worker's `PROFILE_STORE`). */
export type ProfileStoreKind = "appsync" | "dynamodb";

export interface UserConfirmedPipelineProps {
  /**
   * The pool whose confirmations are published (Amplify: `backend.auth.resources.userPool`).
   * Its PostConfirmation trigger becomes the emitter (see `attachTrigger`), and only this pool
   * may invoke the emitter. SAM: `UserPoolId`.
   */
  readonly userPool: cognito.IUserPool;

  /**
   * The API that serves `Mutation.createUserProfile` (Amplify: `backend.data.resources.graphqlApi`).
   * The worker's role may call that one field and nothing else. SAM: `AppSyncApiId`.
   */
  readonly graphqlApi: appsync.IGraphqlApi;

  /**
   * The API's `https://…/graphql` endpoint, given to the worker (`APPSYNC_GRAPHQL_URL`).
   * Amplify: `backend.data.resources.cfnResources.cfnGraphqlApi.attrGraphQlUrl`.
   * @default the endpoint of `graphqlApi` when it is a GraphqlApi defined in this app; otherwise
   * the worker looks it up from the API id with `appsync:GetGraphqlApi` (and gets that
   * permission). SAM: `AppSyncGraphqlUrl`.
   */
  readonly graphqlUrl?: string;

  /**
   * Where the worker creates profiles (its `PROFILE_STORE`): `"appsync"`, the `createUserProfile`
   * mutation on `graphqlApi`; or `"dynamodb"`, a conditional PutItem straight into the Amplify
   * Gen 1 model table `profileTableName`, with DataStore's fields (for APIs without an IAM
   * authorization mode): the worker may then put items in that table and nothing else, the
   * reconciler only BatchGetItem on it, the auditor only Scan, and `graphqlApi` is unused. A
   * literal: it decides the statements. SAM: `ProfileStore`.
   * @default "appsync"
   */
  readonly profileStore?: ProfileStoreKind;

  /** The model table with `profileStore: "dynamodb"` (its `PROFILE_TABLE`). SAM: `ProfileTableName`. */
  readonly profileTableName?: string;

  /**
   * DataStore's `__typename` on the items `profileStore: "dynamodb"` writes (`PROFILE_TYPENAME`).
   * @default "UserProfile". SAM: `ProfileTypeName`.
   */
  readonly profileTypeName?: string;

  /**
   * Make the emitter the pool's PostConfirmation trigger in this deploy. Needs a pool defined
   * in this app (an L1 `AWS::Cognito::UserPool` behind `userPool`); the emitter and the
   * resources it uses are then created in the pool's stack (see infra/README.md, "CDK
   * construct"). With `false` the pool may only invoke the emitter, and the trigger is attached
   * elsewhere (`uc-ops attach-trigger`), as with the SAM template.
   * @default true
   */
  readonly attachTrigger?: boolean;

  /**
   * Prefix of every named resource, 1-24 characters `^[a-z][a-z0-9-]{0,23}$`. SAM: `NamePrefix`.
   * @default a name derived from the construct's path and its stack's name, unique per Amplify
   * sandbox or branch
   */
  readonly namePrefix?: string;

  /** The events' `source`; must not start with `aws.`. SAM: `EventSource`. @default "userconfirmed.cognito" */
  readonly eventSource?: string;

  /**
   * An existing bus (e.g. `events.EventBus.fromEventBusName(this, "Bus", "default")`).
   * SAM: `CreateEventBus=false` + `ExistingEventBusName`.
   * @default a new bus `<namePrefix>-events`
   */
  readonly eventBus?: events.IEventBus;

  /**
   * The IAM role of the operators' tooling (uc-ops backfill, dlq replay and redrive) that may
   * publish UserConfirmed events and send to the three queues besides the pipeline's own roles.
   * SAM: `BackfillPublisherArn`. @default the bus policy lets only the emitter's role publish,
   * and the queue policies let only the pipeline's roles send (the rule DLQ: no role at all)
   */
  readonly backfillPublisherArn?: string;

  /**
   * Strict mode. `"cognito"`: before creating a profile the worker checks the user with
   * AdminGetUser on `userPool` (exists, same sub, a usable account status), and the worker's
   * role gets `cognito-idp:AdminGetUser` on that pool only. `"none"`: the worker checks the
   * event's source, pool and id only. A synth-time choice (it decides the role's statements), so
   * a literal. SAM: `VerifyUser`. @default "none"
   */
  readonly verifyUser?: VerifyUser;

  /**
   * The worker publishes a ProfileCreated v1 event (source `eventSource`) on the bus for each
   * profile it creates: its `PROFILE_CREATED_EVENTS=true` and `EVENT_BUS_NAME`, its role's
   * `events:PutEvents` for that detail-type and source only (`AnnounceProfiles`), and the
   * ProfileCreated schema in the registry (and, with `lifecycleEvents`, ProfileDeleted events and
   * their schema). `false`: `PROFILE_CREATED_EVENTS=false`, no grant, no schema. A synth-time choice (it decides the role's statements), so a literal. Either way the
   * bus policy lets no principal but the worker's role publish ProfileCreated under the source.
   * SAM: `PublishProfileCreated`. @default true
   */
  readonly publishProfileCreated?: boolean;

  /**
   * Days the archive keeps UserConfirmed and UserDeleted events (a consumer back-filled by a
   * replay gets each deletion with the confirmations), 0 = forever. An archived UserConfirmed
   * holds the user's e-mail and an archive cannot be edited: this is the longest an erased user's
   * address may remain in it, so keep it bounded. SAM: `ArchiveRetentionDays`. @default 365
   */
  readonly archiveRetentionDays?: number;

  /**
   * Follow each user's lifecycle from Cognito's CloudTrail events on the account's default bus
   * (AdminCreateUser, AdminSetUserPassword, AdminDeleteUser, DeleteUser): a rule on the default bus
   * to a lifecycle queue, the worker's second event source and its grants (`ListUsers` on the
   * pool, reading and deleting a profile, publishing UserConfirmed, UserDeleted and
   * ProfileDeleted), the reconciler's grant to delete orphaned profiles and publish UserDeleted.
   * Needs a trail logging management write events in the region (`createTrail`, or the
   * account's own). A synth-time choice (it decides resources and statements), so a literal.
   * SAM: `LifecycleEvents`. @default true
   */
  readonly lifecycleEvents?: boolean;

  /**
   * Create a single-region CloudTrail trail of management write events, with its own S3 bucket
   * (logs expire after 90 days), which EventBridge needs to see Cognito's API calls. Leave it
   * `false` when the account already has such a trail (a second one is a charged copy). A literal.
   * SAM: `CreateTrail`. @default false
   */
  readonly createTrail?: boolean;

  /**
   * The worker's `USER_LOOKUP_RPS`: Cognito `ListUsers` calls per second of one worker invocation
   * checking lifecycle events (at most 2 at once), 1-25. The UserList quota (30/s per account and
   * Region) is shared with the reconciler: keep 2 × this + `reconcileListUsersRate` below 30.
   * SAM: `WorkerUserLookupRate`. @default 5
   */
  readonly workerUserLookupRate?: number;

  /**
   * Publish the event contracts in an EventBridge schema registry: UserConfirmed, ProfileCreated
   * (with `publishProfileCreated`), UserDeleted (with `lifecycleEvents`), ProfileDeleted (with
   * both). SAM: `CreateSchemaRegistry`. @default true
   */
  readonly createSchemaRegistry?: boolean;

  /** EventBridge delivery retries before the rule DLQ, 0-185. SAM: `RuleMaximumRetryAttempts`. @default 185 */
  readonly ruleMaximumRetryAttempts?: number;

  /** Age after which EventBridge gives up, 60 s - 24 h. SAM: `RuleMaximumEventAgeSeconds`. @default 24 h */
  readonly ruleMaximumEventAge?: Duration;

  /** The emitter's whole publish budget in ms, 600-2500. SAM: `PublishBudgetMs`. @default 2000 */
  readonly publishBudgetMs?: number;

  /** SAM: `FailurePolicy`. @default "fail-open" */
  readonly failurePolicy?: FailurePolicy;

  /** Receives before SQS moves a message to the worker DLQ, 1-1000. SAM: `MaxReceiveCount`. @default 5 */
  readonly maxReceiveCount?: number;

  /**
   * The worker queue's visibility timeout, 5 s - 12 h; keep it at least 6 x the worker's 30 s
   * timeout in AWS. SAM: `QueueVisibilityTimeoutSeconds`. @default 180 s
   */
  readonly queueVisibilityTimeout?: Duration;

  /** Messages per worker invocation, 1-10. SAM: `WorkerBatchSize`. @default 10 */
  readonly workerBatchSize?: number;

  /** Batching window, 0-300 s. SAM: `WorkerBatchingWindowSeconds`. @default 0 */
  readonly workerBatchingWindow?: Duration;

  /** Most concurrent worker invocations, 2-1000. SAM: `WorkerMaximumConcurrency`. @default 5 */
  readonly workerMaximumConcurrency?: number;

  /** AppSync calls in flight per invocation, 1-100. SAM: `WorkerCallConcurrency`. @default 10 */
  readonly workerCallConcurrency?: number;

  /** Worker memory in MB, 128-3008. SAM: `WorkerMemorySize`. @default 256 */
  readonly workerMemorySize?: number;

  /**
   * When the reconciler runs: an EventBridge Scheduler `rate(...)` or `cron(...)` expression (UTC).
   * Each invocation runs one pass, or continues an interrupted one, for at most 15 minutes.
   * SAM: `ReconcileSchedule`. @default "rate(1 hour)"
   */
  readonly reconcileSchedule?: string;

  /** The reconciler's schedule, `"ENABLED"` or `"DISABLED"`. SAM: `ReconcileScheduleState`. @default "ENABLED" */
  readonly reconcileScheduleState?: ScheduleState;

  /**
   * With `lifecycleEvents`: when the reconciler runs the orphan sweep (a second schedule, input
   * `{"orphans": true}`), the safety net that erases the profiles of deleted users whatever path
   * removed them. A sweep must finish in one 15-minute invocation (about 240,000 users at
   * `reconcileListUsersRate` 5, 1.1 million at 30); larger pools sweep from a host
   * (docs/runbook.md, "Orphaned profiles"). SAM: `OrphanSweepSchedule`. @default "rate(7 days)"
   */
  readonly orphanSweepSchedule?: string;

  /** The orphan sweep's schedule, `"ENABLED"` or `"DISABLED"`. SAM: `OrphanSweepScheduleState`. @default "ENABLED" */
  readonly orphanSweepScheduleState?: ScheduleState;

  /**
   * How far before the last completed pass's watermark a pass also looks (`RECONCILE_OVERLAP_SECONDS`),
   * 60 s - 30 days. Confirmation moves a user's `UserLastModifiedDate`, so the overlap only covers
   * clock skew and ListUsers' eventual consistency; each changed user is published again about
   * overlap ÷ schedule interval times. SAM: `ReconcileOverlapSeconds`. @default 1 hour
   */
  readonly reconcileOverlap?: Duration;

  /** UserConfirmed events the reconciler puts per second, 1-1000. SAM: `ReconcilePublishRate`. @default 50 */
  readonly reconcilePublishRate?: number;

  /**
   * Cognito ListUsers calls per second (`LIST_USERS_RPS`), 1-30: ListUsers' UserList quota is 30
   * per second per account and Region, shared with the worker's lookups (`workerUserLookupRate`).
   * SAM: `ReconcileListUsersRate`. @default 5
   */
  readonly reconcileListUsersRate?: number;

  /**
   * The user statuses that should have a profile (`RECONCILE_STATUSES`). SAM: `ReconcileStatuses`
   * (comma-separated). @default ["CONFIRMED", "EXTERNAL_PROVIDER"]
   */
  readonly reconcileStatuses?: string[];

  /**
   * Threshold of the reconciler-behind alarm (`OldestUnreconciledChange`, seconds since the
   * watermark), 1 h - 30 days. Independent of the overlap: a whole-pool pass of 10 million users
   * takes about 37 hours at the defaults. SAM: `ReconcileBehindAlarmSeconds`. @default 3 days
   */
  readonly reconcileBehindAlarm?: Duration;

  /** Where the alarms send ALARM and OK. SAM: `AlarmTopicArn`. @default no notifications */
  readonly alarmTopic?: sns.ITopic;

  /** Both log groups' retention. SAM: `LogRetentionDays`. @default one month */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Directory holding cargo-lambda's zips, `<dir>/uc-emitter/bootstrap.zip`,
   * `<dir>/uc-worker/bootstrap.zip` and `<dir>/uc-reconciler/bootstrap.zip`, relative to the
   * directory `cdk`/`ampx` runs in.
   * @default "target/lambda" (`cargo lambda build --release --arm64 --output-format zip`)
   */
  readonly codeDirectory?: string;

  /** The emitter's code. @default the zip under `codeDirectory` */
  readonly emitterCode?: lambda.Code;

  /** The worker's code. @default the zip under `codeDirectory` */
  readonly workerCode?: lambda.Code;

  /** The reconciler's code. @default the zip under `codeDirectory` */
  readonly reconcilerCode?: lambda.Code;
}

/** Every prop with its default applied (the optional ones stay optional). */
export interface ResolvedProps extends UserConfirmedPipelineProps {
  readonly attachTrigger: boolean;
  readonly eventSource: string;
  readonly profileStore: ProfileStoreKind;
  readonly profileTypeName: string;
  readonly archiveRetentionDays: number;
  readonly createSchemaRegistry: boolean;
  readonly ruleMaximumRetryAttempts: number;
  readonly ruleMaximumEventAge: Duration;
  readonly publishBudgetMs: number;
  readonly failurePolicy: FailurePolicy;
  readonly verifyUser: VerifyUser;
  readonly publishProfileCreated: boolean;
  readonly lifecycleEvents: boolean;
  readonly createTrail: boolean;
  readonly workerUserLookupRate: number;
  readonly maxReceiveCount: number;
  readonly queueVisibilityTimeout: Duration;
  readonly workerBatchSize: number;
  readonly workerBatchingWindow: Duration;
  readonly workerMaximumConcurrency: number;
  readonly workerCallConcurrency: number;
  readonly workerMemorySize: number;
  readonly logRetention: logs.RetentionDays;
  readonly reconcileSchedule: string;
  readonly reconcileScheduleState: ScheduleState;
  readonly orphanSweepSchedule: string;
  readonly orphanSweepScheduleState: ScheduleState;
  readonly reconcileOverlap: Duration;
  readonly reconcilePublishRate: number;
  readonly reconcileListUsersRate: number;
  readonly reconcileStatuses: string[];
  readonly reconcileBehindAlarm: Duration;
  readonly codeDirectory: string;
}

export const DEFAULT_EVENT_SOURCE = "userconfirmed.cognito";
export const NAME_PREFIX_PATTERN = /^[a-z][a-z0-9-]{0,23}$/;
// The template's AllowedPattern, with the look-ahead it uses to reserve AWS's own sources.
const EVENT_SOURCE_PATTERN = /^(?!aws\.)[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const ROLE_ARN_PATTERN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
// The template's ReconcileSchedule AllowedPattern: a recurring rate() or cron() expression.
export const SCHEDULE_PATTERN = /^(rate\([1-9][0-9]{0,4} (minute|minutes|hour|hours|day|days)\)|cron\([^()]{9,200}\))$/;

export function resolveProps(props: UserConfirmedPipelineProps): ResolvedProps {
  const resolved: ResolvedProps = {
    ...props,
    attachTrigger: props.attachTrigger ?? true,
    profileStore: props.profileStore ?? "appsync",
    profileTypeName: props.profileTypeName ?? "UserProfile",
    eventSource: props.eventSource ?? DEFAULT_EVENT_SOURCE,
    archiveRetentionDays: props.archiveRetentionDays ?? 365,
    createSchemaRegistry: props.createSchemaRegistry ?? true,
    ruleMaximumRetryAttempts: props.ruleMaximumRetryAttempts ?? 185,
    ruleMaximumEventAge: props.ruleMaximumEventAge ?? Duration.seconds(86400),
    publishBudgetMs: props.publishBudgetMs ?? 2000,
    failurePolicy: props.failurePolicy ?? "fail-open",
    verifyUser: props.verifyUser ?? "none",
    publishProfileCreated: props.publishProfileCreated ?? true,
    lifecycleEvents: props.lifecycleEvents ?? true,
    createTrail: props.createTrail ?? false,
    workerUserLookupRate: props.workerUserLookupRate ?? 5,
    maxReceiveCount: props.maxReceiveCount ?? 5,
    queueVisibilityTimeout: props.queueVisibilityTimeout ?? Duration.seconds(180),
    workerBatchSize: props.workerBatchSize ?? 10,
    workerBatchingWindow: props.workerBatchingWindow ?? Duration.seconds(0),
    workerMaximumConcurrency: props.workerMaximumConcurrency ?? 5,
    workerCallConcurrency: props.workerCallConcurrency ?? 10,
    workerMemorySize: props.workerMemorySize ?? 256,
    logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    reconcileSchedule: props.reconcileSchedule ?? "rate(1 hour)",
    reconcileScheduleState: props.reconcileScheduleState ?? "ENABLED",
    orphanSweepSchedule: props.orphanSweepSchedule ?? "rate(7 days)",
    orphanSweepScheduleState: props.orphanSweepScheduleState ?? "ENABLED",
    reconcileOverlap: props.reconcileOverlap ?? Duration.hours(1),
    reconcilePublishRate: props.reconcilePublishRate ?? 50,
    reconcileListUsersRate: props.reconcileListUsersRate ?? 5,
    reconcileStatuses: props.reconcileStatuses ?? ["CONFIRMED", "EXTERNAL_PROVIDER"],
    reconcileBehindAlarm: props.reconcileBehindAlarm ?? Duration.days(3),
    codeDirectory: props.codeDirectory ?? "target/lambda",
  };
  check(resolved);
  return resolved;
}

// Values given as tokens (CloudFormation parameters) are checked by their parameter's own
// constraints at deploy time; literal values are checked here, at synth time.
function check(p: ResolvedProps): void {
  range("archiveRetentionDays", p.archiveRetentionDays, 0, 36500);
  range("ruleMaximumRetryAttempts", p.ruleMaximumRetryAttempts, 0, 185);
  range("ruleMaximumEventAge (s)", p.ruleMaximumEventAge.toSeconds(), 60, 86400);
  // Above the emitter's 500 ms fallback reserve, well below its 3 s timeout.
  range("publishBudgetMs", p.publishBudgetMs, 600, 2500);
  range("maxReceiveCount", p.maxReceiveCount, 1, 1000);
  range("queueVisibilityTimeout (s)", p.queueVisibilityTimeout.toSeconds(), 5, 43200);
  range("workerBatchSize", p.workerBatchSize, 1, 10);
  range("workerBatchingWindow (s)", p.workerBatchingWindow.toSeconds(), 0, 300);
  // AWS's minimum for ScalingConfig.MaximumConcurrency is 2.
  range("workerMaximumConcurrency", p.workerMaximumConcurrency, 2, 1000);
  range("workerCallConcurrency", p.workerCallConcurrency, 1, 100);
  range("workerMemorySize", p.workerMemorySize, 128, 3008);
  range("workerUserLookupRate", p.workerUserLookupRate, 1, 25);
  range("reconcileOverlap (s)", p.reconcileOverlap.toSeconds(), 60, 2592000);
  range("reconcilePublishRate", p.reconcilePublishRate, 1, 1000);
  // The template's bounds; ListUsers' UserList quota is 30 requests per second.
  range("reconcileListUsersRate", p.reconcileListUsersRate, 1, 30);
  range("reconcileBehindAlarm (s)", p.reconcileBehindAlarm.toSeconds(), 3600, 2592000);
  pattern("reconcileSchedule", p.reconcileSchedule, SCHEDULE_PATTERN);
  pattern("orphanSweepSchedule", p.orphanSweepSchedule, SCHEDULE_PATTERN);
  for (const [name, state] of [
    ["reconcileScheduleState", p.reconcileScheduleState],
    ["orphanSweepScheduleState", p.orphanSweepScheduleState],
  ] as const) {
    if (!Token.isUnresolved(state) && !["ENABLED", "DISABLED"].includes(state)) {
      throw new Error(`UserConfirmedPipeline: ${name} must be "ENABLED" or "DISABLED", not ${JSON.stringify(state)}`);
    }
  }
  const statuses = p.reconcileStatuses.filter((s) => !Token.isUnresolved(s));
  if (p.reconcileStatuses.length === 0 || statuses.some((s) => !(USER_STATUSES as readonly string[]).includes(s))) {
    throw new Error(
      `UserConfirmedPipeline: reconcileStatuses must be Cognito user statuses (${USER_STATUSES.join(", ")}), not ${JSON.stringify(p.reconcileStatuses)}`,
    );
  }
  pattern("namePrefix", p.namePrefix, NAME_PREFIX_PATTERN);
  pattern("eventSource", p.eventSource, EVENT_SOURCE_PATTERN);
  pattern("backfillPublisherArn", p.backfillPublisherArn, ROLE_ARN_PATTERN);
  if (!Token.isUnresolved(p.failurePolicy) && !["fail-open", "fail-closed"].includes(p.failurePolicy)) {
    throw new Error(`UserConfirmedPipeline: failurePolicy must be "fail-open" or "fail-closed", not ${JSON.stringify(p.failurePolicy)}`);
  }
  // It switches the store's statements of three principals: a literal, like verifyUser.
  if (Token.isUnresolved(p.profileStore) || !["appsync", "dynamodb"].includes(p.profileStore)) {
    throw new Error(`UserConfirmedPipeline: profileStore must be the literal "appsync" or "dynamodb", not ${JSON.stringify(p.profileStore)}`);
  }
  if (p.profileStore === "dynamodb" && !p.profileTableName) {
    throw new Error('UserConfirmedPipeline: profileStore "dynamodb" needs profileTableName (the model table)');
  }
  pattern("profileTableName", p.profileTableName, /^[a-zA-Z0-9_.-]{3,255}$/);
  pattern("profileTypeName", p.profileTypeName, /^[_A-Za-z][_0-9A-Za-z]{0,127}$/);
  // It switches the worker role's AdminGetUser statement, so it cannot wait for deploy time.
  if (Token.isUnresolved(p.verifyUser) || !["none", "cognito"].includes(p.verifyUser)) {
    throw new Error(`UserConfirmedPipeline: verifyUser must be the literal "none" or "cognito", not ${JSON.stringify(p.verifyUser)}`);
  }
  // It switches the worker role's AnnounceProfiles statement: a literal boolean, like verifyUser.
  if (typeof p.publishProfileCreated !== "boolean") {
    throw new Error(
      `UserConfirmedPipeline: publishProfileCreated must be the literal true or false, not ${JSON.stringify(p.publishProfileCreated)}`,
    );
  }
  // They decide resources and statements: literal booleans, like publishProfileCreated.
  for (const [name, value] of [
    ["lifecycleEvents", p.lifecycleEvents],
    ["createTrail", p.createTrail],
  ] as const) {
    if (typeof value !== "boolean") {
      throw new Error(`UserConfirmedPipeline: ${name} must be the literal true or false, not ${JSON.stringify(value)}`);
    }
  }
  if (p.emitterCode === undefined || p.workerCode === undefined || p.reconcilerCode === undefined) {
    if (Token.isUnresolved(p.codeDirectory)) {
      throw new Error("UserConfirmedPipeline: codeDirectory must be a literal path");
    }
  }
}

function range(name: string, value: number, min: number, max: number): void {
  if (Token.isUnresolved(value)) {
    return;
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`UserConfirmedPipeline: ${name} must be an integer from ${min} to ${max}, not ${value}`);
  }
}

function pattern(name: string, value: string | undefined, re: RegExp): void {
  if (value === undefined || Token.isUnresolved(value)) {
    return;
  }
  if (!re.test(value)) {
    throw new Error(`UserConfirmedPipeline: ${name} ${JSON.stringify(value)} does not match ${re}`);
  }
}
