//! Request parsing: who is calling (admin or tenant, from the API key
//! only), JSON bodies and query strings — every failure in the API's own
//! error shape.

use crate::error::ApiError;
use crate::{AppState, MAX_BODY_BYTES, Ports};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;
use switchyard_core::admin_key::{AdminKeys, Verdict};
use switchyard_core::api_key::Access;
use switchyard_core::ports::Registry;
use switchyard_core::{ApiKey, TenantId};

/// The bearer token of a request (`Authorization: Bearer <key>`, or
/// `x-api-key`).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = auth.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The hex SHA-256 of an admin key, as `ADMIN_KEY_SHA256` holds it.
pub fn admin_key_digest(key: &str) -> String {
    switchyard_core::admin_key::digest_hex(key)
}

/// Whether the request's bearer key is one of `keys`: `Ok(())`, or the
/// error to answer (401 without a key or with a wrong one, 403 when no
/// admin key is configured, 503 when the kept secret cannot be read).
pub async fn check_admin(headers: &HeaderMap, keys: &AdminKeys) -> Result<(), ApiError> {
    let key = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    match keys.check(key).await? {
        Verdict::Admin => Ok(()),
        Verdict::NoneConfigured => Err(ApiError::forbidden("no admin key is configured")),
        Verdict::NotAdmin => Err(ApiError::unauthorized()),
    }
}

/// The operator: the request carries the admin key.
pub struct Admin;

impl<P: Ports> FromRequestParts<Arc<AppState<P>>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState<P>>) -> Result<Self, ApiError> {
        let key = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        match state.admin_keys.check(key).await? {
            Verdict::Admin => return Ok(Admin),
            Verdict::NoneConfigured => return Err(ApiError::forbidden("no admin key is configured")),
            Verdict::NotAdmin => {}
        }
        // A tenant's key is valid, just not here.
        if let Ok(k) = ApiKey::parse(key)
            && state.registry.key_grant(&k.hash()).await?.is_some()
        {
            return Err(ApiError::forbidden("this route needs the admin key"));
        }
        Err(ApiError::unauthorized())
    }
}

/// The tenant whose API key the request carries. Every tenant route takes
/// its tenant from here, never from the path or the body. The key must be
/// live, and its scope must allow the call: `GET` needs `read` (or
/// `manage`), anything else `manage`.
pub struct Tenant(pub TenantId);

impl<P: Ports> FromRequestParts<Arc<AppState<P>>> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState<P>>) -> Result<Self, ApiError> {
        let key = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let Ok(key) = ApiKey::parse(key) else {
            return Err(ApiError::unauthorized());
        };
        let grant = state
            .registry
            .key_grant(&key.hash())
            .await?
            .filter(|g| g.live_at(switchyard_core::time_util::now_utc()))
            .ok_or_else(ApiError::unauthorized)?;
        let access = if parts.method == axum::http::Method::GET {
            Access::Read
        } else {
            Access::Manage
        };
        if grant.scope.allows(access) {
            Ok(Tenant(grant.tenant))
        } else {
            Err(ApiError::forbidden(format!(
                "this API key's scope ({}) does not allow this call",
                grant.scope.as_str()
            )))
        }
    }
}

/// A JSON body: at most [`MAX_BODY_BYTES`], `content-type` JSON, parsed
/// into `T` (unknown fields refused where `T` says so). An empty body is `{}`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        // No body at all reads as `{}`: the routes whose fields are all
        // optional (rotate, redrive) can be called bare.
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
            || (!req.headers().contains_key(header::CONTENT_LENGTH)
                && !req.headers().contains_key(header::TRANSFER_ENCODING)
                && !req.headers().contains_key(header::CONTENT_TYPE));
        if empty {
            return parse_json(b"{}").map(Body);
        }
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                )
            })?;
        parse_json(&bytes).map(Body)
    }
}

