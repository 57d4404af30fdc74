// The UserConfirmedPipeline construct: infra/template.yaml's resources as CDK code, for Amplify
// Gen 2 backends (amplify/backend.ts) and any CDK app. dev/tests/test_construct.py holds the two
// to each other: same resources, IAM statements, queue settings, alarms and environment.
//
// Construct ids are the SAM template's logical ids, so the synthesized logical ids read
// "<prefix><SamLogicalId><hash>" and the test can pair the resources up.
import { Annotations, Aws, CfnDeletionPolicy, CfnResource, Duration, Names, RemovalPolicy, Stack, Token } from "aws-cdk-lib";
import * as cloudtrail from "aws-cdk-lib/aws-cloudtrail";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type * as cognito from "aws-cdk-lib/aws-cognito";
import * as events from "aws-cdk-lib/aws-events";
import * as eventschemas from "aws-cdk-lib/aws-eventschemas";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as scheduler from "aws-cdk-lib/aws-scheduler";
import * as sqs from "aws-cdk-lib/aws-sqs";
import * as ssm from "aws-cdk-lib/aws-ssm";
import { Construct } from "constructs";

import { resolveProps, type ResolvedProps, type UserConfirmedPipelineProps } from "./props";
import {
  EMITTER_SKIPS,
  LOG_KMS_SKIP,
  RECONCILER_SKIPS,
  type Skip,
  SSE_SQS_SKIP,
  TRAIL_BUCKET_SKIPS,
  TRAIL_SKIPS,
  WORKER_SKIPS,
} from "./checkov-skips";
import { dashboardBody, METRICS_NAMESPACE } from "./dashboard";
import { PROFILE_CREATED_SCHEMA } from "./profile-created-schema";
import { PROFILE_DELETED_SCHEMA } from "./profile-deleted-schema";
import { USER_CONFIRMED_SCHEMA } from "./user-confirmed-schema";
import { USER_DELETED_SCHEMA } from "./user-deleted-schema";

/** `detail-type` of the events (uc_schemas::DETAIL_TYPE). */
export const DETAIL_TYPE = "UserConfirmed";

/** `detail-type` of the worker's ProfileCreated events (schemas/json/profile-created.v1.schema.json). */
export const PROFILE_CREATED_DETAIL_TYPE = "ProfileCreated";

/** `detail-type` of the lifecycle's events: a profile deleted (the worker), a user gone (worker, reconciler). */
export const PROFILE_DELETED_DETAIL_TYPE = "ProfileDeleted";
export const USER_DELETED_DETAIL_TYPE = "UserDeleted";

/**
 * Cognito's user-pool API calls as CloudTrail puts them on the account's default bus (the
 * lifecycle rule's pattern). No pool in it: a user's own DeleteUser record may not name the pool;
 * the worker checks every event against its pool with ListUsers.
 */
export const LIFECYCLE_EVENT_PATTERN = {
  source: ["aws.cognito-idp"],
  "detail-type": ["AWS API Call via CloudTrail"],
  detail: {
    eventSource: ["cognito-idp.amazonaws.com"],
    eventName: ["AdminDeleteUser", "DeleteUser", "AdminCreateUser", "AdminSetUserPassword"],
  },
};

/** A value the SAM template publishes as a stack output, under the same name. */
export interface PipelineOutput {
  readonly value: string;
  readonly description: string;
}

/**
 * Cognito PostConfirmation → uc-emitter → EventBridge → rule → SQS → uc-worker → AppSync
 * `createUserProfile`, as one construct. In an Amplify Gen 2 backend:
 *
 *     new UserConfirmedPipeline(backend.createStack("UserConfirmed"), "Pipeline", {
 *       userPool: backend.auth.resources.userPool,
 *       graphqlApi: backend.data.resources.graphqlApi,
 *     });
 *
 * When the pool lives in another stack (Amplify's auth stack), the emitter and everything it
 * references (bus, queues, rule, archive, policies, its alarms), and the reconciler's identity
 * (its role, which the bus policies name, its log group and state parameter) are created in the
 * pool's stack; the worker side (with the worker DLQ's policy and the ProfileCreated bus policy,
 * which name the worker's role, and the dashboard), the reconciler's function, schedule and
 * alarms, and the auditor's policy (which names the API) in this construct's stack: the pool's
 * trigger then points inside its own stack, and the dependencies between the stacks run one way
 * (this stack → pool's stack, this stack → API's stack), which is what keeps Amplify's nested
 * stacks free of cycles.
 */
export class UserConfirmedPipeline extends Construct {
  readonly namePrefix: string;
  readonly eventSource: string;
  readonly eventBusName: string;
  readonly eventBusArn: string;
  /** The bus created here; undefined with `eventBus`. */
  readonly eventBus?: events.CfnEventBus;
  readonly rule: events.CfnRule;
  readonly archive: events.CfnArchive;
  readonly archiveName: string;
  readonly schemaRegistry?: eventschemas.CfnRegistry;
  readonly schema?: eventschemas.CfnSchema;
  /** The ProfileCreated schema (with `createSchemaRegistry` and `publishProfileCreated`). */
  readonly profileCreatedSchema?: eventschemas.CfnSchema;
  /** The UserDeleted schema (with `createSchemaRegistry` and `lifecycleEvents`). */
  readonly userDeletedSchema?: eventschemas.CfnSchema;
  /** The ProfileDeleted schema (with `createSchemaRegistry`, `publishProfileCreated` and `lifecycleEvents`). */
  readonly profileDeletedSchema?: eventschemas.CfnSchema;
  readonly queue: sqs.Queue;
  readonly workerDeadLetterQueue: sqs.Queue;
  readonly ruleDeadLetterQueue: sqs.Queue;
  readonly emitterLogGroup: logs.LogGroup;
  readonly workerLogGroup: logs.LogGroup;
  readonly emitterRole: iam.Role;
  readonly workerRole: iam.Role;
  readonly emitterFunction: lambda.Function;
  readonly workerFunction: lambda.Function;
  readonly workerEventSource: lambda.EventSourceMapping;
  /** The rule on the default bus taking Cognito's lifecycle calls to `lifecycleQueue` (with `lifecycleEvents`). */
  readonly lifecycleRule?: events.CfnRule;
  /** The lifecycle queue, the worker's second event source (with `lifecycleEvents`). */
  readonly lifecycleQueue?: sqs.Queue;
  readonly workerLifecycleEventSource?: lambda.EventSourceMapping;
  /** The orphan sweep's store grant: read the whole store, delete orphaned profiles (with `lifecycleEvents`). */
  readonly reconcilerStoreDeletePolicy?: iam.CfnPolicy;
  /** EventBridge Scheduler's schedule that invokes the reconciler's orphan sweep (with `lifecycleEvents`). */
  readonly reconcilerOrphanSweepSchedule?: scheduler.CfnSchedule;
  /** The trail of management write events and its bucket (with `createTrail`). */
  readonly trail?: cloudtrail.CfnTrail;
  readonly trailBucket?: s3.CfnBucket;
  /** The SSM parameter holding the reconciler's state (JSON; "{}" before the first pass). */
  readonly reconcileStateParameter: ssm.CfnParameter;
  readonly reconcilerLogGroup: logs.LogGroup;
  readonly reconcilerRole: iam.Role;
  readonly reconcilerFunction: lambda.Function;
  /** EventBridge Scheduler's schedule that invokes the reconciler. */
  readonly reconcilerSchedule: scheduler.CfnSchedule;
  /** The reconciler's store check: getUserProfile on the API (a policy on its role). */
  readonly reconcilerStoreReadPolicy: iam.CfnPolicy;
  /** What `uc-ops audit` needs, read-only, for an operator's role to attach (attached to nothing here). */
  readonly auditorPolicy: iam.CfnManagedPolicy;
  /** The stack's dashboard, named `namePrefix`. */
  readonly dashboard: cloudwatch.CfnDashboard;
  /** The construct in the pool's stack that holds the emitter side (this construct itself when the stacks are the same). */
  readonly publisherScope: Construct;
  /** The SAM template's outputs, by the same names (for CfnOutputs or `backend.addOutput`). */
  readonly outputs: Readonly<Record<string, PipelineOutput>>;

