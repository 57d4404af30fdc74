//! The Tokio runtime a Lambda function process runs on. Classic Lambda hands a process one
//! invocation at a time: a current-thread runtime serves it with no cross-thread wake-ups (the
//! emitter's sign-up path is measured in tenths of a millisecond). Lambda Managed Instances
//! (`AWS_LAMBDA_MAX_CONCURRENCY` > 1) hand it several at once: a multi-thread runtime then
//! spreads them over the instance's cores.

/// The variable Lambda Managed Instances set to the invocations a process serves at once.
pub const MAX_CONCURRENCY_VAR: &str = "AWS_LAMBDA_MAX_CONCURRENCY";

/// Invocations this process is handed at once (1 unless Lambda Managed Instances say more).
pub fn max_concurrency() -> u32 {
    std::env::var(MAX_CONCURRENCY_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .max(1)
}

/// A current-thread runtime for one invocation at a time, a multi-thread one otherwise.
pub fn lambda_tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if max_concurrency() > 1 {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build()
}

/// The exit of a binary's `main`: on an error, one line `error: …` on stderr (the error and its
/// causes, one line, no email) and exit status 1 — never the `Debug` form or a backtrace that
/// returning the error from `main` prints (with `RUST_BACKTRACE` set, 31 frames for a missing
/// variable). The error has usually been logged as a JSON line already; this line is for the
/// person starting the binary by hand.
pub fn exit_code<E: std::fmt::Display>(result: Result<(), E>) -> std::process::ExitCode {
    crate::logs::flush();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            use std::io::Write;
            let line: String = format!("{error:#}")
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let _ = writeln!(
                std::io::stderr().lock(),
                "error: {}",
                crate::redact_emails(&line)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
