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
        super::unused::unused,
        super::unused::unused_accounts,
        super::unused::actions,
        super::healthcheck
    ),
    components(schemas(
        super::advisors::AdvisorsBody,
        super::wire::ServiceEntry,
        super::advisors::CombinedEntry,
        super::runs::AccountState,
        crate::unused::PrincipalKind,
        super::ErrorBody
    ))
)]
struct ApiDoc;

pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    // The body of `/api/1/advisors` may be left out, but when sent it must be an object, which
    // utoipa cannot say with one type (`Option<T>` would also allow `null`).
    if let Some(advisors) = document.paths.paths.get_mut("/api/1/advisors") {
        for operation in [&mut advisors.get, &mut advisors.post]
            .into_iter()
            .flatten()
        {
            if let Some(body) = operation.request_body.as_mut() {
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
    document
}

pub fn routes() -> Router<Reader> {
    Router::from(SwaggerUi::new("/apidocs").url("/apispec_1.json", openapi_document()))
}
