//! What the lab's integration tests share: a fresh local stack per test, the workspace's
// Each test file uses a different part of this module.
#![allow(dead_code)]
//! binaries, and running the operations CLI as a real process.

use std::path::PathBuf;
use std::process::Output;

pub use uc_devkit::workspace_binary as binary;
use uc_lab::local::{self, GraphqlBackend, StackEnv, Template};

/// A local stack in a temporary state directory, brought down on drop.
pub struct TestStack {
    pub dir: PathBuf,
    pub env: StackEnv,
}

impl TestStack {
    /// The stack made from the SAM template, or from the CDK construct's synthesized template
    /// with `UC_LAB_TEMPLATE=construct` (`make test` runs the end-to-end suite both ways).
    pub async fn up(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("uc-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let template = match std::env::var("UC_LAB_TEMPLATE").as_deref() {
            Ok("construct") => Template::Construct,
            Ok("sam") | Err(_) => Template::Sam,
            Ok(other) => panic!("UC_LAB_TEMPLATE={other}: sam or construct"),
        };
        let env = local::up_from(&dir, template)
            .await
            .expect("local stack up");
        Self { dir, env }
    }

    /// The stack made from the SAM template with GraphQL served by `backend`.
    pub async fn up_with_graphql(name: &str, backend: GraphqlBackend) -> Self {
        let dir = std::env::temp_dir().join(format!("uc-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let env = local::up_with(&dir, Template::Sam, backend)
            .await
            .unwrap_or_else(|e| panic!("local stack up: {e}"));
        Self { dir, env }
    }

    pub fn env_file(&self) -> PathBuf {
        local::env_file(&self.dir)
    }

    /// Runs `uc-ops --env-file <this stack> args…` to completion.
    pub fn ops(&self, args: &[&str]) -> Output {
        self.ops_with(&[], args)
    }

    /// [`TestStack::ops`] with variables set for this run (they win over the env file).
    pub fn ops_with(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut command = std::process::Command::new(binary("uc-ops"));
        command
            .arg("--env-file")
            .arg(self.env_file())
            .args(args)
            .env_remove("UC_ENV_FILE")
            .env_remove("RUST_LOG");
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("run uc-ops")
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.env.sdk_config().await.unwrap())
    }

    /// Another team's consumer on the pipeline bus: rule `name` with `pattern`, delivering to
    /// a new queue of the same name.
    pub async fn subscribe_pattern(&self, name: &str, pattern: serde_json::Value) -> Subscription {
        let sdk = self.env.sdk_config().await.unwrap();
        let events = aws_sdk_eventbridge::Client::new(&sdk);
        let (queue_url, queue_arn) =
            uc_devkit::sqs::create_queue(&self.sqs().await, name, 30).await;
        let bus = self.env.get("EVENT_BUS_NAME").unwrap();
        let rule_arn = events
            .put_rule()
            .event_bus_name(bus)
            .name(name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap()
            .rule_arn
            .unwrap();
        events
            .put_targets()
            .event_bus_name(bus)
            .rule(name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(&queue_arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Subscription {
            queue_url,
            queue_arn,
            rule_arn,
        }
    }

    /// [`TestStack::subscribe_pattern`] for every `detail_type` event of the stack's source;
    /// the queue's URL.
    pub async fn subscribe(&self, name: &str, detail_type: &str) -> String {
        let pattern = serde_json::json!({
            "source": [self.env.get("EVENT_SOURCE").unwrap()],
            "detail-type": [detail_type],
        });
        self.subscribe_pattern(name, pattern).await.queue_url
    }
}

/// A consumer's rule and queue on the pipeline bus.
pub struct Subscription {
    pub queue_url: String,
    pub queue_arn: String,
    pub rule_arn: String,
}

impl Drop for TestStack {
    fn drop(&mut self) {
        local::down(&self.dir).expect("local stack down");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// stdout parsed as JSON, with stderr in the panic message when it is not.
pub fn json_of(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): status {}\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
