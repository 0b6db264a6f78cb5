//! `GET /`: a page to try the model by hand (query, passages, ranked cosine scores). Served
//! from the binary; no external script, style or font.

use axum::response::Html;

pub async fn page() -> Html<&'static str> {
    Html(include_str!("playground.html"))
}
