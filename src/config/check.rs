//! The checks every load makes ([`Settings::check`]) and the one only `serve` makes
//! ([`Settings::check_serving`]): settings that parse but cannot be run are refused with one
//! line saying what to change.

use anyhow::bail;
use secrecy::ExposeSecret;

use super::{Environment, JwtSecrets, Settings};

impl Settings {
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if let Some(secrets) = &self.jwt.secret
            && secrets.list().is_empty()
        {
            bail!("jwt.secret is empty");
        }
        if self.environment == Environment::Production {
            let secrets = self
                .jwt
                .secret
                .as_ref()
                .map(JwtSecrets::list)
                .unwrap_or_default();
            if secrets.is_empty() {
                bail!(
                    "environment \"production\" needs a JWT secret: set VIGIA__JWT__SECRET (or \
                     jwt.secret) to 32 or more random bytes, e.g. `openssl rand -hex 32`"
                );
            }
            if secrets.iter().any(|s| s.len() < 32) {
                bail!(
                    "production needs jwt.secret (VIGIA__JWT__SECRET): every secret at least 32 bytes"
                );
            }
        }
        if self.security.password_min_length < crate::domain::Password::MIN_CHARS {
            bail!(
                "security.password_min_length must be at least {}",
                crate::domain::Password::MIN_CHARS
            );
        }
        if self.security.lockout_threshold == 0 {
            bail!("security.lockout_threshold must be positive");
        }
        if let Some(token) = &self.admin.token
            && token.expose_secret().len() < 32
        {
            bail!("admin.token must be at least 32 characters");
        }
        if let Some(token) = &self.metrics.token
            && token.expose_secret().len() < 32
        {
            bail!("metrics.token must be at least 32 characters");
        }
        if self.security.session_idle_minutes == 0 || self.security.session_max_hours == 0 {
            bail!("security.session_idle_minutes and security.session_max_hours must be positive");
        }
        if self.jwt.ttl_minutes == 0 {
            bail!("jwt.ttl_minutes must be positive");
        }
        if self.jwt.audience.trim().is_empty() {
            bail!("jwt.audience must not be empty");
        }
        if let Some(url) = &self.server.public_url
            && !is_public_url(url)
        {
            bail!(
                "server.public_url must be an http:// or https:// URL with a host and no query \
                 or fragment, e.g. https://auth.example.com (got {url:?})"
            );
        }
        let server = &self.server;
        if server.header_read_timeout_seconds == 0
            || server.body_read_timeout_seconds == 0
            || server.keep_alive_timeout_seconds == 0
        {
            bail!("server.*_timeout_seconds must be positive");
        }
        if self.tenants.pool_cache_capacity == 0 {
            bail!("tenants.pool_cache_capacity must be positive");
        }
        if self.database.postgres_connections_per_server == 0
            || self.database.postgres_idle_seconds == 0
        {
            bail!(
                "database.postgres_connections_per_server and database.postgres_idle_seconds must be positive"
            );
        }
        Ok(())
    }

    /// The check only `serve` makes: `development` (an open password reset, demo credentials,
    /// a generated secret) is refused on a listen address other machines can reach, unless
    /// `server.allow_development_on_network` says that is meant. Not part of [`Settings::load`]:
    /// operators run the other commands (`tenant create`, `migrate`, …) with the server's
    /// configuration, listen address and all.
    pub fn check_serving(&self) -> anyhow::Result<()> {
        let listen = self.server.listen;
        if self.environment == Environment::Development
            && !listen.ip().to_canonical().is_loopback()
            && !self.server.allow_development_on_network
        {
            bail!(
                "refusing to serve environment \"development\" on {listen}, which is not a \
                 loopback address: development leaves the password reset open and seeds demo \
                 credentials. Set environment = \"production\" (VIGIA__ENVIRONMENT=production) \
                 with a jwt.secret of 32+ bytes (VIGIA__JWT__SECRET), or listen on 127.0.0.1, \
                 or set server.allow_development_on_network = true to accept the risk"
            );
        }
        Ok(())
    }
}

/// An absolute `http`/`https` URL with a host, an optional path, and nothing a base URL
/// cannot carry (query, fragment, user info, spaces or controls).
fn is_public_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or_default();
    !host.is_empty()
        && !rest.contains(['?', '#', '@', ' ', '\\'])
        && !rest.chars().any(char::is_control)
}
