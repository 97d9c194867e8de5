//! Small bilingual HTML pages: one skeleton, escaped values, and the headers that keep them out
//! of caches, search engines and other sites' frames.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page: `title` (plain text, escaped here) and `body` (HTML the caller built from escaped
/// values).
pub struct Page {
    pub status: StatusCode,
    pub title: String,
    pub body: String,
}

impl Page {
    pub fn new(status: StatusCode, title: impl Into<String>, body: impl Into<String>) -> Page {
        Page {
            status,
            title: title.into(),
            body: body.into(),
        }
    }

    /// A page with one message in French then English (both plain text).
    pub fn message(status: StatusCode, title: &str, fr: &str, en: &str) -> Page {
        Page::new(
            status,
            title,
            format!(
                "<p lang=\"fr\">{}</p>\n<p lang=\"en\">{}</p>",
                escape(fr),
                escape(en)
            ),
        )
    }

    fn html(&self) -> String {
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"robots\" content=\"noindex\">\
             <title>{title} · astreinte</title>\
             <style>body{{font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em;\
             line-height:1.4}}dt{{font-weight:bold}}dd{{margin:0 0 .6em 0}}\
             button{{font-size:1.2em;padding:.6em 1.2em}}</style></head>\n\
             <body><h1>{title}</h1>\n{body}\n</body></html>\n",
            title = escape(&self.title),
            body = self.body
        )
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.html()).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        // A signed link is in the URL: no caching, no Referer to anyone.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
        // No script or outside resource; no framing, so the button cannot be clickjacked.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("Zoé"), "Zoé");
    }

    #[test]
    fn a_message_page_escapes_its_texts() {
        let p = Page::message(StatusCode::BAD_REQUEST, "<t>", "<fr>", "<en>");
        let html = p.html();
        assert!(html.contains("&lt;fr&gt;") && html.contains("&lt;en&gt;"));
        assert!(!html.contains("<fr>") && !html.contains("<t>"));
    }
}
