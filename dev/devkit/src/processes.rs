//! Processes on this machine: the repository root and the pinned Python, free loopback ports,
//! and child processes that are stopped on drop ([`ChildGuard`], [`RunningBinary`], whose
//! output lines are collected).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::moto::{ACCESS_KEY, REGION, SECRET_KEY};

/// The repository root.
pub fn workspace_root() -> PathBuf {
    // This crate lives in <root>/dev/devkit.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// The Python of the pinned dev venv (`UC_PYTHON` overrides). `make venv` creates it.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("UC_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join("dev/.venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `make venv` (make test does it for you)",
        venv.display()
    );
    venv
}

/// A binary this workspace builds, for tests: `cargo build` puts the binaries in
/// `target/<profile>`, and a test runs from `target/<profile>/deps`. Panics if it is missing.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (the OS picks it; another process could take it before we
/// bind again, which the callers' start-up checks would report).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed and reaped on drop: every process a test starts, it stops.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    pub name: &'static str,
}

impl ChildGuard {
    pub fn new(name: &'static str, child: Child) -> Self {
        Self { child, name }
    }
    pub fn id(&self) -> u32 {
        self.child.id()
    }
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something listens on `port`; panics if the guarded child exits first.
pub(crate) fn wait_for_port(port: u16, guard: &mut ChildGuard, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = guard.child_mut().try_wait() {
            panic!("{} exited during start-up: {status}", guard.name);
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} did not listen on 127.0.0.1:{port} within {timeout:?}",
        guard.name
    );
}

/// A started binary whose stdout and stderr lines are collected; killed on drop.
pub struct RunningBinary {
    guard: ChildGuard,
    output: Arc<Mutex<Vec<String>>>,
    /// The threads reading stdout and stderr; joined once the process has exited, so that
    /// every line it wrote is in `output` when a test reads it.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl RunningBinary {
    pub fn start(binary: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary);
        command
            .args(args)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            // A binary under test logs as it would in production unless the test sets
            // RUST_LOG itself (UC_TEST_RUST_LOG passes one through, for debugging a test).
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(level) = std::env::var_os("UC_TEST_RUST_LOG") {
            command.env("RUST_LOG", level);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            }));
        }
        Self {
            guard: ChildGuard::new("binary", child),
            output,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// The output once `ready` holds for it. A line a process printed before it answered may
    /// still be in the pipe when the answer arrives, so tests wait for the lines they read
    /// rather than sleeping a guessed time. Panics with the output after `limit`, which is only
    /// a bound on a hung test, never the subject of one.
    pub fn output_when(&self, ready: impl Fn(&[String]) -> bool, limit: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.output();
            if ready(&lines) {
                return lines;
            }
            assert!(
                start.elapsed() < limit,
                "the expected output did not appear within {limit:?}: {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.guard.child_mut().try_wait().ok().flatten()?;
        self.drain_output();
        Some(status)
    }

    /// Waits for the process to exit; `None` if it is still running after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.guard.child_mut().try_wait().unwrap() {
                self.drain_output();
                return Some(status);
            }
            // Fine enough for the stop times the tests report.
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// After exit: waits for the readers to reach the end of the pipes (the binaries start no
    /// children that could hold them open).
    fn drain_output(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}
