//! The lab, for development only: the local stack ([`local`]), the driver that runs the whole
//! pipeline on it ([`pipeline`]), where its profiles are read ([`profiles`]), the demo
//! ([`demo`]) and the chaos run ([`chaos`]). A library
//! so the end-to-end tests drive the same code as the `uc-lab` binary. It needs a checkout
//! (the pinned Python venv, `dev/*.py`, the template), which is why the operator CLI
//! (`uc-ops`) does not include it.

pub mod chaos;
pub mod demo;
pub mod local;
pub mod pipeline;
pub mod profiles;
