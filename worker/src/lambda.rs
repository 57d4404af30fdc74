//! The Lambda front end: an SQS batch in, `ReportBatchItemFailures` out. Messages run
//! concurrently (bounded), each in its own task so a panic fails only its own message.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use lambda_runtime::{LambdaEvent, service_fn};
use tokio::time::Instant;
use tracing::Instrument;
use uc_runtime::MetricsRecord;
use uc_schemas::MessageMeta;

use crate::processor::{MessageHandler, MessageReport};

/// Kept between the end of our work and the invocation deadline.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A failed record had no message id, and Lambda treats an empty identifier as the whole
    /// batch failing anyway: say so plainly, so every message is retried and none lost.
    #[error(
        "{0} failed record(s) had no messageId; failing the whole batch so SQS retries all of it"
    )]
    UnidentifiedFailure(usize),
}

impl BatchError {
    /// The `errorType` Lambda records for the invocation (and CloudWatch shows).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::UnidentifiedFailure(_) => "UnidentifiedFailure",
        }
    }
}

/// A stable `errorType` instead of the Rust type name the runtime would derive from a boxed
/// error (`&alloc::boxed::Box<dyn core::error::Error + …>`).
impl From<BatchError> for lambda_runtime::Diagnostic {
    fn from(error: BatchError) -> Self {
        Self {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What a front end knows about an SQS record.
pub fn meta_of(record: &SqsMessage) -> MessageMeta {
    MessageMeta::from_sqs(
        record.message_id.as_deref(),
        |name| record.attributes.get(name).map(String::as_str),
        record
            .message_attributes
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.string_value.clone()?))),
    )
}

/// Serves Lambda invocations until the runtime stops: each batch gets the invocation's
/// deadline, less [`DEADLINE_MARGIN`] to answer. Under Lambda Managed Instances
/// (`AWS_LAMBDA_MAX_CONCURRENCY` > 1) the process serves that many batches at once, each with
/// up to `concurrency` messages in flight.
pub async fn serve<H: MessageHandler>(
    handler: Arc<H>,
    concurrency: usize,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let handler = handler.clone();
        async move {
            let deadline =
                uc_runtime::retry::deadline_before(event.context.deadline(), DEADLINE_MARGIN);
            handle_batch(handler, event.payload, Some(deadline), concurrency).await
        }
    }))
    .await
}

/// Processes a batch; returns the ids of the messages SQS must redeliver.
pub async fn handle_batch<H: MessageHandler>(
    handler: Arc<H>,
    event: SqsEvent,
    deadline: Option<Instant>,
    concurrency: usize,
) -> Result<SqsBatchResponse, BatchError> {
    let reports: Vec<MessageReport> = futures::stream::iter(event.records)
        .map(|record| {
            let handler = handler.clone();
            let meta = meta_of(&record);
            let message_id = meta.message_id.clone();
            let body = record.body.unwrap_or_default();
            async move {
                // The task keeps the invocation's span, so its log lines carry the request id.
                let task = tokio::spawn(
                    async move { handler.handle(body, meta, deadline).await }
                        .instrument(tracing::Span::current()),
                );
                match task.await {
                    Ok(report) => report,
                    Err(error) => {
                        tracing::error!(
                            message_id,
                            panic = error.is_panic(),
                            "message processing crashed; SQS will redeliver it"
                        );
                        MessageReport::crashed(message_id)
                    }
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;

    let mut metrics = MetricsRecord::new("worker");
    metrics.count("Messages", reports.len() as u64);
    handler.after_batch(&reports, deadline, &mut metrics).await;
    let mut failures = Vec::new();
    let mut unidentified = 0;
    for report in &reports {
        report.add_to(&mut metrics);
        if report.disposition.is_settled() {
            continue;
        }
        if report.message_id.is_empty() {
            unidentified += 1;
        } else {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = report.message_id.clone();
            failures.push(failure);
        }
    }
    metrics.emit();
    // Every line of the batch in one write, before Lambda may freeze the process.
    uc_runtime::logs::flush();
    if unidentified > 0 {
        return Err(BatchError::UnidentifiedFailure(unidentified));
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    Ok(response)
}
