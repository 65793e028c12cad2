//! The bodies of `/whoami` and `/me`, the two reads every module of the platform makes on every
//! page: rendered once per user record and tenant handle into [`Bodies`], which the caller's
//! session carries as its attachment (`auth::session`), then served as bytes. They cannot be
//! stale: a session lives only while its user record and handle are current, and [`BodyCache`]
//! shares bodies between a user's sessions only while they were made from the very same
//! objects.

use std::{
    any::Any,
    marker::PhantomData,
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use bytes::Bytes;
use poem::{IntoResponse, Response, http::header};
use poem_openapi::{
    ApiResponse,
    payload::{Json, Payload},
    registry::{MetaResponses, MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};

use super::dto::{MeResponse, WhoAmIResponse};
use crate::{
    auth::Principal,
    domain::{Scope, User},
    tenancy::ScopeHandle,
};

/// `Json<T>`'s content type, as a header value made once (a `&str` is parsed per response).
const JSON_CONTENT_TYPE: header::HeaderValue =
    header::HeaderValue::from_static("application/json; charset=utf-8");

/// A JSON body of type `T`, already serialised. Documented exactly as `Json<T>`.
pub struct Rendered<T>(Bytes, PhantomData<fn() -> T>);

impl<T: Type> Payload for Rendered<T> {
    const CONTENT_TYPE: &'static str = <Json<T> as Payload>::CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type> IntoResponse for Rendered<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .header(header::CONTENT_TYPE, JSON_CONTENT_TYPE)
            .body(self.0)
    }
}

impl<T: ToJSON> ApiResponse for Rendered<T> {
    fn meta() -> MetaResponses {
        <Json<T> as ApiResponse>::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// The `/whoami` body of the caller, rendered once per user record.
pub fn whoami(cache: &BodyCache, principal: &Principal) -> Rendered<WhoAmIResponse> {
    let body = bodies(cache, principal)
        .whoami
        .get_or_init(|| render(&WhoAmIResponse::from(&*principal.user)));
    Rendered(body.clone(), PhantomData)
}

/// The `/me` body of the caller, rendered once per user record and tenant handle.
pub fn me(cache: &BodyCache, principal: &Principal) -> Rendered<MeResponse> {
    let body = bodies(cache, principal)
        .me
        .get_or_init(|| render(&MeResponse::from(principal)));
    Rendered(body.clone(), PhantomData)
}

/// The bodies the caller's session carries, attached on the session's first identity read.
fn bodies<'a>(cache: &BodyCache, principal: &'a Principal) -> &'a Bodies {
    principal
        .session
        .attachment
        .get_or_init(|| -> Arc<dyn Any + Send + Sync> {
            cache.of(&principal.handle, &principal.user)
        })
        .downcast_ref::<Bodies>()
        .expect("BUG: only the API attaches to a session, and only Bodies")
}

fn render<T: ToJSON>(value: &T) -> Bytes {
    serde_json::to_vec(&value.to_json())
        .expect("BUG: a serde_json::Value always serialises")
        .into()
}

/// The bodies of `/whoami` and `/me`, rendered on first use and then served as bytes.
#[derive(Debug, Default)]
pub struct Bodies {
    pub whoami: OnceLock<Bytes>,
    pub me: OnceLock<Bytes>,
}

/// What one user's bodies were rendered from.
struct RenderedFrom {
    user: Weak<User>,
    tenant: Weak<ScopeHandle>,
    bodies: Arc<Bodies>,
}

/// [`Bodies`] by scope and user, so that a user's many tokens share one rendering. Consulted
/// when a session is made, not per request.
///
/// Bodies are reused only while the user record and tenant handle are the very objects they
/// were rendered from (pointer identity, held weakly so nothing stays alive for it; a `Weak`
/// keeps its allocation, so an address here is never reused by another record). Every write
/// to a user replaces its cached record and a changed tenant file replaces the handle, so a
/// stale body cannot be served.
pub struct BodyCache {
    rendered: moka::sync::Cache<(Scope, i64), Arc<RenderedFrom>>,
}

impl BodyCache {
    /// Entries idle for `idle` are dropped; at most `capacity` are kept.
    pub fn new(capacity: u64, idle: Duration) -> Self {
        Self {
            rendered: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
        }
    }

    fn of(&self, tenant: &Arc<ScopeHandle>, user: &Arc<User>) -> Arc<Bodies> {
        let key = (tenant.scope.clone(), user.id);
        if let Some(hit) = self.rendered.get(&key)
            && Weak::as_ptr(&hit.user) == Arc::as_ptr(user)
            && Weak::as_ptr(&hit.tenant) == Arc::as_ptr(tenant)
        {
            return hit.bodies.clone();
        }
        let bodies = Arc::new(Bodies::default());
        let rendered = RenderedFrom {
            user: Arc::downgrade(user),
            tenant: Arc::downgrade(tenant),
            bodies: bodies.clone(),
        };
        self.rendered.insert(key, Arc::new(rendered));
        bodies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_content_type_is_json_payloads() {
        assert_eq!(
            JSON_CONTENT_TYPE.to_str().expect("ASCII"),
            <Json<String> as Payload>::CONTENT_TYPE
        );
    }
}
