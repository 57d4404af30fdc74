//! The invocation payload: kept as the JSON text Lambda delivered, and read through a copy.
//!
//! Cognito's event goes back to Cognito as the very same text ([`RawValue`]): whatever it holds
//! comes back unchanged in value, including what `serde_json::Value` cannot hold — integers
//! beyond 64 bits (`Value` would turn `123456789012345678901234567890` into an `f64`), numbers
//! beyond `f64`'s range (`1e400`), and unpaired UTF-16 surrogate escapes such as `"\ud800"`
//! (valid JSON text, but not Unicode: `Value` refuses them, which used to make the runtime
//! answer Cognito with an error before the handler ran, even under fail-open). serde_json's
//! `RawValue` only checks the JSON syntax and accepts all of these; the runtime writes it back
//! verbatim.
//!
//! What the emitter *reads* is a parsed copy, [`EventCopy`], made leniently:
//!
//! 1. the text is parsed as it is (every real Cognito event: one parse);
//! 2. if that fails, a copy of the text is repaired and parsed: an unpaired surrogate escape
//!    becomes `\ufffd` (U+FFFD, as a lossy UTF-16 decoder does) and a number beyond `f64`'s
//!    range becomes `0` (the emitter reads no numbers). The copy is marked
//!    [`repaired`](EventCopy::repaired), and `decide` then publishes no field that holds U+FFFD:
//!    it could stand for a surrogate that was never text. A stray surrogate in a field the
//!    emitter does not publish (`clientMetadata`, which the app client sets, or a custom
//!    attribute) does not cost the user their profile;
//! 3. if even the repaired copy cannot be parsed — nesting deeper than serde_json's 128 levels,
//!    or an object whose first key is serde_json's private `$serde_json::private::RawValue`
//!    token (with the `raw_value` feature, `Value` treats such an object as embedded JSON text)
//!    — the event is skipped as [`SkipReason::UnreadableEvent`].

use chrono::{DateTime, Utc};
use serde_json::Value;
pub use serde_json::value::RawValue;

use crate::trigger::{self, Decision, SkipReason};

/// Cognito's event as the emitter reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventCopy {
    value: Value,
    repaired: bool,
}

impl EventCopy {
    /// Parses `text` (the invocation's JSON text) leniently, as the module describes.
    pub fn read(text: &str) -> Result<Self, SkipReason> {
        let first = match serde_json::from_str(text) {
            Ok(value) => {
                return Ok(Self {
                    value,
                    repaired: false,
                });
            }
            Err(e) => e,
        };
        let unreadable = |e: serde_json::Error| SkipReason::UnreadableEvent(e.to_string());
        let Some(repaired) = repair(text) else {
            return Err(unreadable(first));
        };
        serde_json::from_str(&repaired)
            .map(|value| Self {
                value,
                repaired: true,
            })
            .map_err(unreadable)
    }

    /// The parsed copy.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Whether the copy differs from the text: surrogates or huge numbers were rewritten.
    pub fn repaired(&self) -> bool {
        self.repaired
    }

    /// `triggerSource`, for log lines (empty when absent or not a string).
    pub fn trigger_source(&self) -> &str {
        self.value
            .get("triggerSource")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The event's `sub` when it is a Cognito user id (so an operator can find the user), never
    /// anything else: an out-of-contract value may be PII or junk.
    pub fn sub_for_logs(&self) -> Option<&str> {
        self.value
            .pointer("/request/userAttributes/sub")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|sub| uc_schemas::is_lowercase_uuid(sub))
    }

    /// What to publish for this event; see [`trigger::decide`].
    pub fn decide(&self, default_region: &str, now: DateTime<Utc>) -> Decision {
        trigger::decide_read(&self.value, self.repaired, default_region, now)
    }
}

/// Reads `text` leniently and decides: [`EventCopy::read`], then [`EventCopy::decide`].
pub fn decide_text(text: &str, default_region: &str, now: DateTime<Utc>) -> Decision {
    match EventCopy::read(text) {
        Ok(copy) => copy.decide(default_region, now),
        Err(reason) => Decision::Skip(reason),
    }
}

