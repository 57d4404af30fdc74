//! The operations CLI's commands, as a library so the end-to-end tests drive the same code:
//! the local stack ([`local`]), the pipeline driver ([`pipeline`]) and the demo ([`demo`]).

pub mod attach;
pub mod backfill;
pub mod chaos;
pub mod demo;
pub mod dlq;
pub mod local;
pub mod pipeline;
