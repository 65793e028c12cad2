//! ICSRs as stored: live rows (`deleted_at IS NULL`) are the cases; deleted ones stay for the
//! audit trail (a trigger refuses `DELETE`). Every write carries its audit record in the same
//! transaction, and changes are conditional on the version the caller read (optimistic
//! concurrency), so no change is ever recorded against the wrong old values.

use serde::{Deserialize, Serialize};
use sqlx::{FromRow, types::Json};
use time::Date;

use super::{
    Store, StoreError,
    audit::{NewAuditEvent, insert_audit, now_ms},
    with_conn,
};
use crate::domain::icsr::{Age, CaseFields, CaseStatus, Patient, Reaction, Seriousness, Sex};
pub use crate::domain::icsr::{Icsr, IcsrFilter};

#[derive(Serialize, Deserialize)]
struct StoredReaction {
    term: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meddra_code: Option<u32>,
}

#[derive(FromRow)]
struct IcsrRow {
    id: i64,
    safety_report_id: String,
    receipt_date: Date,
    seriousness_criteria: Json<Vec<String>>,
    patient_initials: Option<String>,
    patient_age_value: Option<i32>,
    patient_age_unit: Option<String>,
    patient_sex: Option<String>,
    suspect_product: String,
    reactions: Json<Vec<StoredReaction>>,
    narrative: String,
    status: String,
    version: i64,
    created_at: i64,
    created_by: i64,
    updated_at: i64,
    updated_by: i64,
}

/// The columns of [`IcsrRow`], spliced into each statement at compile time.
macro_rules! columns {
    () => {
        "id, safety_report_id, receipt_date, seriousness_criteria, patient_initials, \
         patient_age_value, patient_age_unit, patient_sex, suspect_product, reactions, narrative, \
         status, version, created_at, created_by, updated_at, updated_by"
    };
}

macro_rules! returning {
    ($sql:literal) => {
        concat!($sql, " RETURNING ", columns!())
    };
}

const BY_ID: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM icsrs WHERE id = $1 AND deleted_at IS NULL"
);
const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM icsrs WHERE deleted_at IS NULL \
       AND (CAST($1 AS TEXT) IS NULL OR status = $1) \
       AND (CAST($2 AS BOOLEAN) IS NULL OR serious = $2) \
       AND (CAST($3 AS DATE) IS NULL OR receipt_date >= $3) \
       AND (CAST($4 AS DATE) IS NULL OR receipt_date <= $4) \
       AND (CAST($5 AS TEXT) IS NULL OR safety_report_id = $5) \
       AND (CAST($6 AS BIGINT) IS NULL OR id < $6) \
     ORDER BY id DESC LIMIT $7"
);
const INSERT: &str = returning!(
    "INSERT INTO icsrs (safety_report_id, receipt_date, serious, seriousness_criteria, patient_initials, \
     patient_age_value, patient_age_unit, patient_sex, suspect_product, reactions, narrative, status, \
     created_at, created_by, updated_at, updated_by) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $13, $14)"
);
const UPDATE: &str = returning!(
    "UPDATE icsrs SET safety_report_id = $1, receipt_date = $2, serious = $3, seriousness_criteria = $4, \
     patient_initials = $5, patient_age_value = $6, patient_age_unit = $7, patient_sex = $8, \
     suspect_product = $9, reactions = $10, narrative = $11, status = $12, \
     version = version + 1, updated_at = $13, updated_by = $14 \
     WHERE id = $15 AND version = $16 AND deleted_at IS NULL"
);
const DELETE: &str = "UPDATE icsrs SET deleted_at = $1, deleted_by = $2, version = version + 1 \
     WHERE id = $3 AND version = $4 AND deleted_at IS NULL";

/// Binds the twelve case fields as `$1`..`$12`, in [`INSERT`]'s and [`UPDATE`]'s order.
macro_rules! bind_fields {
    ($query:expr, $f:expr) => {{
        let f: &CaseFields = $f;
        $query
            .bind(&f.safety_report_id)
            .bind(f.receipt_date)
            .bind(f.serious())
            .bind(Json(
                f.seriousness_criteria
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>(),
            ))
            .bind(f.patient.initials.as_deref())
            .bind(f.patient.age.map(|a| i32::from(a.value)))
            .bind(f.patient.age.map(|a| a.unit.as_str()))
            .bind(f.patient.sex.map(Sex::as_str))
            .bind(&f.suspect_product)
            .bind(Json(
                f.reactions
                    .iter()
                    .map(|r| StoredReaction {
                        term: r.term.clone(),
                        meddra_code: r.meddra_code,
                    })
                    .collect::<Vec<_>>(),
            ))
            .bind(&f.narrative)
            .bind(f.status.as_str())
    }};
}

fn corrupt(id: i64, e: impl std::fmt::Display) -> StoreError {
    anyhow::anyhow!("icsr {id} holds a value this server never writes: {e}").into()
}

impl TryFrom<IcsrRow> for Icsr {
    type Error = StoreError;

