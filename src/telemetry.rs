//! Logging: `tracing` to stderr, readable in development and JSON in production; the level
//! comes from `RUST_LOG` (default `info`). Lines are written by a background thread, so a
//! request never waits on the terminal or the log collector; the buffer is not lossy (a full
//! buffer slows the writer down rather than dropping, say, a lockout alert).

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::Environment;

/// Installs the global subscriber; keep the guard until exit, it flushes the last lines.
pub fn init(environment: Environment) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,poem=info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let _ = match environment {
        Environment::Production => builder.json().flatten_event(true).try_init(),
        Environment::Development => builder.compact().try_init(),
    };
    guard
}
