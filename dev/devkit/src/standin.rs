//! The AppSync stand-in (`dev/appsync_standin.py`): starting it ([`AppSyncStandIn`]), its
//! command line and READY line (shared with the local stack), and its control API for faults,
//! profiles and counters ([`StandInControl`]).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::moto::{ACCESS_KEY, REGION, SECRET_KEY};
use crate::processes::{ChildGuard, python, workspace_root};

/// The local AppSync stand-in (`dev/appsync_standin.py`), which verifies SigV4 with botocore.
/// Started by a test and stopped on drop; its control API is [`StandInControl`].
#[derive(Debug)]
pub struct AppSyncStandIn {
    guard: ChildGuard,
    pub url: String,
    control: StandInControl,
}

impl AppSyncStandIn {
    /// Starts the stand-in accepting the test credentials (and `extra`, `AKID:SECRET[:TOKEN]`).
    pub fn start(extra: &[&str]) -> Self {
        let mut command = Command::new(python());
        command.args(standin_args(0, extra));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the AppSync stand-in");
        let mut guard = ChildGuard::new("AppSync stand-in", child);
        let stdout = guard.child_mut().stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the AppSync stand-in did not print READY"));
        let url =
            parse_ready_line(&line).unwrap_or_else(|| panic!("unexpected first line: {line}"));
        Self {
            guard,
            control: StandInControl::new(&url),
            url,
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.id()
    }
}

impl std::ops::Deref for AppSyncStandIn {
    type Target = StandInControl;
    fn deref(&self) -> &StandInControl {
        &self.control
    }
}

/// The stand-in's command line (after the Python interpreter), on `port` (0 = any free one).
pub fn standin_args(port: u16, extra_credentials: &[&str]) -> Vec<String> {
    let mut args = vec![
        workspace_root()
            .join("dev/appsync_standin.py")
            .display()
            .to_string(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--region".into(),
        REGION.into(),
        "--credential".into(),
        format!("{ACCESS_KEY}:{SECRET_KEY}"),
    ];
    for credential in extra_credentials {
        args.push("--credential".into());
        args.push((*credential).to_owned());
    }
    args
}

/// The GraphQL URL from the stand-in's `READY <url>` line.
pub fn parse_ready_line(line: &str) -> Option<String> {
    line.trim().strip_prefix("READY ").map(str::to_owned)
}

/// The stand-in's control API (faults, stored profiles, counters), for a stand-in started here
/// or by the local stack.
#[derive(Debug, Clone)]
pub struct StandInControl {
    base: String,
    http: reqwest::Client,
}

impl StandInControl {
    /// `graphql_url` is the stand-in's `/graphql` URL.
    pub fn new(graphql_url: &str) -> Self {
        Self {
            base: graphql_url.trim_end_matches("/graphql").to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn control(&self, path: &str) -> String {
        format!("{}/_standin/{path}", self.base)
    }

    /// Replaces the fault rules (see `dev/appsync_standin.py`).
    pub async fn set_faults(&self, rules: serde_json::Value) {
        self.post_faults(serde_json::json!({ "rules": rules }))
            .await;
    }

    /// Replaces the fault rules and reseeds the stand-in's fault draws, for reproducible runs.
    pub async fn set_faults_seeded(&self, rules: serde_json::Value, seed: u64) {
        self.post_faults(serde_json::json!({ "rules": rules, "seed": seed }))
            .await;
    }

    async fn post_faults(&self, body: serde_json::Value) {
        let response = self
            .http
            .post(self.control("faults"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "set faults: {}",
            response.status()
        );
    }

    pub async fn clear_faults(&self) {
        self.http
            .delete(self.control("faults"))
            .send()
            .await
            .unwrap();
    }

    /// Clears profiles, faults and counters.
    pub async fn reset(&self) {
        self.http.post(self.control("reset")).send().await.unwrap();
    }

    /// Every stored profile.
    pub async fn profiles(&self) -> Vec<serde_json::Value> {
        let body: serde_json::Value = self
            .http
            .get(self.control("profiles"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// The stand-in's counters with `perId` restricted to `ids` (those it has seen): cheap to
    /// poll for a few ids among many profiles. A created id's entry has `createdAtMicros`, when
    /// the profile was stored (µs since the Unix epoch, this machine's clock).
    pub async fn stats_for(&self, ids: &[String]) -> serde_json::Value {
        let response = self
            .http
            .post(self.control("stats"))
            .json(&serde_json::json!({ "ids": ids }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "stats for ids: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Every AppSync request waits `ms` before it is answered (0: none). A reset clears it.
    pub async fn set_latency(&self, ms: u64) {
        let response = self
            .http
            .post(self.control("latency"))
            .json(&serde_json::json!({ "ms": ms }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "set latency: {}",
            response.status()
        );
    }

    /// The stand-in's counters.
    pub async fn stats(&self) -> serde_json::Value {
        self.http
            .get(self.control("stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}
