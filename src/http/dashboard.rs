//! The dashboard page and the OpenAPI document, built into the binary (no
//! build step: plain HTML, CSS and JavaScript over the JSON API).

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The OpenAPI document of the whole HTTP API (a test checks it against the
/// router, so the two cannot drift apart).
pub const OPENAPI: &str = include_str!("../../assets/openapi.json");

const INDEX: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const STYLE_CSS: &str = include_str!("../../assets/style.css");

/// `GET /`: the dashboard.
pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

/// `GET /assets/{name}`: the dashboard's script and style sheet.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (body, content_type) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        _ => return Err(ApiError::not_found(format!("no such asset: {name}"))),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/openapi.json`: the API's OpenAPI document.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
