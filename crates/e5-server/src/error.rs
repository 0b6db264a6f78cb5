//! Every failure is a JSON body and a status code: OpenAI's nested shape on `/v1/*`
//! (`{"error": {"message", "type", "param", "code"}}`), TEI's flat one on the TEI routes
//! (`{"error", "error_type"}`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

/// Which API's error shape a route answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Tei,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault (`input`, `model`, …).
    pub param: Option<&'static str>,
    /// A stable machine-readable code (`model_not_found`, `queue_full`, …).
    pub code: &'static str,
    pub flavor: Flavor,
    /// Seconds a client should wait before retrying (429, 503).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), param: None, code, flavor: Flavor::OpenAi, retry_after: None }
    }
    pub fn bad_request(param: &'static str, message: impl Into<String>) -> Self {
        ApiError { param: Some(param), ..Self::new(StatusCode::BAD_REQUEST, "invalid_value", message) }
    }
    pub fn unprocessable(param: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { param: Some(param), ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message) }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message) }
    }
    pub fn flavor(self, flavor: Flavor) -> Self {
        ApiError { flavor, ..self }
    }

    /// OpenAI's `type`, and TEI's `error_type`.
    fn kind(&self) -> (&'static str, &'static str) {
        match self.status {
            StatusCode::UNAUTHORIZED => ("invalid_request_error", "Unauthorized"),
            StatusCode::TOO_MANY_REQUESTS => ("rate_limit_error", "Overloaded"),
            StatusCode::SERVICE_UNAVAILABLE => ("server_error", "Unhealthy"),
            s if s.is_server_error() => ("server_error", "Backend"),
            _ => ("invalid_request_error", "Validation"),
        }
    }
}

/// OpenAI's error body.
#[derive(Serialize, ToSchema)]
pub struct OpenAiError {
    pub error: OpenAiErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorDetail {
    pub message: String,
    /// `invalid_request_error`, `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: &'static str,
}

/// TEI's error body.
#[derive(Serialize, ToSchema)]
pub struct TeiError {
    pub error: String,
    /// `Validation`, `Unauthorized`, `Overloaded`, `Unhealthy` or `Backend`.
    pub error_type: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (openai_type, tei_type) = self.kind();
        let mut response = match self.flavor {
            Flavor::OpenAi => {
                let error =
                    OpenAiErrorDetail { message: self.message, kind: openai_type, param: self.param, code: self.code };
                (self.status, Json(OpenAiError { error })).into_response()
            }
            Flavor::Tei => (self.status, Json(TeiError { error: self.message, error_type: tei_type })).into_response(),
        };
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (status, code) = match &r {
            JsonRejection::MissingJsonContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            // Wrong types are the client's malformed request, as OpenAI answers them.
            JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => {
                (StatusCode::BAD_REQUEST, "invalid_json")
            }
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            _ => (StatusCode::BAD_REQUEST, "invalid_body"),
        };
        ApiError::new(status, code, r.body_text())
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s in the route's shape (`TEI`: TEI's).
pub struct ApiJson<T, const TEI: bool>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const TEI: bool> FromRequest<S> for ApiJson<T, TEI> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let flavor = if TEI { Flavor::Tei } else { Flavor::OpenAi };
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(ApiError::from(r).flavor(flavor)),
        }
    }
}
