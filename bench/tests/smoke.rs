//! A smoke run of the benchmark harness with tiny counts (`uc-bench run --scale smoke`), so
//! `make test` notices when the harness breaks. It checks the results are well-formed and every
//! invocation succeeded; it asserts nothing about time. The Amplify baseline is included when it
//! has been built (`make bench` does that: npm ci + bundle), skipped otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// target/<profile>, from this test's own executable (target/<profile>/deps/smoke-…).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The debug builds of the functions; built here if `cargo test` was run for this crate alone.
fn function_binaries() -> (PathBuf, PathBuf) {
    let dir = profile_dir();
    let (emitter, worker) = (dir.join("uc-emitter"), dir.join("uc-worker"));
    if !(emitter.exists() && worker.exists()) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "uc-emitter", "-p", "uc-worker"])
            .status()
            .unwrap();
        assert!(status.success(), "building uc-emitter and uc-worker failed");
    }
    (emitter, worker)
}

fn samples(design: &Value) -> usize {
    design["summary"]["samples"].as_u64().unwrap() as usize
}

#[test]
fn the_harness_runs_end_to_end_with_tiny_counts() {
    let (emitter, worker) = function_binaries();
    let root = uc_devkit::workspace_root();
    let baseline = root.join("bench/baseline/bootstrap");
    let have_baseline = root.join("bench/baseline/dist/handler.mjs").exists()
        && Command::new("node").arg("--version").output().is_ok();
    let out = std::env::temp_dir().join(format!("uc-bench-smoke-{}.json", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_uc-bench"));
    command.args(["run", "--scale", "smoke", "--out"]).arg(&out);
    command.arg("--emitter").arg(&emitter);
    command.arg("--worker").arg(&worker);
    if have_baseline {
        command.arg("--baseline").arg(&baseline);
    } else {
        eprintln!("the Amplify baseline is not built (make bench builds it); smoke run without it");
    }
    let status = command.status().unwrap();
    assert!(status.success(), "uc-bench run --scale smoke failed");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    std::fs::remove_file(&out).ok();

    let conditions = doc["signup"]["conditions"].as_array().unwrap();
    assert!(!conditions.is_empty());
    for condition in conditions {
        for design in ["emitter", "floor"] {
            assert!(samples(&condition[design]) > 0, "{design}: {condition}");
            assert_eq!(condition[design]["summary"]["errors"], 0, "{design}");
        }
        if have_baseline {
            assert!(samples(&condition["baseline"]) > 0);
        }
    }
    assert!(!doc["coldStart"]["emitter"].as_array().unwrap().is_empty());
    let levels = doc["worker"]["levels"].as_array().unwrap();
    assert!(!levels.is_empty());
    for level in levels {
        for run in level["runs"].as_array().unwrap() {
            assert!(run["messages"].as_u64().unwrap() > 0);
            assert_eq!(run["failures"], 0, "{level}");
        }
        assert!(level["peakRssMib"].as_f64().unwrap() > 0.0);
    }
    assert!(Path::new(&emitter).exists());
}
