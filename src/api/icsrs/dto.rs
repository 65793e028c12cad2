//! The case bodies of `/api/v1/icsrs…`, parsed into domain values at the boundary.

use poem_openapi::Object;

use crate::{
    api::dto::rfc3339,
    domain::{
        Invalid,
        icsr::{
            Age, CaseFields, CasePatch, CaseStatus, Icsr, Patient, Reaction, Sex, check_reactions,
            format_date, parse_narrative, parse_receipt_date, parse_safety_report_id,
            parse_seriousness, parse_suspect_product,
        },
    },
};

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
    pub(super) fn parse(self) -> Result<Patient, Invalid> {
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
    pub(super) fn parse(self) -> Result<CaseFields, Invalid> {
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
    pub(super) fn parse(self) -> Result<(CasePatch, Option<i64>), Invalid> {
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
