//! What the numbers were measured on: machine, versions, build.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn machine() -> Value {
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = read("/proc/meminfo");
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    json!({
        "cpuModel": model,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memoryGiB": (mem_kb as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "arch": std::env::consts::ARCH,
        "virtualised": cpuinfo.contains("hypervisor"),
    })
}

/// The version of `name` in Cargo.lock (the first entry).
fn locked_version(root: &Path, name: &str) -> Option<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).ok()?;
    let needle = format!("name = \"{name}\"\nversion = \"");
    let start = lock.find(&needle)? + needle.len();
    Some(lock[start..].split('"').next()?.to_owned())
}

fn npm_version(baseline: &Path, package: &str) -> Option<String> {
    let text = std::fs::read_to_string(
        baseline
            .join("node_modules")
            .join(package)
            .join("package.json"),
    )
    .ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["version"].as_str().map(str::to_owned)
}

pub fn versions(root: &Path, baseline: Option<&Path>, python: &Path) -> Value {
    let mut v = json!({
        "rustc": command_output("rustc", &["--version"]),
        "node": command_output("node", &["--version"]),
        "python": command_output(python.to_str().unwrap_or("python3"), &["--version"]),
        "moto": command_output(python.to_str().unwrap_or("python3"), &["-c", "import moto; print(moto.__version__)"]),
        "botocore": command_output(python.to_str().unwrap_or("python3"), &["-c", "import botocore; print(botocore.__version__)"]),
        "criterion": locked_version(root, "criterion"),
        "aws-sdk-eventbridge": locked_version(root, "aws-sdk-eventbridge"),
        "aws-sigv4": locked_version(root, "aws-sigv4"),
        "lambda_runtime": locked_version(root, "lambda_runtime"),
        "reqwest": locked_version(root, "reqwest"),
        "tokio": locked_version(root, "tokio"),
    });
    if let Some(baseline) = baseline {
        v["aws-amplify"] = json!(npm_version(baseline, "aws-amplify"));
        v["@aws-amplify/api-graphql"] = json!(npm_version(baseline, "@aws-amplify/api-graphql"));
        v["esbuild"] = json!(npm_version(baseline, "esbuild"));
    }
    v
}

pub fn git(root: &Path) -> Value {
    let dir = root.to_str().unwrap_or(".");
    let commit = command_output("git", &["-C", dir, "rev-parse", "--short=12", "HEAD"]);
    let dirty = command_output("git", &["-C", dir, "status", "--porcelain"])
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    json!({ "commit": commit, "dirty": dirty })
}

/// The 1, 5 and 15 minute load averages: how busy the machine was (other work included).
pub fn loadavg() -> Value {
    let text = read("/proc/loadavg");
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    json!(v)
}

/// Peak resident set size (VmHWM) of a live process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

/// User + system CPU time of a live process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at state (field 3).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = command_output("getconf", &["CLK_TCK"])
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(100.0);
    Some((utime + stime) / ticks)
}

/// CPU time used on the whole machine since boot, in seconds (every process's, across all
/// cores): user, nice, system, irq, softirq and steal from /proc/stat.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = read("/proc/stat");
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    let ticks = command_output("getconf", &["CLK_TCK"])
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(100.0);
    Some(busy / ticks)
}