/// Parses JSON into `T`: syntax errors are 400, a body of the wrong shape 422.
/// A number with a zero fraction (`152.0`) reads as the integer it equals,
/// as JSON Schema counts it (see [`integral_numbers`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}")))?;
    // Every body is an object: serde would read a struct from an array.
    if !value.is_object() {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the body must be a JSON object",
        ));
    }
    integral_numbers(&mut value);
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            e.to_string(),
        )
    })
}

/// Rewrites, through `v`, every number written with a zero fraction
/// (`152.0`, `1e3`) as the integer it equals, so that integer fields take
/// it: JSON Schema, and so the API document, counts it as an integer.
/// Numbers with a fraction, and integral ones beyond 2^53 (no longer
/// exact as floats), are left alone.
pub fn integral_numbers(v: &mut serde_json::Value) {
    use serde_json::Value;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() <= EXACT
            {
                // Integral and within ±2^53: the conversion is exact.
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// The query string's parameters; unknown ones are refused, and so is an
/// empty value (`?cursor=`): the document says each parameter's form, and
/// an empty string is none of them.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let mut out = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if v.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("`{k}` is empty: leave it out, or give it a value"),
                ));
            }
            if out.insert(k.to_string(), v.to_string()).is_some() {
                return Err(ApiError::bad_request("invalid_query", format!("`{k}` is given twice")));
            }
        }
        Ok(Params(out))
    }
}

impl Params {
    /// Refuses any parameter not in `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown query parameter `{k}` (allowed: {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// The value of query parameter `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `limit` (1 … 100, default 20) and `cursor`.
    pub fn page(&self) -> Result<(usize, Option<&str>), ApiError> {
        let limit = match self.get("limit") {
            None => 20,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => return Err(ApiError::bad_request("invalid_query", "limit must be 1 to 100")),
            },
        };
        Ok((limit, self.get("cursor")))
    }

    /// An RFC 3339 time parameter.
    pub fn time(&self, name: &str) -> Result<Option<time::OffsetDateTime>, ApiError> {
        self.get(name)
            .map(|v| {
                switchyard_core::time_util::parse_rfc3339(v)
                    .map_err(|_| ApiError::bad_request("invalid_query", format!("{name} must be an RFC 3339 time")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_with_a_zero_fraction_read_as_integers() {
        #[derive(serde::Deserialize, Debug)]
        struct T {
            n: u32,
            nested: Vec<i64>,
            x: f64,
        }
        let t: T = parse_json(br#"{"n": 152.0, "nested": [-3.0, 1e3], "x": 2.5}"#).unwrap();
        assert_eq!((t.n, t.nested, t.x), (152, vec![-3, 1000], 2.5));
        let e = parse_json::<T>(br#"{"n": 152.5, "nested": [], "x": 1}"#).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        let e = parse_json::<T>(b"[152, [], 1]").unwrap_err();
        assert_eq!(
            e.status,
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "an array is not an object"
        );
        let mut big = json!(1e300);
        integral_numbers(&mut big);
        assert_eq!(big, json!(1e300), "beyond 2^53 a float is left as it is");
    }

    async fn params(query: &str) -> Result<Params, ApiError> {
        let req = axum::http::Request::get(format!("/x?{query}")).body(()).unwrap();
        let (mut parts, ()) = req.into_parts();
        Params::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn an_empty_query_value_is_refused() {
        for q in ["cursor=", "since=&limit=5", "limit=5&until"] {
            let e = params(q).await.err().unwrap_or_else(|| panic!("{q} was accepted"));
            assert_eq!((e.status.as_u16(), e.code), (400, "invalid_query"), "{q}");
        }
        let p = params("cursor=abc&limit=5").await.unwrap();
        assert_eq!(p.page().unwrap(), (5, Some("abc")));
        p.only(&["limit", "cursor"]).unwrap();
        assert!(params("limit=1&limit=2").await.is_err(), "twice is still refused");
        assert!(params("limit=1&nope=1").await.unwrap().only(&["limit"]).is_err());
    }
}
