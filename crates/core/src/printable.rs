//! Text from outside the process, made safe to show: in the log, on a terminal, in a stored
//! caller identity. A caller ID or Request-URI is percent-decoded, so `%0d%0a` becomes a line
//! break that forges log lines and `%1b[` an escape that recolours `astreinte tickets list`.
//!
//! - [`escaped`] writes every control character visibly (`\r`, `\n`, `\u{1b}`): for logs.
//! - [`for_terminal`] does the same but keeps line breaks: for the CLI, whose own output has
//!   lines (stored caller identities never hold one: see [`identity`]).
//! - [`identity`] is how a caller's number or name is kept: controls dropped, bounded.
//! - [`log_fields`] formats every field of a tracing event through [`escaped`].

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal or a log as is: C0 and C1 controls, DEL, and the
/// Unicode controls that reorder or break lines (bidi overrides and isolates, line and
/// paragraph separators).
pub fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let keep = |c: char| !is_control(c) || (keep_newlines && c == '\n');
    if s.chars().all(keep) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if keep(c) => out.push(c),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// `s` with every control character written as an escape: one line, no terminal effect.
pub fn escaped(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// `s` with every control character but the line break written as an escape.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// Longest caller identity kept (a number, a display name).
pub const MAX_IDENTITY_CHARS: usize = 128;

/// A caller's number or display name as the engine keeps it: control characters removed (a
/// line break or escape in a caller ID is never information), surrounding blanks trimmed, at
/// most [`MAX_IDENTITY_CHARS`] characters.
pub fn identity(s: &str) -> String {
    s.chars()
        .filter(|c| !is_control(*c))
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_IDENTITY_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_written_visibly() {
        assert_eq!(escaped("plain 514-555"), "plain 514-555");
        assert!(matches!(escaped("plain"), Cow::Borrowed(_)));
        assert_eq!(escaped("a\r\nINFO forged"), "a\\r\\nINFO forged");
        assert_eq!(escaped("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escaped("nul\0del\u{7f}"), "nul\\u{0}del\\u{7f}");
        assert_eq!(escaped("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(escaped("rtl\u{202e}gnp.exe"), "rtl\\u{202e}gnp.exe");
        assert_eq!(escaped("é café"), "é café");
        assert_eq!(for_terminal("line\nnext\r"), "line\nnext\\r");
    }

    #[test]
    fn identities_lose_their_controls_and_are_bounded() {
        assert_eq!(identity(" +1514\r\n5550100\u{1b}[2J "), "+15145550100[2J");
        assert_eq!(identity("Café \u{202e}Dépanneur"), "Café Dépanneur");
        assert_eq!(identity(&"9".repeat(500)).len(), MAX_IDENTITY_CHARS);
        assert_eq!(identity("\r\n"), "");
    }
}
