//! Prompts in the console. (Helper-owned: see the brief.)

use axum::Router;

use super::AdminState;

pub fn routes() -> Router<AdminState> {
    Router::new()
}
