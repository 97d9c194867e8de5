//! API errors: a status and a message a person understands, as JSON `{"error": "..."}`, with
//! `"error_fr"`, the same in French, when [`super::fr`] knows it (the console shows it to a
//! French reader; scripts keep reading `error`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "log in first (or send an API token as Authorization: Bearer …)",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    /// A store failure: logged, and a 503 that says to try again (never the database's text).
    pub fn store(e: crate::store::StoreError) -> ApiError {
        match e {
            crate::store::StoreError::NoSuchTicket(n) => {
                ApiError::not_found(format!("no ticket numbered {n}"))
            }
            crate::store::StoreError::BadTransition { .. }
            | crate::store::StoreError::Invalid(_)
            | crate::store::StoreError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            other => {
                tracing::warn!(error = %other, "console: store error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database did not answer; try again in a moment",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match super::fr::message(&self.message) {
            Some(fr) => serde_json::json!({ "error": self.message, "error_fr": fr }),
            None => serde_json::json!({ "error": self.message }),
        };
        (self.status, Json(body)).into_response()
    }
}
