//! Log set-up: JSON lines on stdout, which Lambda ships to CloudWatch Logs. What is logged is
//! the callers' business; the rule is `sub`, event ids and request ids, never an email.
//! Lines are gathered and written together ([`flush`]): one `write` per invocation or batch
//! instead of one per line, which cost the worker a tenth of its CPU (docs/profiling.md).

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Lines waiting to be written, once [`init_json_logs`] has turned gathering on.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static GATHERING: AtomicBool = AtomicBool::new(false);
/// Written out at once past this size, whoever is writing.
const FLUSH_AT: usize = 32 * 1024;
/// The longest an INFO line waits when nobody flushes (a long-poll consumer between batches).
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Writes what is gathered to stdout. The functions call it before they answer an invocation
/// (Lambda may freeze the process right after) and after each batch; a line at WARN or above
/// is written at once, with everything before it.
pub fn flush() {
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    write_out(&mut pending);
}

/// One line (a log line or an EMF record, ending in a newline), gathered or written at once.
pub fn write_line(line: &[u8], urgent: bool) {
    if !GATHERING.load(Ordering::Relaxed) {
        let _ = std::io::stdout().lock().write_all(line);
        return;
    }
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    pending.extend_from_slice(line);
    if urgent || pending.len() >= FLUSH_AT {
        write_out(&mut pending);
    }
}

// Under the lock, so that lines keep their order.
fn write_out(pending: &mut Vec<u8>) {
    if pending.is_empty() {
        return;
    }
    let _ = std::io::stdout().lock().write_all(pending);
    pending.clear();
}

/// The subscriber's writer: each event arrives as one `write_all` of a whole line.
struct GatheredStdout;

struct GatheredLine {
    urgent: bool,
}