/// A copy of `text` in which unpaired surrogate escapes are `\ufffd` and numbers beyond `f64`'s
/// range are `0`; `None` when there is nothing to rewrite. Meant for JSON text (as `RawValue`
/// has checked it); any other text is scanned without panicking and may stay unparseable.
fn repair(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    // `text[copied..i]` is still to be copied; every cut is at an ASCII byte.
    let mut copied = 0;
    let mut i = 0;
    let mut in_string = false;
    let mut changed = false;
    let rewrite = |out: &mut String, copied: &mut usize, at: usize, end: usize, with: &str| {
        out.push_str(&text[*copied..at]);
        out.push_str(with);
        *copied = end;
    };
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                    let Some(unit) = hex4(bytes, i + 2) else {
                        i += 2;
                        continue;
                    };
                    let paired = (0xD800..=0xDBFF).contains(&unit)
                        && bytes.get(i + 6) == Some(&b'\\')
                        && bytes.get(i + 7) == Some(&b'u')
                        && hex4(bytes, i + 8).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low));
                    if paired {
                        i += 12;
                    } else if (0xD800..=0xDFFF).contains(&unit) {
                        rewrite(&mut out, &mut copied, i, i + 6, "\\ufffd");
                        changed = true;
                        i += 6;
                    } else {
                        i += 6;
                    }
                }
                b'\\' => i += 2,
                _ => i += 1,
            }
        } else if b == b'"' {
            in_string = true;
            i += 1;
        } else if b == b'-' || b.is_ascii_digit() {
            let end = bytes[i..]
                .iter()
                .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .map_or(bytes.len(), |n| i + n);
            if text[i..end]
                .parse::<f64>()
                .is_ok_and(|number| !number.is_finite())
            {
                rewrite(&mut out, &mut copied, i, end, "0");
                changed = true;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// The four hex digits at `bytes[at..at + 4]` as a UTF-16 code unit.
fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_text_is_parsed_once_and_not_marked() {
        let copy =
            EventCopy::read(r#"{"a": "é\ud83d\ude00", "n": 123456789012345678901234567890}"#)
                .unwrap();
        assert!(!copy.repaired());
        assert_eq!(copy.value()["a"], "é😀");
        assert!(copy.value()["n"].is_f64(), "a big integer reads as f64");
    }

    #[test]
    fn unpaired_surrogates_and_out_of_range_numbers_are_repaired_in_the_copy() {
        for (text, expected) in [
            (r#"{"u": "\ud800"}"#, json!({"u": "\u{fffd}"})),
            (r#"{"u": "a\udc00b"}"#, json!({"u": "a\u{fffd}b"})),
            (
                r#"{"u": "\ud800\ud800\udc00"}"#,
                json!({"u": "\u{fffd}\u{10000}"}),
            ),
            (r#"{"u": "\udbff\\ud800"}"#, json!({"u": "\u{fffd}\\ud800"})),
            (r#"{"u": "\\\ud800"}"#, json!({"u": "\\\u{fffd}"})),
            (
                r#"{"n": 1e400, "m": [-1E999], "k": "1e400"}"#,
                json!({"n": 0, "m": [0], "k": "1e400"}),
            ),
        ] {
            let copy = EventCopy::read(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert!(copy.repaired(), "{text}");
            assert_eq!(copy.value(), &expected, "{text}");
        }
        let huge = format!(r#"{{"n": 1{}, "u": "\uDFFF"}}"#, "0".repeat(400));
        let copy = EventCopy::read(&huge).unwrap();
        assert_eq!(copy.value(), &json!({"n": 0, "u": "\u{fffd}"}));
    }

    #[test]
    fn what_cannot_be_repaired_is_unreadable() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for text in [
            deep.as_str(),
            r#"{"$serde_json::private::RawValue": "not json"}"#,
            "{not json",
            "",
        ] {
            assert!(
                matches!(EventCopy::read(text), Err(SkipReason::UnreadableEvent(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn repair_never_panics_on_truncated_or_odd_text() {
        for text in [
            "\"\\u",
            "\"\\ud8",
            "\"\\ud800\\u",
            "\"\\ud800\\udc",
            "\"\\",
            "-",
            "1e",
            "\"é\\ud800é",
            "é-1e400é",
            "\"\\uZZZZ\"",
        ] {
            let _ = repair(text);
            let _ = EventCopy::read(text);
        }
        assert_eq!(repair("\"\\ud800"), Some("\"\\ufffd".into()));
        assert_eq!(repair(r#"{"a": 1}"#), None);
    }
}
