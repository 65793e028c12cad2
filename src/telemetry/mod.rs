//! Logging: `tracing` to stderr, `key=value` text in development and one JSON object per line
//! in production; the level comes from `RUST_LOG` (default `info`).
//!
//! Lines are written by [`LineFormat`], never by tracing-subscriber's own formatters: those
//! Debug-format every field through ANSI styling or an intermediate map (about 6% of a token
//! check's CPU under load, perf), and its compact format writes message text raw.
//!
//! A log line cannot be forged: one event is always exactly one line, because every character
//! [`must_escape`] names (C0 and C1 controls, DEL, the Unicode line and paragraph separators,
//! the bidirectional controls) is escaped wherever it appears — message, field values, field
//! names, target — in both formats. Values stay recoverable: text values are bare or quoted
//! with `\"`, `\\`, `\n`, `\r`, `\t` and `\u{…}` escapes; JSON values are JSON strings. A
//! login name such as `"x\r\x1b[2K…"` therefore reaches the lockout alert line as
//! `username="x\r\u{1b}[2K…"`.
//!
//! Formatted lines are appended to an in-memory batch that a background thread writes out
//! [`FLUSH_INTERVAL`](writer::FLUSH_INTERVAL) after the batch's first line. A request therefore costs one copy under a
//! mutex: no system call, and at most one thread wake-up per batch rather than per line (a
//! channel per line, as `tracing-appender` does it, cost about 15% of token-check throughput
//! under load, measured with perf). The batch is not lossy: past [`HIGH_WATER`](writer::HIGH_WATER) bytes the
//! logging thread writes it out itself, so a flood slows its writers down rather than dropping,
//! say, a lockout alert.
//!
//! The pieces: [`format`] writes one event as one line; [`escape`] escapes and quotes its
//! text (copying runs of plain ASCII whole); [`writer`] batches the lines and writes them out
//! on its own thread.

use std::io;

use tracing_subscriber::EnvFilter;

use crate::config::Environment;

pub mod access;
mod escape;
mod format;
mod writer;

#[cfg(test)]
mod escape_tests;
#[cfg(test)]
mod tests;

pub use escape::must_escape;
pub use format::LineFormat;
pub use writer::{BatchWriter, LogGuard};

/// Installs the global subscriber; keep the guard until exit, it writes the last lines.
pub fn init(environment: Environment) -> LogGuard {
    let (writer, guard) = BatchWriter::spawn(Box::new(io::stderr()));
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,poem=info"));
    let terminal = io::IsTerminal::is_terminal(&io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_ansi(terminal);
    let format = match environment {
        // At a terminal the level is coloured (see `LineFormat::Text`); the text is the same.
        Environment::Development => LineFormat::Text,
        Environment::Production => LineFormat::Json,
    };
    if builder.event_format(format).try_init().is_ok() {
        // Access lines go straight to the same batch, formatted as this subscriber would.
        let _ = access::DIRECT.set(access::Direct {
            format,
            ansi: terminal,
            writer,
        });
    }
    guard
}
