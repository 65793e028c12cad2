//! `/api/v1/icsrs…`: a tenant's Individual Case Safety Reports, guarded by `icsr.view`,
//! `icsr.edit` and `icsr.delete`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::error::ApiError;
use super::{
    ApiTags, AppState,
    dto::rfc3339,
    page::{Page, next_link},
    security::{IcsrDelete, IcsrEdit, IcsrView, Require},
    tenant::XTenant,
};
use crate::{
    domain::{
        Invalid,
        icsr::{
            Age, CaseFields, CasePatch, CaseStatus, Patient, Reaction, Sex, check_reactions,
            format_date, parse_narrative, parse_receipt_date, parse_safety_report_id,
            parse_seriousness, parse_suspect_product,
        },
        icsr::{Icsr, IcsrFilter},
    },
    error::Error,
};

#[derive(Default)]
pub struct IcsrsApi;

/// D.2.2: age at onset.
#[derive(Debug, Object)]
pub struct AgeDto {
    /// The number of `unit`s.
    pub value: i64,
    /// `decade`, `year`, `month`, `week`, `day` or `hour`.
    pub unit: String,
}

/// Section D: the patient, identified by initials only.
#[derive(Debug, Object)]
pub struct PatientDto {
    /// D.1: initials, e.g. `JPG` (1-60 characters).
    pub initials: Option<String>,
    /// D.2.2: age at the onset of the reaction.
    pub age: Option<AgeDto>,
    /// D.5: `male`, `female` or `unknown`.
    pub sex: Option<String>,
}

/// Section E.i: one reaction or event.
#[derive(Debug, Object)]
pub struct ReactionDto {
    /// E.i.1.1a: the reaction as reported, a MedDRA term's text (1-250 characters).
    pub term: String,
    /// E.i.2.1b: the MedDRA code (8 digits), when coded.
    pub meddra_code: Option<i64>,
}

/// A new case.
#[derive(Debug, Object)]
pub struct IcsrRequest {
    /// C.1.1: the sender's safety report unique identifier, e.g. `ES-ACME-2026-000123`
    /// (1-100 of `A-Z a-z 0-9 - _ . /`); unique among the tenant's live cases.
    pub safety_report_id: String,
    /// C.1.4: when the report was first received from the source, `YYYY-MM-DD`, not in the
    /// future.
    pub receipt_date: String,
    /// E.i.3.2: any of `results_in_death`, `life_threatening`,
    /// `caused_or_prolonged_hospitalisation`, `disabling_or_incapacitating`,
    /// `congenital_anomaly_or_birth_defect`, `other_medically_important_condition`. Empty or
    /// absent: non-serious.
    pub seriousness_criteria: Option<Vec<String>>,
    /// Section D.
    pub patient: Option<PatientDto>,
    /// G.k.2.2: the suspect medicinal product, as reported (1-250 characters).
    pub suspect_product: String,
    /// Section E.i: 1-100 reactions.
    pub reactions: Vec<ReactionDto>,
    /// H.1: the case narrative (at most 100,000 characters).
    pub narrative: Option<String>,
    /// `draft` (default), `in_review`, `submitted` or `closed`.
    pub status: Option<String>,
}

/// Changes to a case: each field present replaces the stored one (`patient` and `reactions`
/// whole); absent fields stay.
#[derive(Debug, Object)]
pub struct IcsrPatchRequest {
    pub safety_report_id: Option<String>,
    pub receipt_date: Option<String>,
    pub seriousness_criteria: Option<Vec<String>>,
    pub patient: Option<PatientDto>,
    pub suspect_product: Option<String>,
    pub reactions: Option<Vec<ReactionDto>>,
    pub narrative: Option<String>,
    pub status: Option<String>,
    /// The `version` read: when given, the change is refused (409) if the case changed since.
    pub version: Option<i64>,
}

/// A case.
#[derive(Debug, Object)]
pub struct IcsrResponse {
    /// Case ID within the tenant.
    pub id: i64,
    pub safety_report_id: String,
    /// `YYYY-MM-DD`.
    pub receipt_date: String,
    /// Whether any seriousness criterion applies.
    pub serious: bool,
    pub seriousness_criteria: Vec<String>,
    pub patient: PatientDto,
    pub suspect_product: String,
    pub reactions: Vec<ReactionDto>,
    pub narrative: String,
    pub status: String,
    /// 1 when created, bumped by every change.
    pub version: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// User ID of the creator.
    pub created_by: i64,
    /// RFC 3339, UTC.
    pub updated_at: String,
    /// User ID of the last editor.
    pub updated_by: i64,
}