  constructor(scope: Construct, id: string, props: UserConfirmedPipelineProps) {
    super(scope, id);
    const p = resolveProps(props);
    const cfnPool = p.attachTrigger ? findCfnUserPool(p.userPool) : undefined;
    const poolStack = Stack.of(p.userPool);
    this.publisherScope =
      p.attachTrigger && poolStack !== Stack.of(this) ? new Construct(poolStack, `${id}Publisher`) : this;
    const pub = this.publisherScope;

    const apiStack = Stack.of(p.graphqlApi);
    if (Stack.of(this) === poolStack && apiStack !== poolStack) {
      // The worker would then refer to the API's stack from the pool's, while an API with
      // user-pool auth refers back to the pool's stack (Amplify's data -> auth): a cycle.
      Annotations.of(this).addWarningV2(
        "userconfirmed:Pipeline.workerInPoolStack",
        "The construct is in the user pool's stack but the API is in another one: if the API's stack refers to " +
          "the pool (Amplify's data stack does), the stacks depend on each other. Create the construct in a stack " +
          'of its own (backend.createStack("UserConfirmed")); the emitter still lands next to the pool.',
      );
    }

    const prefix = p.namePrefix ?? defaultNamePrefix(this);
    this.namePrefix = prefix;
    this.eventSource = p.eventSource;
    const source = p.eventSource;

    // ------------------------------------------------------------------ events
    if (p.eventBus) {
      this.eventBusName = p.eventBus.eventBusName;
      this.eventBusArn = p.eventBus.eventBusArn;
    } else {
      this.eventBus = new events.CfnEventBus(pub, "EventBus", { name: `${prefix}-events` });
      // The Name attribute rather than Ref: same value in AWS, and moto's Ref is not the name.
      this.eventBusName = this.eventBus.attrName;
      this.eventBusArn = this.eventBus.attrArn;
    }

    // ------------------------------------------------------------------ queues
    this.workerDeadLetterQueue = this.queueWithSkip(pub, "WorkerDeadLetterQueue", {
      queueName: `${prefix}-worker-dlq`,
      // Longer than the queue's: a dead letter's expiry counts from its original enqueue.
      retentionPeriod: Duration.seconds(1209600),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    this.ruleDeadLetterQueue = this.queueWithSkip(pub, "RuleDeadLetterQueue", {
      queueName: `${prefix}-rule-dlq`,
      retentionPeriod: Duration.seconds(1209600),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    this.queue = this.queueWithSkip(pub, "WorkerQueue", {
      queueName: `${prefix}-worker`,
      visibilityTimeout: p.queueVisibilityTimeout,
      retentionPeriod: Duration.seconds(345600),
      receiveMessageWaitTime: Duration.seconds(20),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      deadLetterQueue: { queue: this.workerDeadLetterQueue, maxReceiveCount: p.maxReceiveCount },
    });
    if (p.lifecycleEvents) {
      // The lifecycle rule's events: the worker queue's settings, the same worker DLQ.
      this.lifecycleQueue = this.queueWithSkip(pub, "LifecycleQueue", {
        queueName: `${prefix}-lifecycle`,
        visibilityTimeout: p.queueVisibilityTimeout,
        retentionPeriod: Duration.seconds(345600),
        receiveMessageWaitTime: Duration.seconds(20),
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        deadLetterQueue: { queue: this.workerDeadLetterQueue, maxReceiveCount: p.maxReceiveCount },
      });
    }

    // ------------------------------------------------------------------ emitter identity
    this.emitterLogGroup = logGroup(pub, "EmitterLogGroup", `/aws/lambda/${prefix}-emitter`, p.logRetention);
    this.emitterRole = new iam.Role(pub, "EmitterRole", {
      description: "uc-emitter, the Cognito PostConfirmation trigger.",
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      inlinePolicies: {
        emitter: new iam.PolicyDocument({
          statements: [
            publishUserConfirmed(this.eventBusArn, source),
            new iam.PolicyStatement({
              sid: "FallbackToWorkerQueue",
              actions: ["sqs:SendMessage"],
              resources: [this.queue.queueArn],
            }),
            writeOwnLogs(this.emitterLogGroup),
          ],
        }),
      },
    });

    // ------------------------------------------------------------------ reconciler identity
    // With the emitter's identity: the bus policies below name the reconciler's role, so it lives
    // in the pool's stack, and so do what its policy names (its log group and state parameter).
    // The state: JSON written by the function itself, "{}" = no pass completed yet. CloudFormation
    // writes Value only when these properties change: keep them, or the state resets.
    this.reconcileStateParameter = new ssm.CfnParameter(pub, "ReconcileWatermarkParameter", {
      name: `/${prefix}/reconciler/state`,
      description:
        'uc-reconciler\'s state (watermark and page token of an interrupted pass), JSON. Written by the function; "{}" starts from scratch.',
      type: "String",
      tier: "Standard",
      value: "{}",
    });
    this.reconcilerLogGroup = logGroup(pub, "ReconcilerLogGroup", `/aws/lambda/${prefix}-reconciler`, p.logRetention);
    this.reconcilerRole = new iam.Role(pub, "ReconcilerRole", {
      description: "uc-reconciler, the scheduled pass that publishes UserConfirmed for users no trigger reported.",
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      inlinePolicies: {
        reconciler: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: "ListPoolUsers",
              actions: ["cognito-idp:ListUsers"],
              resources: [p.userPool.userPoolArn],
            }),
            // The emitter's statement: this bus, UserConfirmed under the stack's source only.
            publishUserConfirmed(this.eventBusArn, source),
            // lifecycleEvents: a pass deletes the profiles of users who are gone and says so.
            ...(p.lifecycleEvents
              ? [
                  new iam.PolicyStatement({
                    sid: "AnnounceDeletedUsers",
                    actions: ["events:PutEvents"],
                    resources: [this.eventBusArn],
                    conditions: {
                      StringEquals: { "events:source": source, "events:detail-type": USER_DELETED_DETAIL_TYPE },
                    },
                  }),
                ]
              : []),
            new iam.PolicyStatement({
              sid: "KeepReconcileState",
              actions: ["ssm:GetParameter", "ssm:PutParameter"],
              // The parameter's name starts with "/": its ARN is ...:parameter/<prefix>/...
              resources: [
                `arn:${Aws.PARTITION}:ssm:${Aws.REGION}:${Aws.ACCOUNT_ID}:parameter${this.reconcileStateParameter.ref}`,
              ],
            }),
            writeOwnLogs(this.reconcilerLogGroup),
          ],
        }),
      },
    });

    // Who may publish what under the stack's source: an explicit Deny for every other IAM
    // principal, one statement per detail-type the pipeline publishes and one for every other
    // detail-type under the source (emitter, reconciler and the optional back-fill role). Principals
    // without aws:PrincipalArn (AWS services, e.g. an archive replay) are left alone by Null. The
    // statements that name the worker's role (UserConfirmed, ProfileCreated, ProfileDeleted,
    // UserDeleted) are created below, with the worker.
    const backfillPublisher = p.backfillPublisherArn ? [p.backfillPublisherArn] : [];
    const publishers = [this.emitterRole.roleArn, this.reconcilerRole.roleArn, ...backfillPublisher];
    const denyOthers = (
      scope: Construct,
      logicalId: string,
      sid: string,
      match: Record<string, Record<string, string | string[]>>,
      allowed: string[],
    ) =>
      new events.CfnEventBusPolicy(scope, logicalId, {
        eventBusName: this.eventBusName,
        statementId: sid,
        statement: {
          Sid: sid,
          Effect: "Deny",
          Principal: "*",
          Action: "events:PutEvents",
          Resource: this.eventBusArn,
          Condition: {
            ...match,
            ArnNotEquals: { "aws:PrincipalArn": allowed },
            Null: { "aws:PrincipalArn": "false" },
          },
        },
      });
    denyOthers(
      pub,
      "BusPolicyDenyForeignSource",
      `${prefix}-only-emitter-source`,
      {
        StringEquals: { "events:source": source },
        StringNotEquals: {
          "events:detail-type": [DETAIL_TYPE, PROFILE_CREATED_DETAIL_TYPE, PROFILE_DELETED_DETAIL_TYPE, USER_DELETED_DETAIL_TYPE],
        },
      },
      publishers,
    );

