//! The local stack: moto server and a GraphQL backend (the AppSync stand-in, or Amplify's AppSync
//! simulator serving the transformer's resolvers on moto's DynamoDB) as background processes on
//! free loopback ports, the pipeline's resources created in moto from the deployable template,
//! and one env file that every other command (and both binaries) reads. `down` stops exactly
//! the processes `up` started, by pid, after checking they are still ours; an `up` that fails
//! part-way stops what it had started.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::types::{ExplicitAuthFlowsType, VerifiedAttributeType};
use uc_devkit::{
    ACCESS_KEY, AMPLIFY_SIM_SCRIPT, AmplifySimReady, REGION, SECRET_KEY, amplify_sim_args,
    amplify_sim_node, free_port, moto_args, parse_ready_line, python, standin_args, workspace_root,
};

/// The local worker queue's visibility timeout (the template's default suits Lambda).
pub const LOCAL_VISIBILITY_SECONDS: u32 = 10;

/// The stack's name in moto's CloudFormation, and the prefix of its resources' names.
pub const STACK_NAME: &str = "uc-local";

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}")]
    Start(String),
    #[error("creating the stack's resources failed: {0}")]
    Resources(String),
    #[error("the local stack is not up ({0} not found): run `uc-lab local up` (or `make demo`)")]
    NotUp(String),
    #[error("{key} is missing from {file}")]
    MissingKey { key: String, file: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The env file's contents: endpoints, names and the pids of the stack's processes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackEnv {
    pub vars: BTreeMap<String, String>,
    pub file: PathBuf,
}

/// Env-file keys that are the stack's own bookkeeping, not configuration for the binaries.
const MOTO_PID: &str = "UC_LOCAL_MOTO_PID";
const STANDIN_PID: &str = "UC_LOCAL_STANDIN_PID";
const AMPLIFY_SIM_PID: &str = "UC_LOCAL_AMPLIFY_SIM_PID";

impl StackEnv {
    /// Reads the env file (with the ops CLI's reader: `uc-ops --env-file` reads the same file).
    pub fn load(file: &Path) -> Result<Self, LocalError> {
        let vars = uc_ops::env_file::read(file)
            .map_err(|_| LocalError::NotUp(file.display().to_string()))?;
        Ok(Self {
            vars,
            file: file.to_owned(),
        })
    }

    pub fn get(&self, key: &str) -> Result<&str, LocalError> {
        self.vars
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| LocalError::MissingKey {
                key: key.to_owned(),
                file: self.file.display().to_string(),
            })
    }

    fn save(&self) -> Result<(), LocalError> {
        let mut text = String::from(
            "# Written by `uc-lab local up`: the local stack's endpoints and names.\n# Source it (set -a; . .local/stack.env) to point the binaries and the AWS CLI at it.\n",
        );
        for (k, v) in &self.vars {
            text.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(&self.file, text)?;
        Ok(())
    }

    /// The variables a binary needs (everything but the stack's bookkeeping).
    pub fn binary_env(&self) -> Vec<(String, String)> {
        self.vars
            .iter()
            .filter(|(k, _)| !k.starts_with("UC_LOCAL_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn pids(&self) -> Vec<(u32, &'static str)> {
        [
            (MOTO_PID, "moto_server.py"),
            (STANDIN_PID, "appsync_standin.py"),
            (AMPLIFY_SIM_PID, AMPLIFY_SIM_SCRIPT),
        ]
        .into_iter()
        .filter_map(|(key, marker)| Some((self.vars.get(key)?.parse().ok()?, marker)))
        .collect()
    }

    /// SDK configuration for the stack (moto for every AWS service).
    pub async fn sdk_config(&self) -> Result<aws_config::SdkConfig, LocalError> {
        Ok(uc_devkit::sdk_config_for(self.get("AWS_ENDPOINT_URL")?).await)
    }
}

/// Where the stack keeps its env file and logs.
pub fn default_state_dir() -> PathBuf {
    workspace_root().join(".local")
}

pub fn env_file(state_dir: &Path) -> PathBuf {
    state_dir.join("stack.env")
}

/// Whether `pid` is alive and its command line contains `marker` (so a reused pid is not ours).
fn is_ours(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(marker))
        .unwrap_or(false)
}

fn port_open(url: &str) -> bool {
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    TcpStream::connect_timeout(
        &authority.parse().unwrap_or(([127, 0, 0, 1], 9).into()),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Starts a background process in its own process group (so a Ctrl-C meant for the caller does
/// not reach it), with output to `log`.
fn spawn_detached(
    program: &Path,
    args: &[String],
    envs: &[(&str, &str)],
    log: &Path,
) -> Result<std::process::Child, LocalError> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log)?;
    let child = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .map_err(|e| LocalError::Start(format!("{}: {e}", program.display())))?;
    Ok(child)
}

fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), LocalError> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(LocalError::Start(format!(
        "{what} did not start within {timeout:?}"
    )))
}

/// Which deployable template the local stack is made from: the SAM template (the default) or
/// the CDK construct's synthesized template, so the same tests run on either one's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Template {
    #[default]
    Sam,
    Construct,
}

