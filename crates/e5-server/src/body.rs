//! Slow clients: a request's body must arrive within `--request-timeout`, or the client gets
//! 408. Only the upload is timed, never the encoder's work: a large request that waits its turn
//! behind others is not a slow client (the queue bound, `--max-queue`, limits that wait), and
//! on a small machine a 2,048-passage request can take minutes of compute.

use crate::error::{ApiError, Flavor};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Reads the whole body (at most `--payload-limit` bytes) within `--request-timeout`, then
/// hands the request on with the body in memory.
pub async fn read_in_time(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let flavor = if parts.uri.path().starts_with("/v1/") { Flavor::OpenAi } else { Flavor::Tei };
    let (limit, timeout) = (state.config.payload_limit, state.config.request_timeout);
    let error = |status, code, message: String| ApiError::new(status, code, message).flavor(flavor).into_response();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request body did not arrive within --request-timeout ({} s)", timeout.as_secs_f64()),
        ),
        Ok(Err(e)) if is_length_limit(&e) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is over --payload-limit ({limit} bytes)"),
        ),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, "invalid_body", format!("reading the request body: {e}")),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}
