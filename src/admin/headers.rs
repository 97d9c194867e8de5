//! What every console answer tells the browser about itself: never framed, never sniffed,
//! never cached (it shows tickets and the roster), and, for pages, a Content-Security-Policy
//! that runs only the console's own script and the page's inline script, marked with a nonce
//! drawn for that answer: an injected `<script>` or `onclick=` never runs.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// Largest page rewritten with its nonce; a larger one is sent whole under a policy with no
/// inline script (it is ours, so this is a bug, and the page shows it at once).
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The policy of a page whose inline scripts carry `nonce`.
pub fn page_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; media-src 'self'; connect-src 'self'; object-src 'none'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

fn set_if_absent(h: &mut HeaderMap, name: header::HeaderName, value: &'static str) {
    if !h.contains_key(&name) {
        h.insert(name, HeaderValue::from_static(value));
    }
}

/// The layer: see the module's comment.
pub async fn secure(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let h = &mut parts.headers;
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    set_if_absent(h, header::REFERRER_POLICY, "same-origin");
    set_if_absent(h, header::CACHE_CONTROL, "no-store");
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        // JSON, audio, assets: nothing in them runs, and none may be framed either.
        set_if_absent(
            h,
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        );
        return Response::from_parts(parts, body);
    }
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let (bytes, policy) = match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
        Ok(b) => {
            let text = String::from_utf8_lossy(&b);
            // Only the console writes `<script>` in its pages: what a caller or a user typed is
            // escaped (`&lt;script&gt;`), so it can never gain the nonce.
            let marked = text.replace("<script>", &format!("<script nonce=\"{nonce}\">"));
            (Body::from(marked), page_policy(&nonce))
        }
        Err(_) => (Body::empty(), page_policy("none")),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Ok(v) = HeaderValue::from_str(&policy) {
        parts.headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    Response::from_parts(parts, bytes)
}