    // Every UserConfirmed and UserDeleted event, kept for replay: a consumer back-filled from the
    // archive gets the deletions of users confirmed since, not only their confirmations. The name
    // and id keep "user-confirmed" (a rename would replace the archive and lose its events).
    this.archiveName = `${prefix}-user-confirmed`;
    this.archive = new events.CfnArchive(pub, "UserConfirmedArchive", {
      archiveName: this.archiveName,
      description: "Every UserConfirmed and UserDeleted event published on the bus, for EventBridge replay.",
      sourceArn: this.eventBusArn,
      retentionDays: p.archiveRetentionDays,
    });
    // The pattern as a JSON string, as in the template: CloudFormation takes a string or an
    // object, moto only the string, and the L1's typing only the object, hence the override.
    this.archive.addPropertyOverride(
      "EventPattern",
      Stack.of(pub).toJsonString({ source: [source], "detail-type": [DETAIL_TYPE, USER_DELETED_DETAIL_TYPE] }),
    );

    if (p.createSchemaRegistry) {
      this.schemaRegistry = new eventschemas.CfnRegistry(pub, "SchemaRegistry", {
        registryName: `${prefix}-events`,
        description: "Event contracts of the UserConfirmed pipeline.",
      });
      this.schema = new eventschemas.CfnSchema(pub, "UserConfirmedSchema", {
        registryName: this.schemaRegistry.attrRegistryName,
        schemaName: `${source}@${DETAIL_TYPE}`,
        type: "JSONSchemaDraft4",
        description: "detail of the UserConfirmed event, version 1.",
        content: USER_CONFIRMED_SCHEMA,
      });
      if (p.publishProfileCreated) {
        this.profileCreatedSchema = new eventschemas.CfnSchema(pub, "ProfileCreatedSchema", {
          registryName: this.schemaRegistry.attrRegistryName,
          schemaName: `${source}@${PROFILE_CREATED_DETAIL_TYPE}`,
          type: "JSONSchemaDraft4",
          description: "detail of the ProfileCreated event, version 1.",
          content: PROFILE_CREATED_SCHEMA,
        });
      }
      // Each lifecycle contract where it is published: UserDeleted with the lifecycle,
      // ProfileDeleted with the lifecycle and ProfileCreated (PROFILE_CREATED_EVENTS).
      if (p.lifecycleEvents) {
        this.userDeletedSchema = new eventschemas.CfnSchema(pub, "UserDeletedSchema", {
          registryName: this.schemaRegistry.attrRegistryName,
          schemaName: `${source}@${USER_DELETED_DETAIL_TYPE}`,
          type: "JSONSchemaDraft4",
          description: "detail of the UserDeleted event, version 1.",
          content: USER_DELETED_SCHEMA,
        });
      }
      if (p.lifecycleEvents && p.publishProfileCreated) {
        this.profileDeletedSchema = new eventschemas.CfnSchema(pub, "ProfileDeletedSchema", {
          registryName: this.schemaRegistry.attrRegistryName,
          schemaName: `${source}@${PROFILE_DELETED_DETAIL_TYPE}`,
          type: "JSONSchemaDraft4",
          description: "detail of the ProfileDeleted event, version 1.",
          content: PROFILE_DELETED_SCHEMA,
        });
      }
    }

    this.rule = new events.CfnRule(pub, "UserConfirmedRule", {
      description: "UserConfirmed events to the worker queue.",
      eventBusName: this.eventBusName,
      eventPattern: { source: [source], "detail-type": [DETAIL_TYPE] },
      state: "ENABLED",
      targets: [
        {
          id: "worker-queue",
          arn: this.queue.queueArn,
          retryPolicy: {
            maximumRetryAttempts: p.ruleMaximumRetryAttempts,
            maximumEventAgeInSeconds: p.ruleMaximumEventAge.toSeconds(),
          },
          deadLetterConfig: { arn: this.ruleDeadLetterQueue.queueArn },
        },
      ],
    });

    // Cognito's user-pool API calls as CloudTrail records them: AWS puts these events on the
    // account's DEFAULT bus only, and only while a trail logs the region's management write
    // events. Delivery is best effort: the reconciler's sweep is the safety net.
    if (this.lifecycleQueue) {
      this.lifecycleRule = new events.CfnRule(pub, "LifecycleRule", {
        description: "Cognito user lifecycle API calls (via CloudTrail) to the lifecycle queue.",
        eventBusName: "default",
        eventPattern: LIFECYCLE_EVENT_PATTERN,
        state: "ENABLED",
        targets: [
          {
            id: "lifecycle-queue",
            arn: this.lifecycleQueue.queueArn,
            retryPolicy: {
              maximumRetryAttempts: p.ruleMaximumRetryAttempts,
              maximumEventAgeInSeconds: p.ruleMaximumEventAge.toSeconds(),
            },
            deadLetterConfig: { arn: this.ruleDeadLetterQueue.queueArn },
          },
        ],
      });
    }

    // Queue policies written out rather than granted by the L2 rule target, which would add
    // sqs:GetQueueAttributes and sqs:GetQueueUrl for EventBridge: the template grants SendMessage only.
    const fromRule = (sid: string, queue: sqs.Queue, rule: events.CfnRule) => ({
      Sid: sid,
      Effect: "Allow",
      Principal: { Service: "events.amazonaws.com" },
      Action: "sqs:SendMessage",
      Resource: queue.queueArn,
      Condition: { ArnEquals: { "aws:SourceArn": rule.attrArn } },
    });
    const fromRuleOnly = (queue: sqs.Queue) => fromRule("FromUserConfirmedRuleOnly", queue, this.rule);
    const fromLifecycleRuleOnly = (queue: sqs.Queue) =>
      this.lifecycleRule ? [fromRule("FromLifecycleRuleOnly", queue, this.lifecycleRule)] : [];
    const tlsOnly = (queue: sqs.Queue) => ({
      Sid: "TlsOnly",
      Effect: "Deny",
      Principal: "*",
      Action: "sqs:*",
      Resource: queue.queueArn,
      Condition: { Bool: { "aws:SecureTransport": "false" } },
    });
    // An identity policy's sqs:* grant does not reach the queues: only the roles listed (and the
    // operators' back-fill role) may send. Service principals carry no aws:PrincipalArn, so Null
    // leaves EventBridge to the Allow above. No role listed (the rule DLQ without a back-fill
    // role): the Null check alone, every IAM principal is refused.
    const backfill = p.backfillPublisherArn ? [p.backfillPublisherArn] : [];
    const onlyThePipelinesRoles = (queue: sqs.Queue, roleArns: string[]) => {
      const allowed = [...roleArns, ...backfill];
      return {
        Sid: "OnlyThePipelinesRolesSend",
        Effect: "Deny",
        Principal: "*",
        Action: "sqs:SendMessage",
        Resource: queue.queueArn,
        Condition: {
          ...(allowed.length ? { ArnNotEquals: { "aws:PrincipalArn": allowed } } : {}),
          Null: { "aws:PrincipalArn": "false" },
        },
      };
    };
    const queuePolicy = (scope: Construct, logicalId: string, queue: sqs.Queue, statements: object[]) =>
      new sqs.CfnQueuePolicy(scope, logicalId, {
        queues: [queue.queueUrl],
        policyDocument: { Version: "2012-10-17", Statement: statements },
      });
    queuePolicy(pub, "WorkerQueuePolicy", this.queue, [
      fromRuleOnly(this.queue),
      onlyThePipelinesRoles(this.queue, [this.emitterRole.roleArn]),
      tlsOnly(this.queue),
    ]);
    // The rule DLQ takes what either rule could not deliver.
    queuePolicy(pub, "RuleDeadLetterQueuePolicy", this.ruleDeadLetterQueue, [
      fromRuleOnly(this.ruleDeadLetterQueue),
      ...fromLifecycleRuleOnly(this.ruleDeadLetterQueue),
      onlyThePipelinesRoles(this.ruleDeadLetterQueue, []),
      tlsOnly(this.ruleDeadLetterQueue),
    ]);
    if (this.lifecycleQueue) {
      // As the rule DLQ's: the lifecycle rule, and no role but the optional back-fill one (redrive).
      queuePolicy(pub, "LifecycleQueuePolicy", this.lifecycleQueue, [
        ...fromLifecycleRuleOnly(this.lifecycleQueue),
        onlyThePipelinesRoles(this.lifecycleQueue, []),
        tlsOnly(this.lifecycleQueue),
      ]);
    }

