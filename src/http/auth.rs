//! Bearer-token access, and the refusal of cross-site posts.
//!
//! With a token set, every endpoint that shows or changes tasks needs it:
//! submitting and replaying, and the reads too (task views, events and dead
//! letters show error messages and file names). What stays open: the
//! dashboard's page and assets, the OpenAPI document, `/healthz`, `/readyz`
//! and `/metrics` (counts and queue names, for the probes and the scraper).
//! The exports show task data and need it too; the calendar feed also takes
//! it as `?token=`, since calendar applications cannot send a header.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Lets the request through when no token is configured or when it carries
/// `Authorization: Bearer <token>` (the scheme in any case) with the
/// configured one; 401 with `WWW-Authenticate` otherwise.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = header_token(&request).unwrap_or("").to_string();
    check(&state, &presented, request, next).await
}

/// [`require_token`] that also takes the token as the `token` query
/// parameter: for the calendar feed only, because calendar applications
/// subscribe to a URL and cannot send a header. (A token in a URL can end
/// up in logs and histories, so no other endpoint takes it there.)
pub async fn require_token_or_query(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = match header_token(&request) {
        Some(token) => token.to_string(),
        None => query_token(request.uri().query().unwrap_or("")).unwrap_or_default(),
    };
    check(&state, &presented, request, next).await
}

async fn check(state: &AppState, presented: &str, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.settings.http.token
        && !tokens_match(presented, expected.expose())
    {
        let mut response = ApiError::unauthorized().into_response();
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tenderflow\""),
        );
        return response;
    }
    next.run(request).await
}

fn header_token(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
}

/// The `token` parameter of a query string, percent-decoded.
fn query_token(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
}

/// With no token set, a browser on another site could post to the API
/// through a form or a script: such posts are refused (403). Browsers say
/// where a request comes from in `Sec-Fetch-Site`, older ones in `Origin`;
/// clients that are no browser send neither and pass.
pub async fn refuse_cross_site(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if state.settings.http.token.is_none() && is_cross_site(request.headers()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            "a request from another site is refused: set http.token to allow clients elsewhere",
        ));
    }
    Ok(next.run(request).await)
}

/// The token of an `Authorization` value of the bearer scheme.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes().eq_ignore_ascii_case(b"cross-site");
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = url::Url::parse(origin).ok().and_then(|u| {
        u.host_str().map(|h| {
            format!(
                "{h}{}",
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            )
        })
    });
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    match (origin_host, host) {
        (Some(origin), Some(host)) => !origin.eq_ignore_ascii_case(host),
        // "Origin: null" (a sandboxed page or a file) or no Host to compare.
        _ => true,
    }
}

/// Compares the tokens' digests in constant time, so neither the content nor
/// the length of the configured token leaks through timing.
fn tokens_match(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_matches() {
        assert!(tokens_match("s3cret", "s3cret"));
        assert!(!tokens_match("s3cre", "s3cret"));
        assert!(!tokens_match("", "s3cret"));
        assert!(!tokens_match("S3cret", "s3cret"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn posts_from_another_site_are_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(!is_cross_site(&headers(&[])), "curl sends neither");
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!is_cross_site(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(!is_cross_site(&headers(&[("sec-fetch-site", "none")])));
        assert!(!is_cross_site(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(is_cross_site(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(is_cross_site(&headers(&[
            ("origin", "null"),
            ("host", "127.0.0.1:8080")
        ])));
    }
}
