//! Liveness (`/healthz`: the process answers), readiness (`/readyz`: the legacy database
//! answers too) and the Prometheus scrape (`/metrics`), which takes `metrics.token` as a bearer
//! token when one is configured.

use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{
    OpenApi, SecurityScheme,
    auth::Bearer,
    payload::{Json, PlainText},
};

use super::error::ApiError;
use super::{ApiTags, AppState, dto::HealthResponse, security::same_secret};
use crate::{error::Error, metrics::Snapshot};

/// The scrape token (`metrics.token`), as `Authorization: Bearer <token>`. Only with a
/// configured token; without one `/metrics` is open.
#[derive(SecurityScheme)]
#[oai(rename = "metrics", ty = "bearer", checker = "scraper")]
struct ScrapeToken(());

/// The matching scrape token, else `Anonymous`: the handler serves an anonymous scrape only
/// when no token is configured.
#[derive(SecurityScheme)]
enum Scraper {
    Token(ScrapeToken),
    #[oai(fallback)]
    Anonymous,
}

/// Accepts the configured scrape token; anything else falls back to [`Scraper::Anonymous`].
async fn scraper(req: &Request, bearer: Bearer) -> poem::Result<()> {
    let state = req
        .data::<Arc<AppState>>()
        .expect("BUG: routes() attaches AppState to every request");
    match &state.settings.metrics.token {
        Some(expected) if same_secret(&bearer.token, expected) => Ok(()),
        Some(_) => {
            tracing::warn!(alert = "bad_metrics_token", "refused a metrics scrape");
            Err(ApiError::from(Error::NotAuthenticated).into())
        }
        None => Err(ApiError::from(Error::NotAuthenticated).into()),
    }
}

#[derive(Default)]
pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// 200 while the process serves requests.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<HealthResponse> {
        Json(HealthResponse {
            status: "ok".into(),
            shared_state: None,
        })
    }

    /// Prometheus metrics
    ///
    /// The text exposition format: requests by route, method and status with a latency
    /// histogram; logins by outcome; lockouts; open tenant pools; hashing queue depth; build
    /// info. No tenant ID appears unless `metrics.per_tenant` is set (then logins and lockouts
    /// are by tenant too). With `metrics.token` configured, the scraper must send it as
    /// `Authorization: Bearer <token>` (else 401).
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(
        &self,
        state: Data<&Arc<AppState>>,
        scraper: Scraper,
    ) -> Result<PlainText<String>, ApiError> {
        if state.settings.metrics.token.is_some() && matches!(scraper, Scraper::Anonymous) {
            return Err(Error::NotAuthenticated.into());
        }
        Ok(PlainText(state.metrics.encode(Snapshot {
            open_tenant_pools: state.registry.open_pools(),
            hashing_queue_depth: u64::try_from(state.auth.hasher.in_flight()).unwrap_or(u64::MAX),
            shared_state_degraded: state.redis.as_ref().is_some_and(|r| r.is_degraded()),
            database_servers: state.registry.pool_settings().budgets.usage(),
        })))
    }

    /// Readiness
    ///
    /// 200 when the legacy database answers, 503 otherwise. With Redis configured but
    /// unreachable the answer is still 200 — logins and token checks go on without it, each
    /// replica throttling alone — with `status` `degraded` and `shared_state` `unreachable`,
    /// so a load balancer keeps the replica while monitoring sees the degradation.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&Arc<AppState>>) -> Result<Json<HealthResponse>, ApiError> {
        let legacy = state.registry.legacy().store().await;
        let ping = match legacy {
            Ok(store) => store.ping().await,
            Err(e) => Err(e),
        };
        ping.map_err(|e| {
            tracing::warn!(error = %e, "readiness check failed");
            Error::Unavailable {
                detail: "Legacy database unreachable".into(),
                retry_after_seconds: 5,
            }
        })?;
        let shared_state = match state.redis.as_ref() {
            None => None,
            Some(redis) => Some(match redis.ping().await {
                Ok(()) => "ok",
                Err(_) => "unreachable",
            }),
        };
        let status = if shared_state == Some("unreachable") {
            "degraded"
        } else {
            "ok"
        };
        Ok(Json(HealthResponse {
            status: status.into(),
            shared_state: shared_state.map(str::to_owned),
        }))
    }
}
