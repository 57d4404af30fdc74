//! Keeps email addresses out of logs and dead-letter reasons: error texts from services can
//! echo request values (AppSync's validation errors quote the variables).

/// Replaces every whitespace-delimited token that contains an `@` with `<redacted>`.
pub fn redact_emails(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.contains('@') {
            out.push_str("<redacted>");
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in text.chars() {
        if c.is_whitespace()
            || matches!(
                c,
                ',' | '{' | '}' | '[' | ']' | '(' | ')' | '"' | '\'' | '='
            )
        {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_emails(
                "Variable 'input' has an invalid value: {email=jane.doe+x@example.com, id=42}"
            ),
            "Variable 'input' has an invalid value: {email=<redacted>, id=42}"
        );
        assert_eq!(
            redact_emails("\"zoë@exämple.de\" failed"),
            "\"<redacted>\" failed"
        );
        assert_eq!(redact_emails("no address here"), "no address here");
    }
}
