//! Service clients as accounts of machines: created with a secret shown once, listed, revoked.
//! A client holds at most what its creator held when creating it: a `users.manage` holder
//! can grant a client only actions it may do itself (an operator, through the CLI, any).

use serde_json::json;

use super::{Accounts, Change};
use crate::{
    auth::{Principal, opaque},
    domain::{ClientName, Permission, PermissionNames, is_client_id},
    error::Error,
    store::{
        Store,
        audit::{AuditType, NewAuditEvent},
        clients::ServiceClient,
    },
};

/// A client just created, with the one copy of its secret there will ever be.
#[derive(Debug)]
pub struct CreatedClient {
    pub client: ServiceClient,
    pub secret: String,
}

/// Creates a client in `store`, recorded by `event` (completed with the client's ID, name and
/// permissions); `created_by` names the creator in the client's record.
pub async fn create_client(
    store: &Store,
    name: &ClientName,
    permissions: &PermissionNames,
    created_by: &str,
    mut event: NewAuditEvent,
) -> Result<CreatedClient, Error> {
    let secret = opaque::generate();
    let client = ServiceClient {
        client_id: format!("svc-{:016x}", rand::random::<u64>()),
        name: name.as_str().to_owned(),
        secret_hash: opaque::fingerprint(&secret),
        permissions: permissions.names().to_vec(),
        created_by: created_by.to_owned(),
        created_at: time::OffsetDateTime::now_utc().unix_timestamp(),
        last_used_at: None,
        revoked_at: None,
    };
    event.subject_username = Some(client.client_id.clone());
    if let Some(details) = event.details.as_object_mut() {
        details.insert("client_id".into(), json!(client.client_id));
        details.insert("name".into(), json!(client.name));
        details.insert("permissions".into(), json!(permissions.names()));
    }
    store.create_client(&client, &event).await?;
    Ok(CreatedClient { client, secret })
}

impl Accounts {
    /// Creates a service client in the caller's scope holding `permissions`, each of which the
    /// caller must hold (a refusal is audited, as any account change beyond one's authority).
    pub async fn create_client(
        &self,
        admin: &Principal,
        name: &ClientName,
        permissions: &PermissionNames,
    ) -> Result<CreatedClient, Error> {
        self.authorise(admin, &Change::new("create_client")).await?;
        let held = admin
            .handle
            .roles
            .granted(&admin.user.roles, &admin.user.permissions);
        let missing: Vec<&String> = permissions
            .names()
            .iter()
            .filter(|p| !held.contains(p))
            .collect();
        if !missing.is_empty() {
            let event = admin.event(
                AuditType::AccountChangeRefused,
                None,
                json!({"action": "create_client", "missing": missing, "name": name.as_str()}),
            );
            admin.handle.store().await?.record_audit(&event).await?;
            tracing::warn!(
                alert = "account_change_refused",
                scope = %admin.handle.scope,
                actor = %admin.user.username,
                action = "create_client",
                missing = ?missing,
                "SECURITY ALERT: an account change beyond the caller's authority was refused"
            );
            let missing: Vec<&str> = missing.iter().map(|p| p.as_str()).collect();
            return Err(Error::Forbidden(format!(
                "A client cannot hold what its creator does not: missing {}",
                missing.join(", ")
            )));
        }
        let event = admin.event(AuditType::ClientCreated, None, json!({"via": "api"}));
        let store = admin.handle.store().await?;
        create_client(
            &store,
            name,
            permissions,
            admin.user.username.as_str(),
            event,
        )
        .await
    }

    /// The service clients of the caller's scope, revoked ones included.
    pub async fn list_clients(&self, admin: &Principal) -> Result<Vec<ServiceClient>, Error> {
        admin.require(Permission::USERS_VIEW)?;
        Ok(admin.handle.store().await?.list_clients().await?)
    }

    /// Revokes a client: it obtains no more tokens, and introspection calls its tokens
    /// inactive at once (verifiers holding only the JWKS accept them until they expire).
    pub async fn revoke_client(&self, admin: &Principal, client_id: &str) -> Result<(), Error> {
        self.authorise(admin, &Change::new("revoke_client")).await?;
        if !is_client_id(client_id) {
            return Err(Error::NotFound("No such active client".into()));
        }
        let event = NewAuditEvent {
            subject_username: Some(client_id.to_owned()),
            ..admin.event(AuditType::ClientRevoked, None, json!({"via": "api"}))
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let store = admin.handle.store().await?;
        store
            .revoke_client(client_id, now, &event)
            .await
            .map_err(|e| match Error::from(e) {
                Error::NotFound(_) => Error::NotFound("No such active client".into()),
                other => other,
            })
    }
}
