//! `vigia client …`: an operator's service clients (the OAuth2 client-credentials grant) of
//! one tenant. The operator holds every permission, so a client made here may hold any
//! well-formed one; each creation and revocation is recorded in the tenant's audit trail.

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::open_scope;
use crate::{
    accounts::{CreatedClient, create_client},
    config::Settings,
    domain::{ClientName, PermissionNames},
    store::audit::{AuditType, NewAuditEvent},
};

#[derive(Debug, Subcommand)]
pub(super) enum ClientCommand {
    /// Create a service client: prints its client_id and secret, the secret this once (only
    /// its hash is kept), e.g. `vigia client create --tenant acme-pharma --name signals
    /// --permission icsr.view`.
    Create {
        /// Tenant ID.
        #[arg(long)]
        tenant: String,
        /// What the client is (shown in lists and the audit trail).
        #[arg(long)]
        name: String,
        /// A permission its tokens carry, `module.action`; repeat for more.
        #[arg(long = "permission", value_name = "MODULE.ACTION")]
        permissions: Vec<String>,
    },
    /// List a tenant's clients: one line each with client_id, name, permissions and state.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a client: it obtains no more tokens, and introspection calls its tokens inactive.
    Revoke {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
}

pub(super) async fn run(settings: &Settings, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create {
            tenant,
            name,
            permissions,
        } => {
            let name = ClientName::parse(&name).context("--name")?;
            let permissions = PermissionNames::parse(&permissions).context("--permission")?;
            let store = open_scope(settings, Some(&tenant)).await?;
            let event = NewAuditEvent::by_operator(AuditType::ClientCreated, "cli");
            let created = create_client(&store, &name, &permissions, "operator", event).await;
            store.close().await;
            let CreatedClient { client, secret } = created?;
            println!("client_id: {}", client.client_id);
            println!("client_secret: {secret}");
            println!("permissions: {}", client.permissions.join(" "));
            eprintln!("the secret is shown this once: store it now");
        }
        ClientCommand::List { tenant } => {
            let store = open_scope(settings, Some(&tenant)).await?;
            let clients = store.list_clients().await;
            store.close().await;
            for client in clients? {
                let state = if client.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{state}",
                    client.client_id,
                    client.name,
                    client.permissions.join(" ")
                );
            }
        }
        ClientCommand::Revoke { tenant, client_id } => {
            let store = open_scope(settings, Some(&tenant)).await?;
            let mut event = NewAuditEvent::by_operator(AuditType::ClientRevoked, "cli");
            event.subject_username = Some(client_id.clone());
            event.details = json!({"via": "cli", "client_id": client_id});
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let revoked = store.revoke_client(&client_id, now, &event).await;
            store.close().await;
            revoked.with_context(|| format!("no active client {client_id} in {tenant}"))?;
            println!("revoked {client_id}");
        }
    }
    Ok(())
}
