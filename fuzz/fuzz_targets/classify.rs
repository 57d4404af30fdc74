//! AppSync answer classification (`uc_worker::classify::classify`), over an arbitrary status
//! (the first two bytes) and body (the rest).
//!
//! Checks: it never panics; it is deterministic; the outcome agrees with the status class (the
//! table in docs/worker.md); and its reason code, which becomes the DLQ's `uc.reason` attribute, is not
//! blank (SQS refuses empty attribute values).
#![no_main]

use libfuzzer_sys::fuzz_target;
use uc_worker::classify::{Answer, Outcome, classify};

const FIELD: &str = "createUserProfile";

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [hi, lo, body @ ..] => (u16::from_be_bytes([*hi, *lo]), body),
        _ => return,
    };
    // Outside 100..=599, half the inputs become 200, so the body's paths get most of the time.
    let status = match status {
        100..=599 => status,
        other if other % 2 == 0 => 200,
        other => other,
    };
    let answer = Answer::Http {
        status,
        body: body.to_vec(),
    };
    let outcome = classify(&answer, FIELD);
    assert_eq!(outcome, classify(&answer, FIELD), "not deterministic");
    assert!(
        !outcome.code().trim().is_empty(),
        "blank reason for {status}: {outcome:?}"
    );
    match status {
        200 => assert!(!matches!(outcome, Outcome::AuthRejected { .. })),
        401 | 403 => assert!(matches!(outcome, Outcome::AuthRejected { .. })),
        429 => assert!(matches!(
            outcome,
            Outcome::Retryable {
                throttled: true,
                ..
            }
        )),
        500..=599 => assert!(matches!(outcome, Outcome::Retryable { .. })),
        400..=499 => assert!(matches!(outcome, Outcome::Permanent { .. })),
        _ => assert!(matches!(outcome, Outcome::Retryable { .. })),
    }
    if status != 200 {
        assert!(!matches!(
            outcome,
            Outcome::Created | Outcome::AlreadyExists
        ));
    }
});
