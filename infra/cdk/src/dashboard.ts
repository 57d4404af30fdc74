// The pipeline's CloudWatch dashboard body: the same JSON as the SAM template's Dashboard
// (infra/template.src.yaml; dev/tests/test_construct.py compares the two parsed). Every EMF metric
// is filtered to Service and Stack = the name prefix (the functions' STACK_NAME), every SQS metric
// to this pipeline's queues. What each graph means: docs/runbook.md, "Dashboard".

/** The values the body refers to; tokens are fine (the stack's toJsonString resolves them). */
export interface DashboardRefs {
  readonly namePrefix: string;
  readonly region: string;
  readonly workerQueueName: string;
  readonly workerDeadLetterQueueName: string;
  readonly ruleDeadLetterQueueName: string;
  /** The lifecycle queue's name, with `lifecycleEvents` (its backlog is graphed next to the worker queue's). */
  readonly lifecycleQueueName?: string;
  /** The reconciler-behind alarm's threshold in seconds, as text (shown in the graph's title). */
  readonly reconcileBehindAlarmSeconds: string;
}

/** runtime/src/metrics.rs METRICS_NAMESPACE. */
export const METRICS_NAMESPACE = "UserConfirmedPipeline";

type Options = Record<string, string | number>;
type Row = (string | Options)[];

