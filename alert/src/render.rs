//! Rendering notifications: the subject template, text and HTML bodies, webhook templates.
//!
//! Log lines are untrusted. Every value shown to a person goes through [`escape_visible`]
//! (control characters, ANSI escapes, line separators and bidi overrides become visible
//! `\n`, `\u{1b}`, … so a line can never forge another line, header or field); HTML
//! bodies also HTML-escape; subjects are single-line (no header injection); webhook
//! templates JSON-escape every value.

use std::fmt::Write as _;

use crate::notification::{Kind, Notification};

/// Placeholder names for subjects (`{name}`) and webhook templates (`{{name}}`).
const NAMES: &[&str] = &[
    "level",
    "rule_title",
    "rule_id",
    "count",
    "new",
    "host",
    "container",
    "channel",
    "kind",
    "link",
    "text",
    "idempotency_key",
];

fn value(n: &Notification, name: &str) -> String {
    let first = n.alerts.first();
    match name {
        "level" => n.level().to_string(),
        "rule_title" => n.title(),
        "rule_id" => first.map(|a| a.rule_id.clone()).unwrap_or_default(),
        "count" => (n.alerts.len() + n.omitted_alerts).to_string(),
        "new" => n.new_detections().to_string(),
        "host" => first.map(|a| a.host.clone()).unwrap_or_default(),
        "container" => first.and_then(|a| a.container.clone()).unwrap_or_default(),
        "channel" => n.channel.clone(),
        "kind" => match n.kind {
            Kind::Firing => "firing".to_owned(),
            Kind::Reminder => "reminder".to_owned(),
        },
        "link" => first.map(|a| a.link.clone()).unwrap_or_default(),
        "text" => text_body(n),
        "idempotency_key" => n.idempotency_key.clone(),
        _ => String::new(),
    }
}

