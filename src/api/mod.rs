//! The HTTP API: one `#[OpenApi]` struct per area, combined into one [`OpenApiService`] that
//! also generates the spec (`/openapi.json`, committed as `openapi/openapi.json`) and serves
//! Swagger UI (`/docs`). Handlers are short: resolve the scope, parse the DTO into domain
//! types, call one [`crate::auth::Auth`] flow, return a response variant.

mod admin;
mod audit;
mod auth;
mod clients;
mod discovery;
mod dto;
pub mod error;
mod health;
mod icsrs;
mod oauth;
mod page;
pub mod rendered;
pub mod security;
mod tenant;
mod users;

use std::{
    sync::{
        Arc, LazyLock, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use poem::{
    Body, Endpoint, EndpointExt, Request, Response, Route,
    error::ReadBodyError,
    http::{StatusCode, header},
};
use poem_openapi::{OpenApiService, Tags};

use self::error::framework_error;

use crate::{
    accounts::Accounts,
    auth::{Auth, token::Claims},
    cluster::Redis,
    config::Settings,
    domain::Scope,
    icsrs::Icsrs,
    metrics::Metrics,
    telemetry::access::{self, AccessCaller, AccessLine},
    tenancy::{Registry, ScopeHandle},
};

/// What every handler shares; attached to every route as request data.
pub struct AppState {
    pub settings: Settings,
    pub registry: Registry,
    pub auth: Auth,
    pub accounts: Accounts,
    pub icsrs: Icsrs,
    /// The replicas' shared state, when configured (`redis.url`): for readiness.
    pub redis: Option<Redis>,
    /// The rendered `/whoami` and `/me` bodies, shared by a user's sessions.
    pub bodies: rendered::BodyCache,
    pub metrics: Arc<Metrics>,
}

/// Per-request facts the access log reports: the request ID, and once the bearer token
/// checked out, who called. Attached by [`edge`]; filled by the security checker. Also the
/// tenant `X-Tenant` names, kept by `tenant::requested` so that it is parsed once.
pub struct RequestContext {
    /// Visible ASCII only (checked when accepted, hex when generated).
    pub id: header::HeaderValue,
    pub caller: OnceLock<Caller>,
    /// The parsed `X-Tenant` header, once the checker or an extractor asked for it.
    tenant: OnceLock<Option<crate::domain::TenantId>>,
}

/// The authenticated caller of a request, for its log line: shared handles (no copies on the
/// request path), read only when the line is written.
pub struct Caller {
    pub handle: Arc<ScopeHandle>,
    pub claims: Arc<Claims>,
}

impl Caller {
    fn tenant(&self) -> &str {
        match &self.handle.scope {
            Scope::Legacy => "legacy",
            Scope::Tenant(id) => id.as_str(),
        }
    }
}

#[derive(Tags)]
enum ApiTags {
    /// Log in, read the current user, change or reset a password, log out.
    Auth,
    /// Individual Case Safety Reports (ICH E2B(R3) subset), tenant-scoped.
    Icsrs,
    /// A tenant's accounts: create, roles, permission overrides, activation, locks.
    Users,
    /// The tenant's append-only audit trail.
    Audit,
    /// Operators: provision tenants (operator token; absent unless `admin.token` is set).
    Operations,
    /// Liveness and readiness probes, metrics.
    Health,
    /// Each tenant as an OpenID Connect issuer: discovery, public keys, token endpoint.
    Discovery,
}

/// Largest request body accepted (every body of this API is a small form or JSON object)...
const MAX_BODY_BYTES: usize = 16 * 1024;
/// ...but a case's, whose narrative may reach E2B's 100,000 characters.
const MAX_CASE_BODY_BYTES: usize = 512 * 1024;
/// Largest total size of request headers (names and values) accepted.
const MAX_HEADER_BYTES: usize = 16 * 1024;

type Apis = (
    auth::AuthApi,
    icsrs::IcsrsApi,
    users::UsersApi,
    audit::AuditApi,
    admin::AdminApi,
    health::HealthApi,
    discovery::DiscoveryApi,
    oauth::OAuthApi,
    clients::ClientsApi,
);

pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(Apis::default(), "Vigia auth API", env!("CARGO_PKG_VERSION")).description(
        "Authentication for the Vigia pharmacovigilance platform. Log in with \
             `POST /api/v1/auth/login` (a form: username or e-mail, password) and send the token \
             as `Authorization: Bearer <token>`. Each tenant has its own users and keys: name it \
             with the `X-Tenant` header; without it, requests use the legacy shared database \
             (or, for bearer calls, the tenant the token was issued for).\n\n\
             **On this page:** click *Authorize*, enter your username and password, and put \
             your **tenant ID in `client_id`** (e.g. `acme-pharma`; empty for the legacy \
             database) — the dialog cannot send `X-Tenant`. The token carries the tenant, so \
             later calls need no `X-Tenant`.\n\n\
             Each operation names the permission it needs (`module.action`, e.g. `icsr.view`); \
             `GET /api/v1/auth/me` lists yours. Every error is a JSON object \
             `{\"detail\": \"...\"}`.",
    )
}

/// The OpenAPI document as `vigia openapi` prints it.
pub fn spec_json() -> String {
    service().spec()
}

/// Every route of the server, with the shared state and the error shape applied.
pub fn routes(state: Arc<AppState>) -> impl Endpoint {
    let api = service();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let router = Route::new()
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .nest("/", api);
    router.around(move |next, req| edge(next, req, state.clone()))
}

/// Parsed once, not per request (a `&str` name is parsed and lower-cased at every use).
const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Everything around the routes, as one layer: the request ID (accepted or generated, echoed
/// in `X-Request-Id`), the shared state, the size limits, the operators' routes' absence, the
/// error shape, `Cache-Control: no-store` on every `/api/` answer (they carry personal data or
/// tokens), the metrics, and one log line after the answer: method, path (never the query,
/// which may hold personal data), status, duration, and when authenticated the tenant, user ID
/// and the token's `trace`.
///
/// One layer, not one per concern: each poem layer nests the inner future in its own, and the
/// server moves the outermost future into a box on every request. Five layers made that a
/// 33 KB copy per request (`size_of_val`), 30% of a token check's instructions (callgrind).
async fn edge(next: Arc<Route>, mut req: Request, state: Arc<AppState>) -> poem::Result<Response> {
    let started = std::time::Instant::now();
    let context = Arc::new(RequestContext {
        id: request_id(&req),
        caller: OnceLock::new(),
        tenant: OnceLock::new(),
    });
    req.extensions_mut().insert(context.clone());
    let method = method_label(req.method());
    // Every API answer may carry personal data (profiles, cases, the audit trail) or a token.
    let private = req.uri().path().starts_with("/api/");
    // A clone of the URI shares its bytes: no copy of the path per request.
    let logged = access::enabled().then(|| req.uri().clone());
    let metrics = state.metrics.clone();
    let admitted = admit(&mut req, &state).await;
    req.extensions_mut().insert(state);
    let outcome = match admitted {
        Ok(()) => next.call(req).await,
        Err(refused) => Err(refused),
    };
    let mut response = outcome.unwrap_or_else(framework_error);
    let elapsed = started.elapsed();
    let route = response
        .data::<poem_openapi::OperationId>()
        .map_or("other", |id| id.0);
    metrics.request(
        route,
        method,
        response.status().as_u16(),
        elapsed.as_secs_f64(),
    );
    if let Some(uri) = logged {
        AccessLine {
            request_id: context.id.to_str().unwrap_or_default(),
            method,
            path: uri.path(),
            status: response.status().as_u16(),
            micros: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            caller: context.caller.get().map(|c| AccessCaller {
                tenant: c.tenant(),
                user_id: c.claims.uid,
                trace: &c.claims.trace,
            }),
        }
        .log();
    }
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID, context.id.clone());
    if private && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    Ok(response)
}

/// The client's `X-Request-Id` when it is a sane token (1-128 visible ASCII characters), else
/// a new one: this process's random 64-bit prefix and a counter, `{prefix:016x}-{counter:x}`
/// (unique across processes with overwhelming probability, and no system call per request as
/// a random UUID would cost). Written into a stack buffer: formatting it cost 3% of a token
/// check.
fn request_id(req: &Request) -> header::HeaderValue {
    static PREFIX: LazyLock<[u8; 17]> = LazyLock::new(|| {
        let mut prefix = [b'-'; 17];
        hex_digits(rand::random(), &mut prefix[..16]);
        prefix
    });
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if let Some(given) = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| (1..=128).contains(&v.len()) && v.as_bytes().iter().all(u8::is_ascii_graphic))
    {
        return given.clone();
    }
    let counter = NEXT.fetch_add(1, Ordering::Relaxed);
    let digits = (16 - counter.leading_zeros() as usize / 4).max(1);
    let mut id = [0u8; 33];
    id[..17].copy_from_slice(&*PREFIX);
    hex_digits(counter, &mut id[17..17 + digits]);
    header::HeaderValue::from_bytes(&id[..17 + digits])
        .expect("BUG: hex digits and a dash are a valid header")
}

