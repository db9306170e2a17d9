//! Building the API Gateway HTTP API (payload format 2.0) events that Lambda
//! passes to an HTTP-triggered function: [`request`] for tests that call a
//! handler directly, and the runner's local HTTP APIs, which fill in the
//! rest of a real request on top of the same [`base`].

use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext};
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue, Method};

/// A payload-2.0 event for `method path` matched by `route_key`, with the
/// request context API Gateway fills in (account, stage, request id, time,
/// source `127.0.0.1`); no headers, query or body yet.
pub(crate) fn base(method: Method, path: &str, route_key: &str) -> ApiGatewayV2httpRequest {
    let now = switchyard_core::time_util::now_utc();
    let mut ctx = ApiGatewayV2httpRequestContext::default();
    ctx.account_id = Some(crate::runner::cfn::ACCOUNT_ID.into());
    ctx.http.method = method.clone();
    ctx.http.path = Some(path.to_string());
    ctx.http.protocol = Some("HTTP/1.1".into());
    ctx.http.source_ip = Some("127.0.0.1".into());
    ctx.route_key = Some(route_key.to_string());
    ctx.request_id = Some(switchyard_core::ids::ulid());
    ctx.stage = Some("$default".into());
    ctx.time = Some(switchyard_core::time_util::rfc3339(now));
    ctx.time_epoch = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut req = ApiGatewayV2httpRequest::default();
    // Not part of payload 2.0, but serialized anyway: say the real method
    // rather than the type's default `GET`.
    #[allow(deprecated)]
    {
        req.http_method = method;
    }
    req.version = Some("2.0".into());
    req.route_key = ctx.route_key.clone();
    req.raw_path = Some(path.to_string());
    req.raw_query_string = Some(String::new());
    req.request_context = ctx;
    req
}

/// A payload-2.0 request for `method path` with `headers` and a text body.
pub fn request(method: Method, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> ApiGatewayV2httpRequest {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            map.append(k, v);
        }
    }
    let route_key = format!("{method} {path}");
    let mut req = base(method, path, &route_key);
    req.headers = map;
    req.body = body.map(str::to_string);
    req
}

/// `POST /v1/events` with a bearer API key and a JSON body.
pub fn post_event(api_key: &str, body: &str) -> ApiGatewayV2httpRequest {
    let auth = format!("Bearer {api_key}");
    request(
        Method::POST,
        "/v1/events",
        &[("authorization", &auth), ("content-type", "application/json")],
        Some(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_request_serializes_as_payload_2_0() {
        let ev = serde_json::to_value(post_event("sk_1", "{}")).unwrap();
        assert_eq!(ev["version"], "2.0");
        assert_eq!(ev["routeKey"], "POST /v1/events");
        assert_eq!(ev["rawPath"], "/v1/events");
        assert_eq!(ev["headers"]["authorization"], "Bearer sk_1");
        assert_eq!(ev["body"], "{}");
        assert_eq!(ev["isBase64Encoded"], false);
        let ctx = &ev["requestContext"];
        assert_eq!(ctx["http"]["method"], "POST");
        assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(ctx["stage"], "$default");
        assert_eq!(ctx["accountId"], crate::runner::cfn::ACCOUNT_ID);
        assert!(ctx["requestId"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(ctx["timeEpoch"].as_i64().is_some_and(|t| t > 0));
        assert_eq!(ev.get("queryStringParameters"), None);
        assert_eq!(ev.get("pathParameters"), None);
        assert_eq!(ev.get("cookies"), None::<&Value>);
    }
}
