//! The access log: one line per request, the most frequent event by far. [`AccessLine::log`]
//! writes it as the `tracing` event `request` of target [`TARGET`] would be written by
//! [`LineFormat`], byte for byte, but without going through `tracing`'s field machinery
//! (a value set, a visitor call per field, each value's `Value` dispatch): once [`init`]
//! has installed the server's subscriber, the line is formatted straight from the struct and
//! appended to the same batch. That path cost 13% of a token check's instructions
//! (callgrind); this one costs a third of it. The filter still decides: the line is written
//! only when `RUST_LOG` enables `info` for [`TARGET`] ([`enabled`]). Without the server's
//! subscriber (a test's own, or none) the line goes through `tracing` as any other event.
//!
//! [`init`]: super::init

use std::{cell::RefCell, fmt::Write as _, sync::OnceLock};

use tracing::Level;

use super::{
    BatchWriter, LineFormat,
    escape::{Digits, Escaper, i64_text, json_string, text_value, u64_text},
    format::{LevelText, timestamp},
};

/// The target of access lines (the module that served requests before this one wrote them).
pub const TARGET: &str = "vigia::api";

/// The access line of one answered request.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    /// The path, never the query (it may hold personal data).
    pub path: &'a str,
    pub status: u16,
    pub micros: u64,
    /// Who asked, when the request carried an accepted token.
    pub caller: Option<AccessCaller<'a>>,
}

/// The authenticated caller of a logged request.
#[derive(Debug, Clone, Copy)]
pub struct AccessCaller<'a> {
    /// The tenant ID, or `legacy`.
    pub tenant: &'a str,
    pub user_id: i64,
    /// The token's `trace` (its login's correlation ID).
    pub trace: &'a str,
}

/// Where the server's subscriber writes, for lines written around it.
pub(super) struct Direct {
    pub format: LineFormat,
    pub ansi: bool,
    pub writer: BatchWriter,
}

pub(super) static DIRECT: OnceLock<Direct> = OnceLock::new();

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Whether access lines are written at all (the filter enables `info` for [`TARGET`]): a
/// cached answer after the first request.
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, Level::INFO)
}

impl AccessLine<'_> {
    /// Writes the line (the caller has checked [`enabled`]).
    pub fn log(&self) {
        match DIRECT.get() {
            Some(direct) => LINE.with_borrow_mut(|line| {
                line.clear();
                self.format(line, direct.format, direct.ansi);
                // As the subscriber does with a line its writer refuses: nothing to tell.
                let _ = direct.writer.line(line.as_bytes());
            }),
            None => self.emit(),
        }
    }

    /// The line as a `tracing` event.
    pub(super) fn emit(&self) {
        let caller = self.caller.as_ref();
        tracing::info!(
            target: TARGET,
            request_id = self.request_id,
            method = self.method,
            path = self.path,
            status = self.status,
            micros = self.micros,
            tenant = caller.map(|c| c.tenant),
            user_id = caller.map(|c| c.user_id),
            trace = caller.map(|c| c.trace),
            "request"
        );
    }

    /// The line as [`LineFormat`] writes [`Self::emit`]'s event.
    pub(super) fn format(&self, w: &mut String, format: LineFormat, ansi: bool) {
        let level = LevelText::of(Level::INFO);
        let mut digits = Digits::default();
        // Writing into a `String` cannot fail.
        match format {
            LineFormat::Text => {
                let _ = timestamp(w);
                w.push_str(if ansi { level.coloured } else { level.plain });
                let _ = Escaper::plain(w).write_str(TARGET);
                w.push_str(": request request_id=");
                let _ = text_value(w, self.request_id);
                w.push_str(" method=");
                let _ = text_value(w, self.method);
                w.push_str(" path=");
                let _ = text_value(w, self.path);
                w.push_str(" status=");
                w.push_str(u64_text(&mut digits, self.status.into()));
                w.push_str(" micros=");
                w.push_str(u64_text(&mut digits, self.micros));
                if let Some(caller) = &self.caller {
                    w.push_str(" tenant=");
                    let _ = text_value(w, caller.tenant);
                    w.push_str(" user_id=");
                    w.push_str(i64_text(&mut digits, caller.user_id));
                    w.push_str(" trace=");
                    let _ = text_value(w, caller.trace);
                }
                w.push('\n');
            }
            LineFormat::Json => {
                w.push_str("{\"timestamp\":\"");
                let _ = timestamp(w);
                w.push_str(level.json);
                let _ = json_string(w, TARGET);
                w.push_str(",\"message\":\"request\",\"request_id\":");
                let _ = json_string(w, self.request_id);
                w.push_str(",\"method\":");
                let _ = json_string(w, self.method);
                w.push_str(",\"path\":");
                let _ = json_string(w, self.path);
                w.push_str(",\"status\":");
                w.push_str(u64_text(&mut digits, self.status.into()));
                w.push_str(",\"micros\":");
                w.push_str(u64_text(&mut digits, self.micros));
                if let Some(caller) = &self.caller {
                    w.push_str(",\"tenant\":");
                    let _ = json_string(w, caller.tenant);
                    w.push_str(",\"user_id\":");
                    w.push_str(i64_text(&mut digits, caller.user_id));
                    w.push_str(",\"trace\":");
                    let _ = json_string(w, caller.trace);
                }
                w.push_str("}\n");
            }
        }
    }
}
