//! Building the API Gateway HTTP API (payload format 2.0) events that Lambda
//! passes to an HTTP-triggered function.

use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext};
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue, Method};

/// A payload-2.0 request for `method path` with `headers` and a text body.
pub fn request(method: Method, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> ApiGatewayV2httpRequest {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            map.append(k, v);
        }
    }
    let mut ctx = ApiGatewayV2httpRequestContext::default();
    ctx.http.method = method.clone();
    ctx.http.path = Some(path.to_string());
    ctx.http.protocol = Some("HTTP/1.1".into());
    ctx.http.source_ip = Some("127.0.0.1".into());
    ctx.route_key = Some(format!("{method} {path}"));
    ctx.request_id = Some(switchyard_core::ids::ulid());
    ctx.stage = Some("$default".into());
    let mut req = ApiGatewayV2httpRequest::default();
    req.version = Some("2.0".into());
    req.route_key = ctx.route_key.clone();
    req.raw_path = Some(path.to_string());
    req.raw_query_string = Some(String::new());
    req.headers = map;
    req.request_context = ctx;
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
