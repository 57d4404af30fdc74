//! The `UserConfirmed` contract shared by every part of the pipeline and by other consumers:
//! the v1 event type and its JSON Schema, the one envelope parser, and the GraphQL documents
//! the worker sends. Nothing here knows about AWS SDK types.

pub mod envelope;
pub mod graphql;
pub mod profile_created;
mod user_confirmed;

pub use envelope::{EnvelopeError, EnvelopeMeta, ReceivedEvent, parse_message, to_envelope};
pub use profile_created::{
    PROFILE_CREATED_DETAIL_TYPE, PROFILE_CREATED_EVENT_ID_NAMESPACE, PROFILE_CREATED_JSON_SCHEMA,
    PROFILE_CREATED_SCHEMA_VERSION, ProfileCreated, ProfileStore, profile_created_event_id,
    profile_created_event_pattern,
};
pub use user_confirmed::{
    DEFAULT_SOURCE, DETAIL_TYPE, EVENT_ID_NAMESPACE, JSON_SCHEMA, Origin, SCHEMA_VERSION,
    UserConfirmed, event_id, event_pattern,
};