impl Write for GatheredLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_line(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for GatheredStdout {
    type Writer = GatheredLine;

    fn make_writer(&'a self) -> Self::Writer {
        GatheredLine { urgent: true }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        GatheredLine {
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}

/// Whether `target` is one of the product's own crates (`uc_emitter`, `uc_worker`, …): their
/// lines carry subs and ids only, so `RUST_LOG` may set them to any level.
pub fn is_ours(target: &str) -> bool {
    target.starts_with("uc_")
}

/// The most any other crate may print. At DEBUG and TRACE the SDK, the HTTP stack and the
/// Lambda runtime dump credentials' key ids, endpoint resolution, request and response bodies
/// and the raw invocation event (a Cognito event carries the email); their INFO lines are
/// progress chatter that costs log ingestion and says nothing an operator acts on.
pub const THIRD_PARTY_MAX: tracing::Level = tracing::Level::WARN;

/// The filter every binary logs through: `RUST_LOG` (default `default`) for the product's own
/// targets, and the same capped at [`THIRD_PARTY_MAX`] for every other crate. A cap, not a
/// directive: `RUST_LOG=warn` still quiets the SDK, `RUST_LOG=trace` cannot open it.
pub fn filter<S>(default: LevelFilter) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    capped(
        EnvFilter::builder()
            .with_default_directive(default.into())
            .from_env_lossy(),
    )
}

fn capped<S>(from_env: EnvFilter) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    // Spans pass: they print nothing themselves, and the Lambda runtime's invocation span is
    // what puts `requestId` on our lines. Their fields show only on our own events inside them.
    from_env.and(filter_fn(|meta| {
        meta.is_span() || *meta.level() <= THIRD_PARTY_MAX || is_ours(meta.target())
    }))
}

/// Installs a JSON `tracing` subscriber on stdout (Lambda ships stdout to CloudWatch Logs),
/// through [`filter`] at INFO unless `RUST_LOG` says otherwise. Each line carries its target
/// and its innermost span's fields: under `lambda_runtime` that is the invocation's
/// `requestId` (and `xrayTraceId`).
pub fn init_json_logs() {
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .without_time()
        .with_writer(GatheredStdout)
        .with_filter(filter(LevelFilter::INFO));
    // A second call (tests, or a binary embedding another) keeps the first subscriber.
    let installed = tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .is_ok();
    if installed && !GATHERING.swap(true, Ordering::Relaxed) {
        // Lines nobody flushed (between a long-poll consumer's batches) wait at most this long.
        let _ = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_marks_warnings_and_errors_urgent_and_nothing_else() {
        use tracing::Level;
        let urgent = |level: Level| {
            let callsite = tracing::callsite::Identifier(&CALLSITE);
            let fields = tracing::field::FieldSet::new(&[], callsite);
            let meta = tracing::Metadata::new(
                "t",
                "t",
                level,
                None,
                None,
                None,
                fields,
                tracing::metadata::Kind::EVENT,
            );
            GatheredStdout.make_writer_for(&meta).urgent
        };
        assert!(urgent(Level::ERROR));
        assert!(urgent(Level::WARN));
        assert!(!urgent(Level::INFO));
        assert!(!urgent(Level::DEBUG));
    }

    /// The levels that get through `directives`, per target, as (target, level) lines.
    fn passed(directives: &str) -> Vec<String> {
        let text = printed(directives, || {
            tracing::trace!(target: "uc_worker::processor", "ours");
            tracing::debug!(target: "uc_emitter", "ours");
            tracing::info!(target: "uc_ops::audit", "ours");
            tracing::trace!(target: "aws_smithy_runtime::client", "theirs");
            tracing::debug!(target: "lambda_runtime", "theirs");
            tracing::debug!(target: "hyper_util::client", "theirs");
            tracing::info!(target: "aws_config::meta", "theirs");
            tracing::warn!(target: "aws_config::imds", "theirs");
        });
        text.lines()
            .map(|l| {
                let mut words = l.split_whitespace();
                let level = words.next().unwrap_or_default();
                let target = words.next().unwrap_or_default().trim_end_matches(':');
                format!("{target} {level}")
            })
            .collect()
    }

    /// What a text subscriber filtered by `directives` (and the cap) prints while `f` runs.
    fn printed(directives: &str, f: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = tracing_subscriber::fmt::layer()
            .with_writer({
                let seen = seen.clone();
                move || Captured(seen.clone())
            })
            .with_ansi(false)
            .without_time()
            .with_filter(capped(EnvFilter::new(directives)));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        let bytes = seen.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn other_crates_are_capped_at_warn_whatever_rust_log_says() {
        assert_eq!(
            passed("trace"),
            [
                "uc_worker::processor TRACE",
                "uc_emitter DEBUG",
                "uc_ops::audit INFO",
                "aws_config::imds WARN",
            ]
        );
        // A directive naming a crate cannot open it either.
        assert_eq!(
            passed("info,aws_smithy_runtime=trace,hyper_util=trace,aws_config=info"),
            ["uc_ops::audit INFO", "aws_config::imds WARN"]
        );
    }

    /// The Lambda runtime's invocation span is not capped: it carries the request id onto our
    /// lines.
    #[test]
    fn the_runtimes_span_still_carries_the_request_id() {
        let text = printed("info", || {
            tracing::info_span!(target: "lambda_runtime", "invoke", requestId = "req-7").in_scope(
                || {
                    tracing::info!(target: "uc_emitter", "ours");
                    tracing::debug!(target: "lambda_runtime", "theirs");
                },
            );
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("req-7") && text.contains("ours"), "{text}");
    }

    #[test]
    fn a_lower_rust_log_lowers_everyone() {
        // The old floors *set* the SDK to DEBUG: RUST_LOG=warn printed their DEBUG lines.
        assert_eq!(passed("warn"), ["aws_config::imds WARN"]);
        assert_eq!(passed("error"), Vec::<String>::new());
        assert!(is_ours("uc_runtime::logs") && !is_ours("ucx") && !is_ours("aws_sdk_sqs"));
    }

    struct Callsite;
    static CALLSITE: Callsite = Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unimplemented!("not called")
        }
    }
}
