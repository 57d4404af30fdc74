//! Who consumes the pipeline's events: each rule's pattern read against a `UserConfirmed`, a
//! `ProfileCreated` and a `UserDeleted` from the pipeline's source (matches / may match / no
//! match), the worker's own rule recognised.

use serde::Serialize;
use serde_json::Value;
use uc_schemas::{DETAIL_TYPE, PROFILE_CREATED_DETAIL_TYPE, USER_DELETED_DETAIL_TYPE};

/// Whether an event would match a rule's pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Matches,
    /// The pattern uses something this check does not evaluate (content filters, prefixes,
    /// anything-but, …): it may or may not match.
    MayMatch {
        reasons: Vec<String>,
    },
    NoMatch {
        reason: String,
    },
}

impl Verdict {
    pub fn may_receive(&self) -> bool {
        !matches!(self, Self::NoMatch { .. })
    }
}

/// The envelope fields a pattern is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a> {
    pub source: &'a str,
    pub detail_type: &'a str,
    /// EventBridge sets `replay-name` on replayed events; `None` for live ones.
    pub replay_name: Option<&'a str>,
}

/// The replay name used when asking whether a rule takes replayed events at all.
const ANY_REPLAY: &str = "uc-replay";

/// Would an event with `probe`'s envelope match `pattern` (a rule's `EventPattern`)?
/// `source`, `detail-type` and `replay-name` are evaluated for exact values and `exists`;
/// any other operator, and any other field (`detail`, `account`, `$or`, …), makes it "may match".
pub fn verdict(pattern: Option<&str>, probe: &Probe) -> Verdict {
    let Some(pattern) = pattern else {
        return Verdict::NoMatch {
            reason: "no event pattern (a scheduled rule)".into(),
        };
    };
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(pattern) else {
        return Verdict::MayMatch {
            reasons: vec!["the event pattern is not a JSON object this check reads".into()],
        };
    };
    let mut reasons = Vec::new();
    for (key, value) in &fields {
        let actual = match key.as_str() {
            "source" => Some(probe.source),
            "detail-type" => Some(probe.detail_type),
            "replay-name" => probe.replay_name,
            other => {
                reasons.push(format!("also filters on `{other}`"));
                continue;
            }
        };
        match field_verdict(key, value, actual) {
            Verdict::Matches => {}
            Verdict::MayMatch { reasons: more } => reasons.extend(more),
            no => return no,
        }
    }
    if reasons.is_empty() {
        Verdict::Matches
    } else {
        Verdict::MayMatch { reasons }
    }
}

fn field_verdict(key: &str, value: &Value, actual: Option<&str>) -> Verdict {
    let Value::Array(elements) = value else {
        return Verdict::MayMatch {
            reasons: vec![format!("`{key}` is not a list of values")],
        };
    };
    // `{"exists": true|false}`: whether the field is there at all.
    let exists = |op: &serde_json::Map<String, Value>| {
        if op.len() == 1 {
            op.get("exists").and_then(Value::as_bool)
        } else {
            None
        }
    };
    let mut reasons = Vec::new();
    for element in elements {
        match element {
            Value::String(s) if Some(s.as_str()) == actual => return Verdict::Matches,
            Value::Object(op) if exists(op) == Some(actual.is_some()) => return Verdict::Matches,
            Value::Object(op) if exists(op).is_some() => {}
            Value::Object(op) => {
                let name = op.keys().next().map(String::as_str).unwrap_or("{}");
                reasons.push(format!("`{key}` uses {name}"));
            }
            // Numbers, null and booleans never equal a string value.
            _ => {}
        }
    }
    if reasons.is_empty() {
        Verdict::NoMatch {
            reason: format!(
                "`{key}` is {value}, the event's is {}",
                actual.map_or_else(|| "absent".to_owned(), |a| format!("{a:?}"))
            ),
        }
    } else {
        Verdict::MayMatch { reasons }
    }
}

/// A rule on the bus, as read from `ListRules` and `ListTargetsByRule`.
#[derive(Debug, Clone, Default)]
pub struct RawRule {
    pub name: String,
    pub arn: String,
    pub state: String,
    pub managed_by: Option<String>,
    pub event_pattern: Option<String>,
    pub targets: Vec<TargetView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetView {
    pub id: String,
    pub arn: String,
}

/// How the pipeline's own worker rule is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerHint {
    /// The rule(s) targeting this queue ARN (`QUEUE_URL`'s queue).
    QueueArn(String),
    /// `--worker-rule`: a rule name or ARN.
    Rule(String),
    /// Neither is configured.
    Unknown,
}

