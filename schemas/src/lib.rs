//! The contracts shared by every part of the pipeline and by other consumers: the
//! `UserConfirmed` and `ProfileCreated` v1 events and their JSON Schemas, the one envelope
//! parser, the provenance check, the dead-letter record, SQS message metadata, Cognito's trigger sources, and the
//! GraphQL documents the worker sends. Nothing here knows about AWS SDK types.

pub mod dead_letter;
pub mod envelope;
pub mod graphql;
pub mod message_meta;
pub mod profile_created;
pub mod provenance;
pub mod trigger_source;
mod user_confirmed;

pub use dead_letter::FailureRecord;
pub use envelope::{EnvelopeError, EnvelopeMeta, ReceivedEvent, parse_message, to_envelope};
pub use message_meta::MessageMeta;
pub use profile_created::{
    PROFILE_CREATED_DETAIL_TYPE, PROFILE_CREATED_EVENT_ID_NAMESPACE, PROFILE_CREATED_JSON_SCHEMA,
    PROFILE_CREATED_SCHEMA_VERSION, ProfileCreated, ProfileStore, profile_created_event_id,
    profile_created_event_pattern,
};
pub use provenance::{Foreign, Provenance};
pub use user_confirmed::{
    ContractViolation, DEFAULT_SOURCE, DETAIL_TYPE, EVENT_ID_NAMESPACE, JSON_SCHEMA, Origin,
    SCHEMA_VERSION, UserConfirmed, UserConfirmedBuilder, event_id, event_pattern,
    is_lowercase_uuid, limits, sub_from_label,
};
