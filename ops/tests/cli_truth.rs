//! Issue 12, items 4.3 and 4.4, on the `uc-ops` binary itself: options that cannot mean
//! anything are refused by the parser; a missing env file says so; an AWS error is one line;
//! a closed stdout (`uc-ops … | head`) ends the output quietly.

use std::process::{Command, Output, Stdio};

fn uc_ops() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_uc-ops"));
    command
        .env_remove("UC_ENV_FILE")
        .env_remove("RUST_LOG")
        .env_remove("DLQ_URL")
        .env_remove("RULE_DLQ_URL");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `--rate inf` panicked (a zero-length interval); `0`, `-3` and `nan` silently meant "no
/// limit". All four are a usage error now, naming the option, before anything is called.
#[test]
fn a_rate_must_be_positive_and_finite() {
    let commands: [(&[&str], &str); 4] = [
        (&["dlq", "replay"], "--rate"),
        (&["dlq", "redrive"], "--rate"),
        (
            &["backfill", "--user-pool-id", "us-east-1_Pool", "--direct"],
            "--rate",
        ),
        (
            &["audit", "--user-pool-id", "us-east-1_Pool"],
            "--list-rate",
        ),
    ];
    for (command, option) in commands {
        for bad in ["inf", "0", "-3", "nan"] {
            let output = uc_ops()
                .args(command)
                .arg(format!("{option}={bad}"))
                .env("DLQ_URL", "http://127.0.0.1:9/queue/dlq")
                .output()
                .unwrap();
            let stderr = text(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{command:?} {option}={bad}: {stderr}"
            );
            assert!(
                stderr.contains("positive, finite") && stderr.contains(option),
                "{command:?} {option}={bad}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

/// A back-fill is paced unless told otherwise (issue 12, "live sign-ups first"): the help says
/// the default, 50 users per second, and how to lift it.
#[test]
fn backfill_is_paced_by_default() {
    let output = uc_ops().args(["backfill", "--help"]).output().unwrap();
    let help = text(&output.stdout);
    assert!(output.status.success());
    assert!(help.contains("--rate <PER_SECOND|unlimited>"), "{help}");
    assert!(help.contains("[default: 50]"), "{help}");
}

/// `--limit [default: 18446744073709551615]` in the help; now "all", and 0 is refused.
#[test]
fn help_shows_no_machine_limits() {
    for command in [["dlq", "replay"], ["dlq", "redrive"]] {
        let output = uc_ops().args(command).arg("--help").output().unwrap();
        let help = text(&output.stdout);
        assert!(output.status.success());
        assert!(!help.contains("18446744073709551615"), "{help}");
        assert!(help.contains("[default: all]"), "{help}");
    }
    let zero = uc_ops()
        .args(["dlq", "replay", "--limit", "0"])
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2));
}

/// A misspelt env file was reported as "reading X" plus an OS error on another line; now one
/// line saying the file is not there, and the exit status for "could not run".
#[test]
fn a_missing_env_file_says_so() {
    let output = uc_ops()
        .args(["--env-file", "/nonexistent/stack.env", "dlq", "stats"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "error: env file /nonexistent/stack.env not found\n"
    );
}

fn moto_env(command: &mut Command, moto: &uc_devkit::Moto) {
    command
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", uc_devkit::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", uc_devkit::SECRET_KEY);
}

/// An AWS error is one line with its code (the shared classifier's text), exit status 2.
/// `uc-ops … | head`: the reader closing the pipe ended in a panic ("failed printing to
/// stdout: Broken pipe", status 101); now the output ends quietly and the status is the
/// report's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_errors_are_one_line_and_a_closed_pipe_is_quiet() {
    let moto = uc_devkit::Moto::start();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (dlq, _) = uc_devkit::sqs::create_queue(&sqs, "cli-truth-dlq", 30).await;
    uc_devkit::sqs::send_all(&sqs, &dlq, &["{".to_owned(), "}".to_owned()]).await;

    let mut missing = uc_ops();
    moto_env(&mut missing, &moto);
    let output: Output = missing
        .args(["dlq", "stats"])
        .env(
            "DLQ_URL",
            format!("{}/123456789012/no-such-queue", moto.endpoint()),
        )
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: SQS GetQueueAttributes: ")
            && stderr.contains("NonExistentQueue"),
        "{stderr}"
    );

    for args in [&["dlq", "stats"][..], &["dlq", "peek"]] {
        let mut command = uc_ops();
        moto_env(&mut command, &moto);
        let mut child = command
            .args(args)
            .env("DLQ_URL", &dlq)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before a byte is written.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = text(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}
