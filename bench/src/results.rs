//! The results file, `docs/benchmarks.json`: criterion's estimates and the zips' sizes read in,
//! and a partial run (`--only … --merge`) merged into an existing file without rewriting the
//! text of the entries it did not measure.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::{RunArgs, Section};

/// The criterion results of our benchmark groups: `<dir>/<group>/<function>/new/*.json`.
pub(crate) fn criterion_results(dir: &Path) -> Value {
    let mut out = serde_json::Map::new();
    let Ok(groups) = std::fs::read_dir(dir) else {
        return Value::Object(out);
    };
    for group in groups.flatten() {
        let group_name = group.file_name().to_string_lossy().into_owned();
        if !(group_name.starts_with("emitter") || group_name.starts_with("worker")) {
            continue;
        }
        let Ok(functions) = std::fs::read_dir(group.path()) else {
            continue;
        };
        for function in functions.flatten() {
            let new = function.path().join("new");
            let (Ok(estimates), Ok(benchmark)) = (
                std::fs::read_to_string(new.join("estimates.json")),
                std::fs::read_to_string(new.join("benchmark.json")),
            ) else {
                continue;
            };
            let (Ok(estimates), Ok(benchmark)) = (
                serde_json::from_str::<Value>(&estimates),
                serde_json::from_str::<Value>(&benchmark),
            ) else {
                continue;
            };
            let us = |key: &str, field: &str| {
                estimates[key][field]
                    .as_f64()
                    .map(|ns| (ns / 1000.0 * 1000.0).round() / 1000.0)
            };
            let ci = |bound: &str| {
                estimates["median"]["confidence_interval"][bound]
                    .as_f64()
                    .map(|ns| (ns / 1000.0 * 1000.0).round() / 1000.0)
            };
            let id = benchmark["full_id"].as_str().unwrap_or_default().to_owned();
            let modified = std::fs::metadata(new.join("estimates.json"))
                .and_then(|m| m.modified())
                .ok()
                .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
            out.insert(
                id,
                json!({
                    "medianUs": us("median", "point_estimate"),
                    "meanUs": us("mean", "point_estimate"),
                    "medianCi95Us": [ci("lower_bound"), ci("upper_bound")],
                    "stdDevUs": us("std_dev", "point_estimate"),
                    "measuredAt": modified,
                }),
            );
        }
    }
    Value::Object(out)
}

pub(crate) fn zip_sizes(zips: &[(String, PathBuf)]) -> Value {
    Value::Array(
        zips.iter()
            .map(|(name, path)| {
                let bytes = std::fs::metadata(path).map(|m| m.len()).ok();
                let binary = zip_uncompressed(path);
                json!({
                    "name": name,
                    "path": path,
                    "bytes": bytes,
                    "mib": bytes.map(|b| (b as f64 / 1048576.0 * 100.0).round() / 100.0),
                    "uncompressedBytes": binary,
                })
            })
            .collect(),
    )
}

/// The zip's uncompressed size, from `unzip -l`'s total line.
fn zip_uncompressed(path: &Path) -> Option<u64> {
    let out = std::process::Command::new("unzip")
        .arg("-l")
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last()?.split_whitespace().next()?.parse().ok()
}

/// `fresh` (this run) merged into the document at `path`: the sections measured now replace
/// theirs; everything else, the run metadata included, stays as it was. The merge is appended
/// to the document's "merges".
pub(crate) fn merge_into_existing(
    existing: &str,
    fresh: Value,
    args: &RunArgs,
    seconds: u64,
) -> anyhow::Result<Value> {
    let mut doc: Value = serde_json::from_str(existing).context("parse the existing document")?;
    let measured: Vec<Section> = if args.only.is_empty() {
        vec![
            Section::Signup,
            Section::Cold,
            Section::Worker,
            Section::Strict,
            Section::Isolation,
        ]
    } else {
        args.only.clone()
    };
    for section in &measured {
        let key = section.key();
        if !fresh[key].is_null() {
            doc[key] = fresh[key].clone();
        }
        if matches!(section, Section::Signup | Section::Worker) {
            doc["settings"][key] = fresh["settings"][key].clone();
        }
    }
    if args.criterion_dir.is_some() {
        doc["micro"] = fresh["micro"].clone();
    }
    if !args.zips.is_empty() {
        doc["artifacts"] = fresh["artifacts"].clone();
    }
    let record = json!({
        "sections": measured.iter().map(|s| s.key()).collect::<Vec<_>>(),
        "generatedAt": fresh["generatedAt"],
        "git": fresh["git"],
        "scale": fresh["scale"],
        "durationSeconds": seconds,
        "loadAverage": fresh["loadAverage"],
    });
    match doc["merges"].as_array_mut() {
        Some(merges) => merges.push(record),
        None => doc["merges"] = json!([record]),
    }
    Ok(doc)
}