    fn try_from(row: IcsrRow) -> Result<Self, StoreError> {
        let id = row.id;
        let age = match (row.patient_age_value, row.patient_age_unit.as_deref()) {
            (Some(value), Some(unit)) => {
                Some(Age::parse(i64::from(value), unit).map_err(|e| corrupt(id, e))?)
            }
            _ => None,
        };
        let fields = CaseFields {
            safety_report_id: row.safety_report_id,
            receipt_date: row.receipt_date,
            seriousness_criteria: row
                .seriousness_criteria
                .0
                .iter()
                .map(|c| Seriousness::parse(c))
                .collect::<Result<_, _>>()
                .map_err(|e| corrupt(id, e))?,
            patient: Patient {
                initials: row.patient_initials,
                age,
                sex: row
                    .patient_sex
                    .as_deref()
                    .map(Sex::parse)
                    .transpose()
                    .map_err(|e| corrupt(id, e))?,
            },
            suspect_product: row.suspect_product,
            reactions: row
                .reactions
                .0
                .into_iter()
                .map(|r| Reaction {
                    term: r.term,
                    meddra_code: r.meddra_code,
                })
                .collect(),
            narrative: row.narrative,
            status: CaseStatus::parse(&row.status).map_err(|e| corrupt(id, e))?,
        };
        Ok(Self {
            id,
            fields,
            version: row.version,
            created_at: row.created_at,
            created_by: row.created_by,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        })
    }
}

fn conflict(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict(_) => {
            StoreError::Conflict("a live ICSR with that safety_report_id already exists".into())
        }
        other => other,
    }
}

impl Store {
    /// The live case `id`.
    pub async fn icsr(&self, id: i64) -> Result<Option<Icsr>, StoreError> {
        let row = with_conn!(self, conn => sqlx::query_as::<_, IcsrRow>(BY_ID)
            .bind(id)
            .fetch_optional(conn)
            .await?);
        row.map(Icsr::try_from).transpose()
    }

    /// Live cases matching `filter`, newest first.
    pub async fn list_icsrs(&self, filter: &IcsrFilter) -> Result<Vec<Icsr>, StoreError> {
        let rows = with_conn!(self, conn => sqlx::query_as::<_, IcsrRow>(LIST)
            .bind(filter.status.map(CaseStatus::as_str))
            .bind(filter.serious)
            .bind(filter.received_from)
            .bind(filter.received_to)
            .bind(filter.safety_report_id.as_deref())
            .bind(filter.before_id)
            .bind(filter.limit)
            .fetch_all(conn)
            .await?);
        rows.into_iter().map(Icsr::try_from).collect()
    }

    /// Creates a case by `actor`, recording the event `audit` builds from it in the same
    /// transaction; `Conflict` when a live case has the same report id.
    pub async fn create_icsr(
        &self,
        fields: &CaseFields,
        actor: i64,
        audit: impl FnOnce(&Icsr) -> NewAuditEvent,
    ) -> Result<Icsr, StoreError> {
        let now = now_ms();
        let created: Result<Icsr, StoreError> = with_conn!(self, conn => async {
            let mut tx = sqlx::Connection::begin(conn).await?;
            let row: IcsrRow = bind_fields!(sqlx::query_as(INSERT), fields)
                .bind(now)
                .bind(actor)
                .fetch_one(&mut *tx)
                .await?;
            let icsr = Icsr::try_from(row)?;
            insert_audit!(&mut *tx, &audit(&icsr), now)?;
            tx.commit().await?;
            Ok(icsr)
        }.await);
        created.map_err(conflict)
    }

    /// Replaces the fields of case `id` if it is still at `version`, recording the event
    /// `audit` builds from the new state; `None` when the case changed or went meanwhile.
    pub async fn update_icsr(
        &self,
        id: i64,
        version: i64,
        fields: &CaseFields,
        actor: i64,
        audit: impl FnOnce(&Icsr) -> NewAuditEvent,
    ) -> Result<Option<Icsr>, StoreError> {
        let now = now_ms();
        let updated: Result<Option<Icsr>, StoreError> = with_conn!(self, conn => async {
            let mut tx = sqlx::Connection::begin(conn).await?;
            let row: Option<IcsrRow> = bind_fields!(sqlx::query_as(UPDATE), fields)
                .bind(now)
                .bind(actor)
                .bind(id)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let icsr = Icsr::try_from(row)?;
            insert_audit!(&mut *tx, &audit(&icsr), now)?;
            tx.commit().await?;
            Ok(Some(icsr))
        }.await);
        updated.map_err(conflict)
    }

    /// Soft-deletes case `id` if it is still at `version`, recording `event`; `false` when
    /// the case changed or went meanwhile.
    pub async fn delete_icsr(
        &self,
        id: i64,
        version: i64,
        actor: i64,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        with_conn!(self, conn => async {
            let mut tx = sqlx::Connection::begin(conn).await?;
            let affected = sqlx::query(DELETE)
                .bind(now)
                .bind(actor)
                .bind(id)
                .bind(version)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if affected == 0 {
                return Ok(false);
            }
            insert_audit!(&mut *tx, event, now)?;
            tx.commit().await?;
            Ok(true)
        }.await)
    }
}
