//! The template's HTTP APIs on localhost, like `sam local start-api`:
//! routes from the functions' `HttpApi` events, matched as API Gateway
//! matches them (an exact path beats a path variable, which beats a greedy
//! `{proxy+}`; a method beats `ANY`; `$default` last), requests turned into
//! payload-format-2.0 events, and the function's answer into the response.

use super::lambda::Outcome;
use super::provision::Route;
use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::http::{HeaderName, HeaderValue};
use aws_lambda_events::query_map::QueryMap;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// API Gateway's payload limit.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The route of `routes` that serves `method path`, with its path
/// parameters.
pub fn match_route<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<(&'a Route, Map<String, Value>)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    type Scored<'r> = ((usize, u8, bool), &'r Route, Map<String, Value>);
    let mut best: Option<Scored<'a>> = None;
    for r in routes {
        if r.method != "ANY" && r.method != method {
            continue;
        }
        let Some((literals, kind, params)) = match_path(&r.path, &segs) else {
            continue;
        };
        let score = (literals, kind, r.method != "ANY");
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, r, params));
        }
    }
    best.map(|(_, r, p)| (r, p))
}

/// (literal segments, 2 exact / 1 variables / 0 greedy, params) if `pattern`
/// matches.
fn match_path(pattern: &str, segs: &[&str]) -> Option<(usize, u8, Map<String, Value>)> {
    if pattern == "$default" {
        return Some((0, 0, Map::new()));
    }
    let pat: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let mut params = Map::new();
    let mut literals = 0;
    let mut kind = 2;
    for (i, p) in pat.iter().enumerate() {
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            if i != pat.len() - 1 || segs.len() <= i || segs[i..].iter().all(|s| s.is_empty()) {
                return None;
            }
            params.insert(name.into(), Value::String(segs[i..].join("/")));
            return Some((literals, 0, params));
        }
        let seg = segs.get(i)?;
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if seg.is_empty() {
                return None;
            }
            params.insert(name.into(), Value::String((*seg).to_string()));
            kind = kind.min(1);
        } else if p != seg {
            return None;
        } else {
            literals += 1;
        }
    }
    (segs.len() == pat.len()).then_some((literals, kind, params))
}

/// The payload-2.0 event for a request that matched `route`: headers with
/// repeated names joined by commas, the `Cookie` header as `cookies`, the
/// query string decoded into `queryStringParameters` (repeated keys joined
/// by commas), and a body that is not UTF-8 in base64.
pub fn event(
    api_id: &str,
    route: &Route,
    params: Map<String, Value>,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    source_ip: &str,
) -> ApiGatewayV2httpRequest {
    let route_key = if route.path == "$default" {
        "$default".to_string()
    } else {
        format!("{} {}", route.method, route.path)
    };
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (k, v) in &parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).to_string();
        if k == hyper::header::COOKIE {
            cookies.extend(v.split(';').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()));
            continue;
        }
        joined
            .entry(k.as_str().to_string())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v)
            })
            .or_insert(v);
    }
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let path = parts.uri.path();
    let mut ev = crate::http_api::base(parts.method.clone(), path, &route_key);
    let ctx = &mut ev.request_context;
    ctx.apiid = Some(api_id.to_string());
    ctx.domain_name = Some(joined.get("host").cloned().unwrap_or_else(|| "localhost".into()));
    ctx.domain_prefix = Some("localhost".into());
    ctx.http.source_ip = Some(source_ip.to_string());
    ctx.http.user_agent = Some(joined.get("user-agent").cloned().unwrap_or_default());
    for (k, v) in joined {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            ev.headers.insert(k, v);
        }
    }
    ev.query_string_parameters = QueryMap::from(query(&raw_query));
    ev.raw_query_string = Some(raw_query);
    if !cookies.is_empty() {
        ev.cookies = Some(cookies);
    }
    ev.path_parameters = params
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
        .collect();
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => ev.body = Some(text.to_string()),
            Err(_) => {
                ev.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
                ev.is_base64_encoded = true;
            }
        }
    }
    ev
}

