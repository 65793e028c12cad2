//! `X-Tenant`, the header that names a request's tenant: the one way to ask which tenant a
//! request names. [`XTenant`] (optional) and [`RequiredTenant`] are the handlers' extractors:
//! each documents the header in the spec and hands the handler the parsed [`TenantId`].
//! [`requested`] is the parse itself, also called by the bearer checker, which needs the
//! tenant before any handler parameter is extracted; the first to ask parses, and the request
//! keeps the answer for the other.
//!
//! poem-openapi names a parameter after the handler's argument, so every use is written
//! `#[oai(name = "X-Tenant")] tenant: XTenant`; the header read is always [`HEADER`] whatever
//! the argument's name, and a test checks that the spec names it right. The parameter's
//! description is the handler's: what an absent header means differs by operation.

use std::sync::Arc;

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaParamIn, MetaSchemaRef, Registry},
    types::Type,
};

use super::{RequestContext, error::ApiError};
use crate::{domain::TenantId, error::Error};

/// The header's name, as the spec documents it (HTTP compares header names case-insensitively).
pub const HEADER: &str = "X-Tenant";
/// [`HEADER`] parsed once, for reading it (a `&str` name is parsed at every use).
const HEADER_NAME: poem::http::HeaderName = poem::http::HeaderName::from_static("x-tenant");

/// The `X-Tenant` header where it is optional: `None` when absent; 422 when malformed.
pub struct XTenant(pub Option<TenantId>);

/// The `X-Tenant` header where the operation needs it: 422 when absent or malformed.
pub struct RequiredTenant(pub TenantId);

/// The tenant the request's `X-Tenant` header names, `None` when absent; malformed is 422.
/// Parsed once per request: the answer is kept in the request's [`RequestContext`], so the
/// security checker and the handler's extractor, whichever runs second, reuse it.
pub fn requested(req: &Request) -> Result<Option<TenantId>, ApiError> {
    let kept = req
        .extensions()
        .get::<Arc<RequestContext>>()
        .map(|context| &context.tenant);
    if let Some(tenant) = kept.and_then(|kept| kept.get()) {
        return Ok(tenant.clone());
    }
    let tenant = parse(req)?;
    if let Some(kept) = kept {
        // Already set only if another caller on this request got there first, with the same
        // value from the same headers.
        let _ = kept.set(tenant.clone());
    }
    Ok(tenant)
}

/// The header's rules: absent is `None`; a repeated header is refused (a proxy and this server
/// might each read another copy); a value that is not even ASCII is refused, not mistaken for
/// "no tenant"; otherwise it must parse as a [`TenantId`].
fn parse(req: &Request) -> Result<Option<TenantId>, ApiError> {
    let invalid = |why: &str| ApiError::from(Error::Validation(format!("{HEADER}: {why}")));
    let mut values = req.headers().get_all(&HEADER_NAME).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(invalid("must be given once")),
        (Some(value), None) => {
            let raw = value.to_str().map_err(|_| invalid("must be ASCII"))?;
            TenantId::parse(raw).map(Some).map_err(|e| invalid(&e.0))
        }
    }
}

/// What both extractors declare: a string parameter in the header.
fn schema() -> MetaSchemaRef {
    <String as Type>::schema_ref()
}

/// The parameter's name is the handler's `#[oai(name = …)]`; it must be [`HEADER`].
fn check_name(name: &str) {
    debug_assert_eq!(
        name, HEADER,
        "BUG: a tenant extractor is declared without #[oai(name = \"X-Tenant\")]"
    );
}

impl XTenant {
    fn from_requested(tenant: Option<TenantId>) -> Result<Self, ApiError> {
        Ok(Self(tenant))
    }
}

impl RequiredTenant {
    fn from_requested(tenant: Option<TenantId>) -> Result<Self, ApiError> {
        match tenant {
            Some(tenant) => Ok(Self(tenant)),
            None => {
                let missing = Error::Validation(format!("{HEADER} header is required"));
                Err(ApiError::from(missing))
            }
        }
    }
}

