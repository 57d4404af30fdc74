//! The one envelope parser (`uc_schemas::parse_message`), over arbitrary strings: what an SQS
//! body can be.
//!
//! Checks: it never panics; every error has a stable code and a message; every accepted event
//! satisfies the contract's invariants and survives being written back (as the fallback's
//! envelope and as the bare detail) and read again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uc_schemas::envelope::MAX_MESSAGE_BYTES;
use uc_schemas::{DEFAULT_SOURCE, parse_message, to_envelope};

const CODES: &[&str] = &[
    "EmptyMessage",
    "MessageTooLarge",
    "NotJson",
    "NotAnObject",
    "WrongDetailType",
    "MissingDetail",
    "UnrecognisedMessage",
    "UnsupportedSchemaVersion",
    "InvalidDetail",
];

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    match parse_message(body) {
        Err(error) => {
            assert!(CODES.contains(&error.code()), "{}", error.code());
            assert!(!error.to_string().is_empty());
        }
        Ok(received) => {
            let detail = received.detail;
            assert_eq!(detail.schema_version.split('.').next(), Some("1"));
            for value in [&detail.sub, &detail.username, &detail.user_pool_id] {
                assert!(!value.trim().is_empty());
            }
            let envelope = to_envelope(DEFAULT_SOURCE, &detail).to_string();
            let bare = serde_json::to_string(&detail).expect("serializes");
            for written in [envelope, bare] {
                if written.len() > MAX_MESSAGE_BYTES {
                    continue;
                }
                match parse_message(&written) {
                    Ok(again) => assert_eq!(again.detail, detail),
                    Err(e) => {
                        panic!("accepted {body:?} but refuses it written back ({written}): {e}")
                    }
                }
            }
        }
    }
});
