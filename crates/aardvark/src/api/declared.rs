//! What the OpenAPI document says the same way for many endpoints, declared once: the paging
//! parameters of the list endpoints and the answer of an unreachable database.

use super::ErrorBody;

/// `page` and `count` of the list endpoints (`/api/1/runs`, `/api/1/accounts`,
/// `/api/1/history`, `/api/1/unused...`, `/api/1/actions`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by the document only: `params::RequestParams::list_paging` parses them
pub struct ListPaging {
    /// Page number, from 1 (default 1)
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    page: Option<i64>,
    /// Entries per page (default 30, at most 1000)
    #[param(minimum = 0, maximum = 1000)]
    count: Option<i64>,
}

/// 503: the database cannot be reached.
#[derive(utoipa::IntoResponses)]
#[response(status = 503, description = "The database cannot be reached")]
#[allow(dead_code)] // read by the document only: `ApiError` answers it
pub struct DatabaseUnreachable(ErrorBody);