impl WorkerHint {
    pub fn describe(&self) -> String {
        match self {
            Self::QueueArn(arn) => format!("the rule targeting QUEUE_URL's queue {arn}"),
            Self::Rule(rule) => format!("--worker-rule {rule}"),
            Self::Unknown => "unknown (set QUEUE_URL or --worker-rule)".into(),
        }
    }
}

/// A rule with what it would receive.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub name: String,
    pub arn: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    pub event_pattern: Option<String>,
    pub targets: Vec<TargetView>,
    /// The pipeline's own worker rule.
    pub worker: bool,
    /// A live `UserConfirmed` from the pipeline's source.
    pub user_confirmed: Verdict,
    /// A replayed `UserConfirmed` (it carries `replay-name`).
    pub user_confirmed_replayed: Verdict,
    pub profile_created: Verdict,
    /// A live `UserDeleted` from the pipeline's source.
    pub user_deleted: Verdict,
    /// A replayed `UserDeleted` (the archive holds them beside `UserConfirmed`).
    pub user_deleted_replayed: Verdict,
}

impl RuleView {
    /// Would it receive anything from a replay of the archive (`UserConfirmed` or `UserDeleted`)?
    pub fn takes_replays(&self) -> bool {
        self.user_confirmed_replayed.may_receive() || self.user_deleted_replayed.may_receive()
    }
}

/// Each rule with its verdicts and whether it is the worker's.
pub fn classify(rules: Vec<RawRule>, source: &str, worker: &WorkerHint) -> Vec<RuleView> {
    let live = |detail_type| Probe {
        source,
        detail_type,
        replay_name: None,
    };
    let replayed = |detail_type| Probe {
        replay_name: Some(ANY_REPLAY),
        ..live(detail_type)
    };
    rules
        .into_iter()
        .map(|rule| {
            let pattern = rule.event_pattern.as_deref();
            let is_worker = match worker {
                WorkerHint::QueueArn(queue) => rule.targets.iter().any(|t| &t.arn == queue),
                WorkerHint::Rule(r) => &rule.name == r || &rule.arn == r,
                WorkerHint::Unknown => false,
            };
            RuleView {
                user_confirmed: verdict(pattern, &live(DETAIL_TYPE)),
                user_confirmed_replayed: verdict(pattern, &replayed(DETAIL_TYPE)),
                profile_created: verdict(pattern, &live(PROFILE_CREATED_DETAIL_TYPE)),
                user_deleted: verdict(pattern, &live(USER_DELETED_DETAIL_TYPE)),
                user_deleted_replayed: verdict(pattern, &replayed(USER_DELETED_DETAIL_TYPE)),
                worker: is_worker,
                name: rule.name,
                arn: rule.arn,
                state: rule.state,
                managed_by: rule.managed_by,
                event_pattern: rule.event_pattern,
                targets: rule.targets,
            }
        })
        .collect()
}

/// The consumers of the pipeline's events on one bus.
#[derive(Debug, Clone, Serialize)]
pub struct Consumers {
    pub bus: String,
    pub bus_arn: String,
    pub source: String,
    /// How the worker's rule was identified.
    pub worker_rule_by: String,
    /// Rules that match (or may match) a live `UserConfirmed`.
    pub user_confirmed: Vec<RuleView>,
    /// Rules that match (or may match) a `ProfileCreated`.
    pub profile_created: Vec<RuleView>,
    /// Rules that match (or may match) a live `UserDeleted`.
    pub user_deleted: Vec<RuleView>,
    /// Rules on the bus that match none of the three.
    pub other_rules: usize,
}

pub fn consumers(
    bus: &str,
    bus_arn: &str,
    source: &str,
    worker: &WorkerHint,
    rules: &[RuleView],
) -> Consumers {
    let pick = |f: fn(&RuleView) -> &Verdict| -> Vec<RuleView> {
        rules
            .iter()
            .filter(|r| f(r).may_receive())
            .cloned()
            .collect()
    };
    Consumers {
        bus: bus.to_owned(),
        bus_arn: bus_arn.to_owned(),
        source: source.to_owned(),
        worker_rule_by: worker.describe(),
        user_confirmed: pick(|r| &r.user_confirmed),
        profile_created: pick(|r| &r.profile_created),
        user_deleted: pick(|r| &r.user_deleted),
        other_rules: rules
            .iter()
            .filter(|r| {
                !r.user_confirmed.may_receive()
                    && !r.profile_created.may_receive()
                    && !r.user_deleted.may_receive()
            })
            .count(),
    }
}
