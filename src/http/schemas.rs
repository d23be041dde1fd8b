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
    Ok((
        [(header::CONTENT_TYPE, "application/schema+json")],
        found.text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_schema_is_served_as_committed_and_an_unknown_one_is_named_in_a_404() {
        let served = show(Path("envelope.v1.json".into())).await.unwrap();
        assert_eq!(
            served.headers()[header::CONTENT_TYPE],
            "application/schema+json"
        );
        let body = axum::body::to_bytes(served.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body, CONTRACTS[0].text.as_bytes());
        let err = show(Path("envelope.v9.json".into())).await.unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::NOT_FOUND);
        assert!(err.message.contains("envelope.v1.json"), "{}", err.message);
    }
}