impl Template {
    fn name(self) -> &'static str {
        match self {
            Self::Sam => "sam",
            Self::Construct => "construct",
        }
    }
}

/// The variable in the env file that remembers the template, so a re-run `up` deploys the same.
const TEMPLATE_VARIABLE: &str = "UC_LAB_TEMPLATE";

/// Which GraphQL backend serves `APPSYNC_GRAPHQL_URL`: our AppSync stand-in (the default; it
/// verifies SigV4 and injects faults) or Amplify's AppSync simulator running the resolvers
/// Amplify's GraphQL transformer generates for the seeds' model, on moto's DynamoDB (it does
/// not verify SigV4 signatures). `UC_LAB_GRAPHQL=amplify` selects the latter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphqlBackend {
    #[default]
    StandIn,
    Amplify,
}

/// The variable that selects the backend, and that the env file records.
pub const GRAPHQL_VARIABLE: &str = "UC_LAB_GRAPHQL";

/// The env-file variable naming the model table Amplify's resolvers write (Amplify backend).
pub const PROFILE_MODEL_TABLE: &str = "PROFILE_MODEL_TABLE";

impl GraphqlBackend {
    pub fn name(self) -> &'static str {
        match self {
            Self::StandIn => "standin",
            Self::Amplify => "amplify",
        }
    }

    /// What serves GraphQL, in words, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Self::StandIn => "AppSync stand-in (dev/standin)",
            Self::Amplify => "Amplify AppSync simulator + GraphQL transformer (dev/amplify-sim)",
        }
    }

    pub fn parse(name: &str) -> Result<Self, LocalError> {
        match name {
            "standin" | "" => Ok(Self::StandIn),
            "amplify" => Ok(Self::Amplify),
            other => Err(LocalError::Start(format!(
                "{GRAPHQL_VARIABLE}={other}: standin (the default) or amplify"
            ))),
        }
    }

    /// The backend `UC_LAB_GRAPHQL` names (the stand-in when it is unset).
    pub fn from_env() -> Result<Self, LocalError> {
        Self::parse(std::env::var(GRAPHQL_VARIABLE).as_deref().unwrap_or(""))
    }

    /// The backend a stack's env file records (the stand-in for files written before there
    /// was a choice).
    pub fn of(env: &StackEnv) -> Result<Self, LocalError> {
        Self::parse(env.vars.get(GRAPHQL_VARIABLE).map_or("", String::as_str))
    }
}

/// Brings the stack up from the SAM template (or confirms it is up) and returns its env file's
/// contents.
pub async fn up(state_dir: &Path) -> Result<StackEnv, LocalError> {
    up_from(state_dir, Template::Sam).await
}

/// [`up`] with the resources made from `template`, GraphQL served by the stand-in.
pub async fn up_from(state_dir: &Path, template: Template) -> Result<StackEnv, LocalError> {
    up_with(state_dir, template, GraphqlBackend::StandIn).await
}

