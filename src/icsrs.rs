//! ICSR flows: read, create, change and soft-delete a tenant's cases. Each flow checks the
//! caller's permission (as the API's guards already did: a flow is never less strict than its
//! caller), and each write records who, when, and the old and new values in the tenant's
//! audit trail, in the same transaction (21 CFR Part 11 §11.10(e)).

use serde_json::{Map, Value, json};

use crate::{
    auth::Principal,
    domain::{
        Permission,
        icsr::{CaseFields, CasePatch},
    },
    error::Error,
    store::{
        audit::{AuditType, NewAuditEvent},
        icsrs::{Icsr, IcsrFilter},
    },
};

/// Changes race at most this often before the caller is told to retry.
const ATTEMPTS: usize = 3;

fn not_found() -> Error {
    Error::NotFound("ICSR not found".into())
}

fn resource(id: i64) -> Option<String> {
    Some(format!("icsr:{id}"))
}

fn as_json(fields: &CaseFields) -> Value {
    serde_json::to_value(fields).expect("BUG: case fields serialise")
}

/// The fields that differ, each as `{"old": …, "new": …}`.
fn changes(old: &CaseFields, new: &CaseFields) -> Map<String, Value> {
    let (Value::Object(old), Value::Object(new)) = (as_json(old), as_json(new)) else {
        unreachable!("BUG: case fields serialise as an object");
    };
    new.into_iter()
        .filter(|(field, value)| old.get(field) != Some(value))
        .map(|(field, value)| {
            let before = old.get(&field).cloned().unwrap_or(Value::Null);
            (field, json!({"old": before, "new": value}))
        })
        .collect()
}

fn event(principal: &Principal, kind: AuditType, id: i64, details: Value) -> NewAuditEvent {
    NewAuditEvent {
        resource: resource(id),
        ..principal.event(kind, None, details)
    }
}

/// The ICSR service. It holds no state of its own today (each flow reads the caller's tenant
/// database through the principal); it is constructed like its peers, `Auth` and `Accounts`.
#[derive(Debug, Default)]
pub struct Icsrs;

impl Icsrs {
    pub fn new() -> Self {
        Self
    }

    /// Live cases matching `filter`, newest first.
    pub async fn list(
        &self,
        principal: &Principal,
        filter: &IcsrFilter,
    ) -> Result<Vec<Icsr>, Error> {
        principal.require(Permission::ICSR_VIEW)?;
        Ok(principal.handle.store().await?.list_icsrs(filter).await?)
    }

    /// The live case `id`.
    pub async fn get(&self, principal: &Principal, id: i64) -> Result<Icsr, Error> {
        principal.require(Permission::ICSR_VIEW)?;
        principal
            .handle
            .store()
            .await?
            .icsr(id)
            .await?
            .ok_or_else(not_found)
    }

    /// Creates a case; 409 when a live case has the same `safety_report_id`.
    pub async fn create(&self, principal: &Principal, fields: CaseFields) -> Result<Icsr, Error> {
        principal.require(Permission::ICSR_EDIT)?;
        let store = principal.handle.store().await?;
        let created = store
            .create_icsr(&fields, principal.user.id, |icsr| {
                event(
                    principal,
                    AuditType::IcsrCreated,
                    icsr.id,
                    json!({"new": as_json(&icsr.fields), "version": icsr.version}),
                )
            })
            .await?;
        Ok(created)
    }

    /// Applies `patch` to case `id`. With `expected_version`, refuses (409) a case that changed
    /// since the caller read it; without, re-applies the patch to the latest state. A patch that
    /// changes nothing changes nothing: no new version, no audit record.
    pub async fn update(
        &self,
        principal: &Principal,
        id: i64,
        patch: CasePatch,
        expected_version: Option<i64>,
    ) -> Result<Icsr, Error> {
        principal.require(Permission::ICSR_EDIT)?;
        let store = principal.handle.store().await?;
        for _ in 0..ATTEMPTS {
            let current = store.icsr(id).await?.ok_or_else(not_found)?;
            check_version(&current, expected_version)?;
            let fields = current.fields.apply(patch.clone());
            let changed = changes(&current.fields, &fields);
            if changed.is_empty() {
                return Ok(current);
            }
            let updated = store
                .update_icsr(id, current.version, &fields, principal.user.id, |icsr| {
                    event(
                        principal,
                        AuditType::IcsrUpdated,
                        id,
                        json!({
                            "safety_report_id": icsr.fields.safety_report_id,
                            "version": icsr.version,
                            "changes": changed,
                        }),
                    )
                })
                .await?;
            if let Some(updated) = updated {
                return Ok(updated);
            }
        }
        Err(Error::Conflict(
            "the ICSR kept changing; read it again and retry".into(),
        ))
    }

    /// Soft-deletes case `id`: it leaves every list and read, and the audit trail keeps its last
    /// values.
    pub async fn delete(
        &self,
        principal: &Principal,
        id: i64,
        expected_version: Option<i64>,
    ) -> Result<(), Error> {
        principal.require(Permission::ICSR_DELETE)?;
        let store = principal.handle.store().await?;
        for _ in 0..ATTEMPTS {
            let current = store.icsr(id).await?.ok_or_else(not_found)?;
            check_version(&current, expected_version)?;
            let record = event(
                principal,
                AuditType::IcsrDeleted,
                id,
                json!({"old": as_json(&current.fields), "version": current.version}),
            );
            if store
                .delete_icsr(id, current.version, principal.user.id, &record)
                .await?
            {
                return Ok(());
            }
        }
        Err(Error::Conflict(
            "the ICSR kept changing; read it again and retry".into(),
        ))
    }
}

fn check_version(current: &Icsr, expected: Option<i64>) -> Result<(), Error> {
    match expected {
        Some(v) if v != current.version => Err(Error::Conflict(format!(
            "the ICSR is at version {}, not {v}: read it again",
            current.version
        ))),
        _ => Ok(()),
    }
}
