//! Log set-up: JSON lines on stdout, which Lambda ships to CloudWatch Logs. What is logged is
//! the callers' business; the rule is `sub`, event ids and request ids, never an email.
//! Lines are gathered and written together ([`flush`]): one `write` per invocation or batch
//! instead of one per line, which cost the worker a tenth of its CPU (docs/profiling.md).

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

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

/// Crates whose TRACE output carries payloads, capped at DEBUG.
pub const PII_FLOORS: &[&str] = &[
    "lambda_runtime=debug",
    "lambda_runtime_api_client=debug",
    "aws_smithy_runtime=debug",
    "aws_smithy_runtime_api=debug",
    "aws_smithy_http_client=debug",
    "aws_sigv4=debug",
    "hyper=debug",
    "hyper_util=debug",
    "reqwest=debug",
    "h2=debug",
];

/// Installs a JSON `tracing` subscriber on stdout (Lambda ships stdout to CloudWatch Logs).
/// `RUST_LOG` overrides the default `info` level. Each line carries its innermost span's
/// fields: under `lambda_runtime` that is the invocation's `requestId` (and `xrayTraceId`).
pub fn init_json_logs() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // No level may print PII: at TRACE the Lambda runtime logs the raw invocation event (a
    // Cognito event carries the email) and the SDK logs request and response bodies. Those
    // crates stop at DEBUG whatever RUST_LOG says.
    for floor in PII_FLOORS {
        if let Ok(directive) = floor.parse() {
            filter = filter.add_directive(directive);
        }
    }
    // A second call (tests, or a binary embedding another) keeps the first subscriber.
    let installed = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_writer(GatheredStdout)
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

    struct Callsite;
    static CALLSITE: Callsite = Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unimplemented!("not called")
        }
    }
}
