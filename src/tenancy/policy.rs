//! A scope's security policy: the server's `[security]` keys with the tenant's overrides.

use super::SecurityOverrides;
use crate::config::SecuritySettings;

/// A scope's security policy: the server's `[security]` keys with the tenant's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityPolicy {
    pub lockout_threshold: u32,
    /// Seconds.
    pub lockout_window: i64,
    /// Seconds.
    pub lockout_duration: i64,
    pub password_min_length: usize,
    /// 0 = passwords never expire.
    pub password_max_age_days: u32,
    /// Seconds a session may go unrefreshed (and the longest an access token lives).
    pub session_idle: i64,
    /// Seconds a session lasts at most.
    pub session_max: i64,
}

impl SecurityPolicy {
    pub fn new(server: &SecuritySettings, tenant: &SecurityOverrides) -> Self {
        Self {
            lockout_threshold: tenant
                .lockout_threshold
                .unwrap_or(server.lockout_threshold)
                .max(1),
            lockout_window: 60
                * i64::from(
                    tenant
                        .lockout_window_minutes
                        .unwrap_or(server.lockout_window_minutes)
                        .max(1),
                ),
            lockout_duration: 60
                * i64::from(
                    tenant
                        .lockout_minutes
                        .unwrap_or(server.lockout_minutes)
                        .max(1),
                ),
            password_min_length: tenant
                .password_min_length
                .unwrap_or(server.password_min_length)
                .max(crate::domain::Password::MIN_CHARS),
            password_max_age_days: tenant
                .password_max_age_days
                .unwrap_or(server.password_max_age_days),
            session_idle: 60
                * i64::from(
                    tenant
                        .session_idle_minutes
                        .unwrap_or(server.session_idle_minutes)
                        .max(1),
                ),
            session_max: 3600
                * i64::from(
                    tenant
                        .session_max_hours
                        .unwrap_or(server.session_max_hours)
                        .max(1),
                ),
        }
    }
}