export function dashboardBody(r: DashboardRefs): object {
  const emf = (service: "emitter" | "worker" | "reconciler", metric: string, options: Options): Row => [
    METRICS_NAMESPACE,
    metric,
    "Service",
    service,
    "Stack",
    r.namePrefix,
    options,
  ];
  const sqs = (metric: string, queueName: string, options: Options): Row => ["AWS/SQS", metric, "QueueName", queueName, options];
  const expression = (options: Options): Row => [options];
  const left = { min: 0, showUnits: false };
  const percent = { min: 0, max: 100, showUnits: false };
  const graph = (
    position: { x: number; y: number },
    title: string,
    period: number,
    metrics: Row[],
    extra: { stat?: string; right?: object } = {},
  ) => ({
    type: "metric",
    ...position,
    width: 12,
    height: 6,
    properties: {
      title,
      view: "timeSeries",
      stacked: false,
      region: r.region,
      period,
      ...(extra.stat ? { stat: extra.stat } : {}),
      metrics,
      yAxis: extra.right ? { left, right: extra.right } : { left },
    },
  });

  return {
    start: "-PT6H",
    widgets: [
      {
        type: "text",
        x: 0,
        y: 0,
        width: 24,
        height: 3,
        properties: {
          markdown:
            `## ${r.namePrefix}: UserConfirmed pipeline\n` +
            "Cognito PostConfirmation -> emitter -> EventBridge -> SQS -> worker -> AppSync profile; " +
            "a scheduled reconciler publishes what no trigger reported. " +
            `Only this stack's data: EMF metrics with Stack = ${r.namePrefix}, and its own queues. Alarms: ${r.namePrefix}-*.\n\n` +
            "**Runbook:** docs/runbook.md in the pipeline's repository: section *Dashboard* (what each graph means, what to do), then *DLQ not empty*.",
        },
      },
      graph({ x: 0, y: 3 }, "Sign-up to profile lag (ms)", 300, [
        emf("worker", "SignUpToProfileLag", { id: "lag_p50", stat: "p50", label: "p50" }),
        emf("worker", "SignUpToProfileLag", { id: "lag_p99", stat: "p99", label: "p99" }),
      ]),
      graph(
        { x: 12, y: 3 },
        "Dead-letter queues and worker backlog",
        60,
        [
          sqs("ApproximateNumberOfMessagesVisible", r.workerDeadLetterQueueName, {
            id: "worker_dlq",
            stat: "Maximum",
            label: "worker DLQ (messages)",
          }),
          sqs("ApproximateNumberOfMessagesVisible", r.ruleDeadLetterQueueName, {
            id: "rule_dlq",
            stat: "Maximum",
            label: "rule DLQ (messages)",
          }),
          sqs("ApproximateAgeOfOldestMessage", r.workerQueueName, {
            id: "queue_age",
            stat: "Maximum",
            label: "worker queue: oldest message (s)",
            yAxis: "right",
          }),
          ...(r.lifecycleQueueName === undefined
            ? []
            : [
                sqs("ApproximateAgeOfOldestMessage", r.lifecycleQueueName, {
                  id: "lifecycle_age",
                  stat: "Maximum",
                  label: "lifecycle queue: oldest message (s)",
                  yAxis: "right",
                }),
              ]),
        ],
        { right: left },
      ),
      graph(
        { x: 0, y: 9 },
        "Emitter: what became of each confirmation",
        300,
        [
          emf("emitter", "Published", { id: "out_published", label: "Published (on the bus)" }),
          emf("emitter", "Fallback", { id: "out_fallback", label: "Fallback (queued directly)" }),
          emf("emitter", "Failed", { id: "out_failed", label: "Failed (needs back-fill)" }),
          emf("emitter", "Unknown", { id: "out_unknown", label: "Unknown (outcome not known)" }),
          emf("emitter", "Skipped", { id: "skipped", label: "Skipped (not a sign-up)" }),
          expression({
            id: "on_bus",
            expression: '100 * FILL(out_published, 0) / SUM(METRICS("out_"))',
            label: "published on the bus (%)",
            yAxis: "right",
          }),
        ],
        { stat: "Sum", right: percent },
      ),
      graph({ x: 12, y: 9 }, "Emitter: handler latency p99 (ms)", 300, [
        emf("emitter", "HandlerLatency", { id: "handler_p99", stat: "p99", label: "p99" }),
      ]),
      graph(
        { x: 0, y: 15 },
        "Worker: what became of each message",
        300,
        [
          emf("worker", "Created", { id: "created", label: "Created" }),
          emf("worker", "AlreadyExisted", { id: "already_existed", label: "AlreadyExisted" }),
          emf("worker", "DeadLettered", { id: "dead_lettered", label: "DeadLettered" }),
          emf("worker", "RetryableFailures", { id: "retryable", label: "RetryableFailures (SQS retries)" }),
        ],
        { stat: "Sum" },
      ),
      graph({ x: 12, y: 15 }, "Worker: AppSync latency (ms)", 300, [
        emf("worker", "AppSyncLatency", { id: "appsync_p50", stat: "p50", label: "p50" }),
        emf("worker", "AppSyncLatency", { id: "appsync_p99", stat: "p99", label: "p99" }),
      ]),
      graph(
        { x: 0, y: 21 },
        "Worker: ProfileCreated events",
        300,
        [
          emf("worker", "ProfileCreatedPublished", { id: "pc_published", label: "ProfileCreatedPublished" }),
          emf("worker", "ProfileCreatedNotPublished", { id: "pc_not_published", label: "ProfileCreatedNotPublished" }),
          expression({
            id: "announced",
            expression: '100 * FILL(pc_published, 0) / SUM(METRICS("pc_"))',
            label: "announced (%)",
            yAxis: "right",
          }),
        ],
        { stat: "Sum", right: percent },
      ),
      graph(
        { x: 0, y: 27 },
        "Reconciler: users scanned, events published (per hour)",
        3600,
        [
          emf("reconciler", "Published", { id: "rec_published", label: "Published (UserConfirmed, origin reconciliation)" }),
          emf("reconciler", "PublishFailed", { id: "rec_publish_failed", label: "PublishFailed" }),
          emf("reconciler", "PassesCompleted", { id: "rec_passes", label: "PassesCompleted" }),
          emf("reconciler", "UsersScanned", { id: "rec_scanned", label: "UsersScanned", yAxis: "right" }),
        ],
        { stat: "Sum", right: left },
      ),
      graph(
        { x: 12, y: 27 },
        `Reconciler: oldest unreconciled change (s; alarm above ${r.reconcileBehindAlarmSeconds})`,
        3600,
        [emf("reconciler", "OldestUnreconciledChange", { id: "rec_oldest", stat: "Maximum", label: "seconds since the watermark" })],
      ),
    ],
  };
}
