//! CloudWatch Embedded Metric Format (EMF) records: JSON lines on stdout that CloudWatch turns
//! into metrics without any API call from the function.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};

/// The CloudWatch namespace of every metric the pipeline writes.
pub const METRICS_NAMESPACE: &str = "UserConfirmedPipeline";

/// The variable that names the deployment (the template sets it to its `NamePrefix`): the
/// `Stack` dimension, so two stacks in one account and region keep their metrics and alarms
/// apart. Unset (a local run): the metrics carry the `Service` dimension alone.
pub const STACK_VARIABLE: &str = "STACK_NAME";

fn stack_name() -> Option<&'static str> {
    static STACK: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    STACK
        .get_or_init(|| {
            std::env::var(STACK_VARIABLE)
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .as_deref()
}

/// One EMF record: counters and timings for one unit of work (an invocation or a batch).
#[derive(Debug, Clone)]
pub struct MetricsRecord {
    service: &'static str,
    stack: Option<&'static str>,
    counts: BTreeMap<&'static str, f64>,
    timings: BTreeMap<&'static str, Vec<f64>>,
    /// Ages and other single readings, in seconds.
    seconds: BTreeMap<&'static str, f64>,
    properties: BTreeMap<&'static str, Value>,
}

impl MetricsRecord {
    /// A record for `service` (the `Service` dimension: "emitter", "worker", ...).
    pub fn new(service: &'static str) -> Self {
        Self::for_stack(service, stack_name())
    }

    /// A record for `service` in the deployment `stack` (see [`STACK_VARIABLE`]).
    pub fn for_stack(service: &'static str, stack: Option<&'static str>) -> Self {
        Self {
            service,
            stack,
            counts: BTreeMap::new(),
            timings: BTreeMap::new(),
            seconds: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }

    /// Adds `n` to the counter `name`.
    pub fn count(&mut self, name: &'static str, n: u64) -> &mut Self {
        *self.counts.entry(name).or_default() += n as f64;
        self
    }

    /// Records one duration sample, in milliseconds.
    pub fn timing_ms(&mut self, name: &'static str, ms: f64) -> &mut Self {
        self.timings.entry(name).or_default().push(ms);
        self
    }

    /// Sets the reading `name`, in seconds (an age: how far behind something is).
    pub fn gauge_seconds(&mut self, name: &'static str, seconds: f64) -> &mut Self {
        self.seconds.insert(name, seconds);
        self
    }

    /// A searchable property (not a metric): request ids, never PII.
    pub fn property(&mut self, name: &'static str, value: impl Into<Value>) -> &mut Self {
        self.properties.insert(name, value.into());
        self
    }

    /// The current value of a counter (0 when never counted).
    pub fn counter(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or_default() as u64
    }

    /// The record as one EMF JSON object.
    pub fn to_json(&self) -> Value {
        let mut definitions = Vec::new();
        let mut root = serde_json::Map::new();
        for (name, value) in &self.counts {
            definitions.push(json!({"Name": name, "Unit": "Count"}));
            root.insert((*name).to_owned(), json!(value));
        }
        for (name, values) in &self.timings {
            definitions.push(json!({"Name": name, "Unit": "Milliseconds"}));
            root.insert((*name).to_owned(), json!(values));
        }
        for (name, value) in &self.seconds {
            definitions.push(json!({"Name": name, "Unit": "Seconds"}));
            root.insert((*name).to_owned(), json!(value));
        }
        for (name, value) in &self.properties {
            root.insert((*name).to_owned(), value.clone());
        }
        root.insert("Service".into(), json!(self.service));
        let dimensions = match self.stack {
            Some(stack) => {
                root.insert("Stack".into(), json!(stack));
                json!([["Service", "Stack"]])
            }
            None => json!([["Service"]]),
        };
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": chrono::Utc::now().timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": METRICS_NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }

    /// Writes the record as one line to `out`.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "{}", self.to_json())
    }

    /// Writes the record to stdout, where the Lambda log agent picks EMF lines up, with the
    /// log lines gathered so far ([`crate::logs::flush`] writes them together).
    pub fn emit(&self) {
        let mut line = Vec::with_capacity(512);
        if self.write_to(&mut line).is_ok() {
            crate::logs::write_line(&line, false);
        }
    }
}

/// Reads EMF records back from log lines (the demo, chaos runs and tests count what the
/// functions reported): the lines written by `service`, other lines ignored.
pub fn read_records<'a>(lines: &'a [String], service: &'a str) -> impl Iterator<Item = Value> + 'a {
    lines
        .iter()
        .filter(|l| l.contains("\"_aws\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(move |r| r["Service"] == service)
}

/// The sum of counter `metric` over the EMF lines `service` wrote.
pub fn read_count(lines: &[String], service: &str, metric: &str) -> u64 {
    read_records(lines, service)
        .filter_map(|r| r.get(metric)?.as_f64())
        .sum::<f64>() as u64
}

/// Every sample of timing `metric` over the EMF lines `service` wrote.
pub fn read_timings(lines: &[String], service: &str, metric: &str) -> Vec<f64> {
    read_records(lines, service)
        .filter_map(|r| r.get(metric)?.as_array().cloned())
        .flatten()
        .filter_map(|v| v.as_f64())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_record_declares_every_metric_it_carries() {
        let mut record = MetricsRecord::for_stack("worker", None);
        record
            .count("Created", 2)
            .count("Created", 1)
            .count("Retried", 0)
            .timing_ms("AppSyncLatency", 12.5)
            .timing_ms("AppSyncLatency", 7.0)
            .property("RequestId", "r-1");
        let json = record.to_json();
        assert_eq!(json["Created"], 3.0);
        assert_eq!(json["AppSyncLatency"], json!([12.5, 7.0]));
        assert_eq!(json["Service"], "worker");
        assert_eq!(json["RequestId"], "r-1");
        let metrics = &json["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], METRICS_NAMESPACE);
        assert_eq!(metrics["Dimensions"], json!([["Service"]]));
        let names: Vec<&str> = metrics["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Created", "Retried", "AppSyncLatency"]);
        assert!(json["_aws"]["Timestamp"].as_i64().unwrap() > 0);
        assert_eq!(record.counter("Created"), 3);
        let mut line = Vec::new();
        record.write_to(&mut line).unwrap();
        assert!(line.ends_with(b"\n") && !line[..line.len() - 1].contains(&b'\n'));
    }

    #[test]
    fn the_stack_is_a_dimension_when_named() {
        let mut record = MetricsRecord::for_stack("worker", Some("uc-prod"));
        record.count("Created", 1);
        let json = record.to_json();
        assert_eq!(json["Stack"], "uc-prod");
        assert_eq!(
            json["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service", "Stack"]])
        );
    }

    #[test]
    fn written_records_read_back_per_service() {
        let mut emitter = MetricsRecord::new("emitter");
        emitter
            .count("Published", 1)
            .timing_ms("HandlerLatency", 2.5);
        let mut worker = MetricsRecord::new("worker");
        worker.count("Created", 5);
        let lines = vec![
            emitter.to_json().to_string(),
            emitter.to_json().to_string(),
            worker.to_json().to_string(),
            r#"{"level":"INFO","fields":{"message":"Published"}}"#.to_owned(),
        ];
        assert_eq!(read_count(&lines, "emitter", "Published"), 2);
        assert_eq!(read_count(&lines, "worker", "Created"), 5);
        assert_eq!(
            read_timings(&lines, "emitter", "HandlerLatency"),
            [2.5, 2.5]
        );
        assert_eq!(read_count(&lines, "worker", "Published"), 0);
    }
}
