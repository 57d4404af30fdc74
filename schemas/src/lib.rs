//! The contracts shared by every part of the pipeline and by other consumers: the
//! `UserConfirmed`, `ProfileCreated`, `UserDeleted` and `ProfileDeleted` v1 events and their
//! JSON Schemas, Cognito's CloudTrail-recorded calls as the pipeline reads them, the one envelope
//! parser, the provenance check, the dead-letter record, SQS message metadata, Cognito's trigger sources, and the
//! GraphQL documents the worker sends. Nothing here knows about AWS SDK types.

pub mod cognito_api_call;
pub mod counted;
pub mod dead_letter;
pub mod envelope;
pub mod graphql;
pub mod message_meta;
pub mod profile_created;
pub mod profile_deleted;
pub mod provenance;
pub mod trigger_source;
mod user_confirmed;
pub mod user_deleted;

pub use cognito_api_call::{
    CLOUDTRAIL_DETAIL_TYPE, COGNITO_EVENT_SOURCE, COGNITO_SOURCE, CognitoApiCall, LifecycleCall,
};
pub use dead_letter::FailureRecord;
pub use envelope::{
    EnvelopeError, EnvelopeMeta, Message, ReceivedEvent, parse_any, parse_message, to_envelope,
};
pub use message_meta::MessageMeta;
pub use profile_created::{
    PROFILE_CREATED_DETAIL_TYPE, PROFILE_CREATED_EVENT_ID_NAMESPACE, PROFILE_CREATED_JSON_SCHEMA,
    PROFILE_CREATED_SCHEMA_VERSION, ProfileCreated, ProfileStore, profile_created_event_id,
    profile_created_event_pattern,
};
pub use profile_deleted::{
    PROFILE_DELETED_DETAIL_TYPE, PROFILE_DELETED_JSON_SCHEMA, PROFILE_DELETED_SCHEMA_VERSION,
    ProfileDeleted, profile_deleted_event_id,
};
pub use provenance::{Foreign, Provenance};
pub use user_confirmed::{
    ContractViolation, DEFAULT_SOURCE, DETAIL_TYPE, EVENT_ID_NAMESPACE, JSON_SCHEMA, Origin,
    SCHEMA_VERSION, UserConfirmed, UserConfirmedBuilder, event_id, event_pattern,
    is_lowercase_uuid, limits, sub_from_label,
};
pub use user_deleted::{
    DetectedBy, USER_DELETED_DETAIL_TYPE, USER_DELETED_EVENT_ID_NAMESPACE,
    USER_DELETED_JSON_SCHEMA, USER_DELETED_SCHEMA_VERSION, UserDeleted, user_deleted_event_id,
};