    // ------------------------------------------------------------------ emitter
    this.emitterFunction = new lambda.Function(pub, "EmitterFunction", {
      functionName: `${prefix}-emitter`,
      description: "Cognito PostConfirmation trigger; publishes UserConfirmed and returns at once.",
      code: p.emitterCode ?? lambda.Code.fromAsset(`${p.codeDirectory}/uc-emitter/bootstrap.zip`),
      handler: "bootstrap",
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 128,
      timeout: Duration.seconds(3),
      role: this.emitterRole,
      logGroup: this.emitterLogGroup,
      loggingFormat: lambda.LoggingFormat.TEXT,
      environment: {
        EVENT_BUS_NAME: this.eventBusName,
        EVENT_SOURCE: source,
        PUBLISH_BUDGET_MS: numberText(p.publishBudgetMs),
        FAILURE_POLICY: p.failurePolicy,
        FALLBACK_QUEUE_URL: this.queue.queueUrl,
        // The EMF Stack dimension (runtime/src/metrics.rs): alarms and dashboard filter on it.
        STACK_NAME: prefix,
      },
    });
    withoutRoleDependsOn(this.emitterFunction);
    skipChecks(this.emitterFunction, EMITTER_SKIPS);

    // Lets the user pool (and only it) invoke the emitter.
    new lambda.CfnPermission(pub, "EmitterInvokeFromUserPool", {
      action: "lambda:InvokeFunction",
      functionName: this.emitterFunction.functionArn,
      principal: "cognito-idp.amazonaws.com",
      sourceAccount: Stack.of(pub).account,
      sourceArn: p.userPool.userPoolArn,
    });
    if (cfnPool) {
      attachPostConfirmation(this, cfnPool, this.emitterFunction);
    }

    // ------------------------------------------------------------------ worker
    this.workerLogGroup = logGroup(this, "WorkerLogGroup", `/aws/lambda/${prefix}-worker`, p.logRetention);
    const apiArn = p.graphqlApi.arn;
    const graphqlUrl = p.graphqlUrl ?? graphqlUrlOf(p.graphqlApi);
    // The store the worker writes, the reconciler checks and the auditor reads.
    const dynamo = p.profileStore === "dynamodb";
    const tableArn = `arn:${Aws.PARTITION}:dynamodb:${Aws.REGION}:${Aws.ACCOUNT_ID}:table/${p.profileTableName}`;
    // The endpoint is looked up by id only where the API is the store and no URL is given.
    const lookUpById = !dynamo && graphqlUrl === undefined;
    const appsyncEnv: Record<string, string> = lookUpById
      ? { APPSYNC_API_ID: p.graphqlApi.apiId }
      : { APPSYNC_GRAPHQL_URL: graphqlUrl ?? "" };
    this.workerRole = new iam.Role(this, "WorkerRole", {
      description: "uc-worker, which creates user profiles through AppSync.",
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      inlinePolicies: {
        worker: new iam.PolicyDocument({
          statements: [
            ...(dynamo
              ? [
                  new iam.PolicyStatement({
                    sid: "PutProfileItemsOnly",
                    actions: ["dynamodb:PutItem"],
                    resources: [tableArn],
                  }),
                ]
              : [
                  new iam.PolicyStatement({
                    sid: "CreateUserProfileOnly",
                    actions: ["appsync:GraphQL"],
                    resources: [`${apiArn}/types/Mutation/fields/createUserProfile`],
                  }),
                  ...(lookUpById
                    ? [
                        new iam.PolicyStatement({
                          sid: "ResolveGraphqlEndpoint",
                          actions: ["appsync:GetGraphqlApi"],
                          resources: [apiArn],
                        }),
                      ]
                    : []),
                ]),
            new iam.PolicyStatement({
              sid: "ConsumeWorkerQueue",
              actions: [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
              ],
              resources: [this.queue.queueArn],
            }),
            ...(p.verifyUser === "cognito"
              ? [
                  // Strict mode: the one pool's users, nothing else of Cognito. (In Amplify's
                  // layout the pool is in the auth stack: this stack refers to it, the allowed way.)
                  new iam.PolicyStatement({
                    sid: "CheckUsersInThePool",
                    actions: ["cognito-idp:AdminGetUser"],
                    resources: [p.userPool.userPoolArn],
                  }),
                ]
              : []),
            new iam.PolicyStatement({
              sid: "DeadLetterPermanentFailures",
              actions: ["sqs:SendMessage"],
              resources: [this.workerDeadLetterQueue.queueArn],
            }),
            ...(p.publishProfileCreated
              ? [
                  // The emitter's bus, ProfileCreated under the stack's source only. (In Amplify's
                  // layout the bus is in the auth stack: this stack refers to it, the allowed way.)
                  new iam.PolicyStatement({
                    sid: "AnnounceProfiles",
                    actions: ["events:PutEvents"],
                    resources: [this.eventBusArn],
                    conditions: {
                      StringEquals: { "events:detail-type": PROFILE_CREATED_DETAIL_TYPE, "events:source": source },
                    },
                  }),
                ]
              : []),
            // lifecycleEvents: the second queue, the pool's users (ListUsers by sub, to check an
            // event), reading and deleting a profile in the store (getUserProfile and
            // deleteUserProfile, or GetItem and UpdateItem, DataStore's soft delete), and the
            // lifecycle's events under the stack's source.
            ...(this.lifecycleQueue
              ? [
                  new iam.PolicyStatement({
                    sid: "ConsumeLifecycleQueue",
                    actions: [
                      "sqs:ReceiveMessage",
                      "sqs:DeleteMessage",
                      "sqs:GetQueueAttributes",
                      "sqs:ChangeMessageVisibility",
                    ],
                    resources: [this.lifecycleQueue.queueArn],
                  }),
                  new iam.PolicyStatement({
                    sid: "LookUpUsersInThePool",
                    actions: ["cognito-idp:ListUsers"],
                    resources: [p.userPool.userPoolArn],
                  }),
                  dynamo
                    ? new iam.PolicyStatement({
                        sid: "ReadAndSoftDeleteProfileItemsOnly",
                        actions: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                        resources: [tableArn],
                      })
                    : new iam.PolicyStatement({
                        sid: "ReadAndDeleteUserProfilesOnly",
                        actions: ["appsync:GraphQL"],
                        resources: [
                          `${apiArn}/types/Query/fields/getUserProfile`,
                          `${apiArn}/types/Mutation/fields/deleteUserProfile`,
                        ],
                      }),
                  new iam.PolicyStatement({
                    sid: "PublishLifecycleEvents",
                    actions: ["events:PutEvents"],
                    resources: [this.eventBusArn],
                    conditions: {
                      StringEquals: {
                        "events:source": source,
                        "events:detail-type": [DETAIL_TYPE, USER_DELETED_DETAIL_TYPE, PROFILE_DELETED_DETAIL_TYPE],
                      },
                    },
                  }),
                ]
              : []),
            writeOwnLogs(this.workerLogGroup),
          ],
        }),
      },
    });

    this.workerFunction = new lambda.Function(this, "WorkerFunction", {
      functionName: `${prefix}-worker`,
      description: "Creates each confirmed user's profile through AppSync createUserProfile.",
      code: p.workerCode ?? lambda.Code.fromAsset(`${p.codeDirectory}/uc-worker/bootstrap.zip`),
      handler: "bootstrap",
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      memorySize: p.workerMemorySize,
      timeout: Duration.seconds(30),
      role: this.workerRole,
      logGroup: this.workerLogGroup,
      loggingFormat: lambda.LoggingFormat.TEXT,
      environment: {
        ...(dynamo
          ? { PROFILE_STORE: "dynamodb", PROFILE_TABLE: p.profileTableName ?? "", PROFILE_TYPENAME: p.profileTypeName }
          : appsyncEnv),
        DLQ_URL: this.workerDeadLetterQueue.queueUrl,
        CONCURRENCY: numberText(p.workerCallConcurrency),
        // The worker acts only on this pool's and this source's events.
        USER_POOL_ID: p.userPool.userPoolId,
        EVENT_SOURCE: source,
        VERIFY_USER: p.verifyUser,
        STACK_NAME: prefix,
        PROFILE_CREATED_EVENTS: p.publishProfileCreated ? "true" : "false",
        // The bus of ProfileCreated and of the lifecycle's events, whatever is published: the
        // role's grants decide what may be.
        EVENT_BUS_NAME: this.eventBusName,
        // Lifecycle events: which account statuses count (the reconciler's), and the pace of the
        // ListUsers look-ups that check each event against the pool.
        RECONCILE_STATUSES: p.reconcileStatuses.join(","),
        USER_LOOKUP_RPS: numberText(p.workerUserLookupRate),
      },
    });
    withoutRoleDependsOn(this.workerFunction);
    skipChecks(this.workerFunction, WORKER_SKIPS);

