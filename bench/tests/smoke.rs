//! A smoke run of the benchmark harness with tiny counts (`uc-bench run --scale smoke`), so
//! `make test` notices when the harness breaks. It checks the results are well-formed, every
//! invocation succeeded and the fake Cognito saw one lookup per new user (strict mode); it
//! asserts nothing about time. A second run measures strict mode alone and merges it into the
//! first run's document (`--only strict --merge`). The isolation section (live sign-ups beside a
//! back-fill, on the local stack) runs with a few users and sign-ups: every live sign-up gets its
//! profile, every back-fill publishes what it selected. The Amplify baseline is included when it
//! has been built (`make bench` does that: npm ci + bundle), skipped otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// target/<profile>, from this test's own executable (target/<profile>/deps/smoke-…).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The debug builds of the functions and of uc-ops (the isolation section's back-fill); built
/// here if `cargo test` was run for this crate alone.
fn function_binaries() -> (PathBuf, PathBuf) {
    let dir = profile_dir();
    let (emitter, worker) = (dir.join("uc-emitter"), dir.join("uc-worker"));
    if !(emitter.exists() && worker.exists() && dir.join("uc-ops").exists()) {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "uc-emitter",
                "-p",
                "uc-worker",
                "-p",
                "uc-ops",
            ])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "building uc-emitter, uc-worker and uc-ops failed"
        );
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
        // The emitter's own timings were read back: its handler includes its PutEvents.
        let inside = &condition["insideEmitter"];
        let handler = inside["handlerP50"]["median"].as_f64().unwrap();
        let publish = inside["publishP50"]["median"].as_f64().unwrap();
        assert!(publish > 0.0 && handler >= publish, "{inside}");
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
    check_long_poll(&doc["worker"]["longPoll"]);
    check_managed(&doc["managedInstances"]);
    check_logs(&doc["logs"]);
    check_strict(&doc["strict"]);
    check_isolation(&doc["isolation"]);
    check_sweep(&doc["sweep"]);

    // Strict mode alone, merged into the document: the other sections stay as they were.
    let status = Command::new(env!("CARGO_BIN_EXE_uc-bench"))
        .args([
            "run", "--scale", "smoke", "--only", "strict", "--merge", "--out",
        ])
        .arg(&out)
        .arg("--emitter")
        .arg(&emitter)
        .arg("--worker")
        .arg(&worker)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "uc-bench run --only strict --merge failed"
    );
    let merged: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    std::fs::remove_file(&out).ok();
    for key in [
        "signup",
        "coldStart",
        "worker",
        "managedInstances",
        "isolation",
        "generatedAt",
        "git",
        "settings",
        "loadAverage",
    ] {
        assert_eq!(merged[key], doc[key], "--merge changed {key}");
    }
    assert_eq!(merged["merges"].as_array().unwrap().len(), 1);
    assert_eq!(
        merged["merges"][0]["sections"],
        serde_json::json!(["strict"])
    );
    check_strict(&merged["strict"]);
    assert!(Path::new(&emitter).exists());
}

