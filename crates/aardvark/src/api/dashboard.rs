//! The dashboard (`GET /`): one page, its script and its style sheet, compiled into the binary.
//! It reads the JSON API from the browser, so these three files hold no data and are served
//! without a token; the page asks for one when the API does. The content security policy
//! lets the page reach nothing but this server.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../dashboard/index.html");
const SCRIPT: &str = include_str!("../dashboard/dashboard.js");
const STYLE: &str = include_str!("../dashboard/dashboard.css");

/// Only this server: scripts, styles, fetches and frames from elsewhere are refused.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Paths of the dashboard's files (open when authentication is on).
pub const PATHS: [&str; 3] = ["/", "/dashboard/dashboard.js", "/dashboard/dashboard.css"];

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            PATHS[0],
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            PATHS[1],
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            PATHS[2],
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
}
