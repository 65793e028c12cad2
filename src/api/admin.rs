//! `/api/v1/admin/tenants…`: operators provision, list, activate and deactivate tenants. They
//! take the operator token from configuration (`admin.token`), never a user's JWT; without a
//! configured token these routes do not exist (404, see `api::hide_admin`).

use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi, SecurityScheme, auth::Bearer, param::Path, payload::Json,
};

use super::error::ApiError;
use super::{ApiTags, AppState, security::same_secret};
use crate::{
    domain::{
        Email, FullName, NewUser, Password, Permissions, Role, Roles, Scope, TenantId, Username,
    },
    error::Error,
    tenancy::{
        DatabaseUrl, TenantFile,
        provision::{self, NewTenant, ProvisionError},
    },
};

#[derive(Default)]
pub struct AdminApi;

/// The operator token (`admin.token`), as `Authorization: Bearer <token>`.
#[derive(SecurityScheme)]
#[oai(rename = "operator", ty = "bearer", checker = "operator")]
pub struct OperatorAuth(());

async fn operator(req: &Request, bearer: Bearer) -> poem::Result<()> {
    let state = req
        .data::<Arc<AppState>>()
        .expect("BUG: routes() attaches AppState to every request");
    let Some(expected) = &state.settings.admin.token else {
        return Err(ApiError::from(Error::NotFound("Not found".into())).into());
    };
    if same_secret(&bearer.token, expected) {
        Ok(())
    } else {
        tracing::warn!(alert = "bad_operator_token", "refused an operator request");
        Err(ApiError::from(Error::NotAuthenticated).into())
    }
}

/// The new tenant's first administrator.
#[derive(Debug, Object)]
pub struct FirstAdmin {
    pub username: String,
    pub email: String,
    pub full_name: Option<String>,
    /// At least `security.password_min_length` characters; not the username or e-mail.
    #[oai(validator(min_length = 6, max_length = 1024))]
    pub password: String,
}

/// A tenant to provision.
#[derive(Debug, Object)]
pub struct ProvisionRequest {
    /// Tenant ID, a lowercase DNS label (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`).
    pub id: String,
    /// Display name (the customer's name).
    pub name: String,
    /// `postgres://…` or `sqlite://…`. Default: with the registry in the database, a database
    /// `vigia_<id>` on the legacy database's Postgres server; else a SQLite file under
    /// `data_dir`.
    pub database_url: Option<String>,
    /// The first user, with role `admin`.
    pub admin: FirstAdmin,
}

/// A registered tenant.
#[derive(Debug, Object)]
pub struct TenantResponse {
    pub id: String,
    pub name: String,
    /// `active`, `inactive`, or `broken` (the entry cannot be used; see `problem`).
    pub status: String,
    /// `sqlite` or `postgres`.
    pub backend: Option<String>,
    /// The database URL, password masked.
    pub database: Option<String>,
    /// Why a broken entry cannot be used.
    pub problem: Option<String>,
}

impl TenantResponse {
    fn new(id: &TenantId, entry: &TenantFile) -> Self {
        let url = DatabaseUrl::parse(&entry.database_url);
        Self {
            id: id.to_string(),
            name: entry.name.clone(),
            status: match (&url, entry.active) {
                (Err(_), _) => "broken",
                (Ok(_), true) => "active",
                (Ok(_), false) => "inactive",
            }
            .into(),
            backend: url.as_ref().ok().map(|u| u.backend().to_string()),
            database: url.as_ref().ok().map(ToString::to_string),
            problem: url.err().map(|e| e.to_string()),
        }
    }

    fn broken(id: &TenantId, problem: String) -> Self {
        Self {
            id: id.to_string(),
            name: String::new(),
            status: "broken".into(),
            backend: None,
            database: None,
            problem: Some(problem),
        }
    }
}

/// A change of a tenant's status.
#[derive(Debug, Object)]
pub struct TenantPatch {
    /// `false` refuses the tenant's logins and tokens (403) from the next request on, on every
    /// replica within `tenants.recheck_millis`.
    pub active: bool,
}

#[derive(ApiResponse)]
enum Provisioned {
    /// Provisioned: database created and migrated, admin created, tenant registered.
    #[oai(status = 201)]
    Created(
        Json<TenantResponse>,
        /// The tenant's URL.
        #[oai(header = "Location")]
        String,
    ),
}