/// The long-poll runs: every message received, processed and deleted, none handed back, and
/// no more than C in flight at the endpoint.
fn check_long_poll(long_poll: &Value) {
    let levels = long_poll["levels"].as_array().unwrap();
    assert!(!levels.is_empty(), "{long_poll}");
    for level in levels {
        let c = level["concurrency"].as_u64().unwrap();
        let messages: u64 = level["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["messages"].as_u64().unwrap())
            .sum();
        assert!(messages > 0, "{level}");
        assert_eq!(level["returned"], 0, "{level}");
        // /proc/stat counts in 10 ms ticks: a short smoke run may round a little past 100 %.
        let busy = level["machineBusyFraction"].as_f64().unwrap();
        assert!(busy > 0.0 && busy <= 1.2, "{level}");
        assert!(level["maxInFlight"].as_u64().unwrap() <= c, "{level}");
        assert!(
            level["deleteBatches"].as_u64().unwrap() >= messages.div_ceil(10),
            "{level}"
        );
    }
}

/// Both functions served every invocation at each `AWS_LAMBDA_MAX_CONCURRENCY`.
/// Each function wrote its INFO line and its EMF record per unit, and no crate but ours wrote
/// below INFO.
fn check_logs(logs: &Value) {
    for key in ["emitter", "workerLambda", "workerPoll"] {
        let volume = &logs[key];
        assert!(
            volume["logBytesPerUnit"].as_f64().unwrap() > 0.0,
            "{key}: {volume}"
        );
        assert!(
            volume["emfBytesPerUnit"].as_f64().unwrap() > 0.0,
            "{key}: {volume}"
        );
        assert_eq!(volume["thirdPartyDebugLines"], 0, "{key}: {volume}");
        assert!(
            volume["linesByLevel"].get("DEBUG").is_none(),
            "{key}: {volume}"
        );
    }
    assert!(
        logs["ingestionUsdPerMillionSignUps"].as_f64().unwrap() > 0.0,
        "{logs}"
    );
}

fn check_managed(managed: &Value) {
    let levels = managed["levels"].as_array().unwrap();
    let functions: Vec<&str> = levels
        .iter()
        .map(|l| l["function"].as_str().unwrap())
        .collect();
    assert!(
        functions.contains(&"uc-emitter") && functions.contains(&"uc-worker"),
        "{managed}"
    );
    for level in levels {
        assert!(level["invocations"].as_u64().unwrap() > 0, "{level}");
        assert_eq!(level["failedInvocations"], 0, "{level}");
    }
}

/// Every case of every level ran without failures, one AppSync request per message, and one
/// `AdminGetUser` per new user: none with strict mode off, none for cached users.
fn check_strict(strict: &Value) {
    let levels = strict["levels"].as_array().unwrap();
    assert!(!levels.is_empty(), "{strict}");
    for level in levels {
        let cases = level["cases"].as_array().unwrap();
        let names: Vec<&str> = cases.iter().map(|c| c["case"].as_str().unwrap()).collect();
        assert_eq!(names, ["off", "cold", "duplicates", "paced"]);
        for case in cases {
            let messages = case["messages"].as_u64().unwrap();
            assert!(messages > 0, "{case}");
            assert_eq!(case["failures"], 0, "{case}");
            assert_eq!(case["appsyncRequests"].as_u64(), Some(messages), "{case}");
            let lookups = match case["case"].as_str().unwrap() {
                "cold" | "paced" => messages,
                _ => 0,
            };
            assert_eq!(case["cognitoCalls"].as_u64(), Some(lookups), "{case}");
        }
    }
    let cognito = &strict["cognito"];
    assert_eq!(cognito["usersLookedUpMoreThanOnce"], 0, "{cognito}");
    assert_eq!(cognito["otherRequests"], 0, "{cognito}");
    assert_eq!(cognito["unsignedRequests"], 0, "{cognito}");
}

/// Every phase ran its live sign-ups to a profile each (none failed or missing, every lag after
/// the invocation), the idle phase first and without a back-fill; every back-fill produced one
/// profile per user it published, and one left to finish published every selected user.
/// The sweep at pool scale: each pace lists every user once, reads the store once a page, and
/// publishes exactly the users without a profile; the paced clock gives the pass its pace's time.
fn check_sweep(sweep: &Value) {
    let users = sweep["settings"]["users"].as_u64().unwrap();
    let missing = users / sweep["settings"]["missingOneIn"].as_u64().unwrap();
    let runs = sweep["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{sweep}");
    for run in runs {
        let pages = users.div_ceil(60);
        assert_eq!(run["complete"], true, "{run}");
        assert_eq!(run["users"].as_u64(), Some(users), "{run}");
        assert_eq!(run["listUsersCalls"].as_u64(), Some(pages), "{run}");
        assert_eq!(run["storeReads"].as_u64(), Some(pages), "{run}");
        assert_eq!(run["eventsPublished"].as_u64(), Some(missing), "{run}");
        assert_eq!(run["hadProfile"].as_u64(), Some(users - missing), "{run}");
        // The first page goes at once, then one call per 1/rate seconds.
        let expected = (pages - 1) as f64 / run["listRate"].as_f64().unwrap();
        let seconds = run["passSeconds"].as_f64().unwrap();
        assert!(
            (seconds - expected).abs() <= 1.0,
            "{seconds} vs {expected}: {run}"
        );
    }
}

fn check_isolation(isolation: &Value) {
    let report = &isolation["report"];
    let phases = report["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let planned: Vec<&str> = isolation["settings"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, planned);
    assert_eq!(names[0], "idle");
    assert!(phases[0]["backfill"].is_null());
    assert!(phases[0]["p99OverIdle"].is_null());
    let users = report["usersCreated"].as_u64().unwrap();
    assert!(users > 0, "{report}");
    for phase in phases {
        let live = &phase["live"];
        let sign_ups = live["signUps"].as_u64().unwrap();
        assert!(sign_ups > 0, "{phase}");
        assert_eq!(live["failed"], 0, "{phase}");
        assert_eq!(live["missing"], 0, "{phase}");
        assert_eq!(live["lag"]["n"].as_u64(), Some(sign_ups), "{phase}");
        // Causality, not speed: a profile is stored after the sign-up that caused it.
        for lag in live["lag"]["samples"].as_array().unwrap() {
            assert!(lag.as_f64().unwrap() > 0.0, "{phase}");
        }
        assert!(
            phase["workerMessages"].as_u64().unwrap() >= sign_ups,
            "{phase}"
        );
        let backfill = &phase["backfill"];
        if backfill.is_null() {
            continue;
        }
        assert!(phase["p99OverIdle"].as_f64().is_some(), "{phase}");
        let published = backfill["published"].as_u64().unwrap();
        assert_eq!(
            backfill["profilesCreated"].as_u64(),
            Some(published),
            "{phase}"
        );
        if backfill["stoppedAtWindowEnd"] == true {
            assert!(published <= users, "{phase}");
        } else {
            assert_eq!(backfill["exitCode"], 0, "{phase}");
            assert_eq!(backfill["complete"], true, "{phase}");
            assert_eq!(published, users, "{phase}");
        }
    }
    let paced = phases.iter().find(|p| p["name"] == "paced").unwrap();
    assert!(
        paced["backfill"]["rateArg"].is_null(),
        "the default pace: no --rate"
    );
    assert_eq!(paced["backfill"]["ratePerSecond"], 50.0);
    // The reconciliation passes: each read its pages and published every user it read, none
    // failed, and it said it stopped early (exit 1: --max-pages).
    let passes = report["reconciliation"].as_array().unwrap();
    assert!(!passes.is_empty(), "{report}");
    for pass in passes {
        assert!(pass["published"].as_u64().unwrap() > 0, "{pass}");
        assert_eq!(pass["failed"], 0, "{pass}");
        assert!(pass["pages"].as_u64().unwrap() >= 1, "{pass}");
    }
}
