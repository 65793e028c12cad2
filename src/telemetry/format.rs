//! The line formatter: [`LineFormat`] writes one event as one line of `key=value` text or
//! one JSON object, escaping every character [`must_escape`] names wherever it appears, with a
//! timestamp formatted once a second and per-thread scratch space for `Debug` values.

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
    time::{SystemTime, UNIX_EPOCH},
};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// One line per event: `2026-11-26T03:34:42.036281Z  INFO target: message key=value …`, or
/// `{"timestamp":…,"level":…,"target":…,"message":…,"key":value,…}` (fields flattened). Text
/// lines colour the level when the writer has ANSI enabled (an interactive terminal); nothing
/// else in a line ever carries a raw control character.
#[derive(Debug, Clone, Copy)]
pub enum LineFormat {
    Text,
    Json,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = meta.level().as_str();
        let timestamp = |w: &mut Writer<'_>| TIMESTAMP.with_borrow_mut(|t| w.write_str(t.now()));
        match self {
            LineFormat::Text => {
                timestamp(&mut w)?;
                if w.has_ansi_escapes() {
                    let colour = match *meta.level() {
                        tracing::Level::ERROR => "31",
                        tracing::Level::WARN => "33",
                        tracing::Level::INFO => "32",
                        tracing::Level::DEBUG => "34",
                        tracing::Level::TRACE => "35",
                    };
                    write!(w, " \x1b[{colour}m{level:>5}\x1b[0m ")?;
                } else {
                    write!(w, " {level:>5} ")?;
                }
                Escaper::plain(&mut w).write_str(meta.target())?;
                w.write_str(": ")?;
                // The message first, then the other fields.
                let mut message = TextFields::new(&mut w, Pass::Message);
                event.record(&mut message);
                message.result?;
                let mut fields = TextFields::new(&mut w, Pass::Fields);
                event.record(&mut fields);
                fields.result?;
                w.write_char('\n')
            }
            LineFormat::Json => {
                w.write_str("{\"timestamp\":\"")?;
                timestamp(&mut w)?;
                write!(w, "\",\"level\":\"{level}\",\"target\":")?;
                json_string(&mut w, meta.target())?;
                let mut fields = JsonFields {
                    w: &mut w,
                    result: Ok(()),
                };
                event.record(&mut fields);
                fields.result?;
                w.write_str("}\n")
            }
        }
    }
}

thread_local! {
    static TIMESTAMP: RefCell<Timestamp> = const { RefCell::new(Timestamp { second: u64::MAX, text: String::new() }) };
    /// Scratch space for fields given as `Debug` or `Display` values (their text is needed
    /// whole before it is escaped).
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// RFC 3339 UTC with microseconds; the part up to the second is formatted once a second.
struct Timestamp {
    second: u64,
    text: String,
}

impl Timestamp {
    fn now(&mut self) -> &str {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if since.as_secs() != self.second {
            self.second = since.as_secs();
            let at = i64::try_from(self.second)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            self.text.clear();
            let _ = write!(
                self.text,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            );
        }
        self.text.truncate(20);
        let _ = write!(self.text, "{:06}Z", since.subsec_micros());
        &self.text
    }
}

#[derive(PartialEq)]
enum Pass {
    Message,
    Fields,
}

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

/// Writes text with `\\`, `\n`, `\r`, `\t` and `\u{…}` escapes for every [`must_escape`]
/// character (and `\"` inside a quoted value), so text written through it is one line and can
/// be read back exactly.
struct Escaper<'a, W: fmt::Write> {
    w: &'a mut W,
    /// Inside a quoted value: `"` is escaped too.
    quoted: bool,
}

impl<'a, W: fmt::Write> Escaper<'a, W> {
    /// For message text, targets and field names (not quoted).
    fn plain(w: &'a mut W) -> Self {
        Self { w, quoted: false }
    }
}

impl<W: fmt::Write> fmt::Write for Escaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
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

/// A text value: bare when it is non-empty and holds no space, `"`, `=` or [`must_escape`]
/// character (a bare value is literal, up to the next space), else quoted with escapes.
fn text_value(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let bare = !s.is_empty()
        && !s
            .chars()
            .any(|c| matches!(c, ' ' | '"' | '=') || must_escape(c));
    if bare {
        return w.write_str(s);
    }
    w.write_char('"')?;
    Escaper { w, quoted: true }.write_str(s)?;
    w.write_char('"')
}

/// `key=value` fields; values with spaces, quotes, `=` or control characters (or empty) are
/// quoted and escaped.
struct TextFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    pass: Pass,
    result: fmt::Result,
}

impl<'a, 'w> TextFields<'a, 'w> {
    fn new(w: &'a mut Writer<'w>, pass: Pass) -> Self {
        Self {
            w,
            pass,
            result: Ok(()),
        }
    }

    fn value(&mut self, field: &Field, value: fmt::Arguments<'_>, text: Option<&str>) {
        let is_message = field.name() == "message";
        if self.result.is_err() || is_message != (self.pass == Pass::Message) {
            return;
        }
        self.result = if is_message {
            Escaper::plain(&mut *self.w).write_fmt(value)
        } else {
            self.w
                .write_char(' ')
                .and_then(|()| Escaper::plain(&mut *self.w).write_str(field.name()))
                .and_then(|()| self.w.write_char('='))
                .and_then(|()| match text {
                    Some(s) => text_value(self.w, s),
                    // A `Debug` or `Display` value: its text is needed whole to choose bare
                    // or quoted.
                    None => SCRATCH.with_borrow_mut(|scratch| {
                        scratch.clear();
                        scratch.write_fmt(value)?;
                        text_value(self.w, scratch)
                    }),
                })
        };
    }
}

impl Visit for TextFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.value(field, format_args!("{value}"), Some(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.value(field, format_args!("{value:?}"), None);
    }
}

/// JSON members `,"key":value` for every field.
struct JsonFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    fn member(&mut self, field: &Field, write: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .w
                .write_char(',')
                .and_then(|()| json_string(self.w, field.name()))
                .and_then(|()| self.w.write_char(':'))
                .and_then(|()| write(self.w));
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field, |w| write!(w, "{value}"));
        } else {
            // JSON has no NaN or infinity.
            self.member(field, |w| write!(w, "\"{value}\""));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| json_string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            SCRATCH.with_borrow_mut(|scratch| {
                scratch.clear();
                write!(scratch, "{value:?}")?;
                json_string(w, scratch)
            })
        });
    }
}

/// `s` as a JSON string literal, every [`must_escape`] character escaped (`\n`, `\r`, `\t` or
/// `\uXXXX`; JSON itself demands it only of C0 controls).
fn json_string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    let mut plain = 0;
    for (i, c) in s.char_indices() {
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
