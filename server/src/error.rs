//! Errors as OpenAI's clients expect them: a status code and `{"error": {message, type, param,
//! code}}`, so `openai.BadRequestError` and friends carry our message. User input never maps
//! to a 500; only failures of the engine itself do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sail::session::SailError;
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), param: None, code: None }
    }

    /// 400 about request field `param`.
    pub fn bad(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { param: Some(param.into()), ..ApiError::new(StatusCode::BAD_REQUEST, message) }
    }

    /// The same error, about request field `param`.
    pub fn at(mut self, param: &str) -> ApiError {
        self.param = Some(param.to_string());
        self
    }

    pub fn code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => "server_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind(), "param": self.param, "code": self.code}})
    }

    /// What the engine said about a request: everything caused by the request's content is a
    /// 400; only failures inside the engine are 500s.
    pub fn from_sail(e: &SailError) -> ApiError {
        match e {
            SailError::PromptTooLong { prompt, images, n_predict, total, limit, .. } => ApiError::bad(
                "messages",
                format!(
                    "the prompt needs {prompt} tokens ({images} of them image tokens) plus max_tokens {n_predict} = {}, but the context holds {limit}; send fewer or smaller images, a shorter history or a smaller max_tokens",
                    total.map_or_else(|| "more than can be counted".to_string(), |t| t.to_string())
                ),
            )
            .code("context_length_exceeded"),
            SailError::Image(_) | SailError::NoVision { .. } | SailError::Prompt(_) | SailError::MixedMedia => {
                ApiError::bad("messages", e.to_string())
            }
            SailError::Sampler(_) => ApiError::bad("sampling", e.to_string()),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the engine failed: {e}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
