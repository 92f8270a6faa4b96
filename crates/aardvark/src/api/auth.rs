//! Authentication, when `API_TOKENS` is set: every request but `/healthcheck`, the dashboard's
//! files and the API's documentation (they hold no data) and `/metrics` when
//! `METRICS_REQUIRE_TOKEN` is false carries a token, as
//! `Authorization: Bearer <token>` or as the password of HTTP Basic (so that Repokid's `http://aardvark:TOKEN@host/...` works). Anything
//! else is a 401 `{"message"}` with `WWW-Authenticate`: the scheme the client tried, or both
//! when it sent none (a page that sends Bearer is then never met by the browser's own prompt).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::ApiError;
use crate::auth::ApiTokens;

const BEARER_CHALLENGE: &str = "Bearer realm=\"aardvark\"";
const BASIC_CHALLENGE: &str = "Basic realm=\"aardvark\", charset=\"UTF-8\"";

/// Who must show a token.
#[derive(Debug, Clone)]
pub struct Guard {
    pub tokens: ApiTokens,
    pub metrics_require_token: bool,
}

/// Whether anyone may ask for `path` when authentication is on: the health check, the
/// dashboard's files and the API's documentation hold no data (and Swagger UI must load before
/// its Authorize button can take a token).
pub fn is_open(path: &str, metrics_require_token: bool) -> bool {
    path == "/healthcheck"
        || (path == "/metrics" && !metrics_require_token)
        || super::dashboard::PATHS.contains(&path)
        || path == super::DOCUMENT_PATH
        || path == super::UI_PATH
        || path.starts_with(&format!("{}/", super::UI_PATH))
}

/// The credentials of a request, as far as it sent any.
enum Presented<'a> {
    None,
    Bearer(&'a [u8]),
    Basic(Option<Vec<u8>>),
    Other,
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Presented::None;
    };
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(space) => (&value[..space], value[space + 1..].trim_ascii()),
        None => (value, &b""[..]),
    };
    if scheme.eq_ignore_ascii_case(b"bearer") {
        Presented::Bearer(rest)
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        let password = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|decoded| {
                let colon = decoded.iter().position(|b| *b == b':')?;
                Some(decoded[colon + 1..].to_vec())
            });
        Presented::Basic(password)
    } else {
        Presented::Other
    }
}

/// Middleware: lets a request through if its path is open or its token is one of the tokens.
pub async fn require_token(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    if is_open(request.uri().path(), guard.metrics_require_token) {
        return next.run(request).await;
    }
    let (accepted, challenges, message): (bool, &[&str], &str) =
        match presented(request.headers()) {
            Presented::Bearer(token) => (
                guard.tokens.accepts(token),
                &[BEARER_CHALLENGE],
                "the bearer token is not valid",
            ),
            Presented::Basic(Some(password)) => (
                guard.tokens.accepts(&password),
                &[BASIC_CHALLENGE],
                "the token given as the Basic password is not valid",
            ),
            Presented::Basic(None) => (
                false,
                &[BASIC_CHALLENGE],
                "the Basic credentials are not base64 of user:token",
            ),
            Presented::None | Presented::Other => (
                false,
                &[BEARER_CHALLENGE, BASIC_CHALLENGE],
                "authentication required: send Authorization: Bearer <token>, or HTTP Basic with the token as the password",
            ),
        };
    if accepted {
        return next.run(request).await;
    }
    let mut response = ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: message.to_owned(),
    }
    .into_response();
    for challenge in challenges {
        response.headers_mut().append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}