    // The worker DLQ's policy names the worker's role, so it stays with the worker side (this
    // stack): in the pool's stack it would make that stack refer to this one, and Amplify's
    // auth -> UserConfirmed -> auth would be a cycle again. Same resource when the stacks are one.
    queuePolicy(this, "WorkerDeadLetterQueuePolicy", this.workerDeadLetterQueue, [
      onlyThePipelinesRoles(this.workerDeadLetterQueue, [this.workerRole.roleArn]),
      tlsOnly(this.workerDeadLetterQueue),
    ]);
    // Only the worker may publish ProfileCreated under the source (the emitter and the back-fill
    // role are refused), and only with its AnnounceProfiles grant: present whether or not
    // publishProfileCreated, so with false no principal may. Scoped to the source: another
    // application's ProfileCreated on a shared bus is not ours. It names the worker's role, so
    // it stays with the worker side for the same reason as the worker DLQ's policy.
    denyOthers(
      this,
      "BusPolicyDenyForeignProfileCreated",
      `${prefix}-only-worker-profile-created`,
      { StringEquals: { "events:source": source, "events:detail-type": PROFILE_CREATED_DETAIL_TYPE } },
      [this.workerRole.roleArn],
    );
    // UserConfirmed under any source: the emitter, the reconciler, and the worker (it re-publishes
    // it for users an administrator created). It names the worker's role, so it is on this side;
    // its StatementId changed with that move (it was <prefix>-only-emitter-detail-type): a statement
    // moved between Amplify's nested stacks under the same id would be removed by the old stack's
    // clean-up after the new one put it.
    denyOthers(
      this,
      "BusPolicyDenyForeignDetailType",
      `${prefix}-only-pipeline-user-confirmed`,
      { StringEquals: { "events:detail-type": DETAIL_TYPE } },
      [this.emitterRole.roleArn, this.reconcilerRole.roleArn, this.workerRole.roleArn, ...backfillPublisher],
    );
    // The lifecycle's events under the source, in the same way: ProfileDeleted is the worker's
    // only, UserDeleted the worker's and the reconciler's. Present whatever lifecycleEvents says:
    // without it neither role has the grant, so no principal may.
    denyOthers(
      this,
      "BusPolicyDenyForeignProfileDeleted",
      `${prefix}-only-worker-profile-deleted`,
      { StringEquals: { "events:source": source, "events:detail-type": PROFILE_DELETED_DETAIL_TYPE } },
      [this.workerRole.roleArn],
    );
    denyOthers(
      this,
      "BusPolicyDenyForeignUserDeleted",
      `${prefix}-only-pipeline-user-deleted`,
      { StringEquals: { "events:source": source, "events:detail-type": USER_DELETED_DETAIL_TYPE } },
      [this.workerRole.roleArn, this.reconcilerRole.roleArn],
    );

    // addEventSourceMapping, not the SqsEventSource: the latter grants the role
    // sqs:GetQueueUrl besides the four actions the template grants.
    this.workerEventSource = this.workerFunction.addEventSourceMapping("WorkerQueue", {
      eventSourceArn: this.queue.queueArn,
      batchSize: p.workerBatchSize,
      maxBatchingWindow: p.workerBatchingWindow,
      reportBatchItemFailures: true,
      maxConcurrency: p.workerMaximumConcurrency,
      enabled: true,
    });
    if (this.lifecycleQueue) {
      // The second event source: at most 2 invocations at once (AWS's minimum), each pacing its
      // ListUsers calls at workerUserLookupRate (the UserList quota is shared with the reconciler).
      this.workerLifecycleEventSource = this.workerFunction.addEventSourceMapping("LifecycleQueue", {
        eventSourceArn: this.lifecycleQueue.queueArn,
        batchSize: 10,
        reportBatchItemFailures: true,
        maxConcurrency: 2,
        enabled: true,
      });
    }

