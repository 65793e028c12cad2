//! `/api/v1/clients…`: a tenant's administrators manage its service clients (the OAuth2
//! client-credentials grant). Creating and revoking need `users.manage`, listing
//! `users.view`; a client never holds a permission its creator lacks. The secret is shown
//! once, in the creation's answer; every change is audited.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use super::{
    ApiTags, AppState,
    dto::{SuccessResponse, rfc3339},
    error::ApiError,
    security::BearerAuth,
    tenant::XTenant,
};
use crate::{
    accounts::CreatedClient,
    domain::{ClientName, PermissionNames, ServiceClient},
};

#[derive(Default)]
pub struct ClientsApi;

/// A service client to create.
#[derive(Debug, Object)]
pub struct CreateClientRequest {
    /// What the client is (shown in lists and the audit trail), 1-100 characters.
    #[oai(validator(max_length = 200))]
    pub name: String,
    /// What its tokens may do: `module.action` names, each held by the caller.
    #[oai(validator(max_items = 100))]
    pub permissions: Vec<String>,
}

/// A service client as administrators see it (never its secret).
#[derive(Debug, Object)]
pub struct ClientResponse {
    /// The `client_id` it authenticates with.
    pub client_id: String,
    pub name: String,
    /// What its tokens may do.
    pub permissions: Vec<String>,
    /// Who created it: a username, or `operator` (the CLI).
    pub created_by: String,
    /// RFC 3339, UTC.
    pub created_at: Option<String>,
    /// When it last obtained a token.
    pub last_used_at: Option<String>,
    /// When it was revoked; a revoked client obtains no token and its tokens introspect
    /// inactive.
    pub revoked_at: Option<String>,
}

impl From<ServiceClient> for ClientResponse {
    fn from(client: ServiceClient) -> Self {
        let time = |secs: i64| rfc3339(secs.saturating_mul(1000));
        Self {
            permissions: client.permissions,
            client_id: client.client_id,
            name: client.name,
            created_by: client.created_by,
            created_at: time(client.created_at),
            last_used_at: client.last_used_at.and_then(time),
            revoked_at: client.revoked_at.and_then(time),
        }
    }
}

/// A client just created, with its secret.
#[derive(Debug, Object)]
pub struct CreatedClientResponse {
    /// Shown this once: only its hash is kept. Keep it in the service's secret store.
    pub client_secret: String,
    #[oai(flatten)]
    pub client: ClientResponse,
}

#[derive(ApiResponse)]
enum Created {
    /// Created; the secret is in the body, this once.
    #[oai(status = 201)]
    Created(
        Json<CreatedClientResponse>,
        /// `no-store`: the body holds a credential.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[OpenApi(prefix_path = "/api/v1/clients", tag = "ApiTags::Users")]
impl ClientsApi {
    /// Create a service client
    ///
    /// A machine account for the client-credentials grant at the tenant's token endpoint.
    /// Needs `users.manage` and every permission given to the client. The secret is returned
    /// once.
    #[oai(path = "/", method = "post", operation_id = "create_client")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        body: Json<CreateClientRequest>,
    ) -> Result<Created, ApiError> {
        let name = ClientName::parse(&body.0.name)?;
        let permissions = PermissionNames::parse(&body.0.permissions)?;
        let CreatedClient { client, secret } = state
            .accounts
            .create_client(&auth.0, &name, &permissions)
            .await?;
        Ok(Created::Created(
            Json(CreatedClientResponse {
                client_secret: secret,
                client: client.into(),
            }),
            "no-store".into(),
        ))
    }

    /// List service clients
    ///
    /// Every client of the tenant, revoked ones included; needs `users.view`.
    #[oai(path = "/", method = "get", operation_id = "list_clients")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
    ) -> Result<Json<Vec<ClientResponse>>, ApiError> {
        let clients = state.accounts.list_clients(&auth.0).await?;
        Ok(Json(clients.into_iter().map(Into::into).collect()))
    }

    /// Revoke a service client
    ///
    /// The client obtains no more tokens, and introspection calls its tokens inactive at
    /// once. Needs `users.manage`.
    #[oai(
        path = "/:client_id",
        method = "delete",
        operation_id = "revoke_client"
    )]
    async fn revoke(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        client_id: Path<String>,
    ) -> Result<Json<SuccessResponse>, ApiError> {
        state.accounts.revoke_client(&auth.0, &client_id.0).await?;
        Ok(Json(SuccessResponse { success: true }))
    }
}
