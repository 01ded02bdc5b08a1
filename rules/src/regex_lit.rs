//! Required literals of a regular expression: text that every match must contain, so
//! that `|re` rules take part in the literal prefilter instead of running on every event.

use regex_syntax::ParserBuilder;
use regex_syntax::hir::{Hir, HirKind};

/// Shortest literal worth filtering on; shorter ones match nearly every event.
const MIN_LITERAL: usize = 3;

/// The longest ASCII literal that every match of `pattern` (compiled with these flags)
/// contains, if there is one of at least three bytes. Under case-insensitivity letters
/// are classes, not literals, so only case-free runs (digits, punctuation) can come out;
/// the prefilter compares ASCII case-insensitively, which only widens the candidates.
pub fn required_literal(
    pattern: &str,
    case_insensitive: bool,
    multi_line: bool,
    dot_matches_new_line: bool,
) -> Option<String> {
    let hir = ParserBuilder::new()
        .case_insensitive(case_insensitive)
        .multi_line(multi_line)
        .dot_matches_new_line(dot_matches_new_line)
        .build()
        .parse(pattern)
        .ok()?;
    let lit = required(&hir)?;
    (lit.len() >= MIN_LITERAL).then_some(lit)
}

/// The longest literal every match of `hir` contains.
fn required(hir: &Hir) -> Option<String> {
    match hir.kind() {
        HirKind::Literal(lit) => segments(&lit.0).max_by_key(|s| s.len()).map(str::to_owned),
        HirKind::Capture(c) => required(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub),
        HirKind::Concat(parts) => {
            let mut best: Option<String> = None;
            let mut run = String::new();
            let keep = |cand: Option<String>, best: &mut Option<String>| {
                if let Some(c) = cand
                    && best.as_ref().is_none_or(|b| c.len() > b.len())
                {
                    *best = Some(c);
                }
            };
            for p in parts {
                match p.kind() {
                    HirKind::Literal(lit) => {
                        // Non-ASCII bytes split the literal: its first ASCII segment
                        // continues the run, its last one starts the next.
                        let mut segs = segments(&lit.0).peekable();
                        if let Some(first) = segs.next() {
                            run.push_str(first);
                        }
                        while let Some(seg) = segs.next() {
                            keep(Some(std::mem::take(&mut run)), &mut best);
                            if segs.peek().is_some() {
                                keep(Some(seg.to_owned()), &mut best);
                            } else {
                                run.push_str(seg);
                            }
                        }
                    }
                    _ => {
                        keep(Some(std::mem::take(&mut run)), &mut best);
                        keep(required(p), &mut best);
                    }
                }
            }
            keep(Some(run), &mut best);
            best.filter(|b| !b.is_empty())
        }
        _ => None,
    }
}

/// The ASCII runs of a literal, split at every non-ASCII byte (empty runs included, so
/// that a literal starting or ending with one ends the run around it).
fn segments(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes
        .split(|b| !b.is_ascii())
        .map(|seg| std::str::from_utf8(seg).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, case_insensitive: bool, expected: Option<&str>) {
        assert_eq!(
            required_literal(pattern, case_insensitive, false, false).as_deref(),
            expected,
            "{pattern:?} (i = {case_insensitive})"
        );
    }

    #[test]
    fn literals_every_match_contains() {
        check(
            r#""level":"error".*sshd-3"#,
            false,
            Some(r#""level":"error""#),
        );
        check(r"curl .*\| *sh", false, Some("curl "));
        check(r"(wget|curl) http", false, Some(" http"));
        check(r"(?:abc){2,}x", false, Some("abc"));
        check(r"\d+\.\d+\.\d+\.\d+", false, None);
        check(r"abc|defg", false, None);
        check(r"ab", false, None);
        check(r"x?(abcd)?", false, None);
        check(r"Failed password", true, None);
        check(r"port 2222\.", true, Some(" 2222."));
        check(r"(unclosed", false, None);
        check(r"caf\x{e9} bar", false, Some(" bar"));
        check(r"\x{e9}t\x{e9}", false, None);
        check(r"abc\x{e9}defg.*h", false, Some("defg"));
    }
}
