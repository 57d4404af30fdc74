// checkov findings that do not apply to the construct's resources, with the SAM template's
// reasons (infra/README.md); test_construct.py checks both templates skip the same checks.
export type Skip = { id: string; comment: string };

export const SSE_SQS_SKIP: Skip = {
  id: "CKV_AWS_27",
  comment:
    "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled), which CKV_AWS_27 does not recognise. EventBridge cannot deliver to a queue under the AWS managed KMS key, and a customer key would add a key policy and per-message KMS calls for no gain.",
};
export const LOG_KMS_SKIP: Skip = {
  id: "CKV_AWS_158",
  comment:
    "CloudWatch Logs encrypts every log group at rest; the functions log ids only (uc_runtime redacts e-mail addresses), so a customer-managed KMS key would add a key policy and cost without protecting a secret.",
};
export const EMITTER_SKIPS: Skip[] = [
  {
    id: "CKV_AWS_116",
    comment:
      "Invoked synchronously by Cognito, so a Lambda DLQ (async invocations only) would never receive anything; undelivered events fall back to the worker queue.",
  },
  {
    id: "CKV_AWS_117",
    comment:
      "Calls only public AWS endpoints (EventBridge, SQS); a VPC would add NAT cost and cold-start latency to a trigger that must answer within 5 s.",
  },
  {
    id: "CKV_AWS_115",
    comment: "Reserved concurrency would throttle sign-ups; Cognito's own rate limits bound the trigger's concurrency.",
  },
  {
    id: "CKV_AWS_173",
    comment:
      "The environment holds only resource names, a source, a budget and a policy: no secret to encrypt with a customer key.",
  },
];
export const WORKER_SKIPS: Skip[] = [
  {
    id: "CKV_AWS_116",
    comment:
      "Fed by an SQS event source: failed messages go to the queue's redrive DLQ (and permanent failures straight to it), not to a Lambda DLQ.",
  },
  { id: "CKV_AWS_117", comment: "Calls only public AWS endpoints (AppSync, SQS); no VPC resource to reach." },
  {
    id: "CKV_AWS_115",
    comment:
      "Concurrency is bounded by the event source's ScalingConfig.MaximumConcurrency (workerMaximumConcurrency), which AWS recommends over reserved concurrency for SQS sources (no throttled receives).",
  },
  {
    id: "CKV_AWS_173",
    comment: "The environment holds only an endpoint, a queue URL and a number: no secret to encrypt with a customer key.",
  },
];
export const RECONCILER_SKIPS: Skip[] = [
  {
    id: "CKV_AWS_116",
    comment:
      "Invoked by its schedule only; a failed pass is neither retried nor dead-lettered (ReconcilerInvokeConfig): the next scheduled invocation resumes from the state in SSM, and the reconciler-failed alarm reports the failure.",
  },
  {
    id: "CKV_AWS_117",
    comment: "Calls only public AWS endpoints (Cognito, EventBridge, SSM); no VPC resource to reach.",
  },
  {
    id: "CKV_AWS_173",
    comment:
      "The environment holds only a pool id, resource names, rates and statuses: no secret to encrypt with a customer key.",
  },
];
// The trail (createTrail): its bucket and the trail itself.
export const TRAIL_BUCKET_SKIPS: Skip[] = [
  {
    id: "CKV_AWS_18",
    comment:
      "The bucket holds only CloudTrail's log files, written by CloudTrail; the trail itself records the S3 management calls made on it, and server access logging would need a second bucket (with its own logs) for no event the trail misses.",
  },
];
export const TRAIL_SKIPS: Skip[] = [
  {
    id: "CKV_AWS_35",
    comment:
      "The log files are encrypted at rest with SSE-S3 (the bucket's default encryption); a customer-managed KMS key would add a key policy and per-object KMS calls to a trail kept for EventBridge delivery, whose files nothing in the pipeline reads.",
  },
  {
    id: "CKV_AWS_67",
    comment:
      "Single-region on purpose: the pipeline needs this region's Cognito calls only; a multi-region trail would record (and bill) every region's management write events.",
  },
];
