//! Escaping for log lines: which characters may never appear raw ([`must_escape`]), the text
//! escaper for messages, targets, field names and quoted values, the bare-or-quoted choice for
//! text values, JSON string literals, and integers written without `fmt` machinery.
//!
//! Every writer here first copies the longest prefix that needs no attention in one
//! `write_str` (a byte scan: printable ASCII other than the characters the context escapes),
//! then continues character by character from the first byte that does. Escaping is a
//! per-character map, so the result is the same as escaping every character one by one; the
//! property tests in `escape_tests.rs` compare both on arbitrary text.

use std::fmt::{self, Write as _};

/// Whether `c` may never appear raw in a log line: the C0 controls (line feed, carriage
/// return, tab, ESC, …), DEL, the C1 controls (NEL, CSI, …), the Unicode line and paragraph
/// separators (U+2028, U+2029: line breaks to many viewers), and the bidirectional formatting
/// controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), which reorder what a
/// terminal or log viewer shows without changing the bytes.
pub fn must_escape(c: char) -> bool {
    matches!(
        c,
        '\0'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// The length of the longest prefix of `s` that is printable ASCII (space to `~`) holding no
/// `\` and, when `quote` is set, no `"`: text that every escaper here copies unchanged. It
/// ends before a non-ASCII byte, so it always ends on a character boundary.
fn clean_prefix(s: &str, quote: bool) -> usize {
    s.bytes()
        .position(|b| !matches!(b, b' '..=b'~') || b == b'\\' || (quote && b == b'"'))
        .unwrap_or(s.len())
}

/// Writes text with `\\`, `\n`, `\r`, `\t` and `\u{…}` escapes for every [`must_escape`]
/// character (and `\"` inside a quoted value), so text written through it is one line and can
/// be read back exactly.
pub(super) struct Escaper<'a, W: fmt::Write> {
    w: &'a mut W,
    /// Inside a quoted value: `"` is escaped too.
    quoted: bool,
}

impl<'a, W: fmt::Write> Escaper<'a, W> {
    /// For message text, targets and field names (not quoted).
    pub(super) fn plain(w: &'a mut W) -> Self {
        Self { w, quoted: false }
    }

    /// For the inside of a quoted text value.
    pub(super) fn quoted(w: &'a mut W) -> Self {
        Self { w, quoted: true }
    }
}

impl<W: fmt::Write> fmt::Write for Escaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let clean = clean_prefix(s, self.quoted);
        if clean == s.len() {
            return self.w.write_str(s);
        }
        let mut plain = 0;
        for (i, c) in s[clean..].char_indices() {
            let i = clean + i;
            let escape = match c {
                '\\' => "\\\\",
                '"' if self.quoted => "\\\"",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if must_escape(c) => "",
                _ => continue,
            };
            self.w.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.w, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                self.w.write_str(escape)?;
            }
            plain = i + c.len_utf8();
        }
        self.w.write_str(&s[plain..])
    }
}

/// Whether a text value may be written bare: it is non-empty and holds no space, `"`, `=` or
/// [`must_escape`] character (a bare value is literal, up to the next space).
pub(super) fn is_bare(s: &str) -> bool {
    let Some(attention) = s
        .bytes()
        .position(|b| !matches!(b, b'!'..=b'~') || b == b'"' || b == b'=')
    else {
        return !s.is_empty();
    };
    // Only a non-ASCII character may still be bare: look at the rest character by character.
    s.as_bytes()[attention] >= 0x80
        && !s[attention..]
            .chars()
            .any(|c| matches!(c, ' ' | '"' | '=') || must_escape(c))
}

/// A text value: bare when [`is_bare`], else quoted with escapes.
pub(super) fn text_value(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    if is_bare(s) {
        return w.write_str(s);
    }
    w.write_char('"')?;
    Escaper::quoted(w).write_str(s)?;
    w.write_char('"')
}

/// `s` as a JSON string literal, every [`must_escape`] character escaped (`\n`, `\r`, `\t` or
/// `\uXXXX`; JSON itself demands it only of C0 controls).
pub(super) fn json_string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    let clean = clean_prefix(s, true);
    if clean == s.len() {
        w.write_str(s)?;
        return w.write_char('"');
    }
    let mut plain = 0;
    for (i, c) in s[clean..].char_indices() {
        let i = clean + i;
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if must_escape(c) => "",
            _ => continue,
        };
        w.write_str(&s[plain..i])?;
        if escape.is_empty() {
            // Every such character is in the Basic Multilingual Plane: four digits suffice.
            write!(w, "\\u{:04x}", u32::from(c))?;
        } else {
            w.write_str(escape)?;
        }
        plain = i + c.len_utf8();
    }
    w.write_str(&s[plain..])?;
    w.write_char('"')
}

/// Room for any `u64` or `i64` in decimal: `18446744073709551615` and
/// `-9223372036854775808` are both 20 characters.
pub(super) type Digits = [u8; 20];

/// `value` in decimal (as `Display` writes it), written into the end of `buf`.
pub(super) fn u64_text(buf: &mut Digits, value: u64) -> &str {
    let start = write_digits(buf, value);
    std::str::from_utf8(&buf[start..]).expect("BUG: decimal digits are ASCII")
}

/// `value` in decimal with a leading `-` when negative (as `Display` writes it).
pub(super) fn i64_text(buf: &mut Digits, value: i64) -> &str {
    let mut start = write_digits(buf, value.unsigned_abs());
    if value < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    std::str::from_utf8(&buf[start..]).expect("BUG: decimal digits are ASCII")
}

/// Writes the decimal digits of `value` at the end of `buf`; where they start.
fn write_digits(buf: &mut Digits, mut value: u64) -> usize {
    let mut start = buf.len();
    loop {
        start -= 1;
        // The remainder is below 10: the cast cannot truncate.
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return start;
        }
    }
}
