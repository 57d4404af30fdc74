//! Env files: `KEY=value` lines, `#` comments, what `--env-file` (or `UC_ENV_FILE`) names and the
//! local stack writes. Reading one is all this does; nothing here knows about the local stack.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The variables in `text`: every `KEY=value` line that is not a `#` comment, both sides trimmed.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The variables in `file`.
pub fn read(file: &Path) -> std::io::Result<BTreeMap<String, String>> {
    Ok(parse(&std::fs::read_to_string(file)?))
}

/// The `--env-file F` / `--env-file=F` argument, found in the raw command line: the file has to
/// be read before the arguments are parsed, so that its variables can fill their `env` defaults.
pub fn from_args(args: &[String]) -> Option<PathBuf> {
    args.iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--env-file") {
            Some("") => args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_owned),
            None => None,
        })
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped_and_sides_trimmed() {
        let vars = parse(
            "# a comment\n\nQUEUE_URL = http://q\n  # indented comment\nEMPTY=\nA=b=c\nnot a pair\n",
        );
        let expected: BTreeMap<String, String> =
            [("QUEUE_URL", "http://q"), ("EMPTY", ""), ("A", "b=c")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert_eq!(vars, expected);
    }

    #[test]
    fn the_flag_is_found_in_both_spellings() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            from_args(&args(&["uc-ops", "--env-file", "x.env", "dlq", "stats"])),
            Some(PathBuf::from("x.env"))
        );
        assert_eq!(
            from_args(&args(&["uc-ops", "dlq", "--env-file=y.env", "stats"])),
            Some(PathBuf::from("y.env"))
        );
        assert_eq!(from_args(&args(&["uc-ops", "--env-filex", "dlq"])), None);
        assert_eq!(from_args(&args(&["uc-ops", "dlq", "stats"])), None);
    }
}
