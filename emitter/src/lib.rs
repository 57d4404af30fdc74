//! The PostConfirmation trigger: decides whether a Cognito event is a sign-up confirmation,
//! publishes it as `UserConfirmed` within a time budget, and always hands Cognito its event back
//! (unless the operator chose fail-closed), as the very JSON text it sent.

pub mod adapters;
pub mod config;
pub mod handler;
pub mod payload;
pub mod publish;
pub mod trigger;

pub use config::{ConfigError, EmitterConfig, FailurePolicy};
pub use handler::{DEADLINE_MARGIN, Emitter, EmitterError, PUBLISH_FAILED_ERROR_TYPE};
pub use payload::{EventCopy, RawValue, decide_text};
pub use publish::{EventPublisher, FallbackQueue, PublishOutcome, PublishPolicy};
pub use trigger::{Decision, SkipReason, decide};
