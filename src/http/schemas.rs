//! `GET /v1/schemas` and `GET /v1/schemas/{name}`: the JSON Schemas of the
//! AMQP contract ([`crate::contract`]), for teams that publish to the
//! pipeline from another language. Open, like the OpenAPI document: they
//! describe the messages, not any task.

use axum::Json;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::contract::{self, CONTRACTS};

/// The names of the published schemas.
pub async fn list() -> Json<serde_json::Value> {
    let names: Vec<&str> = CONTRACTS.iter().map(|c| c.name).collect();
    Json(serde_json::json!({ "schemas": names }))
}

/// One published schema, as committed under `contracts/`.
pub async fn show(Path(name): Path<String>) -> Result<Response, ApiError> {
    let found = contract::find(&name).ok_or_else(|| {
        let names: Vec<&str> = CONTRACTS.iter().map(|c| c.name).collect();
        ApiError::not_found(format!(
            "no schema {name:?}; there are {}",
            names.join(", ")
        ))
    })?;
    Ok(([(header::CONTENT_TYPE, "application/schema+json")], found.text).into_response())
}