    // ------------------------------------------------------------------ reconciler
    // A scheduled pass that publishes UserConfirmed (origin reconciliation) for counted users whose
    // account changed since the last pass's watermark, minus the overlap, and who have no profile
    // in the store. With the worker side:
    // it refers to the pool's stack (role, bus, pool, parameter), never the reverse.
    this.reconcilerFunction = new lambda.Function(this, "ReconcilerFunction", {
      functionName: `${prefix}-reconciler`,
      description: "Scheduled reconciliation; publishes UserConfirmed for counted users no trigger reported.",
      code: p.reconcilerCode ?? lambda.Code.fromAsset(`${p.codeDirectory}/uc-reconciler/bootstrap.zip`),
      handler: "bootstrap",
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      timeout: Duration.seconds(900),
      // One pass at a time: a second invocation while one runs is throttled, never concurrent.
      reservedConcurrentExecutions: 1,
      // The role lives in the pool's stack (the bus policies name it), referred to by its ARN: given
      // the Role itself, the L2 function adds a construct dependency on it, which across Amplify's
      // nested stacks becomes a DependsOn between the stacks (the ARN's reference already orders
      // them; cfn-lint W3005). Immutable: nothing may add to its policy from here.
      role: iam.Role.fromRoleArn(this, "ReconcilerRoleByArn", this.reconcilerRole.roleArn, { mutable: false }),
      logGroup: this.reconcilerLogGroup,
      loggingFormat: lambda.LoggingFormat.TEXT,
      environment: {
        USER_POOL_ID: p.userPool.userPoolId,
        EVENT_BUS_NAME: this.eventBusName,
        EVENT_SOURCE: source,
        RECONCILE_WATERMARK_PARAMETER: this.reconcileStateParameter.ref,
        RECONCILE_OVERLAP_SECONDS: numberText(p.reconcileOverlap.toSeconds()),
        RECONCILE_PUBLISH_RATE: numberText(p.reconcilePublishRate),
        LIST_USERS_RPS: numberText(p.reconcileListUsersRate),
        RECONCILE_STATUSES: p.reconcileStatuses.join(","),
        // Where a pass checks for profiles: the worker's store, as the worker is told it.
        ...(dynamo ? { PROFILE_STORE: "dynamodb", PROFILE_TABLE: p.profileTableName ?? "" } : appsyncEnv),
        STACK_NAME: prefix,
        // The orphan sweep erases through the worker's lifecycle: its second look in the pool
        // (ListUsers by sub) at the worker's pace. No PROFILE_CREATED_EVENTS: ProfileDeleted is
        // the worker's alone (the bus policy), so a sweep publishes UserDeleted only.
        USER_LOOKUP_RPS: numberText(p.workerUserLookupRate),
      },
    });
    withoutRoleDependsOn(this.reconcilerFunction);
    // The store check (a pass publishes only users without a profile): getUserProfile and nothing
    // else of the API. A policy of its own in this stack, attached to the role by name: the grant
    // names the API (Amplify's data stack, which refers to the pool's stack, where the role is).
    this.reconcilerStoreReadPolicy = new iam.CfnPolicy(this, "ReconcilerStoreReadPolicy", {
      policyName: "reconciler-store-read",
      roles: [this.reconcilerRole.roleName],
      policyDocument: {
        Version: "2012-10-17",
        Statement: dynamo
          ? [{ Sid: "ReadProfileItemsOnly", Effect: "Allow", Action: "dynamodb:BatchGetItem", Resource: tableArn }]
          : [
              {
                Sid: "ReadProfilesOnly",
                Effect: "Allow",
                Action: "appsync:GraphQL",
                Resource: `${apiArn}/types/Query/fields/getUserProfile`,
              },
              // As the worker's grant: only where the endpoint is looked up by id.
              ...(lookUpById
                ? [{ Sid: "ResolveGraphqlEndpoint", Effect: "Allow", Action: "appsync:GetGraphqlApi", Resource: apiArn }]
                : []),
            ],
      },
    });
    if (p.lifecycleEvents) {
      // The orphan sweep reads the whole store (listUserProfiles, or Scan) and deletes the
      // profiles of users no longer in the pool (deleteUserProfile, or UpdateItem: DataStore's
      // soft delete), nothing else. A policy of its own in this stack, for the store read's
      // reason (it names the API).
      this.reconcilerStoreDeletePolicy = new iam.CfnPolicy(this, "ReconcilerStoreDeletePolicy", {
        policyName: "reconciler-store-delete",
        roles: [this.reconcilerRole.roleName],
        policyDocument: {
          Version: "2012-10-17",
          Statement: dynamo
            ? [
                { Sid: "SoftDeleteProfileItemsOnly", Effect: "Allow", Action: "dynamodb:UpdateItem", Resource: tableArn },
                { Sid: "ScanProfileItemsOnly", Effect: "Allow", Action: "dynamodb:Scan", Resource: tableArn },
              ]
            : [
                {
                  Sid: "DeleteUserProfilesOnly",
                  Effect: "Allow",
                  Action: "appsync:GraphQL",
                  Resource: `${apiArn}/types/Mutation/fields/deleteUserProfile`,
                },
                {
                  Sid: "ListProfilesOnly",
                  Effect: "Allow",
                  Action: "appsync:GraphQL",
                  Resource: `${apiArn}/types/Query/fields/listUserProfiles`,
                },
              ],
        },
      });
    }
    skipChecks(this.reconcilerFunction, RECONCILER_SKIPS);
    // No retry of a failed pass (the next tick resumes from the saved state); a tick that finds a
    // pass still running waits at most one pass (the timeout) for the reserved slot, then is dropped.
    new lambda.CfnEventInvokeConfig(this, "ReconcilerInvokeConfig", {
      functionName: this.reconcilerFunction.functionName,
      qualifier: "$LATEST",
      maximumRetryAttempts: 0,
      maximumEventAgeInSeconds: 900,
    });
    // EventBridge Scheduler's execution role: invoke this one function; only Scheduler acting for
    // this account may assume it.
    const schedulerRole = new iam.Role(this, "ReconcilerSchedulerRole", {
      description: "EventBridge Scheduler, invoking uc-reconciler on its schedule.",
      assumedBy: new iam.ServicePrincipal("scheduler.amazonaws.com").withConditions({
        StringEquals: { "aws:SourceAccount": Aws.ACCOUNT_ID },
      }),
      inlinePolicies: {
        scheduler: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: "InvokeReconciler",
              actions: ["lambda:InvokeFunction"],
              resources: [this.reconcilerFunction.functionArn],
            }),
          ],
        }),
      },
    });
    this.reconcilerSchedule = new scheduler.CfnSchedule(this, "ReconcilerSchedule", {
      name: `${prefix}-reconcile`,
      description: "Runs uc-reconciler (one pass, or the rest of an interrupted one, per invocation).",
      scheduleExpression: p.reconcileSchedule,
      state: p.reconcileScheduleState,
      flexibleTimeWindow: { mode: "OFF" },
      target: {
        arn: this.reconcilerFunction.functionArn,
        roleArn: schedulerRole.roleArn,
        // Only for handing the tick to Lambda; the pass itself is not retried.
        retryPolicy: { maximumRetryAttempts: 5, maximumEventAgeInSeconds: 900 },
      },
    });
    if (p.lifecycleEvents) {
      // The orphan sweep, the safety net behind the CloudTrail path, weekly by default: the same
      // function, role and invoke settings, with the input that asks for a sweep. A refused or
      // failed sweep fails the invocation (the reconciler-failed alarm).
      this.reconcilerOrphanSweepSchedule = new scheduler.CfnSchedule(this, "ReconcilerOrphanSweepSchedule", {
        name: `${prefix}-orphan-sweep`,
        description: "Runs uc-reconciler's orphan sweep (profiles whose user is gone from the pool).",
        scheduleExpression: p.orphanSweepSchedule,
        state: p.orphanSweepScheduleState,
        flexibleTimeWindow: { mode: "OFF" },
        target: {
          arn: this.reconcilerFunction.functionArn,
          roleArn: schedulerRole.roleArn,
          input: '{"orphans": true}',
          retryPolicy: { maximumRetryAttempts: 5, maximumEventAgeInSeconds: 900 },
        },
      });
    }

    // ------------------------------------------------------------------ auditor
    // What `uc-ops audit` needs (docs/runbook.md, section 5), read-only, for an operator to attach.
    // In this stack: it names the API (Amplify's data stack, which refers to the pool's stack).
    this.auditorPolicy = new iam.CfnManagedPolicy(this, "AuditorPolicy", {
      description: "uc-ops audit (users versus profiles), read-only.",
      policyDocument: {
        Version: "2012-10-17",
        Statement: [
          ...(dynamo
            ? [{ Sid: "ScanProfileItemsOnly", Effect: "Allow", Action: "dynamodb:Scan", Resource: tableArn }]
            : [
                {
                  Sid: "ListProfilesOnly",
                  Effect: "Allow",
                  Action: "appsync:GraphQL",
                  Resource: `${apiArn}/types/Query/fields/listUserProfiles`,
                },
                // As the worker's grant: only where the endpoint is looked up by id.
                ...(lookUpById
                  ? [{ Sid: "ResolveGraphqlEndpoint", Effect: "Allow", Action: "appsync:GetGraphqlApi", Resource: apiArn }]
                  : []),
              ]),
          {
            Sid: "ListUsers",
            Effect: "Allow",
            Action: ["cognito-idp:ListUsers", "cognito-idp:DescribeUserPool"],
            Resource: p.userPool.userPoolArn,
          },
        ],
      },
    });

    // ------------------------------------------------------------------ trail
    // EventBridge receives Cognito's API calls (the lifecycle rule) only while a trail logs them:
    // this one logs the region's management write events to a bucket of its own. The bucket is
    // kept when the stack is deleted (CloudFormation cannot delete a bucket holding logs); its
    // logs expire after 90 days. L1 resources, as the template writes them.
    if (p.createTrail) {
      const bucket = new s3.CfnBucket(this, "TrailBucket", {
        bucketEncryption: {
          serverSideEncryptionConfiguration: [{ serverSideEncryptionByDefault: { sseAlgorithm: "AES256" } }],
        },
        versioningConfiguration: { status: "Enabled" },
        publicAccessBlockConfiguration: {
          blockPublicAcls: true,
          blockPublicPolicy: true,
          ignorePublicAcls: true,
          restrictPublicBuckets: true,
        },
        ownershipControls: { rules: [{ objectOwnership: "BucketOwnerEnforced" }] },
        lifecycleConfiguration: {
          rules: [
            {
              id: "expire-trail-logs",
              status: "Enabled",
              expirationInDays: 90,
              noncurrentVersionExpiration: { noncurrentDays: 1 },
              abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
            },
          ],
        },
      });
      bucket.cfnOptions.deletionPolicy = CfnDeletionPolicy.RETAIN;
      bucket.cfnOptions.updateReplacePolicy = CfnDeletionPolicy.RETAIN;
      bucket.addMetadata("checkov", { skip: TRAIL_BUCKET_SKIPS });
      const trailName = `${prefix}-trail`;
      // The trail's ARN written out: the trail depends on the policy, so the policy cannot refer to it.
      const trailArn = `arn:${Aws.PARTITION}:cloudtrail:${Aws.REGION}:${Aws.ACCOUNT_ID}:trail/${trailName}`;
      const cloudTrailService = { Service: "cloudtrail.amazonaws.com" };
      const policy = new s3.CfnBucketPolicy(this, "TrailBucketPolicy", {
        bucket: bucket.ref,
        policyDocument: {
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "CloudTrailAclCheck",
              Effect: "Allow",
              Principal: cloudTrailService,
              Action: "s3:GetBucketAcl",
              Resource: bucket.attrArn,
              Condition: { StringEquals: { "aws:SourceArn": trailArn } },
            },
            {
              Sid: "CloudTrailWrite",
              Effect: "Allow",
              Principal: cloudTrailService,
              Action: "s3:PutObject",
              Resource: `${bucket.attrArn}/AWSLogs/${Aws.ACCOUNT_ID}/*`,
              Condition: { StringEquals: { "s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trailArn } },
            },
            {
              Sid: "TlsOnly",
              Effect: "Deny",
              Principal: "*",
              Action: "s3:*",
              Resource: [bucket.attrArn, `${bucket.attrArn}/*`],
              Condition: { Bool: { "aws:SecureTransport": "false" } },
            },
          ],
        },
      });
      this.trailBucket = bucket;
      this.trail = new cloudtrail.CfnTrail(this, "Trail", {
        trailName,
        s3BucketName: bucket.ref,
        isLogging: true,
        isMultiRegionTrail: false,
        includeGlobalServiceEvents: false,
        enableLogFileValidation: true,
        eventSelectors: [{ readWriteType: "WriteOnly", includeManagementEvents: true }],
      });
      // CloudTrail checks the bucket policy when the trail is created.
      this.trail.addResourceDependency(policy);
      this.trail.addMetadata("checkov", { skip: TRAIL_SKIPS });
    }

    // ------------------------------------------------------------------ alarms
    const alarm = (scope: Construct, logicalId: string, a: AlarmSpec) =>
      new cloudwatch.CfnAlarm(scope, logicalId, {
        alarmName: `${prefix}-${a.name}`,
        alarmDescription: a.description,
        namespace: a.namespace,
        metricName: a.metric,
        dimensions: a.dimensions.map(([name, value]) => ({ name, value })),
        statistic: a.statistic,
        period: a.period,
        evaluationPeriods: 1,
        threshold: a.threshold,
        comparisonOperator: "GreaterThanThreshold",
        treatMissingData: a.treatMissingData ?? "notBreaching",
        alarmActions: p.alarmTopic ? [p.alarmTopic.topicArn] : undefined,
        okActions: p.alarmTopic ? [p.alarmTopic.topicArn] : undefined,
      });
    const visible = "ApproximateNumberOfMessagesVisible";
    alarm(pub, "WorkerDeadLetterQueueAlarm", {
      name: "worker-dlq-not-empty",
      description:
        "Messages in the worker DLQ: profiles that were not created. Inspect and replay them with the ops CLI.",
      namespace: "AWS/SQS",
      metric: visible,
      dimensions: [["QueueName", this.workerDeadLetterQueue.queueName]],
      statistic: "Maximum",
      period: 60,
      threshold: 0,
    });
    alarm(pub, "RuleDeadLetterQueueAlarm", {
      name: "rule-dlq-not-empty",
      description:
        "Events EventBridge could not deliver to the worker queue or the lifecycle queue (queue policy, encryption or quota problem). Their profiles are not created (or deleted) until they are replayed.",
      namespace: "AWS/SQS",
      metric: visible,
      dimensions: [["QueueName", this.ruleDeadLetterQueue.queueName]],
      statistic: "Maximum",
      period: 60,
      threshold: 0,
    });
    alarm(pub, "WorkerQueueAgeAlarm", {
      name: "worker-queue-backlog",
      description:
        "The oldest message in the worker queue is over 15 minutes old: the worker is failing, throttled or disabled, and new users wait for their profile.",
      namespace: "AWS/SQS",
      metric: "ApproximateAgeOfOldestMessage",
      dimensions: [["QueueName", this.queue.queueName]],
      statistic: "Maximum",
      period: 300,
      threshold: 900,
    });
    if (this.lifecycleQueue) {
      alarm(pub, "LifecycleQueueAgeAlarm", {
        name: "lifecycle-queue-backlog",
        description:
          "The oldest message in the lifecycle queue is over 15 minutes old: the worker is failing, throttled or disabled, and deleted users keep their profile (admin-created users wait for theirs).",
        namespace: "AWS/SQS",
        metric: "ApproximateAgeOfOldestMessage",
        dimensions: [["QueueName", this.lifecycleQueue.queueName]],
        statistic: "Maximum",
        period: 300,
        threshold: 900,
      });
    }
    alarm(pub, "EmitterErrorsAlarm", {
      name: "emitter-errors",
      description:
        "The emitter failed (crash, timeout or fail-closed refusal): Cognito showed the user an error or the confirmation went unpublished.",
      namespace: "AWS/Lambda",
      metric: "Errors",
      dimensions: [["FunctionName", this.emitterFunction.functionName]],
      statistic: "Sum",
      period: 60,
      threshold: 0,
    });
    // EMF metrics the functions write themselves (runtime/src/metrics.rs): namespace
    // UserConfirmedPipeline, dimensions Service and Stack (= the name prefix, the functions'
    // STACK_NAME), so each stack's alarms watch its own functions only.
    const emf = (service: "emitter" | "worker" | "reconciler"): [string, string][] => [
      ["Service", service],
      ["Stack", prefix],
    ];
    alarm(pub, "EmitterPublishFailedAlarm", {
      name: "emitter-publish-failed",
      description:
        "A confirmation could be neither published to EventBridge nor queued on the fallback: that user's profile needs the back-fill.",
      namespace: METRICS_NAMESPACE,
      metric: "Failed",
      dimensions: emf("emitter"),
      statistic: "Sum",
      period: 60,
      threshold: 0,
    });
    alarm(pub, "EmitterFallbackAlarm", {
      name: "emitter-fallback-used",
      description:
        "EventBridge PutEvents kept failing and the emitter queued events straight on the worker queue: profiles are still created, but the archive and other consumers miss those events.",
      namespace: METRICS_NAMESPACE,
      metric: "Fallback",
      dimensions: emf("emitter"),
      statistic: "Sum",
      period: 300,
      threshold: 0,
    });
    alarm(this, "WorkerPermanentFailuresAlarm", {
      name: "worker-permanent-failures",
      description:
        "The worker dead-lettered messages it can never process (bad event, AppSync validation or authorization error).",
      namespace: METRICS_NAMESPACE,
      metric: "PermanentFailures",
      dimensions: emf("worker"),
      statistic: "Sum",
      period: 60,
      threshold: 0,
    });

    // The reconciler runs once per schedule tick: missing data keeps the alarms' last state.
    alarm(this, "ReconcilerFailedAlarm", {
      name: "reconciler-failed",
      description:
        'A reconciliation pass failed (Cognito, EventBridge or SSM refused, or it timed out), or an orphan sweep was refused or failed (log lines "orphan sweep ..."). It is not retried: the next scheduled invocation resumes from the saved state. See the reconciler\'s log group and docs/runbook.md, Reconciliation and Orphaned profiles.',
      namespace: "AWS/Lambda",
      metric: "Errors",
      dimensions: [["FunctionName", this.reconcilerFunction.functionName]],
      statistic: "Sum",
      period: 300,
      threshold: 0,
      treatMissingData: "ignore",
    });
    alarm(this, "ReconcilerBehindAlarm", {
      name: "reconciler-behind",
      description:
        "The reconciler reports account changes older than ReconcileBehindAlarmSeconds still not reconciled: passes are not completing (too slow for the pool at this schedule and ListUsers rate, or failing). See docs/runbook.md, Reconciliation.",
      namespace: METRICS_NAMESPACE,
      metric: "OldestUnreconciledChange",
      dimensions: emf("reconciler"),
      statistic: "Maximum",
      period: 3600,
      threshold: p.reconcileBehindAlarm.toSeconds(),
      treatMissingData: "ignore",
    });

    // ------------------------------------------------------------------ dashboard
    // With the worker side: it refers to the queues (in the pool's stack when that is another
    // one), and this stack may refer to that one, not the reverse.
    this.dashboard = new cloudwatch.CfnDashboard(this, "Dashboard", {
      dashboardName: prefix,
      dashboardBody: Stack.of(this).toJsonString(
        dashboardBody({
          namePrefix: prefix,
          region: Stack.of(this).region,
          workerQueueName: this.queue.queueName,
          workerDeadLetterQueueName: this.workerDeadLetterQueue.queueName,
          ruleDeadLetterQueueName: this.ruleDeadLetterQueue.queueName,
          lifecycleQueueName: this.lifecycleQueue?.queueName,
          reconcileBehindAlarmSeconds: numberText(p.reconcileBehindAlarm.toSeconds()),
        }),
      ),
    });

    this.outputs = this.collectOutputs(p);
  }

  private queueWithSkip(scope: Construct, id: string, props: sqs.QueueProps): sqs.Queue {
    const queue = new sqs.Queue(scope, id, { ...props, removalPolicy: RemovalPolicy.DESTROY });
    skipChecks(queue, [SSE_SQS_SKIP]);
    return queue;
  }

  private collectOutputs(p: ResolvedProps): Record<string, PipelineOutput> {
    const out: Record<string, PipelineOutput> = {
      EventBusName: { value: this.eventBusName, description: "The bus the emitter publishes to." },
      EventBusArn: { value: this.eventBusArn, description: "ARN of that bus." },
      EventSource: { value: this.eventSource, description: "The events' source." },
      RuleArn: {
        value: this.rule.attrArn,
        description: "ARN of the rule that routes UserConfirmed events to the worker queue.",
      },
      ArchiveName: {
        value: this.archiveName,
        description: "The archive to replay (aws events start-replay) to back-fill a new consumer.",
      },
      ArchiveArn: {
        value: this.archive.attrArn,
        description: "ARN of the archive (EventSourceArn of a replay is EventBusArn).",
      },
      QueueUrl: { value: this.queue.queueUrl, description: "The worker queue (also the emitter's fallback)." },
      QueueArn: { value: this.queue.queueArn, description: "ARN of the worker queue." },
      WorkerDlqUrl: {
        value: this.workerDeadLetterQueue.queueUrl,
        description: "The worker DLQ (redrive target and permanent failures).",
      },
      WorkerDlqArn: { value: this.workerDeadLetterQueue.queueArn, description: "ARN of the worker DLQ." },
      RuleDlqUrl: {
        value: this.ruleDeadLetterQueue.queueUrl,
        description: "The rule target's DLQ (events EventBridge could not deliver).",
      },
    };
    if (this.lifecycleQueue && this.lifecycleRule) {
      Object.assign(out, {
        LifecycleQueueUrl: {
          value: this.lifecycleQueue.queueUrl,
          description: "The lifecycle queue (Cognito's user lifecycle API calls, via CloudTrail, for the worker).",
        },
        LifecycleQueueArn: { value: this.lifecycleQueue.queueArn, description: "ARN of the lifecycle queue." },
        LifecycleRuleArn: {
          value: this.lifecycleRule.attrArn,
          description:
            "ARN of the rule on the default bus that routes Cognito's lifecycle API calls to the lifecycle queue.",
        },
      });
    }
    if (this.schema) {
      out.SchemaArn = {
        value: this.schema.attrSchemaArn,
        description: "ARN of the UserConfirmed schema in the EventBridge schema registry.",
      };
    }
    if (this.profileCreatedSchema) {
      out.ProfileCreatedSchemaArn = {
        value: this.profileCreatedSchema.attrSchemaArn,
        description: "ARN of the ProfileCreated schema in the EventBridge schema registry.",
      };
    }
    if (this.userDeletedSchema) {
      out.UserDeletedSchemaArn = {
        value: this.userDeletedSchema.attrSchemaArn,
        description: "ARN of the UserDeleted schema in the EventBridge schema registry.",
      };
    }
    if (this.profileDeletedSchema) {
      out.ProfileDeletedSchemaArn = {
        value: this.profileDeletedSchema.attrSchemaArn,
        description: "ARN of the ProfileDeleted schema in the EventBridge schema registry.",
      };
    }
    Object.assign(out, {
      EmitterRoleArn: {
        value: this.emitterRole.roleArn,
        description: "The emitter's execution role (the only principal the bus policy lets publish).",
      },
      WorkerRoleArn: {
        value: this.workerRole.roleArn,
        description: "The worker's execution role (the principal AppSync sees).",
      },
      ReconcilerRoleArn: {
        value: this.reconcilerRole.roleArn,
        description: "The reconciler's execution role (the bus policy lets it publish UserConfirmed too).",
      },
      EmitterFunctionArn: {
        value: this.emitterFunction.functionArn,
        description: "The emitter; attach it as the user pool's PostConfirmation trigger.",
      },
      WorkerFunctionArn: { value: this.workerFunction.functionArn, description: "The worker function." },
      ReconcilerFunctionArn: {
        value: this.reconcilerFunction.functionArn,
        description: "The reconciler function (scheduled; invoke it to run a pass now).",
      },
      ReconcileWatermarkParameter: {
        value: this.reconcileStateParameter.ref,
        description: "Name of the SSM parameter holding the reconciler's state (RECONCILE_WATERMARK_PARAMETER).",
      },
      AuditorPolicyArn: {
        value: this.auditorPolicy.ref,
        description: "Managed policy with what uc-ops audit needs (read-only); attach it to the auditor's role.",
      },
      UserPoolId: {
        value: p.userPool.userPoolId,
        description: "The user pool whose confirmations are published (the given one, or the trial pool).",
      },
    });
    return out;
  }
}