/// What both extractors are to the spec — a string parameter in the header, required or not
/// — and how they extract: [`requested`], then the type's own `from_requested`.
macro_rules! header_extractor {
    ($ty:ty, required = $required:expr) => {
        impl<'a> ApiExtractor<'a> for $ty {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
            const PARAM_IS_REQUIRED: bool = $required;

            // No default and no validators: the value is parsed here, by the domain's rules.
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                <String as Type>::register(registry);
            }

            fn param_in() -> Option<MetaParamIn> {
                Some(MetaParamIn::Header)
            }

            fn param_schema_ref() -> Option<MetaSchemaRef> {
                Some(schema())
            }

            async fn from_request(
                req: &'a Request,
                _body: &mut RequestBody,
                param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                check_name(param_opts.name);
                Ok(Self::from_requested(requested(req)?)?)
            }
        }
    };
}

header_extractor!(XTenant, required = false);
header_extractor!(RequiredTenant, required = true);

#[cfg(test)]
mod tests {
    use poem::{IntoResponse, http::StatusCode};
    use serde_json::Value;

    use super::*;

    fn request(values: &[&[u8]]) -> Request {
        let mut builder = Request::builder();
        for value in values {
            let value = poem::http::HeaderValue::from_bytes(value).expect("a valid header value");
            builder = builder.header(HEADER, value);
        }
        builder.finish()
    }

    /// The status and `detail` of the answer to a refused header.
    async fn refusal(values: &[&[u8]]) -> (StatusCode, String) {
        let response = parse(&request(values))
            .expect_err("refused")
            .into_response();
        let status = response.status();
        let body: Value = response.into_body().into_json().await.expect("a JSON body");
        (status, body["detail"].as_str().expect("detail").to_owned())
    }

    #[test]
    fn an_absent_header_names_no_tenant() {
        assert_eq!(parse(&request(&[])).expect("parsed"), None);
    }

    #[test]
    fn a_valid_header_names_its_tenant() {
        let tenant = parse(&request(&[b"acme-pharma"])).expect("parsed");
        assert_eq!(tenant.as_ref().map(TenantId::as_str), Some("acme-pharma"));
    }

    #[tokio::test]
    async fn a_repeated_header_is_refused() {
        let (status, detail) = refusal(&[b"acme", b"acme"]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(detail, "X-Tenant: must be given once");
    }

    #[tokio::test]
    async fn a_header_that_is_not_ascii_is_refused() {
        let (status, detail) = refusal(&[b"acm\xe9"]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(detail, "X-Tenant: must be ASCII");
    }

    #[tokio::test]
    async fn a_malformed_header_is_refused_with_the_domains_reason() {
        let (status, detail) = refusal(&[b"ACME"]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            detail.starts_with("X-Tenant: tenant id must be"),
            "{detail}"
        );
    }

    /// Every parameter about the tenant is the `X-Tenant` header, a plain string, required
    /// only where an operation cannot do without it: no handler forgot `#[oai(name)]`. (The
    /// issuer routes under `/tenants/{tenant}/` are the exception: the path names the tenant.)
    #[test]
    fn the_spec_names_every_tenant_parameter_x_tenant() {
        let spec: Value = serde_json::from_str(&super::super::spec_json()).expect("json");
        let mut seen = 0;
        for (path, operations) in spec["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                let parameters = operation["parameters"].as_array();
                for parameter in parameters.into_iter().flatten() {
                    let name = parameter["name"].as_str().expect("name");
                    if !name.to_ascii_lowercase().contains("tenant") {
                        continue;
                    }
                    if parameter["in"] == "path" {
                        // An issuer's own routes name their tenant in the path.
                        assert!(path.starts_with("/tenants/{tenant}/"), "{method} {path}");
                        continue;
                    }
                    seen += 1;
                    assert_eq!(name, HEADER, "{method} {path}");
                    assert_eq!(parameter["in"], "header", "{method} {path}");
                    assert_eq!(
                        parameter["schema"],
                        serde_json::json!({"type": "string"}),
                        "{method} {path}"
                    );
                    let required = operation["operationId"] == "reset_password";
                    assert_eq!(parameter["required"], required, "{method} {path}");
                }
            }
        }
        assert!(seen > 0, "no operation documents X-Tenant");
    }
}
