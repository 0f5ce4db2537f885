//! The page: HTML, JS and CSS embedded in the binary (no CDN, nothing fetched at run time).

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page's markup.
pub const INDEX_HTML: &str = include_str!("page/index.html");
/// Its script (plain JS: SVG for ellipses, arrows and handles, a canvas for the heat map).
pub const APP_JS: &str = include_str!("page/app.js");
/// Its style sheet.
pub const STYLE_CSS: &str = include_str!("page/style.css");

fn asset(mime: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}
