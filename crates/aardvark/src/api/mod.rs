//! The HTTP API: upstream's `/api/1/advisors` and `/healthcheck`, the OpenAPI document and
//! Swagger UI. Every error leaves here as JSON `{"message": ...}` with a 4xx status (503 when
//! the database cannot be reached or too many costly queries wait), never a 500 or database
//! error text; input echoed in a message is cut to a short prefix ([`quoted`]).
//!
//! Around the routes, outermost first: request metrics and the access log ([`metrics`]), the
//! `Host` check and the answer's shape and headers ([`edge`]), authentication ([`auth`]), the
//! body read whole, bounded in size and time ([`edge::read_body`]); costly queries are bounded
//! by [`costly`].

mod advisors;
mod auth;
pub mod costly;
mod dashboard;
mod declared;
mod edge;
pub mod findings;
mod history;
mod metrics;
mod openapi;
pub mod params;
pub mod recommendations;
mod runs;
mod unused;
pub mod wire;

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Serialize;

use crate::auth::ApiTokens;
use crate::collector::calls::AwsMetrics;
use crate::db::{Database, DbError, Reader};
use crate::hosts::AllowedHosts;

pub use metrics::Telemetry;
pub use openapi::{openapi_document, openapi_document_for};

/// What a server puts around the routes: who must show a token, what `/metrics` counts, which
/// hosts it answers for, what it logs and how many costly queries it runs at once.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// Authentication is on when there are tokens.
    pub tokens: ApiTokens,
    /// Whether `/metrics` needs a token too (when there are tokens).
    pub metrics_require_token: bool,
    /// The AWS calls of this process's collector, when it has one.
    pub aws_metrics: Option<AwsMetrics>,
    /// The `Host` names answered (others get a 421).
    pub allowed_hosts: AllowedHosts,
    /// Whether answers go over HTTPS (then with HSTS).
    pub https: bool,
    /// One log line per request.
    pub access_log: bool,
    /// Costly queries run at once (0: half the cores).
    pub costly_queries: usize,
    /// How long a request's body may take to arrive (none: as long as it takes).
    pub body_timeout: Option<std::time::Duration>,
}

/// Where the OpenAPI document is served (upstream's Flasgger path): open, like Swagger UI's
/// files under [`UI_PATH`] (read by `openapi` to serve them and by `auth` to open them).
pub const DOCUMENT_PATH: &str = "/apispec_1.json";
/// Where Swagger UI is served.
pub const UI_PATH: &str = "/apidocs";
/// The largest request body read (a JSON body of parameters is far smaller).
pub const BODY_LIMIT_BYTES: usize = 2 * 1024 * 1024;
/// Upstream's message for a path no route answers.
const NOT_FOUND_MESSAGE: &str = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.";
/// Upstream's message for a method a route does not take.
const METHOD_NOT_ALLOWED_MESSAGE: &str = "The method is not allowed for the requested URL.";

/// Methods `/api/1/advisors` answers.
const ADVISORS_METHODS: &str = "GET, POST, HEAD, OPTIONS";
/// The methods of the writes by hand (`/api/1/findings/{id}/archive`, `/unarchive`).
const WRITE_METHODS: &str = "POST, OPTIONS";

/// An error answer: a status and a message naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What was wrong with the request.
    message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        tracing::error!(error = %err, "database query failed");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the database is unavailable; try again later".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            &ErrorBody {
                message: self.message,
            },
            256,
        )
    }
}

/// A JSON body as upstream's Flask sent it: compact, keys in the order the types give (sorted),
/// and a trailing newline. `capacity` is a guess at its size, so that large pages are not
/// copied as they grow.
pub(crate) fn json_response<T: Serialize>(
    status: StatusCode,
    body: &T,
    capacity: usize,
) -> Response {
    let mut text = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut text, body).expect("API bodies always serialize");
    text.push(b'\n');
    json_text_response(status, text)
}