/// [`up`] with the resources made from `template` and GraphQL served by `backend`.
pub async fn up_with(
    state_dir: &Path,
    template: Template,
    backend: GraphqlBackend,
) -> Result<StackEnv, LocalError> {
    std::fs::create_dir_all(state_dir)?;
    let file = env_file(state_dir);
    if let Ok(existing) = StackEnv::load(&file) {
        let alive = existing
            .pids()
            .iter()
            .all(|(pid, marker)| is_ours(*pid, marker));
        if alive && existing.pids().len() == 2 && port_open(existing.get("AWS_ENDPOINT_URL")?) {
            let running = GraphqlBackend::of(&existing)?;
            if running != backend {
                return Err(LocalError::Start(format!(
                    "the local stack is up with GraphQL served by the {}, not the {}: run `uc-lab local down` first",
                    running.describe(),
                    backend.describe()
                )));
            }
            // Already up: make sure the resources are there too (creating them is idempotent).
            let mut env = existing.clone();
            create_resources(&mut env).await?;
            env.save()?;
            return Ok(env);
        }
        // A half-dead stack from an earlier run: clear it away first.
        down(state_dir)?;
    }
    let started = start_stack(state_dir, file, template, backend).await;
    if started.is_err() {
        // Up completely or not at all: stop what did start (its logs stay in `state_dir`).
        let _ = down(state_dir);
    }
    started
}

/// Starts moto and the GraphQL backend and creates the resources; the env file lists every
/// process as soon as it runs, for `down`.
async fn start_stack(
    state_dir: &Path,
    file: PathBuf,
    template: Template,
    backend: GraphqlBackend,
) -> Result<StackEnv, LocalError> {
    let moto_port = free_port();
    let mut moto = spawn_detached(
        &python(),
        &moto_args(moto_port),
        &[],
        &state_dir.join("moto.log"),
    )?;
    let mut env = StackEnv {
        vars: BTreeMap::new(),
        file,
    };
    env.vars.insert(MOTO_PID.into(), moto.id().to_string());
    env.save()?; // from here on, `down` can clean up whatever happens next
    let moto_url = format!("http://127.0.0.1:{moto_port}");
    wait_until("moto server", Duration::from_secs(60), || {
        port_open(&moto_url) || exited(&mut moto)
    })?;
    if exited(&mut moto) {
        return Err(LocalError::Start(format!(
            "moto server exited; see {}",
            state_dir.join("moto.log").display()
        )));
    }

    let graphql_url = match backend {
        GraphqlBackend::StandIn => start_standin(state_dir, &mut env)?,
        GraphqlBackend::Amplify => start_amplify_sim(state_dir, &mut env, &moto_url)?,
    };

    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto_url.as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("APPSYNC_GRAPHQL_URL", graphql_url.as_str()),
        (TEMPLATE_VARIABLE, template.name()),
        (GRAPHQL_VARIABLE, backend.name()),
    ] {
        env.vars.insert(k.into(), v.into());
    }
    create_resources(&mut env).await?;
    env.save()?;
    Ok(env)
}

/// Whether `child` has exited (right after spawning, /proc/<pid>/cmdline can still be empty:
/// ask the child handle).
fn exited(child: &mut std::process::Child) -> bool {
    !matches!(child.try_wait(), Ok(None))
}

/// Starts the AppSync stand-in; returns its GraphQL URL.
fn start_standin(state_dir: &Path, env: &mut StackEnv) -> Result<String, LocalError> {
    let standin_out = state_dir.join("standin.log");
    let mut standin = spawn_detached(&python(), &standin_args(0, &[]), &[], &standin_out)?;
    env.vars
        .insert(STANDIN_PID.into(), standin.id().to_string());
    env.save()?;
    let mut graphql_url = None;
    wait_until("the AppSync stand-in", Duration::from_secs(30), || {
        graphql_url = std::fs::read_to_string(&standin_out)
            .ok()
            .and_then(|text| text.lines().find_map(parse_ready_line));
        graphql_url.is_some() || exited(&mut standin)
    })?;
    graphql_url.ok_or_else(|| {
        LocalError::Start(format!(
            "the AppSync stand-in exited; see {}",
            standin_out.display()
        ))
    })
}

