//! Whether a received `UserConfirmed` is provably the pipeline's own: from the configured
//! `source`, about one of the configured user pools, with the `eventId` derived from pool and
//! `sub`. Pure policy, for the worker and any other consumer that creates state from events.

use crate::envelope::ReceivedEvent;

/// Why a well-formed event is not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Foreign {
    /// The envelope names another source, or there is no envelope to name one.
    #[error("source is not one this consumer accepts ({0})")]
    Source(&'static str),
    #[error("userPoolId is not a configured user pool")]
    UserPool,
    #[error("eventId is not UUIDv5(userPoolId:sub)")]
    EventId,
}

impl Foreign {
    /// The stable reason code (the DLQ's `uc.reason`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Source(_) => "ForeignSource",
            Self::UserPool => "ForeignUserPool",
            Self::EventId => "EventIdMismatch",
        }
    }
}

/// What a consumer accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// Accepted envelope `source` values (the deployment's `EVENT_SOURCE`).
    pub sources: Vec<String>,
    /// Accepted `userPoolId` values.
    pub user_pools: Vec<String>,
}

impl Provenance {
    /// Checks `received`. A bare detail (no envelope) is refused: every producer of the
    /// pipeline sends an envelope (EventBridge, the emitter's fallback, back-fill and
    /// reconciliation, archive replays, DLQ replay and redrive keep the original body), so a
    /// bare detail cannot show where it came from.
    pub fn check(&self, received: &ReceivedEvent) -> Result<(), Foreign> {
        let source = received.envelope.as_ref().and_then(|e| e.source.as_deref());
        match source {
            None if received.envelope.is_none() => return Err(Foreign::Source("no envelope")),
            None => return Err(Foreign::Source("the envelope has none")),
            Some(source) if !self.sources.iter().any(|s| s == source) => {
                return Err(Foreign::Source("another source"));
            }
            Some(_) => {}
        }
        let event = &received.detail;
        if !self.user_pools.contains(&event.user_pool_id) {
            return Err(Foreign::UserPool);
        }
        if !event.has_derived_event_id() {
            return Err(Foreign::EventId);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DEFAULT_SOURCE, UserConfirmed, parse_message, to_envelope};

    const POOL: &str = "eu-west-1_Pool";
    const SUB: &str = "0b8c2a1e-1111-4c3e-9a5b-1234567890ab";

    fn provenance() -> Provenance {
        Provenance {
            sources: vec![DEFAULT_SOURCE.into()],
            user_pools: vec!["eu-west-1_Other".into(), POOL.into()],
        }
    }

    fn check(body: serde_json::Value) -> Result<(), &'static str> {
        let received = parse_message(&body.to_string()).expect("well-formed");
        provenance().check(&received).map_err(|e| e.code())
    }

    #[test]
    fn only_the_pipelines_own_events_pass() {
        let event = UserConfirmed::builder(POOL, SUB).build();
        let genuine = to_envelope(DEFAULT_SOURCE, &event);
        assert_eq!(check(genuine.clone()), Ok(()));

        let mut replayed = genuine.clone();
        replayed["replay-name"] = "catch-up".into();
        assert_eq!(check(replayed), Ok(()));

        assert_eq!(
            check(to_envelope("someone.else", &event)),
            Err("ForeignSource")
        );
        let mut no_source = genuine.clone();
        no_source.as_object_mut().unwrap().remove("source");
        assert_eq!(check(no_source), Err("ForeignSource"));
        assert_eq!(
            check(serde_json::to_value(&event).unwrap()),
            Err("ForeignSource")
        );

        let other_pool = UserConfirmed::builder("eu-west-1_Elsewhere", SUB).build();
        assert_eq!(
            check(to_envelope(DEFAULT_SOURCE, &other_pool)),
            Err("ForeignUserPool")
        );

        let mut random_id = event.clone();
        random_id.event_id = crate::event_id("x", "y");
        assert_eq!(
            check(to_envelope(DEFAULT_SOURCE, &random_id)),
            Err("EventIdMismatch")
        );
    }
}
