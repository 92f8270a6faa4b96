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
        super::findings::findings,
        super::findings::summary,
        super::findings::finding,
        super::findings::archive,
        super::findings::unarchive,
        super::recommendations::recommendations,
        super::metrics::metrics,
        super::healthcheck
    ),
    components(schemas(
        super::advisors::AdvisorsBody,
        super::wire::ServiceEntry,
        super::advisors::CombinedEntry,
        super::runs::LatestStatus,
        super::unused::UnusedSort,
        super::unused::UnusedStatus,
        crate::unused::PrincipalKind,
        crate::db::findings::FindingType,
        crate::db::findings::FindingStatus,
        super::ErrorBody
    ))
)]
struct ApiDoc;

/// The document of a server without authentication.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi_document_for(&super::ApiOptions::default())
}

/// The document of a server with `options`: with authentication on, it declares the two
/// schemes, asks for one of them on every path that needs a token, and documents the 401.
pub fn openapi_document_for(options: &super::ApiOptions) -> utoipa::openapi::OpenApi {
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
    if options.tokens.is_enabled() {
        require_tokens(&mut document, options.metrics_require_token);
    }
    document
}

fn require_tokens(document: &mut utoipa::openapi::OpenApi, metrics_require_token: bool) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{Content, HeaderBuilder, Ref, ResponseBuilder};
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("One of API_TOKENS"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "basic",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some("Any user name, one of API_TOKENS as the password"))
                .build(),
        ),
    );
    let unauthorized = ResponseBuilder::new()
        .description("No token, or not one of the server's tokens")
        .header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .description(Some("The schemes the server takes"))
                .build(),
        )
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build();
    for (path, item) in document.paths.paths.iter_mut() {
        let open = super::auth::is_open(path, metrics_require_token);
        for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
            if open {
                continue;
            }
            operation.security = Some(vec![
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::new("basic", Vec::<String>::new()),
            ]);
            operation
                .responses
                .responses
                .insert("401".to_owned(), unauthorized.clone().into());
        }
    }
}

pub fn routes(options: &super::ApiOptions) -> Router<Reader> {
    Router::from(
        SwaggerUi::new(super::UI_PATH).url(super::DOCUMENT_PATH, openapi_document_for(options)),
    )
}
