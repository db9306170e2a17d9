//! The OpenAPI document of this function's routes, generated from the
//! handlers' annotations and the request and response types
//! ([`crate::views`], the bodies, [`Query`] types). The committed
//! `openapi.json` is this merged with the admin function's and ingest's
//! (a test regenerates it and fails on any difference).

use crate::error::ApiResult;
use crate::extract::Params;
use crate::views;
use switchyard_core::error::ErrorBody;
use utoipa::{IntoParams, OpenApi, ToResponse, ToSchema};

/// This function's part of the document.
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::admin::create_tenant,
        crate::admin::list_tenants,
        crate::admin::get_tenant,
        crate::admin::delete_tenant,
        crate::tenant_status::update_tenant,
        crate::admin::create_api_key,
        crate::admin::list_api_keys,
        crate::admin::revoke_api_key,
        crate::endpoints::create,
        crate::endpoints::list,
        crate::endpoints::get_one,
        crate::endpoints::update,
        crate::endpoints::remove,
        crate::endpoints::disable,
        crate::endpoints::enable,
        crate::endpoints::secret,
        crate::endpoints::rotate_secret,
        crate::endpoints::send_test,
        crate::deliveries::by_endpoint,
        crate::deliveries::endpoint_health,
        crate::deliveries::recover,
        crate::deliveries::by_status,
        crate::deliveries::get_one,
        crate::deliveries::resend,
        crate::deliveries::event,
        crate::deliveries::by_event,
        crate::deliveries::audit_trail,
        crate::events::list,
    ),
    components(
        schemas(
            ErrorBody,
            views::EndpointView,
            views::DeliveryView,
            views::TenantView,
            views::ApiKeyView
        ),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            TooLarge,
            UnsupportedMediaType,
            Invalid,
            Internal,
            Unavailable
        )
    )
)]
pub struct ApiDoc;

/// 400: the request could not be read (bad JSON, query or cursor).
#[derive(ToResponse)]
#[response(
    description = "The request could not be read: bad JSON, an unknown or malformed query parameter, a bad cursor"
)]
pub struct BadRequest(#[to_schema] pub ErrorBody);

/// 401: no key, or not a valid one.
#[derive(ToResponse)]
#[response(description = "No API key, or not a valid one (unknown, revoked or expired)")]
pub struct Unauthorized(#[to_schema] pub ErrorBody);

/// 403: a valid key that may not do this.
#[derive(ToResponse)]
#[response(
    description = "A valid key that may not do this: a tenant key on an admin route, a key whose scope does not allow the call, or no admin key configured"
)]
pub struct Forbidden(#[to_schema] pub ErrorBody);

/// 404: absent, or another tenant's.
#[derive(ToResponse)]
#[response(description = "No such resource, or another tenant's (never told apart)")]
pub struct NotFound(#[to_schema] pub ErrorBody);

/// 409: the request clashes with the current state.
#[derive(ToResponse)]
#[response(
    description = "The request clashes with the current state (code `conflict`), or a per-tenant limit would be passed (code `limit_exceeded`, `details.limit` and `details.value`); nothing is written"
)]
pub struct Conflict(#[to_schema] pub ErrorBody);

/// 413: the body is too large.
#[derive(ToResponse)]
#[response(description = "The body is larger than 64 KiB")]
pub struct TooLarge(#[to_schema] pub ErrorBody);

/// 415: the body is not JSON.
#[derive(ToResponse)]
#[response(description = "The body is not application/json")]
pub struct UnsupportedMediaType(#[to_schema] pub ErrorBody);

/// 422: a field that parsed but is not acceptable.
#[derive(ToResponse)]
#[response(
    description = "The body parsed but a field is not acceptable (`details.field` names it): also an endpoint URL that is refused (`url_refused`: private address, plain http) or whose host does not resolve (`url_unresolvable`)"
)]
pub struct Invalid(#[to_schema] pub ErrorBody);

/// 500: Switchyard failed.
#[derive(ToResponse)]
#[response(description = "Switchyard failed; the cause is logged, not shown")]
pub struct Internal(#[to_schema] pub ErrorBody);

/// 503: a dependency is unavailable.
#[derive(ToResponse)]
#[response(description = "A dependency is unavailable; try again")]
pub struct Unavailable(#[to_schema] pub ErrorBody);

/// `limit` and `cursor`, the query of every listing.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items a page (1 to 100; 20 when left out).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// A listing of deliveries created in a window.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// Items a page (1 to 100; 20 when left out).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// Created at or after (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Created before (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
}

/// Which deliveries: by state.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// `failed` (when left out), `retrying` or `skipped`.
    #[param(inline)]
    pub status: Option<ListedState>,
    /// Items a page (1 to 100; 20 when left out).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// The delivery states listed by state (succeeded ones are listed by
/// endpoint or by event).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ListedState {
    /// Given up.
    Failed,
    /// Another attempt is scheduled.
    Retrying,
    /// Not attempted.
    Skipped,
}

/// The audit trail's window.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Received at or after (RFC 3339).
    #[param(format = DateTime)]
    pub since: String,
    /// Received before (RFC 3339; now when left out); at most 366 days after `since`.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Items a page (1 to 100; 20 when left out).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// Refuses any query parameter that `T` does not document.
pub fn only<T: IntoParams>(p: &Params) -> ApiResult<()> {
    let names: Vec<String> = T::into_params(|| None).into_iter().map(|p| p.name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    p.only(&names)
}

/// An event type filter: an exact type (`order.placed`), a prefix
/// (`order.*`) or `*`.
pub struct TypeFilter;

impl utoipa::PartialSchema for TypeFilter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(128))
            .pattern(Some(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*\.\*|[a-z0-9_]+(\.[a-z0-9_]+)+)$"))
            .into()
    }
}

impl ToSchema for TypeFilter {}

/// The error answers several routes share, by reference to the components
/// above: `$name` answers each of `$code => $response`.
macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($code:literal => $response:literal),+) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                [$(($code, $response)),+]
                    .into_iter()
                    .map(|(code, response)| {
                        (
                            code.to_string(),
                            utoipa::openapi::RefOr::Ref(utoipa::openapi::Ref::from_response_name(response)),
                        )
                    })
                    .collect()
            }
        }
    };
}

error_set!(
    /// What any route may answer: 401, 403, 500, 503.
    AuthErrors: "401" => "Unauthorized", "403" => "Forbidden", "500" => "Internal", "503" => "Unavailable"
);
error_set!(
    /// A route about one resource: [`AuthErrors`] and 404.
    ReadErrors: "401" => "Unauthorized", "403" => "Forbidden", "404" => "NotFound", "500" => "Internal",
        "503" => "Unavailable"
);
error_set!(
    /// A route with a query: [`AuthErrors`] and 400.
    ListErrors: "400" => "BadRequest", "401" => "Unauthorized", "403" => "Forbidden", "500" => "Internal",
        "503" => "Unavailable"
);
error_set!(
    /// A route with a JSON body: [`AuthErrors`], 400, 413, 415 and 422.
    BodyErrors: "400" => "BadRequest", "401" => "Unauthorized", "403" => "Forbidden", "413" => "TooLarge",
        "415" => "UnsupportedMediaType", "422" => "Invalid", "500" => "Internal", "503" => "Unavailable"
);