/// A response of JSON text already written, newline included.
pub(crate) fn json_text_response(status: StatusCode, text: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

/// Input echoed in a message: quoted, and cut to its first 64 characters when longer, so that
/// an answer never carries a large input back.
pub(crate) fn quoted(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &text[..cut], text.len()),
    }
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: NOT_FOUND_MESSAGE.into(),
    }
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: METHOD_NOT_ALLOWED_MESSAGE.into(),
    }
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// `GET /healthcheck`: the server is up.
#[utoipa::path(get, path = "/healthcheck", tag = "health", responses((status = 200, description = "The server is up", body = String, example = "ok")))]
async fn healthcheck() -> &'static str {
    "ok"
}

/// A route that takes POST only, with its `Allow` in answers to OPTIONS and in its 405s.
fn write_route<H, T>(handler: H) -> axum::routing::MethodRouter<Reader>
where
    H: axum::handler::Handler<T, Reader>,
    T: 'static,
{
    axum::routing::post(handler)
        .options(|| async {
            (
                StatusCode::OK,
                [(header::ALLOW, HeaderValue::from_static(WRITE_METHODS))],
            )
        })
        .fallback(|| async { method_not_allowed(WRITE_METHODS) })
}

/// The application's routes over a database's read path, with authentication (when tokens
/// are set), the edge's checks and headers, and request metrics around them.
pub fn router(reader: Reader, options: &ApiOptions) -> Router {
    let advisors_route = get(advisors::advisors)
        .post(advisors::advisors)
        .options(|| async {
            (
                StatusCode::OK,
                [(header::ALLOW, HeaderValue::from_static(ADVISORS_METHODS))],
            )
        })
        .fallback(|| async { method_not_allowed(ADVISORS_METHODS) });
    let telemetry = Telemetry::new(options.aws_metrics.as_ref(), options.access_log);
    let mut app = Router::new()
        .route("/api/1/advisors", advisors_route)
        .route("/api/1/runs", get(runs::runs))
        .route("/api/1/runs/{id}", get(runs::run))
        .route("/api/1/accounts", get(runs::accounts))
        .route("/api/1/history", get(history::history))
        .route("/api/1/unused", get(unused::unused))
        .route("/api/1/unused/accounts", get(unused::unused_accounts))
        .route("/api/1/actions", get(unused::actions))
        .route("/api/1/findings", get(findings::findings))
        .route(
            "/api/1/recommendations",
            get(recommendations::recommendations),
        )
        .route("/api/1/findings/summary", get(findings::summary))
        .route("/api/1/findings/{id}", get(findings::finding))
        .route(
            "/api/1/findings/{id}/archive",
            write_route(findings::archive),
        )
        .route(
            "/api/1/findings/{id}/unarchive",
            write_route(findings::unarchive),
        )
        .route("/healthcheck", get(healthcheck))
        .merge(openapi::routes(options))
        .merge(dashboard::routes())
        .fallback(not_found)
        .with_state(reader.clone())
        .merge(
            Router::new()
                .route("/metrics", get(metrics::metrics))
                .with_state((reader, telemetry.clone())),
        )
        .layer(Extension(Arc::new(costly::Costly::new(
            options.costly_queries,
        ))))
        .layer(Extension(findings::Writes {
            enabled: options.tokens.is_enabled(),
        }))
        .layer(axum::middleware::from_fn_with_state(
            options.body_timeout,
            edge::read_body,
        ));
    if options.tokens.is_enabled() {
        let guard = std::sync::Arc::new(auth::Guard {
            tokens: options.tokens.clone(),
            metrics_require_token: options.metrics_require_token,
        });
        app = app.layer(axum::middleware::from_fn_with_state(
            guard,
            auth::require_token,
        ));
    }
    let edge = Arc::new(edge::Edge {
        hosts: options.allowed_hosts.clone(),
        https: options.https,
    });
    app.layer(axum::middleware::from_fn_with_state(edge, edge::finish))
        .layer(axum::middleware::from_fn_with_state(
            telemetry,
            metrics::track,
        ))
}

/// The router over `db`, its principals read ahead of the first request.
pub fn app(db: Database, options: &ApiOptions) -> Router {
    let reader = Reader::new(db);
    let warm = reader.clone();
    tokio::spawn(async move {
        // Requests that come meanwhile wait for this load rather than start another; if it
        // fails, the first request tries again and answers for itself.
        if let Err(err) = warm.load_directory().await {
            tracing::warn!(error = %err, "cannot read the principals ahead of the first request");
        }
    });
    router(reader, options)
}
