//! The search page at `GET /`: three static files compiled into the binary (no CDN, no
//! network at run time), a framework-free page that talks to the JSON API only. Served
//! with a Content-Security-Policy that allows nothing but this server.

use axum::http::header;
use axum::response::IntoResponse;

const HTML: &str = include_str!("page/index.html");
const JS: &str = include_str!("page/app.js");
const CSS: &str = include_str!("page/style.css");

/// Scripts, styles, images and requests from this origin only; no inline script.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub async fn index_html() -> impl IntoResponse {
    asset("text/html; charset=utf-8", HTML)
}

pub async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", JS)
}

pub async fn style_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", CSS)
}
