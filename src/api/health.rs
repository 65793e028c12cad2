//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the legacy database
//! answers too).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    OpenApi,
    payload::{Json, PlainText},
};

use super::{ApiTags, AppState, dto::HealthResponse};
use crate::{
    error::{ApiError, Error},
    metrics::Snapshot,
};

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
        })
    }

    /// Prometheus metrics
    ///
    /// The text exposition format: requests by route, method and status with a latency
    /// histogram; logins by tenant and outcome; lockouts; open tenant pools; hashing queue
    /// depth; build info.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&Arc<AppState>>) -> PlainText<String> {
        PlainText(state.metrics.encode(Snapshot {
            open_tenant_pools: state.registry.open_pools(),
            hashing_queue_depth: u64::try_from(state.auth.hasher.in_flight()).unwrap_or(u64::MAX),
        }))
    }

    /// Readiness
    ///
    /// 200 when the legacy database (and Redis, when configured) answers; 503 otherwise.
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
        if let Some(redis) = state.registry.redis() {
            redis.ping().await.map_err(|e| {
                tracing::warn!(error = %e, "readiness check failed");
                Error::Unavailable {
                    detail: "Redis unreachable".into(),
                    retry_after_seconds: 5,
                }
            })?;
        }
        Ok(Json(HealthResponse {
            status: "ok".into(),
        }))
    }
}