fn provision_error(e: ProvisionError) -> Error {
    match e {
        ProvisionError::Exists(id) => Error::Conflict(format!("tenant {id} already exists")),
        ProvisionError::Invalid(why) => Error::Validation(why),
        ProvisionError::Store(e) => e.into(),
        ProvisionError::File(e) => Error::Internal(anyhow::anyhow!("tenant registry: {e}")),
    }
}

#[OpenApi(prefix_path = "/api/v1/admin/tenants", tag = "ApiTags::Operations")]
impl AdminApi {
    /// Provision a tenant
    ///
    /// Creates the tenant's database, migrates it, creates its first admin and registers it,
    /// in that order; on any failure nothing is left behind. Audited in the tenant's trail.
    /// Operator token only; absent (404) unless `admin.token` is configured.
    #[oai(path = "/", method = "post", operation_id = "provision_tenant")]
    async fn provision(
        &self,
        state: Data<&Arc<AppState>>,
        _operator: OperatorAuth,
        body: Json<ProvisionRequest>,
    ) -> Result<Provisioned, ApiError> {
        let body = body.0;
        let id = TenantId::parse(&body.id).map_err(|e| Error::Validation(format!("id: {e}")))?;
        let name = FullName::parse(&body.name)
            .map_err(|_| Error::Validation("name must be at most 200 characters".into()))?;
        let admin = body.admin;
        let username = Username::parse(&admin.username)?;
        let email = Email::parse(&admin.email)?;
        let password = Password::parse(admin.password, "admin.password")?;
        password.check_new(
            state.settings.security.password_min_length,
            username.as_str(),
            email.as_str(),
            "admin.password",
        )?;
        if let Some(url) = &body.database_url {
            DatabaseUrl::parse(url).map_err(|e| Error::Validation(format!("database_url: {e}")))?;
        }
        let user = NewUser {
            username,
            email,
            full_name: admin
                .full_name
                .as_deref()
                .map(FullName::parse)
                .transpose()?,
            password_hash: state
                .auth
                .hasher
                .hash(&Scope::Tenant(id.clone()), password)
                .await
                .map_err(Error::from)?,
            is_active: true,
            empleado_id: None,
            permissions: Permissions::default(),
            roles: Roles::new(vec![Role::parse(Role::ADMIN)?])?,
        };
        let registry = &state.registry;
        let entry = provision::create_tenant(
            &state.settings,
            registry.pool_settings(),
            registry.source(),
            NewTenant {
                id: id.clone(),
                database_url: body.database_url,
                name: Some(name.as_str().to_owned()),
                first_user: Some(user),
                via: "api",
            },
        )
        .await
        .map_err(provision_error)?;
        registry.forget(&id).await;
        tracing::info!(tenant = %id, "provisioned tenant");
        Ok(Provisioned::Created(
            Json(TenantResponse::new(&id, &entry)),
            format!("/api/v1/admin/tenants/{id}"),
        ))
    }

    /// List tenants
    ///
    /// Every registered tenant, by ID, with its status. Operator token only.
    #[oai(path = "/", method = "get", operation_id = "list_tenants")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        _operator: OperatorAuth,
    ) -> Result<Json<Vec<TenantResponse>>, ApiError> {
        let entries = state
            .registry
            .source()
            .list()
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("tenant registry: {e}")))?;
        Ok(Json(
            entries
                .iter()
                .map(|(id, entry)| match entry {
                    Ok(entry) => TenantResponse::new(id, entry),
                    Err(e) => TenantResponse::broken(id, e.to_string()),
                })
                .collect(),
        ))
    }

    /// Activate or deactivate a tenant
    ///
    /// A deactivated tenant's logins and tokens are refused (403); reactivating restores them.
    /// Audited in the tenant's trail. Operator token only.
    #[oai(path = "/:id", method = "patch", operation_id = "update_tenant")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        _operator: OperatorAuth,
        /// Tenant ID.
        id: Path<String>,
        body: Json<TenantPatch>,
    ) -> Result<Json<TenantResponse>, ApiError> {
        let id = TenantId::parse(&id.0).map_err(|e| Error::Validation(format!("id: {e}")))?;
        let entry = state
            .registry
            .set_active(&id, body.0.active, "api")
            .await
            .map_err(Error::from)?;
        tracing::info!(tenant = %id, active = entry.active, "tenant status set");
        Ok(Json(TenantResponse::new(&id, &entry)))
    }
}
