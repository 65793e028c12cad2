//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the legacy database
//! answers too).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{OpenApi, payload::Json};

use super::{ApiTags, AppState, dto::HealthResponse};
use crate::error::{ApiError, Error};

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

    /// Readiness
    ///
    /// 200 when the legacy database answers; 503 otherwise.
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
        Ok(Json(HealthResponse {
            status: "ok".into(),
        }))
    }
}