impl From<Icsr> for IcsrResponse {
    fn from(icsr: Icsr) -> Self {
        let f = icsr.fields;
        Self {
            id: icsr.id,
            receipt_date: format_date(f.receipt_date),
            serious: f.serious(),
            seriousness_criteria: f
                .seriousness_criteria
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            patient: PatientDto {
                initials: f.patient.initials,
                age: f.patient.age.map(|a| AgeDto {
                    value: i64::from(a.value),
                    unit: a.unit.as_str().to_owned(),
                }),
                sex: f.patient.sex.map(|s| s.as_str().to_owned()),
            },
            reactions: f
                .reactions
                .into_iter()
                .map(|r| ReactionDto {
                    term: r.term,
                    meddra_code: r.meddra_code.map(i64::from),
                })
                .collect(),
            safety_report_id: f.safety_report_id,
            suspect_product: f.suspect_product,
            narrative: f.narrative,
            status: f.status.as_str().to_owned(),
            version: icsr.version,
            created_at: rfc3339(icsr.created_at).unwrap_or_default(),
            created_by: icsr.created_by,
            updated_at: rfc3339(icsr.updated_at).unwrap_or_default(),
            updated_by: icsr.updated_by,
        }
    }
}

impl PatientDto {
    fn parse(self) -> Result<Patient, Invalid> {
        let age = self.age.map(|a| Age::parse(a.value, &a.unit)).transpose()?;
        let sex = self.sex.as_deref().map(Sex::parse).transpose()?;
        Patient::new(self.initials.as_deref(), age, sex)
    }
}

fn reactions(raw: Vec<ReactionDto>) -> Result<Vec<Reaction>, Invalid> {
    let reactions = raw
        .into_iter()
        .map(|r| Reaction::new(&r.term, r.meddra_code))
        .collect::<Result<Vec<_>, _>>()?;
    check_reactions(&reactions)?;
    Ok(reactions)
}

impl IcsrRequest {
    fn parse(self) -> Result<CaseFields, Invalid> {
        Ok(CaseFields {
            safety_report_id: parse_safety_report_id(&self.safety_report_id)?,
            receipt_date: parse_receipt_date(&self.receipt_date)?,
            seriousness_criteria: parse_seriousness(
                self.seriousness_criteria
                    .iter()
                    .flatten()
                    .map(String::as_str),
            )?,
            patient: self
                .patient
                .map(PatientDto::parse)
                .transpose()?
                .unwrap_or_default(),
            suspect_product: parse_suspect_product(&self.suspect_product)?,
            reactions: reactions(self.reactions)?,
            narrative: parse_narrative(self.narrative.as_deref().unwrap_or_default())?,
            status: self
                .status
                .as_deref()
                .map(CaseStatus::parse)
                .transpose()?
                .unwrap_or(CaseStatus::Draft),
        })
    }
}

impl IcsrPatchRequest {
    fn parse(self) -> Result<(CasePatch, Option<i64>), Invalid> {
        let patch = CasePatch {
            safety_report_id: self
                .safety_report_id
                .as_deref()
                .map(parse_safety_report_id)
                .transpose()?,
            receipt_date: self
                .receipt_date
                .as_deref()
                .map(parse_receipt_date)
                .transpose()?,
            seriousness_criteria: self
                .seriousness_criteria
                .as_ref()
                .map(|c| parse_seriousness(c.iter().map(String::as_str)))
                .transpose()?,
            patient: self.patient.map(PatientDto::parse).transpose()?,
            suspect_product: self
                .suspect_product
                .as_deref()
                .map(parse_suspect_product)
                .transpose()?,
            reactions: self.reactions.map(reactions).transpose()?,
            narrative: self.narrative.as_deref().map(parse_narrative).transpose()?,
            status: self.status.as_deref().map(CaseStatus::parse).transpose()?,
        };
        Ok((patch, self.version))
    }
}

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
