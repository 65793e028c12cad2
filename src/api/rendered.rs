//! The bodies of `/whoami` and `/me`, the two reads every module of the platform makes on every
//! page: rendered into the caller's session's [`Bodies`](crate::auth::session::Bodies) once per
//! user record and tenant handle, then served as bytes (see `auth::session` for why they cannot
//! be stale).

use std::marker::PhantomData;

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::{
    ApiResponse,
    payload::{Json, Payload},
    registry::{MetaResponses, MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};

use super::dto::{MeResponse, WhoAmIResponse};
use crate::auth::Principal;

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

/// The `/whoami` body of the caller, rendered once per session's user record.
pub fn whoami(principal: &Principal) -> Rendered<WhoAmIResponse> {
    let body = principal
        .session
        .bodies
        .whoami
        .get_or_init(|| render(&WhoAmIResponse::from(&*principal.user)));
    Rendered(body.clone(), PhantomData)
}

/// The `/me` body of the caller, rendered once per user record and tenant handle.
pub fn me(principal: &Principal) -> Rendered<MeResponse> {
    let body = principal
        .session
        .bodies
        .me
        .get_or_init(|| render(&MeResponse::from(principal)));
    Rendered(body.clone(), PhantomData)
}

fn render<T: ToJSON>(value: &T) -> Bytes {
    serde_json::to_vec(&value.to_json())
        .expect("BUG: a serde_json::Value always serialises")
        .into()
}