/// A query string decoded as `application/x-www-form-urlencoded`, each
/// key with its values in order.
fn query(raw: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

/// A JSON error response in API Gateway's own shape.
pub fn gateway_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(json!({ "message": message }).to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// The HTTP response for what the function returned, as API Gateway builds
/// it for payload 2.0.
pub fn response(outcome: &Outcome) -> Response<Full<Bytes>> {
    let body = match outcome {
        Outcome::Ok(b) => b,
        Outcome::Timeout => return gateway_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        _ => return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    };
    let structured = value.as_object().filter(|o| o.contains_key("statusCode"));
    let Some(o) = structured else {
        // No statusCode: the whole payload is a JSON 200.
        let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        return r;
    };
    let status = o
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(s as u16).ok());
    let Some(status) = status else {
        return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let text = o.get("body").and_then(Value::as_str).unwrap_or_default();
    let body = if o.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(b) => b,
            Err(_) => return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
    } else {
        text.as_bytes().to_vec()
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    for (k, v) in o.get("headers").and_then(Value::as_object).into_iter().flatten() {
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            h.append(k, v);
        }
    }
    for c in o.get("cookies").and_then(Value::as_array).into_iter().flatten() {
        if let Some(v) = c.as_str().and_then(|c| hyper::header::HeaderValue::from_str(c).ok()) {
            h.append(hyper::header::SET_COOKIE, v);
        }
    }
    r
}

/// Reads a request body up to API Gateway's limit; `None` if larger.
pub async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// Splits a request into the parts the event needs.
pub fn parts(req: Request<Incoming>) -> (hyper::http::request::Parts, Incoming) {
    req.into_parts()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        Route {
            api: "Api".into(),
            method: method.into(),
            path: path.into(),
            function: format!("{method} {path}"),
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let routes = vec![
            route("ANY", "/v1/endpoints/{proxy+}"),
            route("ANY", "/v1/endpoints"),
            route("POST", "/v1/events"),
            route("GET", "/v1/events/{id}"),
            route("GET", "/v1/events/{proxy+}"),
            route("ANY", "$default"),
        ];
        let m = |method: &str, path: &str| match_route(&routes, method, path).map(|(r, p)| (r.function.clone(), p));
        assert_eq!(m("POST", "/v1/events").unwrap().0, "POST /v1/events");
        assert_eq!(m("GET", "/v1/events").unwrap().0, "ANY $default");
        let (f, p) = m("GET", "/v1/events/evt_1").unwrap();
        assert_eq!((f.as_str(), p["id"].as_str()), ("GET /v1/events/{id}", Some("evt_1")));
        let (f, p) = m("GET", "/v1/events/evt_1/deliveries").unwrap();
        assert_eq!(
            (f.as_str(), p["proxy"].as_str()),
            ("GET /v1/events/{proxy+}", Some("evt_1/deliveries"))
        );
        assert_eq!(m("DELETE", "/v1/endpoints").unwrap().0, "ANY /v1/endpoints");
        assert_eq!(
            m("PATCH", "/v1/endpoints/ep_1/secret").unwrap().0,
            "ANY /v1/endpoints/{proxy+}"
        );
        let without_default = &routes[..5];
        assert!(match_route(without_default, "GET", "/nope").is_none());
        assert!(match_route(without_default, "PUT", "/v1/events").is_none());
    }

    #[test]
    fn responses_follow_payload_2_0() {
        let r = response(&Outcome::Ok(Bytes::from(
            r#"{"statusCode":201,"headers":{"x-a":"1"},"cookies":["c=1"],"body":"aGk=","isBase64Encoded":true}"#,
        )));
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["x-a"], "1");
        assert_eq!(r.headers()["set-cookie"], "c=1");
        let r = response(&Outcome::Ok(Bytes::from(r#"{"hello":"world"}"#)));
        assert_eq!(
            (r.status().as_u16(), &r.headers()["content-type"]),
            (200, &"application/json".parse::<hyper::header::HeaderValue>().unwrap())
        );
        assert_eq!(response(&Outcome::Timeout).status(), 503);
        assert_eq!(response(&Outcome::Crashed("x".into())).status(), 500);
        assert_eq!(response(&Outcome::Ok(Bytes::from("not json"))).status(), 500);
    }

    #[test]
    fn a_request_becomes_a_payload_2_0_event() {
        let (parts, ()) = hyper::Request::builder()
            .method("GET")
            .uri("/v1/events/evt_1?a=1&a=2&b=x%20y")
            .header("host", "127.0.0.1:3000")
            .header("x-h", "1")
            .header("x-h", "2")
            .header("cookie", "c=1; d=2")
            .body(())
            .unwrap()
            .into_parts();
        let routes = [route("GET", "/v1/events/{id}")];
        let (r, params) = match_route(&routes, "GET", parts.uri.path()).unwrap();
        let ev = serde_json::to_value(event("api1", r, params, &parts, b"hi", "10.0.0.9")).unwrap();
        assert_eq!(ev["routeKey"], "GET /v1/events/{id}");
        assert_eq!(ev["rawPath"], "/v1/events/evt_1");
        assert_eq!(ev["rawQueryString"], "a=1&a=2&b=x%20y");
        assert_eq!(ev["queryStringParameters"], json!({"a": "1,2", "b": "x y"}));
        assert_eq!(ev["pathParameters"], json!({"id": "evt_1"}));
        assert_eq!(ev["headers"]["x-h"], "1,2");
        assert_eq!(ev["headers"].get("cookie"), None);
        assert_eq!(ev["cookies"], json!(["c=1", "d=2"]));
        assert_eq!((&ev["body"], &ev["isBase64Encoded"]), (&json!("hi"), &json!(false)));
        let ctx = &ev["requestContext"];
        assert_eq!(
            (&ctx["apiId"], &ctx["domainName"]),
            (&json!("api1"), &json!("127.0.0.1:3000"))
        );
        assert_eq!(
            (&ctx["http"]["method"], &ctx["http"]["sourceIp"]),
            (&json!("GET"), &json!("10.0.0.9"))
        );
        assert_eq!(ctx["http"]["userAgent"], "");
        let binary = serde_json::to_value(event("api1", r, Map::new(), &parts, &[0xff, 0x00], "::1")).unwrap();
        assert_eq!(
            (&binary["body"], &binary["isBase64Encoded"]),
            (&json!("/wA="), &json!(true))
        );
        assert_eq!(binary.get("pathParameters"), None);
    }

    #[test]
    fn query_strings_are_decoded() {
        let q = query("a=a%20b+c%2F&p=100%&&q=%zz&a=2&flag");
        assert_eq!(q["a"], ["a b c/", "2"]);
        assert_eq!(q["p"], ["100%"]);
        assert_eq!(q["q"], ["%zz"]);
        assert_eq!(q["flag"], [""]);
        assert_eq!(q.len(), 4);
    }
}
