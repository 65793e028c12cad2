//! Logging: `tracing` to stderr, readable in development and JSON in production; the level
//! comes from `RUST_LOG` (default `info`).

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::Environment;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(environment: Environment) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,poem=info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match environment {
        Environment::Production => builder.json().flatten_event(true).try_init(),
        Environment::Development => builder.compact().try_init(),
    };
}
