//! Logins, sessions, API tokens, roles and CSRF. (Helper-owned: see the brief; this is the
//! contract the other console modules build on.)

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Router;

use super::{AdminState, ApiError};

/// What a user may do: an admin everything; a technician tickets and their own on-call; a
/// viewer only reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Technician,
    Admin,
}

/// The logged-in user of a request (a session cookie, or a bearer API token).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub name: String,
    pub role: Role,
}

impl CurrentUser {
    /// 403 unless the user's role is at least `min`.
    pub fn require(&self, min: Role) -> Result<(), ApiError> {
        if self.role >= min {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} may not do this (needs the {min:?} role)",
                self.name
            )))
        }
    }
}

/// Handlers take a `CurrentUser`: the authentication layer (`authenticate`) has checked the
/// session cookie (and its CSRF token on changes) or the API token and put the user in the
/// request; without one the request is refused with 401.
impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// Rate limits login attempts.
#[derive(Debug, Default)]
pub struct LoginLimiter;

/// The authentication layer: puts the request's [`CurrentUser`] in its extensions when a valid
/// session cookie (with its CSRF token on changes) or API token comes with it. (Stub: lets
/// every request through without a user.)
pub async fn authenticate(
    axum::extract::State(_state): axum::extract::State<AdminState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    next.run(request).await
}

pub fn routes() -> Router<AdminState> {
    Router::new()
}
