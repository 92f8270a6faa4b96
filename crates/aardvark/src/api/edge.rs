//! What every request meets on its way in and every answer on its way out, whatever route
//! (or none) it reached:
//! - a `Host` the server does not answer for ([`crate::hosts`]) is a 421;
//! - a body is read whole before the route sees it (and after authentication, [`read_body`]),
//!   within the read timeout (408 past it, so that a drip-fed body holds no connection) and the
//!   body limit (413);
//! - every 4xx and 5xx is `{"message"}` JSON, including those that axum and its extractors
//!   write as text or leave empty (405, 413, 404 under Swagger UI's routes);
//! - a 405 names every method the route answers in `Allow`, `OPTIONS` included, and `OPTIONS`
//!   itself is answered 200 with that `Allow`;
//! - security headers: `nosniff`, `no-referrer`, `no-store` unless the route chose its own
//!   caching, a content security policy (Swagger UI's lets its own scripts and styles run,
//!   any other answer's lets nothing run), framing refused, HSTS over HTTPS, and `Retry-After`
//!   on a 503.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::hosts::AllowedHosts;

/// Swagger UI's pages: its bundle and its inline styles, images as data URIs, and fetches of
/// the document from this server only.
const SWAGGER_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";
/// Every other answer: JSON and text that nothing should run or frame.
const DATA_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";
/// A year, without subdomains (the server may share a domain with others).
const HSTS: &str = "max-age=31536000";

/// How the server finishes answers.
#[derive(Debug, Clone)]
pub struct Edge {
    pub hosts: AllowedHosts,
    /// Whether the server speaks HTTPS (HSTS is sent only then).
    pub https: bool,
}

/// Middleware: the `Host` check, then the route, then the answer's shape and headers.
pub async fn finish(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let swagger = request.uri().path().starts_with("/apidocs");
    let mut response = match refused_host(&edge.hosts, &request) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    };
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        response = allow_options(&method, response);
    }
    if is_error(response.status()) && !is_json(response.headers()) {
        response = as_json_error(response).await;
    }
    let status = response.status();
    add_headers(status, response.headers_mut(), swagger, edge.https);
    response
}

/// The 421 for a `Host` this server does not answer for (`/healthcheck` answers any: probes
/// reach it by address, and it tells nothing).
fn refused_host(hosts: &AllowedHosts, request: &Request) -> Option<Response> {
    if hosts.is_any() || request.uri().path() == "/healthcheck" {
        return None;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    if hosts.allows(host.as_deref()) {
        return None;
    }
    Some(
        ApiError {
            status: StatusCode::MISDIRECTED_REQUEST,
            message: format!(
                "this server does not answer for the host {}; it answers for {} (the ALLOWED_HOSTS setting)",
                super::quoted(host.as_deref().unwrap_or_default()),
                hosts.describe()
            ),
        }
        .into_response(),
    )
}

/// Middleware (inside authentication, so that only a client with a token makes the server
/// hold a body): `request` with its body read whole, within `timeout` and
/// [`super::BODY_LIMIT_BYTES`].
pub async fn read_body(
    State(timeout): State<Option<Duration>>,
    request: Request,
    next: Next,
) -> Response {
    match read_whole(request, timeout).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

async fn read_whole(request: Request, timeout: Option<Duration>) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    // A body announced too large is refused before any of it is read.
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|length| length > super::BODY_LIMIT_BYTES as u64) {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: too_large_message(),
        });
    }
    let reading = axum::body::to_bytes(body, super::BODY_LIMIT_BYTES);
    let read = match timeout {
        Some(timeout) => tokio::time::timeout(timeout, reading)
            .await
            .map_err(|_| ApiError {
                status: StatusCode::REQUEST_TIMEOUT,
                message: format!(
                    "the request body did not arrive within {} s (HEADER_READ_TIMEOUT_SECONDS)",
                    timeout.as_secs()
                ),
            })?,
        None => reading.await,
    };
    match read {
        Ok(bytes) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Err(err) if is_too_large(&err) => Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: too_large_message(),
        }),
        Err(err) => Err(ApiError::bad_request(format!(
            "the request body could not be read: {err}"
        ))),
    }
}

fn is_too_large(err: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = cause {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

fn too_large_message() -> String {
    format!(
        "the request body is larger than the limit of {} bytes",
        super::BODY_LIMIT_BYTES
    )
}

fn is_error(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"))
}

/// The methods of a route that does not name its own in `Allow`: every route of this server
/// but `/api/1/advisors` (which names them) only reads.
const READ_ONLY_METHODS: &str = "GET, HEAD";

/// `OPTIONS` on a route answers 200 with the methods it takes; any other method it does not
/// take is a 405 whose `Allow` names `OPTIONS` too.
fn allow_options(method: &Method, mut response: Response) -> Response {
    let mut allow = response
        .headers()
        .get(header::ALLOW)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.trim().is_empty())
        .unwrap_or(READ_ONLY_METHODS)
        .split(',')
        .map(str::trim)
        .filter(|method| !method.is_empty())
        .map(str::to_owned)
        .collect::<Vec<_>>();
    if !allow.iter().any(|m| m == "OPTIONS") {
        allow.push("OPTIONS".into());
    }
    let allow = HeaderValue::from_str(&allow.join(", "))
        .unwrap_or(HeaderValue::from_static("GET, HEAD, OPTIONS"));
    if *method == Method::OPTIONS {
        return (StatusCode::OK, [(header::ALLOW, allow)]).into_response();
    }
    response.headers_mut().insert(header::ALLOW, allow);
    response
}

/// The same answer with `{"message"}` for its body: its own text when it has a short one
/// (axum's rejections say what was wrong), else what the status means.
async fn as_json_error(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    // Bodies of errors made by axum's layers are short; a longer one is not read past this.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = match parts.status {
        StatusCode::NOT_FOUND => super::NOT_FOUND_MESSAGE.to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => super::METHOD_NOT_ALLOWED_MESSAGE.to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => too_large_message(),
        _ if !text.is_empty() && text.len() <= 200 => text,
        status => status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_owned(),
    };
    let fresh = ApiError {
        status: parts.status,
        message,
    }
    .into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (_, body) = fresh.into_parts();
    Response::from_parts(parts, Body::new(body))
}

fn add_headers(status: StatusCode, headers: &mut HeaderMap, swagger: bool, https: bool) {
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            if swagger { SWAGGER_POLICY } else { DATA_POLICY },
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if status == StatusCode::SERVICE_UNAVAILABLE && !headers.contains_key(header::RETRY_AFTER) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
}
