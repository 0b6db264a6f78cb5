//! `GET /openapi.json`: every route and schema, derived from the handlers.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "e5 embedding server", description = "OpenAI- and TEI-compatible embeddings for multilingual-e5"),
    paths(
        crate::openai::embeddings,
        crate::openai::models,
        crate::tei::embed_route,
        crate::tei::tokenize,
        crate::tei::info,
        crate::probes::health,
        crate::probes::ready,
        crate::probes::metrics,
    ),
    components(schemas(crate::error::OpenAiError, crate::error::TeiError))
)]
struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