/// `merged` written over `existing` (both documents as this program writes them) so that the
/// top-level entries it did not change keep their text byte for byte: re-serialising parsed
/// floats may move their last digit, which would show as changes to figures nobody re-measured.
/// Falls back to writing `merged` whole when `existing` is not laid out as expected.
pub(crate) fn splice_top_level(existing: &str, merged: &Value) -> anyhow::Result<String> {
    let whole = || -> anyhow::Result<String> {
        Ok(compact_number_arrays(&serde_json::to_string_pretty(
            merged,
        )?))
    };
    let (Ok(old), Some(new)) = (serde_json::from_str::<Value>(existing), merged.as_object()) else {
        return whole();
    };
    // Top-level entries: a line `  "key": ...` starts one; deeper lines belong to it.
    let body = existing.trim_end();
    let (Some(inner), true) = (
        body.strip_prefix("{\n").and_then(|b| b.strip_suffix('}')),
        old.is_object(),
    ) else {
        return whole();
    };
    let mut entries: Vec<(String, Vec<&str>)> = Vec::new();
    for line in inner.lines() {
        if let Some(rest) = line.strip_prefix("  \"") {
            let Some(end) = rest.find("\": ") else {
                return whole();
            };
            entries.push((rest[..end].to_owned(), vec![line]));
        } else if let Some((_, lines)) = entries.last_mut() {
            lines.push(line);
        } else {
            return whole();
        }
    }
    // An entry as this program writes it, from `{"key": value}` pretty-printed.
    let entry = |key: &str, value: &Value| -> anyhow::Result<Vec<String>> {
        let one = compact_number_arrays(&serde_json::to_string_pretty(
            &serde_json::json!({ key: value }),
        )?);
        let lines: Vec<String> = one.lines().map(str::to_owned).collect();
        Ok(lines[1..lines.len() - 1].to_vec())
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    for (key, lines) in &entries {
        let Some(value) = new.get(key) else {
            continue;
        };
        if old.get(key) == Some(value) {
            let mut kept: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            if let Some(last) = kept.last_mut() {
                *last = last.trim_end_matches(',').to_owned();
            }
            out.push(kept);
        } else {
            out.push(entry(key, value)?);
        }
    }
    for (key, value) in new {
        if !entries.iter().any(|(k, _)| k == key) {
            out.push(entry(key, value)?);
        }
    }
    let text = format!(
        "{{\n{}\n}}\n",
        out.iter()
            .map(|lines| lines.join("\n"))
            .collect::<Vec<_>>()
            .join(",\n")
    );
    // Whatever the layout, the result must be the merged document.
    match serde_json::from_str::<Value>(&text) {
        Ok(back) if &back == merged => Ok(text),
        _ => whole(),
    }
}

/// Pretty JSON with arrays of numbers on one line (the raw samples), so the file stays small and
/// diffable.
pub(crate) fn compact_number_arrays(pretty: &str) -> String {
    let mut out = String::with_capacity(pretty.len() / 2);
    let mut pending: Option<(String, Vec<String>)> = None;
    for line in pretty.lines() {
        let trimmed = line.trim();
        if let Some((head, items)) = pending.as_mut() {
            let item = trimmed.trim_end_matches(',');
            if item.parse::<f64>().is_ok() {
                items.push(item.to_owned());
                continue;
            }
            if trimmed.starts_with(']') {
                out.push_str(&format!("{head}{}{trimmed}\n", items.join(", ")));
                pending = None;
                continue;
            }
            // Not an array of numbers after all: write it back as it was.
            out.push_str(head);
            out.push('\n');
            for item in items.iter() {
                out.push_str(&format!("{item},\n"));
            }
            pending = None;
        }
        if trimmed.ends_with('[') {
            pending = Some((line.to_owned(), Vec::new()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::compact_number_arrays;

    #[test]
    fn a_merge_keeps_the_text_of_entries_it_did_not_change() {
        // Written by hand: a float whose text serde_json would not write back the same way.
        let existing = "{\n  \"a\": {\n    \"x\": [188.26620599999998, 2]\n  },\n  \"b\": 1,\n  \"c\": \"old\"\n}\n";
        let mut merged: serde_json::Value = serde_json::from_str(existing).unwrap();
        merged["c"] = serde_json::json!({"new": [1, 2]});
        merged["d"] = serde_json::json!(true);
        let text = super::splice_top_level(existing, &merged).unwrap();
        assert!(text.contains("188.26620599999998"), "{text}");
        assert!(text.contains("\"new\": [1, 2]"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, merged);
        assert!(text.find("\"b\"").unwrap() < text.find("\"c\"").unwrap());
        assert!(text.trim_end().ends_with("\"d\": true\n}"), "{text}");
    }

    /// A fresh section full of computed floats (as the isolation section is) still leaves the
    /// other entries' text alone: it needs floats to read back exactly (`float_roundtrip`),
    /// or the final check fails and the whole document is rewritten.
    #[test]
    fn a_merge_of_many_computed_floats_keeps_the_other_entries_text() {
        let existing = "{\n  \"a\": [188.26620599999998, 9.548452000000001],\n  \"b\": 1\n}\n";
        let mut merged: serde_json::Value = serde_json::from_str(existing).unwrap();
        let floats: Vec<f64> = (1..20_000)
            .map(|i| (i as f64 * 1.37 / 7.0 * 1000.0).round() / 1000.0 + 1e-9 * i as f64)
            .collect();
        merged["c"] = serde_json::json!({ "samples": floats });
        let text = super::splice_top_level(existing, &merged).unwrap();
        assert!(
            text.starts_with("{\n  \"a\": [188.26620599999998, 9.548452000000001],\n  \"b\": 1,\n"),
            "{}",
            &text[..200]
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, merged);
    }

    #[test]
    fn number_arrays_go_on_one_line_and_the_json_is_unchanged() {
        let doc = serde_json::json!({
            "samples": [1.5, 2.0, 3],
            "empty": [],
            "runs": [{"n": 1, "xs": [4, 5]}],
            "names": ["a", "b"],
        });
        let text = compact_number_arrays(&serde_json::to_string_pretty(&doc).unwrap());
        assert!(text.contains("\"samples\": [1.5, 2.0, 3]"), "{text}");
        assert!(text.contains("\"xs\": [4, 5]"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
    }
}