interface AlarmSpec {
  name: string;
  description: string;
  namespace: string;
  metric: string;
  dimensions: [string, string][];
  statistic: string;
  period: number;
  threshold: number;
  treatMissingData?: "notBreaching" | "ignore";
}

// Environment values are strings; a number may be a token (a CloudFormation parameter).
function numberText(value: number): string {
  return Token.isUnresolved(value) ? Token.asString(value) : String(value);
}

/** A function's own log streams and events, in its log group only. */
function writeOwnLogs(group: logs.ILogGroup): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: "WriteOwnLogs",
    actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
    resources: [group.logGroupArn],
  });
}

/** PutEvents on this bus, of UserConfirmed under the stack's source only (emitter, reconciler). */
function publishUserConfirmed(eventBusArn: string, source: string): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: "PublishUserConfirmed",
    actions: ["events:PutEvents"],
    resources: [eventBusArn],
    conditions: { StringEquals: { "events:source": source, "events:detail-type": DETAIL_TYPE } },
  });
}

function logGroup(scope: Construct, id: string, name: string, retention: logs.RetentionDays): logs.LogGroup {
  // Deleted with the stack, as the template's log groups (no DeletionPolicy) are; the L2
  // default would keep them.
  const group = new logs.LogGroup(scope, id, { logGroupName: name, retention, removalPolicy: RemovalPolicy.DESTROY });
  skipChecks(group, [LOG_KMS_SKIP]);
  return group;
}

