//! A reference resource server, shaped like the platform's cases module: it trusts Vigia's
//! tokens knowing nothing but the issuer URL, and holds no secret.
//!
//! At start it reads the issuer's discovery document, then its JWKS. Each request's bearer
//! token is verified offline: the key its header's `kid` names (the JWKS is fetched again when
//! the `kid` is unknown, at most once every `REFETCH_EVERY`, so that made-up `kid`s cannot
//! turn it into a load on the issuer), `EdDSA` only, `exp`, `iss` = the issuer, `aud` =
//! `vigia`, and one permission from the token's `permissions` claim.
//!
//! ```sh
//! cargo run --example resource_server -- \
//!     http://127.0.0.1:8000/tenants/acme-pharma icsr.view 127.0.0.1:9000
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9000/cases
//! ```
//!
//! Arguments: the issuer URL, the permission `GET /cases` demands (default `icsr.view`), the
//! address to listen on (default `127.0.0.1:9000`; port 0 picks one). It prints
//! `listening on http://…` once serving.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use poem::{
    EndpointExt, IntoResponse, Request, Response, Route, Server, get, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::{Data, Json},
};
use serde::Deserialize;
use serde_json::json;

/// The least time between two JWKS fetches caused by unknown `kid`s.
const REFETCH_EVERY: Duration = Duration::from_secs(5);

/// The claims this module reads (the token has more).
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    tenant: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

/// The issuer's keys by `kid`, and when they were last fetched.
struct Verifier {
    issuer: String,
    jwks_uri: String,
    permission: String,
    client: reqwest::Client,
    keys: RwLock<(HashMap<String, DecodingKey>, Instant)>,
}

impl Verifier {
    async fn discover(issuer: String, permission: String) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let discovery: serde_json::Value = client
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::ensure!(
            discovery["issuer"] == issuer.as_str(),
            "the discovery document names another issuer: {}",
            discovery["issuer"]
        );
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no jwks_uri"))?
            .to_owned();
        let keys = fetch(&client, &jwks_uri).await?;
        Ok(Self {
            issuer,
            jwks_uri,
            permission,
            client,
            keys: RwLock::new((keys, Instant::now())),
        })
    }

    /// The key `kid` names, fetching the JWKS again when it is unknown (rate-limited).
    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let stale = {
            let keys = self
                .keys
                .read()
                .expect("BUG: no panic while holding the keys");
            if let Some(key) = keys.0.get(kid) {
                return Some(key.clone());
            }
            keys.1.elapsed() >= REFETCH_EVERY
        };
        if !stale {
            return None;
        }
        let fresh = fetch(&self.client, &self.jwks_uri).await.ok()?;
        let mut keys = self
            .keys
            .write()
            .expect("BUG: no panic while holding the keys");
        *keys = (fresh, Instant::now());
        keys.0.get(kid).cloned()
    }

    /// The claims of a token that verifies, or why not (status and detail).
    async fn verify(&self, token: &str) -> Result<Claims, (StatusCode, &'static str)> {
        let unauthorized = |detail| (StatusCode::UNAUTHORIZED, detail);
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthorized("malformed token"))?;
        let kid = header.kid.ok_or(unauthorized("token without kid"))?;
        let key = self
            .key(&kid)
            .await
            .ok_or(unauthorized("unknown signing key"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&["vigia"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|_| unauthorized("invalid or expired token"))?
            .claims;
        if !claims.permissions.contains(&self.permission) {
            return Err((StatusCode::FORBIDDEN, "missing permission"));
        }
        Ok(claims)
    }
}

/// The issuer's JWKS, by `kid` (keys without one, or of another kind, are skipped).
async fn fetch(
    client: &reqwest::Client,
    jwks_uri: &str,
) -> anyhow::Result<HashMap<String, DecodingKey>> {
    let set: JwkSet = client
        .get(jwks_uri)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
        })
        .collect())
}

#[handler]
async fn cases(req: &Request, verifier: Data<&Arc<Verifier>>) -> Response {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let verified = match token {
        Some(token) => verifier.verify(token).await,
        None => Err((StatusCode::UNAUTHORIZED, "missing bearer token")),
    };
    match verified {
        Ok(claims) => Json(json!({
            "subject": claims.sub,
            "tenant": claims.tenant,
            "cases": [{"id": 1, "title": "Hepatotoxicity after drug X"}],
        }))
        .into_response(),
        Err((status, detail)) => {
            let mut response = Json(json!({ "detail": detail })).into_response();
            response.set_status(status);
            response
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let issuer = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: resource_server ISSUER [PERMISSION] [LISTEN]"))?;
    let permission = args.next().unwrap_or_else(|| "icsr.view".into());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let verifier =
        Arc::new(Verifier::discover(issuer.trim_end_matches('/').into(), permission).await?);
    let acceptor = TcpListener::bind(listen).into_acceptor().await?;
    let address = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| anyhow::anyhow!("no local address"))?;
    println!("listening on http://{address}");
    let app = Route::new().at("/cases", get(cases)).data(verifier);
    Server::new_with_acceptor(acceptor).run(app).await?;
    Ok(())
}