/// Starts Amplify's AppSync simulator with its DynamoDB data source on moto (it creates the
/// model table there); records the table as `PROFILE_MODEL_TABLE` and returns the GraphQL URL.
fn start_amplify_sim(
    state_dir: &Path,
    env: &mut StackEnv,
    moto_url: &str,
) -> Result<String, LocalError> {
    let node = amplify_sim_node().map_err(LocalError::Start)?;
    let log = state_dir.join("amplify-sim.log");
    let mut sim = spawn_detached(
        &node,
        &amplify_sim_args(0, moto_url, REGION),
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", REGION),
        ],
        &log,
    )?;
    env.vars
        .insert(AMPLIFY_SIM_PID.into(), sim.id().to_string());
    env.save()?;
    let mut ready = None;
    wait_until(
        "Amplify's AppSync simulator",
        Duration::from_secs(120),
        || {
            ready = std::fs::read_to_string(&log)
                .ok()
                .and_then(|text| AmplifySimReady::parse(&text));
            ready.is_some() || exited(&mut sim)
        },
    )?;
    let ready = ready.ok_or_else(|| {
        LocalError::Start(format!(
            "Amplify's AppSync simulator exited; see {}",
            log.display()
        ))
    })?;
    let table = ready.table_of("UserProfile").ok_or_else(|| {
        LocalError::Start(format!(
            "Amplify's AppSync simulator named no UserProfile table; see {}",
            log.display()
        ))
    })?;
    env.vars
        .insert(PROFILE_MODEL_TABLE.into(), table.to_owned());
    Ok(ready.graphql_url)
}