/// Writes the lowest `out.len()` hex digits of `value` (lowercase, most significant first).
fn hex_digits(mut value: u64, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// What every request must pass before routing:
/// - the operators' API exists only with a configured `admin.token`: without one, its routes
///   answer 404 like any unknown path, whatever the request carries;
/// - headers over [`MAX_HEADER_BYTES`] are refused with 431;
/// - a body is read here, whole, before any handler sees it: at most [`MAX_BODY_BYTES`]
///   ([`MAX_CASE_BODY_BYTES`] for cases; 413 beyond, by the declared `Content-Length` at once
///   or while reading a chunked body) and within `server.body_read_timeout_seconds` (408). The
///   cap is on the bytes read, not on what the headers claim.
async fn admit(req: &mut Request, state: &AppState) -> poem::Result<()> {
    let path = req.uri().path();
    if state.settings.admin.token.is_none()
        && (path.starts_with("/api/v1/admin/") || path == "/api/v1/admin")
    {
        return Err(poem::Error::from_status(StatusCode::NOT_FOUND));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(poem::Error::from_status(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ));
    }
    let max_body = if path.starts_with("/api/v1/icsrs") {
        MAX_CASE_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(len) if len > max_body => Err(refuse_body(StatusCode::PAYLOAD_TOO_LARGE)),
        // HTTP/1.1 (the only protocol served): a request without a length or a transfer
        // coding has no body.
        Some(0) => Ok(()),
        None if !req.headers().contains_key(header::TRANSFER_ENCODING) => Ok(()),
        // Boxed: its future would otherwise sit in every request's.
        _ => {
            let deadline = Duration::from_secs(state.settings.server.body_read_timeout_seconds);
            Box::pin(read_body(req, max_body, deadline)).await
        }
    }
}

/// A refusal of the body: the connection is closed after it, since the rest of the body was
/// never read.
fn refuse_body(status: StatusCode) -> poem::Error {
    let mut response = framework_error(poem::Error::from_status(status));
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    poem::Error::from_response(response)
}

/// Reads the body up to `max_body` bytes (413 beyond) within `deadline` (408), and puts it
/// back for the handler.
async fn read_body(req: &mut Request, max_body: usize, deadline: Duration) -> poem::Result<()> {
    let read = req.take_body().into_bytes_limit(max_body);
    let bytes = match tokio::time::timeout(deadline, read).await {
        Err(_) => return Err(refuse_body(StatusCode::REQUEST_TIMEOUT)),
        Ok(Err(ReadBodyError::PayloadTooLarge)) => {
            return Err(refuse_body(StatusCode::PAYLOAD_TOO_LARGE));
        }
        Ok(Err(other)) => return Err(other.into()),
        Ok(Ok(bytes)) => bytes,
    };
    req.set_body(Body::from_bytes(bytes));
    Ok(())
}

fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::hex_digits;

    #[test]
    fn request_ids_are_written_as_format_would() {
        for value in [0, 1, 15, 16, 255, 0xdead_beef, u64::MAX] {
            let digits = (16 - value.leading_zeros() as usize / 4).max(1);
            let mut out = vec![0u8; digits];
            hex_digits(value, &mut out);
            assert_eq!(String::from_utf8(out).expect("ASCII"), format!("{value:x}"));
        }
        let mut prefix = [0u8; 16];
        hex_digits(0x0123_4567_89ab_cdef, &mut prefix);
        assert_eq!(&prefix, b"0123456789abcdef");
        hex_digits(0xab, &mut prefix);
        assert_eq!(
            &prefix, b"00000000000000ab",
            "zero-padded to the width given"
        );
    }
}
