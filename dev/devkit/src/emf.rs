//! Reading the functions' CloudWatch EMF metric lines back out of their collected output:
//! counters summed ([`emf_count`]) and timing samples listed ([`emf_timings`]), per service.

use serde_json::Value;

/// Sums an EMF counter over `lines` written by `service`.
pub fn emf_count(lines: &[String], service: &str, metric: &str) -> u64 {
    emf_records(lines, service)
        .filter_map(|r| r.get(metric)?.as_f64())
        .sum::<f64>() as u64
}

/// Every sample of an EMF timing over `lines` written by `service`.
pub fn emf_timings(lines: &[String], service: &str, metric: &str) -> Vec<f64> {
    emf_records(lines, service)
        .filter_map(|r| r.get(metric)?.as_array().cloned())
        .flatten()
        .filter_map(|v| v.as_f64())
        .collect()
}

fn emf_records<'a>(lines: &'a [String], service: &'a str) -> impl Iterator<Item = Value> + 'a {
    lines
        .iter()
        .filter(|l| l.contains("\"_aws\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(move |r| r["Service"] == service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_are_summed_per_service() {
        let lines = vec![
            r#"{"Published":1.0,"HandlerLatency":[2.5],"Service":"emitter","_aws":{}}"#.to_owned(),
            r#"{"Published":1.0,"HandlerLatency":[3.5],"Service":"emitter","_aws":{}}"#.to_owned(),
            r#"{"Created":5.0,"Service":"worker","_aws":{}}"#.to_owned(),
            r#"{"level":"INFO","fields":{"message":"Published"}}"#.to_owned(),
        ];
        assert_eq!(emf_count(&lines, "emitter", "Published"), 2);
        assert_eq!(emf_count(&lines, "worker", "Created"), 5);
        assert_eq!(
            emf_timings(&lines, "emitter", "HandlerLatency"),
            vec![2.5, 3.5]
        );
    }
}