/// The user pool (as Amplify would have made it) and the pipeline's stack from the template.
async fn create_resources(env: &mut StackEnv) -> Result<(), LocalError> {
    let sdk = env.sdk_config().await?;
    if !env.vars.contains_key("USER_POOL_ID") {
        let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
        let pool = cognito
            .create_user_pool()
            .pool_name(format!("{STACK_NAME}-users"))
            // Usernames are UUIDs, as Amplify's email sign-in makes them. Not declaring email a
            // username attribute keeps moto's user look-ups O(1): with one, moto scans every
            // user on each call (quadratic over a demo) and races concurrent sign-ups.
            .auto_verified_attributes(VerifiedAttributeType::Email)
            .send()
            .await
            .map_err(|e| LocalError::Resources(uc_ops::aws_message(&e)))?;
        let pool_id = pool
            .user_pool()
            .and_then(|p| p.id())
            .unwrap_or_default()
            .to_owned();
        let client = cognito
            .create_user_pool_client()
            .user_pool_id(&pool_id)
            .client_name("web")
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
            .send()
            .await
            .map_err(|e| LocalError::Resources(uc_ops::aws_message(&e)))?;
        env.vars.insert("USER_POOL_ID".into(), pool_id);
        env.vars.insert(
            "USER_POOL_CLIENT_ID".into(),
            client
                .user_pool_client()
                .and_then(|c| c.client_id())
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let outputs = deploy_template(env)?;
    for (key, value) in outputs {
        env.vars.insert(key, value);
    }
    Ok(())
}

/// Creates (or updates) the template's stack in moto with `dev/local_stack.py`, and maps its
/// outputs to the binaries' variable names.
fn deploy_template(env: &StackEnv) -> Result<Vec<(String, String)>, LocalError> {
    let mut command = Command::new(python());
    command
        .arg(workspace_root().join("dev/local_stack.py"))
        .args([
            "deploy",
            "--endpoint",
            env.get("AWS_ENDPOINT_URL")?,
            "--stack-name",
            STACK_NAME,
        ])
        .args([
            "--param",
            &format!("UserPoolId={}", env.get("USER_POOL_ID")?),
        ])
        // The local worker is a process, not a Lambda: a short visibility timeout brings the
        // messages a killed worker held back in seconds rather than minutes.
        .args([
            "--param",
            &format!("QueueVisibilityTimeoutSeconds={LOCAL_VISIBILITY_SECONDS}"),
        ]);
    if env.vars.get(TEMPLATE_VARIABLE).map(String::as_str) == Some(Template::Construct.name()) {
        // The construct takes the API by id (Amplify's `backend.data`); the local worker is
        // given the stand-in's URL directly, so any id does.
        command
            .arg("--cfn-template")
            .arg(workspace_root().join("infra/cdk/uc-pipeline.template.json"))
            .args(["--param", "AppSyncApiId=standin"]);
    } else {
        command.args([
            "--param",
            &format!("AppSyncGraphqlUrl={}", env.get("APPSYNC_GRAPHQL_URL")?),
        ]);
    }
    let output = command
        .output()
        .map_err(|e| LocalError::Resources(format!("dev/local_stack.py: {e}")))?;
    if !output.status.success() {
        return Err(LocalError::Resources(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    let outputs: BTreeMap<String, String> =
        serde_json::from_slice(&output.stdout).map_err(|e| {
            LocalError::Resources(format!("dev/local_stack.py printed no JSON outputs: {e}"))
        })?;
    let mut vars = Vec::new();
    for (output_key, var) in TEMPLATE_OUTPUTS {
        let value = outputs.get(*output_key).ok_or_else(|| {
            LocalError::Resources(format!("the stack has no output {output_key}"))
        })?;
        vars.push(((*var).to_owned(), value.clone()));
    }
    Ok(vars)
}

/// Template output → the variable the binaries and the ops CLI read.
const TEMPLATE_OUTPUTS: &[(&str, &str)] = &[
    ("EventBusName", "EVENT_BUS_NAME"),
    ("EventSource", "EVENT_SOURCE"),
    ("QueueUrl", "QUEUE_URL"),
    ("QueueUrl", "FALLBACK_QUEUE_URL"),
    ("WorkerDlqUrl", "DLQ_URL"),
    ("RuleDlqUrl", "RULE_DLQ_URL"),
    // The lifecycle queue (Cognito's CloudTrail events): the local stack follows the lifecycle
    // (LifecycleEvents' default), and `uc-worker poll` reads this queue beside QUEUE_URL.
    ("LifecycleQueueUrl", "LIFECYCLE_QUEUE_URL"),
    (
        "ReconcileWatermarkParameter",
        "RECONCILE_WATERMARK_PARAMETER",
    ),
];

/// Stops the stack's processes (only if they are still ours) and removes the env file.
pub fn down(state_dir: &Path) -> Result<Vec<u32>, LocalError> {
    let file = env_file(state_dir);
    let Ok(env) = StackEnv::load(&file) else {
        return Ok(vec![]);
    };
    let mut stopped = Vec::new();
    for (pid, marker) in env.pids() {
        if !is_ours(pid, marker) {
            continue;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let start = Instant::now();
        while is_ours(pid, marker) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if is_ours(pid, marker) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        stopped.push(pid);
    }
    for key in ["AWS_ENDPOINT_URL", "APPSYNC_GRAPHQL_URL"] {
        if let Some(url) = env.vars.get(key) {
            let start = Instant::now();
            while port_open(url) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if port_open(url) {
                return Err(LocalError::Start(format!(
                    "{url} is still listening after stopping the stack"
                )));
            }
        }
    }
    std::fs::remove_file(&file)?;
    Ok(stopped)
}

/// One line per process and endpoint.
pub fn status(state_dir: &Path) -> Result<Vec<String>, LocalError> {
    let env = StackEnv::load(&env_file(state_dir))?;
    let mut lines = Vec::new();
    for (pid, marker) in env.pids() {
        let state = if is_ours(pid, marker) {
            "running"
        } else {
            "NOT RUNNING"
        };
        lines.push(format!("{marker:<20} pid {pid:<8} {state}"));
    }
    for (k, v) in &env.vars {
        if !k.starts_with("UC_LOCAL_") && !k.starts_with("AWS_SECRET") {
            lines.push(format!("{k}={v}"));
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graphql_backend_is_named_and_remembered() {
        assert_eq!(GraphqlBackend::parse("").unwrap(), GraphqlBackend::StandIn);
        assert_eq!(
            GraphqlBackend::parse("standin").unwrap(),
            GraphqlBackend::StandIn
        );
        assert_eq!(
            GraphqlBackend::parse("amplify").unwrap(),
            GraphqlBackend::Amplify
        );
        let err = GraphqlBackend::parse("Amplify").unwrap_err().to_string();
        assert!(err.contains("UC_LAB_GRAPHQL=Amplify"), "{err}");
        // An env file written before there was a choice: the stand-in.
        let mut env = StackEnv::default();
        assert_eq!(GraphqlBackend::of(&env).unwrap(), GraphqlBackend::StandIn);
        env.vars.insert(
            GRAPHQL_VARIABLE.into(),
            GraphqlBackend::Amplify.name().into(),
        );
        assert_eq!(GraphqlBackend::of(&env).unwrap(), GraphqlBackend::Amplify);
    }
}
