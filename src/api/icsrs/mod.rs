//! `/api/v1/icsrs…`: a tenant's Individual Case Safety Reports, guarded by `icsr.view`,
//! `icsr.edit` and `icsr.delete`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::error::ApiError;
use super::{
    ApiTags, AppState,
    page::{Page, next_link},
    security::{IcsrDelete, IcsrEdit, IcsrView, Require},
    tenant::XTenant,
};
use crate::{
    domain::icsr::{CaseStatus, IcsrFilter, format_date, parse_safety_report_id},
    error::Error,
};

mod dto;

use self::dto::{IcsrPatchRequest, IcsrRequest, IcsrResponse};

#[derive(Default)]
pub struct IcsrsApi;

#[derive(ApiResponse)]
enum Created {
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<IcsrResponse>,
        /// The new case's URL.
        #[oai(header = "Location")]
        String,
    ),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted (the audit trail keeps it).
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(prefix_path = "/api/v1/icsrs", tag = "ApiTags::Icsrs")]
impl IcsrsApi {
    /// List ICSRs
    ///
    /// The tenant's live cases as a JSON list, newest first; needs `icsr.view`. Filters
    /// combine. More pages: follow the `Link: <…>; rel="next"` header.
    #[oai(path = "/", method = "get", operation_id = "list_icsrs")]
    #[allow(
        clippy::too_many_arguments,
        reason = "one parameter per documented query filter"
    )]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        auth: Require<IcsrView>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        /// `draft`, `in_review`, `submitted` or `closed`.
        status: Query<Option<String>>,
        /// Only serious (`true`) or non-serious (`false`) cases.
        serious: Query<Option<bool>>,
        /// Received on or after this date (`YYYY-MM-DD`).
        received_from: Query<Option<String>>,
        /// Received on or before this date (`YYYY-MM-DD`).
        received_to: Query<Option<String>>,
        /// Only the case with this sender's safety report id.
        safety_report_id: Query<Option<String>>,
        /// Only cases with a smaller ID (keyset cursor; see the `Link` header).
        before: Query<Option<i64>>,
        /// Page size, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<i64>>,
    ) -> Result<Page<IcsrResponse>, ApiError> {
        let date = |raw: &Option<String>, field: &str| {
            raw.as_deref()
                .map(|d| {
                    time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
                        .map_err(|_| Error::Validation(format!("{field} must be YYYY-MM-DD")))
                })
                .transpose()
        };
        let limit = limit.0.unwrap_or(50);
        let filter = IcsrFilter {
            status: status.0.as_deref().map(CaseStatus::parse).transpose()?,
            serious: serious.0,
            received_from: date(&received_from.0, "received_from")?,
            received_to: date(&received_to.0, "received_to")?,
            safety_report_id: safety_report_id
                .0
                .as_deref()
                .map(parse_safety_report_id)
                .transpose()?,
            before_id: before.0,
            limit: limit + 1,
        };
        let mut query = Vec::new();
        if let Some(status) = filter.status {
            query.push(("status", status.as_str().to_owned()));
        }
        if let Some(serious) = filter.serious {
            query.push(("serious", serious.to_string()));
        }
        if let Some(from) = filter.received_from {
            query.push(("received_from", format_date(from)));
        }
        if let Some(to) = filter.received_to {
            query.push(("received_to", format_date(to)));
        }
        if let Some(id) = &filter.safety_report_id {
            query.push(("safety_report_id", id.clone()));
        }
        let cases = state.icsrs.list(&auth.0, &filter).await?;
        Ok(next_link(
            cases,
            limit,
            |c| c.id,
            "/api/v1/icsrs",
            query,
            IcsrResponse::from,
        ))
    }

    /// Create an ICSR
    ///
    /// Needs `icsr.edit`. Audited with every value. 409 when a live case has the same
    /// `safety_report_id`.
    #[oai(path = "/", method = "post", operation_id = "create_icsr")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        auth: Require<IcsrEdit>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        body: Json<IcsrRequest>,
    ) -> Result<Created, ApiError> {
        let fields = body.0.parse()?;
        let icsr = state.icsrs.create(&auth.0, fields).await?;
        let location = format!("/api/v1/icsrs/{}", icsr.id);
        Ok(Created::Created(Json(icsr.into()), location))
    }

    /// Get an ICSR
    ///
    /// Needs `icsr.view`. A deleted case is 404.
    #[oai(path = "/:id", method = "get", operation_id = "get_icsr")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        auth: Require<IcsrView>,
        /// Case ID.
        id: Path<i64>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
    ) -> Result<Json<IcsrResponse>, ApiError> {
        Ok(Json(state.icsrs.get(&auth.0, id.0).await?.into()))
    }

    /// Change an ICSR
    ///
    /// Needs `icsr.edit`. Fields present replace the stored ones; the audit trail records
    /// each changed field's old and new value. Pass the `version` you read to refuse (409)
    /// overwriting someone else's change.
    #[oai(path = "/:id", method = "patch", operation_id = "update_icsr")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        auth: Require<IcsrEdit>,
        /// Case ID.
        id: Path<i64>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        body: Json<IcsrPatchRequest>,
    ) -> Result<Json<IcsrResponse>, ApiError> {
        let (patch, version) = body.0.parse()?;
        Ok(Json(
            state
                .icsrs
                .update(&auth.0, id.0, patch, version)
                .await?
                .into(),
        ))
    }

    /// Delete an ICSR
    ///
    /// Needs `icsr.delete`. A soft delete: the case leaves lists and reads, and the audit
    /// trail keeps its last values. With `version`, refused (409) if the case changed since.
    #[oai(path = "/:id", method = "delete", operation_id = "delete_icsr")]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        auth: Require<IcsrDelete>,
        /// Case ID.
        id: Path<i64>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        /// The version read, to refuse deleting a case that changed since.
        version: Query<Option<i64>>,
    ) -> Result<Deleted, ApiError> {
        state.icsrs.delete(&auth.0, id.0, version.0).await?;
        Ok(Deleted::NoContent)
    }
}
