//! The local stack kit, shared by the integration tests and the lab: starts real processes on
//! free loopback ports (moto server, the AppSync stand-in, function binaries under a Lambda
//! Runtime API; Amplify's AppSync simulator's command line) and stops them on drop, plus a scripted HTTP endpoint for faults an emulator
//! cannot produce (slow or odd answers). Each module owns one of those jobs; everything is
//! re-exported here, so `uc_devkit::Moto`, `uc_devkit::free_port`, … work as they always did.

mod amplify_sim;
pub mod dynamodb;
mod eventually;
mod lambda;
mod moto;
mod processes;
mod scripted_http;
pub mod sqs;
mod standin;

pub use amplify_sim::{
    AMPLIFY_SIM_SCRIPT, AmplifySimReady, amplify_sim_args, amplify_sim_dir, amplify_sim_node,
};
pub use eventually::eventually;
pub use lambda::{Invocation, LambdaHarness};
pub use moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY, moto_args, sdk_config_for};
pub use processes::{
    ChildGuard, RunningBinary, free_port, python, workspace_binary, workspace_root,
};
pub use scripted_http::{Answer, ScriptedHttp};
pub use standin::{AppSyncStandIn, StandInControl, parse_ready_line, standin_args};
