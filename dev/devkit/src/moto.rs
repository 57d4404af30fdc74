//! moto server on a free loopback port, the region and credentials every local process
//! accepts, and SDK configuration pointing at a local endpoint.

use std::process::{Command, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

use crate::processes::{ChildGuard, free_port, python, wait_for_port, workspace_root};

pub const REGION: &str = "us-east-1";
/// The credentials every local process accepts (moto does not check them unless enforcing).
pub const ACCESS_KEY: &str = "AKIDLOCALTEST0000001";
pub const SECRET_KEY: &str = "local/test/secret/key/0000000000000000000";

/// moto server's command line (after the Python interpreter): `dev/moto_server.py`, moto with
/// a fix for a race that loses SQS messages (see that file).
pub fn moto_args(port: u16) -> Vec<String> {
    vec![
        workspace_root()
            .join("dev/moto_server.py")
            .display()
            .to_string(),
        "-H".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ]
}

/// A moto server on a free loopback port, for SQS, EventBridge, Cognito and more.
#[derive(Debug)]
pub struct Moto {
    guard: ChildGuard,
    port: u16,
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new(python())
            .args(moto_args(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto server");
        let mut guard = ChildGuard::new("moto server", child);
        wait_for_port(port, &mut guard, Duration::from_secs(60));
        Self { guard, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    /// SDK configuration pointing every service at this moto, with the test credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint()).await
    }
}

/// SDK configuration for a local endpoint, with the test credentials and region.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "uc-devkit",
        ))
        .load()
        .await
}
