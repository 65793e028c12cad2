//! An Individual Case Safety Report, after ICH E2B(R3): a small but real subset (the sender's
//! report id, receipt date, seriousness, patient, suspect product, reactions, narrative) plus
//! the case's workflow status. Field limits follow E2B's.

use serde::Serialize;
use time::{
    Date, OffsetDateTime, format_description::BorrowedFormatItem, macros::format_description,
};

use super::Invalid;

/// Closed vocabularies: each variant has one stable wire name.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                Self::ALL.iter().copied().find(|v| v.as_str() == raw).ok_or_else(|| {
                    let names: Vec<_> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    Invalid(format!(concat!($field, " must be one of {}, not {:?}"), names.join(", "), raw))
                })
            }
        }
    };
}

vocabulary!(
    /// E.i.3.2a-f: why a reaction is serious.
    Seriousness, "seriousness_criteria" {
        ResultsInDeath => "results_in_death",
        LifeThreatening => "life_threatening",
        Hospitalisation => "caused_or_prolonged_hospitalisation",
        Disabling => "disabling_or_incapacitating",
        CongenitalAnomaly => "congenital_anomaly_or_birth_defect",
        OtherMedicallyImportant => "other_medically_important_condition",
    }
);

vocabulary!(
    /// D.5: the patient's sex.
    Sex, "patient.sex" { Male => "male", Female => "female", Unknown => "unknown" }
);

vocabulary!(
    /// D.2.2b: the unit of the patient's age at onset.
    AgeUnit, "patient.age.unit" {
        Decade => "decade", Year => "year", Month => "month", Week => "week", Day => "day", Hour => "hour",
    }
);

vocabulary!(
    /// Where the case is in its workflow.
    CaseStatus, "status" {
        Draft => "draft", InReview => "in_review", Submitted => "submitted", Closed => "closed",
    }
);

/// D.2.2: age at the onset of the reaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Age {
    pub value: u16,
    pub unit: AgeUnit,
}

impl Age {
    pub fn parse(value: i64, unit: &str) -> Result<Self, Invalid> {
        let unit = AgeUnit::parse(unit)?;
        let most = match unit {
            AgeUnit::Decade => 15,
            AgeUnit::Year => 150,
            AgeUnit::Month => 1_800,
            AgeUnit::Week => 7_800,
            AgeUnit::Day | AgeUnit::Hour => 9_999,
        };
        match u16::try_from(value) {
            Ok(v) if v <= most => Ok(Self { value: v, unit }),
            _ => Err(Invalid(format!(
                "patient.age.value must be 0-{most} {}s",
                unit.as_str()
            ))),
        }
    }
}

/// Section D: who had the reaction. Every part is optional (often unknown at receipt).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Patient {
    /// D.1: initials (or a masked name), never a full identity.
    pub initials: Option<String>,
    pub age: Option<Age>,
    pub sex: Option<Sex>,
}

impl Patient {
    pub fn new(
        initials: Option<&str>,
        age: Option<Age>,
        sex: Option<Sex>,
    ) -> Result<Self, Invalid> {
        let initials = initials
            .map(|i| bounded_text(i, "patient.initials", 1, 60))
            .transpose()?;
        Ok(Self { initials, age, sex })
    }
}

/// Section E.i: one reaction or event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reaction {
    /// E.i.1.1a: as reported (a MedDRA term's text).
    pub term: String,
    /// E.i.2.1b: the MedDRA code (8 digits), when coded.
    pub meddra_code: Option<u32>,
}

impl Reaction {
    pub fn new(term: &str, meddra_code: Option<i64>) -> Result<Self, Invalid> {
        let term = bounded_text(term, "reactions[].term", 1, 250)?;
        let meddra_code = meddra_code
            .map(|code| {
                u32::try_from(code)
                    .ok()
                    .filter(|c| (10_000_000..=99_999_999).contains(c))
                    .ok_or_else(|| Invalid::new("reactions[].meddra_code must have 8 digits"))
            })
            .transpose()?;
        Ok(Self { term, meddra_code })
    }
}

/// Everything a user writes about a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseFields {
    /// C.1.1: the sender's safety report unique identifier, e.g. `ES-ACME-2026-000123`.
    pub safety_report_id: String,
    /// C.1.4: when the report was first received from the source.
    #[serde(serialize_with = "serialize_date")]
    pub receipt_date: Date,
    /// E.i.3.2: empty means non-serious.
    pub seriousness_criteria: Vec<Seriousness>,
    pub patient: Patient,
    /// G.k.2.2: the suspect medicinal product, as reported.
    pub suspect_product: String,
    /// At least one.
    pub reactions: Vec<Reaction>,
    /// H.1: the case narrative.
    pub narrative: String,
    pub status: CaseStatus,
}

/// Changes to a case: each present field replaces the stored one (`patient` and `reactions`
/// whole).
#[derive(Clone, Debug, Default)]
pub struct CasePatch {
    pub safety_report_id: Option<String>,
    pub receipt_date: Option<Date>,
    pub seriousness_criteria: Option<Vec<Seriousness>>,
    pub patient: Option<Patient>,
    pub suspect_product: Option<String>,
    pub reactions: Option<Vec<Reaction>>,
    pub narrative: Option<String>,
    pub status: Option<CaseStatus>,
}

const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

fn serialize_date<S: serde::Serializer>(date: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_date(*date))
}

pub fn format_date(date: Date) -> String {
    date.format(DATE).unwrap_or_default()
}

