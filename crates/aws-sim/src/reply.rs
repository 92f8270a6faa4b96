//! What a handler answers: a status, a content type and a body, in AWS's shapes (Query
//! protocol XML errors with `Sender`/`Receiver`).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::xml;

/// An answer: status, content type and body.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn xml(status: StatusCode, body: String) -> Self {
        Self {
            status,
            content_type: "text/xml",
            body,
        }
    }

    pub fn query_error(
        status: StatusCode,
        namespace: &str,
        code: &str,
        message: &str,
        request_id: &str,
    ) -> Self {
        let kind = if status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        Self::xml(
            status,
            xml::error(namespace, kind, code, message, request_id),
        )
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response()
    }
}
