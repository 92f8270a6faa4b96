//! The OpenAPI document (`/apispec_1.json`, upstream's Flasgger path) and Swagger UI
//! (`/apidocs/`), both served from the binary: the UI's files are compiled in.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::db::Reader;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aardvark",
        description = "AWS IAM Access Advisor data, collected across accounts. Compatible with Netflix Aardvark 0.3.5's API."
    ),
    paths(
        super::advisors::advisors,
        super::runs::runs,
        super::runs::run,
        super::runs::accounts,
        super::history::history,
        super::healthcheck
    ),
    components(schemas(
        super::advisors::AdvisorsBody,
        super::wire::ServiceEntry,
        super::advisors::CombinedEntry,
        super::ErrorBody
    ))
)]
struct ApiDoc;

pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn routes() -> Router<Reader> {
    Router::from(SwaggerUi::new("/apidocs").url("/apispec_1.json", openapi_document()))
}
