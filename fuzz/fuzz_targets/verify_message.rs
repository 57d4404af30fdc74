//! The worker's verification step over arbitrary bodies: parse with the one envelope parser,
//! then the provenance check (`uc_schemas::Provenance`) the worker applies before anything
//! reaches the profile store.
//!
//! Checks: neither step panics; every refusal has one of the stable reason codes; and whatever
//! passes really is the pipeline's own: within the contract's limits, from the configured
//! source, about a configured pool, with the eventId derived from pool and sub — so a forged
//! message cannot reach AppSync by any byte sequence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uc_schemas::{DEFAULT_SOURCE, Provenance, is_lowercase_uuid, parse_message};

const POOLS: &[&str] = &["us-east-1_Ab12Cd34E", "eu-west-1_Pool"];
const REFUSALS: &[&str] = &["ForeignSource", "ForeignUserPool", "EventIdMismatch"];

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let provenance = Provenance {
        sources: vec![DEFAULT_SOURCE.to_owned()],
        user_pools: POOLS.iter().map(|p| (*p).to_owned()).collect(),
    };
    let Ok(received) = parse_message(body) else {
        return;
    };
    match provenance.check(&received) {
        Err(foreign) => assert!(REFUSALS.contains(&foreign.code()), "{}", foreign.code()),
        Ok(()) => {
            let event = &received.detail;
            let source = received.envelope.as_ref().and_then(|e| e.source.as_deref());
            assert_eq!(source, Some(DEFAULT_SOURCE));
            assert!(POOLS.contains(&event.user_pool_id.as_str()));
            assert!(event.has_derived_event_id());
            assert!(is_lowercase_uuid(&event.sub) && !event.sub.contains("::"));
            assert_eq!(event.validate(), Ok(()));
        }
    }
});
