//! The bodies of `/whoami` and `/me`, the two reads every module of the platform makes on every
//! page: rendered once per user snapshot and tenant, then served as bytes.
//!
//! A rendering is reused only while the principal's user record and tenant handle are the very
//! objects it was rendered from (pointer identity, held weakly so nothing stays alive for it).
//! Every write to a user replaces its cached record, and a changed tenant file replaces the
//! handle, so a stale body cannot be served; there is nothing to invalidate by hand.

use std::{
    marker::PhantomData,
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::{
    ApiResponse,
    payload::{Json, Payload},
    registry::{MetaResponses, MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};

use super::dto::{MeResponse, WhoAmIResponse};
use crate::{auth::Principal, domain::Scope, store::users::User, tenancy::Tenant};

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
            .content_type(Self::CONTENT_TYPE)
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

/// What one user's bodies were rendered from, and the bodies once rendered.
struct Views {
    user: Weak<User>,
    tenant: Weak<Tenant>,
    whoami: OnceLock<Bytes>,
    me: OnceLock<Bytes>,
}

impl Views {
    fn renders(&self, principal: &Principal) -> bool {
        // A `Weak` keeps its allocation, so an address here is never reused by another record.
        Weak::as_ptr(&self.user) == Arc::as_ptr(&principal.user)
            && Weak::as_ptr(&self.tenant) == Arc::as_ptr(&principal.tenant)
    }
}

/// Rendered bodies by scope and user ID.
pub struct RenderCache {
    views: moka::sync::Cache<(Scope, i64), Arc<Views>>,
}

impl RenderCache {
    /// Entries idle for `idle` are dropped; at most `capacity` are kept.
    pub fn new(capacity: u64, idle: Duration) -> Self {
        Self {
            views: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
        }
    }

    pub fn whoami(&self, principal: &Principal) -> Rendered<WhoAmIResponse> {
        let views = self.views(principal);
        let body = views
            .whoami
            .get_or_init(|| render(&WhoAmIResponse::from(&*principal.user)));
        Rendered(body.clone(), PhantomData)
    }

    pub fn me(&self, principal: &Principal) -> Rendered<MeResponse> {
        let views = self.views(principal);
        let body = views
            .me
            .get_or_init(|| render(&MeResponse::from(principal)));
        Rendered(body.clone(), PhantomData)
    }

    fn views(&self, principal: &Principal) -> Arc<Views> {
        let key = (principal.tenant.scope.clone(), principal.user.id);
        if let Some(views) = self.views.get(&key)
            && views.renders(principal)
        {
            return views;
        }
        let views = Arc::new(Views {
            user: Arc::downgrade(&principal.user),
            tenant: Arc::downgrade(&principal.tenant),
            whoami: OnceLock::new(),
            me: OnceLock::new(),
        });
        self.views.insert(key, views.clone());
        views
    }
}

fn render<T: ToJSON>(value: &T) -> Bytes {
    serde_json::to_vec(&value.to_json())
        .expect("BUG: a serde_json::Value always serialises")
        .into()
}