function skipChecks(construct: Construct, skips: Skip[]): void {
  (construct.node.defaultChild as CfnResource).addMetadata("checkov", { skip: skips });
}

// lambda.Function adds DependsOn its role, which the Role GetAtt already implies (cfn-lint W3005).
function withoutRoleDependsOn(fn: lambda.Function): void {
  (fn.node.defaultChild as CfnResource).addDeletionOverride("DependsOn");
}

function findCfnUserPool(pool: cognito.IUserPool): CfnResource {
  const child = pool.node.defaultChild;
  if (child && CfnResource.isCfnResource(child) && child.cfnResourceType === "AWS::Cognito::UserPool") {
    return child;
  }
  throw new Error(
    "UserConfirmedPipeline: attachTrigger needs a user pool defined in this app (found no AWS::Cognito::UserPool " +
      "behind userPool, e.g. an imported pool). Pass attachTrigger: false and attach the emitter with " +
      "`uc-ops attach-trigger` (infra/README.md).",
  );
}

// A property override sets only LambdaConfig.PostConfirmation, so triggers defined elsewhere
// (Amplify's defineAuth({ triggers })) stay. A pool has one PostConfirmation trigger: taking
// over one that is already set would silently drop it, so that is an error, found at synth.
function attachPostConfirmation(owner: Construct, cfnPool: CfnResource, emitter: lambda.IFunction): void {
  const overrides = (cfnPool as unknown as { rawOverrides?: { Properties?: { LambdaConfig?: object } } }).rawOverrides;
  if (overrides?.Properties?.LambdaConfig && "PostConfirmation" in overrides.Properties.LambdaConfig) {
    throw new Error(`UserConfirmedPipeline: ${cfnPool.node.path} already has a LambdaConfig.PostConfirmation override`);
  }
  cfnPool.addPropertyOverride("LambdaConfig.PostConfirmation", emitter.functionArn);
  owner.node.addValidation({
    validate: () => {
      const config = Stack.of(cfnPool).resolve((cfnPool as unknown as { lambdaConfig?: unknown }).lambdaConfig) as
        | Record<string, unknown>
        | undefined;
      const existing = config?.postConfirmation ?? config?.PostConfirmation;
      return existing === undefined
        ? []
        : [
            `${cfnPool.node.path} already has a PostConfirmation trigger (${JSON.stringify(existing)}); ` +
              "remove it (Amplify: defineAuth({ triggers: { postConfirmation } })) so the emitter replaces it.",
          ];
    },
  });
}

function graphqlUrlOf(api: { node: Construct["node"] }): string | undefined {
  const child = api.node.defaultChild;
  if (child && CfnResource.isCfnResource(child) && child.cfnResourceType === "AWS::AppSync::GraphQLApi") {
    return (child as unknown as { attrGraphQlUrl: string }).attrGraphQlUrl;
  }
  return undefined;
}

function defaultNamePrefix(scope: Construct): string {
  // The hash CDK derives from the top-level stack's name and the construct's path: stable across
  // deploys, different for each Amplify sandbox and branch (each its own root stack).
  const unique = Names.uniqueResourceName(scope, { maxLength: 24, separator: "-" });
  return `uc-${unique.slice(-8).toLowerCase()}`;
}