/// Replaces `open name close` placeholders; unknown names are errors.
fn substitute(
    template: &str,
    open: &str,
    close: &str,
    mut f: impl FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        let after = &rest[start + open.len()..];
        let end = after
            .find(close)
            .ok_or_else(|| format!("unclosed placeholder after '{}'", &rest[..start]))?;
        let name = after[..end].trim();
        out.push_str(&f(name).ok_or_else(|| format!("unknown placeholder '{name}'"))?);
        rest = &after[end + close.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The subject: template filled in with escaped values, at most 200 chars, one line.
pub fn subject(template: &str, n: &Notification) -> String {
    let s = substitute(template, "{", "}", |name| {
        NAMES
            .contains(&name)
            .then(|| escape_visible(&value(n, name)))
    })
    .unwrap_or_else(|_| format!("[logward] {}: {}", n.level(), escape_visible(&n.title())));
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clean.chars().take(200).collect()
}

/// Checks a subject template (pure).
pub fn check_subject_template(t: &str) -> Result<(), String> {
    substitute(t, "{", "}", |name| NAMES.contains(&name).then(String::new))
        .map(drop)
        .map_err(|e| format!("email.subject: {e}"))
}

/// Renders a webhook body template: `{{name}}` becomes the value, made visible with
/// [`escape_visible`] (templates feed chat tools that people read; `text` is the escaped
/// text body) and JSON-escaped (without quotes); `{{payload}}` is the whole logward
/// payload as JSON, values exact.
pub fn webhook_body(template: &str, n: &Notification) -> Result<String, String> {
    substitute(template, "{{", "}}", |name| {
        if name == "payload" {
            return serde_json::to_string(n).ok();
        }
        NAMES.contains(&name).then(|| {
            let v = value(n, name);
            let v = if name == "text" {
                v
            } else {
                escape_visible(&v)
            };
            let quoted = serde_json::Value::String(v).to_string();
            quoted[1..quoted.len() - 1].to_owned()
        })
    })
}

/// Checks a webhook template: it must render to valid JSON for a hostile sample.
pub fn check_webhook_template(t: &str) -> Result<(), String> {
    let body = webhook_body(t, &crate::notification::sample())
        .map_err(|e| format!("webhook.template: {e}"))?;
    serde_json::from_str::<serde_json::Value>(&body)
        .map(drop)
        .map_err(|e| format!("webhook.template does not render to JSON: {e}"))
}

/// Makes a value safe to show: `\` is doubled; newline, CR, tab and NUL become `\n`,
/// `\r`, `\t`, `\0`; every other control character (C0, DEL, C1: so ANSI escapes lose
/// their ESC), the Unicode line and paragraph separators, bidi controls and zero-width
/// characters become `\u{hex}`. The result is one line that shows what the log said
/// and can be mapped back to the text without ambiguity.
pub fn escape_visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Format characters that can reorder, hide or break displayed text.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// The plain-text body; every value is escaped and stays on its own line.
pub fn text_body(n: &Notification) -> String {
    let o = escape_visible;
    let mut s = String::new();
    let _ = writeln!(s, "{} [{}] {}", kind_word(n.kind), n.level(), o(&n.title()));
    for a in &n.alerts {
        let _ = writeln!(s, "\n- rule: {} ({})", o(&a.rule_title), o(&a.rule_id));
        let _ = writeln!(s, "  level: {}", a.level);
        let _ = writeln!(s, "  host: {}", o(&a.host));
        if let Some(c) = &a.container {
            let _ = writeln!(
                s,
                "  container: {} ({})",
                o(c),
                o(a.image.as_deref().unwrap_or("-"))
            );
        }
        let _ = writeln!(
            s,
            "  count: {} ({} more since the last notification)",
            a.count, a.new_since_last
        );
        let _ = writeln!(s, "  seen: {} .. {}", a.first_seen, a.last_seen);
        for e in &a.samples {
            let _ = writeln!(s, "  event {}: {}", o(&e.id), o(&e.message));
            if let Some(b64) = &e.message_b64 {
                let _ = writeln!(
                    s,
                    "  event {} is not valid UTF-8; exact bytes (base64): {b64}",
                    o(&e.id)
                );
            }
        }
        let _ = writeln!(s, "  search: {}", a.link);
    }
    if n.omitted_alerts > 0 {
        let _ = writeln!(
            s,
            "\n…and {} more alerts ({} detections)",
            n.omitted_alerts, n.omitted_detections
        );
    }
    s
}

/// The HTML body; every value is escaped.
pub fn html_body(n: &Notification) -> String {
    let e = |v: &str| escape_html(&escape_visible(v));
    let mut s = String::from("<!DOCTYPE html><html><body style=\"font-family:sans-serif\">");
    let _ = write!(
        s,
        "<h2>{} [{}] {}</h2>",
        kind_word(n.kind),
        n.level(),
        e(&n.title())
    );
    for a in &n.alerts {
        let _ = write!(
            s,
            "<table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse;margin-bottom:1em\">"
        );
        let mut row = |k: &str, v: &str| {
            let _ = write!(s, "<tr><th align=\"left\">{k}</th><td>{}</td></tr>", e(v));
        };
        row("rule", &format!("{} ({})", a.rule_title, a.rule_id));
        row("level", a.level.as_str());
        row("host", &a.host);
        if let Some(c) = &a.container {
            row(
                "container",
                &format!("{c} ({})", a.image.as_deref().unwrap_or("-")),
            );
        }
        row(
            "count",
            &format!(
                "{} ({} more since the last notification)",
                a.count, a.new_since_last
            ),
        );
        row("seen", &format!("{} .. {}", a.first_seen, a.last_seen));
        for ev in &a.samples {
            let _ = write!(
                s,
                "<tr><th align=\"left\">event {}</th><td><pre>{}</pre></td></tr>",
                e(&ev.id),
                e(&ev.message)
            );
            if let Some(b64) = &ev.message_b64 {
                let _ = write!(
                    s,
                    "<tr><th align=\"left\">event {} bytes</th><td>not valid UTF-8; exact bytes (base64): <code>{}</code></td></tr>",
                    e(&ev.id),
                    e(b64)
                );
            }
        }
        let _ = write!(
            s,
            "<tr><th align=\"left\">search</th><td><a href=\"{0}\">{0}</a></td></tr></table>",
            e(&a.link)
        );
    }
    if n.omitted_alerts > 0 {
        let _ = write!(
            s,
            "<p>…and {} more alerts ({} detections)</p>",
            n.omitted_alerts, n.omitted_detections
        );
    }
    s.push_str("</body></html>");
    s
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Firing => "ALERT",
        Kind::Reminder => "REMINDER",
    }
}

/// Escapes `& < > " '` for HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::sample;

    fn check(template: &str, expected: Result<&str, ()>) {
        let got = webhook_body(template, &sample()).map_err(drop);
        assert_eq!(
            got.as_deref().map_err(|_| ()),
            expected,
            "template {template:?}"
        );
    }

    #[test]
    fn webhook_templates() {
        check(
            r#"{"text":"{{rule_title}}"}"#,
            Ok(r#"{"text":"<script>\"x\"</script>"}"#),
        );
        check(r#"{"n":{{count}}}"#, Ok(r#"{"n":1}"#));
        check(r#"{"x":"{{nope}}"}"#, Err(()));
        check(r#"{"x":"{{level"}"#, Err(()));
        assert!(check_webhook_template(r#"{"text":"{{text}}","k":"{{idempotency_key}}"}"#).is_ok());
        assert!(check_webhook_template(r#"{"text":{{text}}}"#).is_err());
        assert!(check_webhook_template(r#"{"p":{{payload}}}"#).is_ok());
    }

    fn check_escape(input: &str, expected: &str) {
        let got = escape_visible(input);
        assert_eq!(got, expected, "input {input:?}");
        assert!(
            !got.chars()
                .any(|c| c.is_control() || is_invisible_format(c)),
            "{got:?}"
        );
    }

    #[test]
    fn hostile_samples_are_made_visible() {
        check_escape("plain text é ✓", "plain text é ✓");
        check_escape("a\r\nSubject: x", r"a\r\nSubject: x");
        check_escape("\u{1b}[31mred\u{1b}[0m", r"\u{1b}[31mred\u{1b}[0m");
        check_escape("\u{1b}]0;title\u{7}", r"\u{1b}]0;title\u{7}");
        check_escape("nul\0tab\tdel\u{7f}", r"nul\0tab\tdel\u{7f}");
        check_escape("c1 \u{85} \u{9b}31m", r"c1 \u{85} \u{9b}31m");
        check_escape("ls\u{2028}ps\u{2029}", r"ls\u{2028}ps\u{2029}");
        check_escape(
            "bidi \u{202e}txt.exe \u{2066}x\u{2069}",
            r"bidi \u{202e}txt.exe \u{2066}x\u{2069}",
        );
        check_escape("zw\u{200b}\u{feff}", r"zw\u{200b}\u{feff}");
        check_escape(r"C:\dir\n", r"C:\\dir\\n");
        check_escape("bad \u{fffd} utf8", "bad \u{fffd} utf8");
    }

    #[test]
    fn hostile_sample_stays_on_its_lines() {
        let n = sample();
        let text = text_body(&n);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        for line in text.lines() {
            assert!(
                !line.starts_with("Subject:") && !line.starts_with("fake line"),
                "{text}"
            );
        }
        let e2 = concat!(
            r"event e2: \u{1b}[31mred\u{1b}[0m\r\nSubject: forged\r\n\r\nfake line\0 ",
            "\u{fffd}",
            r"\u{202e}"
        );
        assert!(text.contains(e2), "{text}");
        assert!(
            text.contains("event e2 is not valid UTF-8; exact bytes (base64): G1sz"),
            "{text}"
        );
        assert!(
            text.contains(r"host: web1\r\nBcc: evil@example.com"),
            "{text}"
        );
        let subj = subject("{rule_title} {host}", &n);
        assert_eq!(
            subj,
            r#"<script>"x"</script> web1\r\nBcc: evil@example.com"#
        );
        let html = html_body(&n);
        assert!(!html.chars().any(|c| c.is_control()), "{html:?}");
        assert!(html.contains(r"\u{1b}[31mred"), "{html}");
    }

    #[test]
    fn untrusted_values_cannot_escape() {
        let n = sample();
        let html = html_body(&n);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        let subj = subject("{rule_title} {host}", &n);
        assert!(!subj.contains('\n') && !subj.contains('\r'), "{subj}");
        assert!(check_subject_template("{level} {bogus}").is_err());
        assert!(check_subject_template("{level} {count}").is_ok());
    }
}