/// A `YYYY-MM-DD` date, not in the future.
pub fn parse_receipt_date(raw: &str) -> Result<Date, Invalid> {
    let date = Date::parse(raw, DATE)
        .map_err(|_| Invalid::new("receipt_date must be a date, YYYY-MM-DD"))?;
    if date > OffsetDateTime::now_utc().date() {
        return Err(Invalid::new("receipt_date cannot be in the future"));
    }
    Ok(date)
}

pub fn parse_safety_report_id(raw: &str) -> Result<String, Invalid> {
    let ok = (1..=100).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Invalid::new(
            "safety_report_id must be 1-100 characters of A-Z, a-z, 0-9, '-', '_', '.', '/'",
        ))
    }
}

pub fn parse_suspect_product(raw: &str) -> Result<String, Invalid> {
    bounded_text(raw, "suspect_product", 1, 250)
}

pub fn parse_narrative(raw: &str) -> Result<String, Invalid> {
    if raw.chars().count() > 100_000 {
        return Err(Invalid::new("narrative must be at most 100000 characters"));
    }
    Ok(raw.to_owned())
}

pub fn check_reactions(reactions: &[Reaction]) -> Result<(), Invalid> {
    if reactions.is_empty() || reactions.len() > 100 {
        return Err(Invalid::new("reactions must list 1-100 reactions"));
    }
    Ok(())
}

/// Seriousness criteria without repeats, in the given order.
pub fn parse_seriousness<'a>(
    raw: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Seriousness>, Invalid> {
    let mut criteria = Vec::new();
    for name in raw {
        let criterion = Seriousness::parse(name)?;
        if criteria.contains(&criterion) {
            return Err(Invalid(format!(
                "seriousness_criteria lists {name:?} twice"
            )));
        }
        criteria.push(criterion);
    }
    Ok(criteria)
}

/// Trimmed text of `min..=max` characters without control characters.
fn bounded_text(raw: &str, field: &str, min: usize, max: usize) -> Result<String, Invalid> {
    let text = raw.trim();
    let len = text.chars().count();
    if len < min || len > max || text.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "{field} must be {min}-{max} characters, without control characters"
        )));
    }
    Ok(text.to_owned())
}

impl CaseFields {
    /// Whether any seriousness criterion applies.
    pub fn serious(&self) -> bool {
        !self.seriousness_criteria.is_empty()
    }

    /// The case with `patch` applied.
    pub fn apply(&self, patch: CasePatch) -> Self {
        Self {
            safety_report_id: patch
                .safety_report_id
                .unwrap_or_else(|| self.safety_report_id.clone()),
            receipt_date: patch.receipt_date.unwrap_or(self.receipt_date),
            seriousness_criteria: patch
                .seriousness_criteria
                .unwrap_or_else(|| self.seriousness_criteria.clone()),
            patient: patch.patient.unwrap_or_else(|| self.patient.clone()),
            suspect_product: patch
                .suspect_product
                .unwrap_or_else(|| self.suspect_product.clone()),
            reactions: patch.reactions.unwrap_or_else(|| self.reactions.clone()),
            narrative: patch.narrative.unwrap_or_else(|| self.narrative.clone()),
            status: patch.status.unwrap_or(self.status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_parse_their_wire_names_only() {
        assert_eq!(CaseStatus::parse("in_review"), Ok(CaseStatus::InReview));
        let err = CaseStatus::parse("done").expect_err("unknown");
        assert!(
            err.0.contains("draft, in_review, submitted, closed"),
            "{}",
            err.0
        );
        assert!(parse_seriousness(["life_threatening", "life_threatening"]).is_err());
        assert_eq!(
            parse_seriousness(["results_in_death"]).expect("valid"),
            vec![Seriousness::ResultsInDeath]
        );
    }

    #[test]
    fn fields_follow_e2b_limits() {
        assert!(parse_safety_report_id("ES-ACME-2026-000123").is_ok());
        assert!(parse_safety_report_id("").is_err());
        assert!(parse_safety_report_id("has space").is_err());
        assert!(parse_receipt_date("2026-02-30").is_err());
        assert!(parse_receipt_date("2999-01-01").is_err());
        assert!(parse_receipt_date("2026-01-31").is_ok());
        assert!(Age::parse(151, "year").is_err());
        assert!(Age::parse(-1, "day").is_err());
        assert_eq!(Age::parse(34, "year").expect("valid").value, 34);
        assert!(Reaction::new("Headache", Some(10019211)).is_ok());
        assert!(Reaction::new("Headache", Some(123)).is_err());
        assert!(Reaction::new("  ", None).is_err());
        assert!(Patient::new(Some("J\u{7}P"), None, None).is_err());
        assert!(check_reactions(&[]).is_err());
    }
}

/// A stored, live case.
#[derive(Debug, Clone, PartialEq)]
pub struct Icsr {
    pub id: i64,
    pub fields: CaseFields,
    /// 1 when created, bumped by every change.
    pub version: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    pub created_by: i64,
    pub updated_at: i64,
    pub updated_by: i64,
}

/// Which cases to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct IcsrFilter {
    pub status: Option<CaseStatus>,
    pub serious: Option<bool>,
    /// Received on or after.
    pub received_from: Option<Date>,
    /// Received on or before.
    pub received_to: Option<Date>,
    pub safety_report_id: Option<String>,
    /// Keyset cursor: only cases with a smaller id.
    pub before_id: Option<i64>,
    pub limit: i64,
}
