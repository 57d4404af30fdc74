//! What the CLI may print of text it did not write itself — message bodies, attributes,
//! usernames, profile ids: email addresses redacted unless the operator asked for them, and
//! nothing a terminal would act on (control characters, escape sequences, bidirectional
//! overrides) left raw.

/// `text` with every email-looking token replaced by `<redacted>`. Beyond
/// [`uc_runtime::redact_emails`], an `@` written as a JSON escape (`\u0040`) or as the
/// full-width `＠` counts too: a body is shown as it was sent, not as JSON decodes it.
pub fn redact(text: &str) -> String {
    let normalised = text
        .replace("\\u0040", "@")
        .replace("\\U0040", "@")
        .replace('\u{FF20}', "@");
    uc_runtime::redact_emails(&normalised)
}

/// [`redact`] unless `show_pii`.
pub fn redact_unless(show_pii: bool, text: &str) -> String {
    if show_pii {
        text.to_owned()
    } else {
        redact(text)
    }
}

/// Characters a terminal may interpret rather than show: C0 and C1 controls (ESC starts every
/// escape sequence, BEL ends some, CR rewrites a line), DEL, and the bidirectional controls
/// that reorder what is displayed.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` safe to print to a terminal: each unsafe character is shown as its escape
/// (`\u{1b}`), so it is visible and inert.
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Serialized JSON safe to print to a terminal: serde_json escapes C0 controls inside strings
/// but writes C1 controls (CSI, U+009B) and bidirectional overrides as they are. Outside
/// strings JSON has only ASCII, so each such character is inside one and its `\uXXXX` escape
/// is the same JSON value.
pub fn json_terminal_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t') {
            // C1 and bidi controls are all in the Basic Multilingual Plane: one \u escape.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_its_value_and_loses_what_a_terminal_obeys() {
        let value = serde_json::json!({"body": "a\u{9b}2J\u{202e}txt\n\u{1b}[31m"});
        let printed = json_terminal_safe(&serde_json::to_string_pretty(&value).unwrap());
        assert!(
            printed.chars().all(|c| c == '\n' || !is_unsafe(c)),
            "{printed:?}"
        );
        let back: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn every_spelling_of_an_address_is_redacted() {
        assert_eq!(redact("mail jane@example.com now"), "mail <redacted> now");
        assert_eq!(
            redact(r#"{"email":"jane\u0040example.com"}"#),
            r#"{"email":"<redacted>"}"#
        );
        assert_eq!(redact("jane＠example.com"), "<redacted>");
        assert_eq!(redact("no address"), "no address");
        assert_eq!(redact_unless(true, "jane@example.com"), "jane@example.com");
    }

    #[test]
    fn escapes_and_controls_are_shown_not_obeyed() {
        let hostile = "a\x1b]0;title\x07b\x1b[31mred\r\n\u{9b}2J\u{202e}txt.exe\u{7f}";
        let safe = terminal_safe(hostile);
        assert!(
            !safe.chars().any(is_unsafe),
            "nothing left for a terminal to act on: {safe:?}"
        );
        assert_eq!(
            safe,
            "a\\u{1b}]0;title\\u{7}b\\u{1b}[31mred\\u{d}\\u{a}\\u{9b}2J\\u{202e}txt.exe\\u{7f}"
        );
        assert_eq!(terminal_safe("zoë ✓ 名前"), "zoë ✓ 名前");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("ééééé", 3), "ééé…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
