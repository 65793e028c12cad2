//! The line formatter: [`LineFormat`] writes one event as one line of `key=value` text or
//! one JSON object, escaping every character [`must_escape`](super::must_escape) names wherever
//! it appears (see [`escape`](super::escape)), with a timestamp formatted once a second and
//! per-thread scratch space for `Debug` values. Integers, booleans and strings are written
//! directly; only `Debug` and `Display` values go through the scratch space.

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
    time::{SystemTime, UNIX_EPOCH},
};

use tracing::{
    Event, Level, Subscriber,
    field::{Field, FieldSet, Visit},
};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

use super::escape::{Digits, Escaper, i64_text, json_string, text_value, u64_text};

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
        let level = LevelText::of(*meta.level());
        match self {
            LineFormat::Text => {
                timestamp(&mut w)?;
                if w.has_ansi_escapes() {
                    w.write_str(level.coloured)?;
                } else {
                    w.write_str(level.plain)?;
                }
                Escaper::plain(&mut w).write_str(meta.target())?;
                w.write_str(": ")?;
                // The message first, then the other fields: in one pass when the message can
                // only be the first field visited, else in two.
                let mut pass = Pass::single(meta.fields());
                if pass != Pass::Abandoned {
                    let mut single = TextFields::new(&mut w, pass);
                    event.record(&mut single);
                    single.result?;
                    pass = single.pass;
                }
                if pass == Pass::Abandoned {
                    let mut message = TextFields::new(&mut w, Pass::Message);
                    event.record(&mut message);
                    message.result?;
                    let mut fields = TextFields::new(&mut w, Pass::Fields);
                    event.record(&mut fields);
                    fields.result?;
                }
                w.write_char('\n')
            }
            LineFormat::Json => {
                w.write_str("{\"timestamp\":\"")?;
                timestamp(&mut w)?;
                w.write_str(level.json)?;
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

/// A level's fixed text in each format (what `{level:>5}` and `{level}` gave, spelled out).
pub(super) struct LevelText {
    /// ` INFO ` in a text line.
    pub plain: &'static str,
    /// The same with the level name coloured, at a terminal.
    pub coloured: &'static str,
    /// From the end of the timestamp to the start of the target in a JSON line.
    pub json: &'static str,
}

impl LevelText {
    pub(super) fn of(level: Level) -> Self {
        macro_rules! text {
            ($padded:literal, $name:literal, $colour:literal) => {
                LevelText {
                    plain: concat!(" ", $padded, " "),
                    coloured: concat!(" \x1b[", $colour, "m", $padded, "\x1b[0m "),
                    json: concat!("\",\"level\":\"", $name, "\",\"target\":"),
                }
            };
        }
        match level {
            Level::ERROR => text!("ERROR", "ERROR", "31"),
            Level::WARN => text!(" WARN", "WARN", "33"),
            Level::INFO => text!(" INFO", "INFO", "32"),
            Level::DEBUG => text!("DEBUG", "DEBUG", "34"),
            Level::TRACE => text!("TRACE", "TRACE", "35"),
        }
    }
}

thread_local! {
    static TIMESTAMP: RefCell<Timestamp> = const { RefCell::new(Timestamp { second: u64::MAX, text: String::new() }) };
    /// Scratch space for fields given as `Debug` or `Display` values (their text is needed
    /// whole before it is escaped).
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Writes the time now as a line's timestamp.
pub(super) fn timestamp(w: &mut impl fmt::Write) -> fmt::Result {
    TIMESTAMP.with_borrow_mut(|t| w.write_str(t.now()))
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
        // Six digits, zero-padded (below a million, as `{:06}` wrote them).
        let mut micros = since.subsec_micros();
        let mut digits = [b'0'; 6];
        for digit in digits.iter_mut().rev() {
            // The remainder is below 10: the cast cannot truncate.
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        self.text.extend(digits.map(char::from));
        self.text.push('Z');
        &self.text
    }
}

/// Which of an event's fields a pass over them writes.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    /// Only `message`.
    Message,
    /// Everything but `message`.
    Fields,
    /// Everything, the message first, in one pass: only for events whose `message` field, if
    /// any, is the first of their field set. tracing's macros visit the fields in field-set
    /// order, so the message is then the first field visited, as in the two passes.
    Single {
        /// The field set has a message field (first).
        message: bool,
        /// A field has been visited.
        started: bool,
        /// A field other than the message has been written.
        fields: bool,
    },
    /// The single pass gave up before writing anything (the event's first field visited was
    /// not its message): [`Pass::Message`] and [`Pass::Fields`] write the line instead.
    Abandoned,
}

impl Pass {
    /// One pass if `fields` names `message` first or not at all, else two.
    fn single(fields: &FieldSet) -> Self {
        let mut message = false;
        for (i, field) in fields.iter().enumerate() {
            if field.name() == "message" {
                if i > 0 {
                    return Pass::Abandoned;
                }
                message = true;
            }
        }
        Pass::Single {
            message,
            started: false,
            fields: false,
        }
    }
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

    /// Whether this pass writes `field` now, and if so whether it is the message.
    fn admit(&mut self, field: &Field) -> Option<bool> {
        if self.result.is_err() {
            return None;
        }
        let is_message = field.name() == "message";
        match &mut self.pass {
            Pass::Message => is_message.then_some(true),
            Pass::Fields => (!is_message).then_some(false),
            Pass::Abandoned => None,
            Pass::Single {
                message,
                started,
                fields,
            } => {
                if *message && !*started && !is_message {
                    // The message may still come (a field set in a hand-built order): let the
                    // two passes put it first. Nothing has been written yet.
                    self.pass = Pass::Abandoned;
                    return None;
                }
                *started = true;
                // A message after other fields can only come from a hand-built value set that
                // lists the message field twice; it is then written as a field.
                *fields |= !is_message;
                Some(is_message && !*fields)
            }
        }
    }

    /// Writes `field` with its value: `text` when the value is a string, else `value`'s text.
    fn value(&mut self, field: &Field, value: fmt::Arguments<'_>, text: Option<&str>) {
        let Some(is_message) = self.admit(field) else {
            return;
        };
        self.result = if is_message {
            let mut escaper = Escaper::plain(&mut *self.w);
            match text {
                Some(s) => escaper.write_str(s),
                None => escaper.write_fmt(value),
            }
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
    fn record_i64(&mut self, field: &Field, value: i64) {
        // Digits (and a `-`) are always bare, exactly as `Debug` wrote them.
        let mut buf = Digits::default();
        let text = i64_text(&mut buf, value);
        self.value(field, format_args!("{text}"), Some(text));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let mut buf = Digits::default();
        let text = u64_text(&mut buf, value);
        self.value(field, format_args!("{text}"), Some(text));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        let text = if value { "true" } else { "false" };
        self.value(field, format_args!("{text}"), Some(text));
    }

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
        self.member(field, |w| {
            w.write_str(i64_text(&mut Digits::default(), value))
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| {
            w.write_str(u64_text(&mut Digits::default(), value))
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| w.write_str(if value { "true" } else { "false" }));
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
