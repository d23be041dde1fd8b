//! A small client for OpenAI-compatible chat-completions servers, for the
//! `openai` filter and extract backends.
//!
//! It asks for JSON output, retries 429 and 5xx answers and unreachable
//! servers a bounded number of times with exponential backoff, and keeps a
//! token budget per document. An unreachable or overloaded server after the
//! retries is a transient error; no configured server, an answer that is not
//! JSON, or a spent budget are permanent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use serde::Deserialize;

use crate::secret::Secret;

/// Why the model server gave no usable answer, and whether a later try can
/// help.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The server was unreachable or overloaded (429, 5xx) past the
    /// retries: a later attempt may succeed.
    #[error("{0}")]
    Transient(String),
    /// Will fail the same way again: no server configured, a refused
    /// request, an answer that is not the JSON asked for, a spent budget.
    #[error("{kind}: {message}")]
    Permanent {
        /// Stable machine-readable kind, such as `llm_garbage`.
        kind: &'static str,
        /// What is wrong, for people.
        message: String,
    },
}

impl LlmError {
    /// A permanent error of `kind`.
    pub fn permanent(kind: &'static str, message: impl Into<String>) -> Self {
        LlmError::Permanent {
            kind,
            message: message.into(),
        }
    }

    /// A transient error.
    pub fn transient(message: impl Into<String>) -> Self {
        LlmError::Transient(message.into())
    }

    /// Whether retrying could help.
    pub fn is_transient(&self) -> bool {
        matches!(self, LlmError::Transient(_))
    }
}

/// An OpenAI-compatible chat-completions server.
#[derive(Debug, Clone, Deserialize)]
pub struct LlmSettings {
    /// Base URL, such as `http://127.0.0.1:8000/v1`; unset means no model
    /// server is configured and tasks asking for one fail permanently.
    pub base_url: Option<String>,
    /// API key sent as a bearer token.
    pub api_key: Option<Secret>,
    /// Model name.
    pub model: String,
    /// Timeout of one request, in ms.
    pub timeout_ms: u64,
    /// Retries on 429 and 5xx answers.
    pub max_retries: u32,
    /// Most tokens one document may spend (prompt and completion).
    pub token_budget: u64,
}

/// A chat-completions client bound to one document's token budget.
#[derive(Debug)]
pub struct ChatClient {
    http: reqwest::Client,
    endpoint: String,
    api_key: Option<String>,
    model: String,
    max_retries: u32,
    retry_base: Duration,
    tokens_left: AtomicU64,
}

/// Rough token count of a prompt: one token per Chinese character, one per
/// four bytes of other text. Errs high, which is the safe side of a budget.
pub fn estimate_tokens(text: &str) -> u64 {
    let cjk = text.chars().filter(|c| (*c as u32) >= 0x2E80).count() as u64;
    let other = text.chars().filter(|c| (*c as u32) < 0x2E80).count() as u64;
    cjk + other.div_ceil(4)
}

impl ChatClient {
    /// A client for `settings`; fails permanently when no server is set.
    pub fn new(settings: &LlmSettings) -> Result<Self, LlmError> {
        let Some(base) = settings
            .base_url
            .as_deref()
            .filter(|b| !b.trim().is_empty())
        else {
            return Err(LlmError::permanent(
                "llm_not_configured",
                "the task asks for the openai backend but llm.base_url is not set",
            ));
        };
        if base
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("https://")
        {
            // This build carries no TLS stack: say so once instead of
            // retrying a request that can never be sent.
            return Err(LlmError::permanent(
                "llm_not_configured",
                "llm.base_url is https, but this build speaks plain http to model servers; \
                 put a TLS-terminating proxy on the model host or use an http URL",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
            .build()
            .map_err(|e| LlmError::permanent("llm_not_configured", e.to_string()))?;
        Ok(ChatClient {
            http,
            endpoint: format!("{}/chat/completions", base.trim_end_matches('/')),
            api_key: settings.api_key.as_ref().map(|k| k.expose().to_string()),
            model: settings.model.clone(),
            max_retries: settings.max_retries,
            retry_base: Duration::from_millis(250),
            tokens_left: AtomicU64::new(settings.token_budget),
        })
    }

    /// Changes the first retry delay (it doubles on each retry); tests use a
    /// short one.
    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// Tokens this client may still spend.
    pub fn tokens_left(&self) -> u64 {
        self.tokens_left.load(Ordering::Relaxed)
    }

    /// Sends one system and one user message and returns the answer parsed
    /// as a JSON object.
    pub async fn complete_json(&self, system: &str, user: &str) -> Result<Value, LlmError> {
        let estimate = estimate_tokens(system) + estimate_tokens(user);
        if estimate > self.tokens_left() {
            return Err(LlmError::permanent(
                "token_budget",
                format!(
                    "the prompt needs about {estimate} tokens but only {} are left in the document's budget",
                    self.tokens_left()
                ),
            ));
        }
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
        });
        let answer = self.post_with_retries(&body).await?;
        let spent = answer["usage"]["total_tokens"].as_u64().unwrap_or(estimate);
        let left = self.tokens_left().saturating_sub(spent);
        self.tokens_left.store(left, Ordering::Relaxed);
        let content = answer["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| garbage("the answer has no choices[0].message.content"))?;
        parse_json_content(content)
    }

    async fn post_with_retries(&self, body: &Value) -> Result<Value, LlmError> {
        let mut attempt = 0;
        loop {
            match self.post_once(body).await {
                Ok(v) => return Ok(v),
                Err(Failure::Retryable(msg)) if attempt < self.max_retries => {
                    tracing::warn!(attempt, error = %msg, "model server failed, retrying");
                    tokio::time::sleep(self.retry_base * 2u32.saturating_pow(attempt)).await;
                    attempt += 1;
                }
                Err(Failure::Retryable(msg)) => {
                    return Err(LlmError::transient(format!(
                        "model server failed after {} attempts: {msg}",
                        attempt + 1
                    )));
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    async fn post_once(&self, body: &Value) -> Result<Value, Failure> {
        let mut request = self.http.post(&self.endpoint).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Retryable(format!("request failed: {e}")))?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(Failure::Retryable(format!("server answered {status}")));
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(Failure::Fatal(LlmError::permanent(
                "llm_rejected",
                format!(
                    "server answered {status}: {}",
                    text.chars().take(300).collect::<String>()
                ),
            )));
        }
        response
            .json::<Value>()
            .await
            .map_err(|e| Failure::Fatal(garbage(format!("the answer is not JSON: {e}"))))
    }
}

enum Failure {
    Retryable(String),
    Fatal(LlmError),
}

fn garbage(message: impl Into<String>) -> LlmError {
    LlmError::permanent("llm_garbage", message)
}

/// Parses a model's message content as a JSON object, tolerating a Markdown
/// code fence around it.
pub fn parse_json_content(content: &str) -> Result<Value, LlmError> {
    let trimmed = content.trim();
    let inner = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .map(|s| s.trim_end().trim_end_matches("```"))
        .unwrap_or(trimmed);
    let value: Value = serde_json::from_str(inner.trim())
        .map_err(|e| garbage(format!("the model's answer is not a JSON object: {e}")))?;
    if !value.is_object() {
        return Err(garbage("the model's answer is JSON but not an object"));
    }
    Ok(value)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A local chat-completions server for tests: no real model runs.

    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::{Value, json};

    use super::LlmSettings;

    /// What the fake server answers: a status for each failing call first,
    /// then a chat answer built by `reply` from the request.
    #[derive(Clone)]
    pub struct Script {
        /// Statuses to answer before succeeding.
        pub failures: Vec<u16>,
        /// Builds the message content from the request body.
        pub reply: Arc<dyn Fn(&Value) -> String + Send + Sync>,
    }

    /// A running fake server.
    pub struct FakeServer {
        /// Its base URL (ending in `/v1`).
        pub base_url: String,
        /// Requests received.
        pub calls: Arc<AtomicUsize>,
    }

    /// Starts a fake server on 127.0.0.1:0.
    pub async fn start(script: Script) -> FakeServer {
        let calls = Arc::new(AtomicUsize::new(0));
        let state = (script, calls.clone());
        let app = Router::new()
            .route("/v1/chat/completions", post(answer))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeServer {
            base_url: format!("http://{addr}/v1"),
            calls,
        }
    }

    async fn answer(
        State((script, calls)): State<(Script, Arc<AtomicUsize>)>,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        if let Some(status) = script.failures.get(n) {
            return (
                StatusCode::from_u16(*status).unwrap(),
                Json(json!({"error": {"message": "scripted failure"}})),
            );
        }
        let content = (script.reply)(&body);
        (
            StatusCode::OK,
            Json(json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                "usage": {"total_tokens": 100},
            })),
        )
    }

    /// Settings pointing at `base_url`.
    pub fn settings(base_url: Option<String>) -> LlmSettings {
        LlmSettings {
            base_url,
            api_key: Some(crate::secret::Secret::new("test-key")),
            model: "test-model".into(),
            timeout_ms: 5_000,
            max_retries: 2,
            token_budget: 200_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::testing::{Script, settings, start};
    use super::*;

    fn client(base: Option<String>) -> Result<ChatClient, LlmError> {
        Ok(ChatClient::new(&settings(base))?.with_retry_base(Duration::from_millis(5)))
    }

    #[tokio::test]
    async fn retries_429_then_succeeds() {
        let server = start(Script {
            failures: vec![429, 503],
            reply: Arc::new(|_| "```json\n{\"ok\": true}\n```".into()),
        })
        .await;
        let c = client(Some(server.base_url.clone())).unwrap();
        let v = c.complete_json("s", "u").await.unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(server.calls.load(Ordering::SeqCst), 3);
        assert!(c.tokens_left() < 200_000);
    }

    #[tokio::test]
    async fn overload_after_retries_is_transient() {
        let server = start(Script {
            failures: vec![500, 500, 500, 500],
            reply: Arc::new(|_| "{}".into()),
        })
        .await;
        let c = client(Some(server.base_url.clone())).unwrap();
        let e = c.complete_json("s", "u").await.unwrap_err();
        assert!(e.is_transient());
        assert_eq!(server.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn unreachable_is_transient_and_unset_is_permanent() {
        let e = client(Some("http://127.0.0.1:9/v1".into()))
            .unwrap()
            .complete_json("s", "u")
            .await
            .unwrap_err();
        assert!(e.is_transient());
        let e = client(None).unwrap_err();
        assert!(!e.is_transient());
        let e = client(Some("https://models.example/v1".into())).unwrap_err();
        assert!(!e.is_transient());
    }

    #[tokio::test]
    async fn garbage_is_permanent() {
        let server = start(Script {
            failures: vec![],
            reply: Arc::new(|_| "I think the deadline is Monday".into()),
        })
        .await;
        let e = client(Some(server.base_url.clone()))
            .unwrap()
            .complete_json("s", "u")
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            LlmError::Permanent {
                kind: "llm_garbage",
                ..
            }
        ));
    }

    #[tokio::test]
    async fn budget_is_enforced() {
        let mut s = settings(Some("http://127.0.0.1:9/v1".into()));
        s.token_budget = 10;
        let c = ChatClient::new(&s).unwrap();
        let e = c.complete_json("s", &"招标".repeat(50)).await.unwrap_err();
        assert!(matches!(
            e,
            LlmError::Permanent {
                kind: "token_budget",
                ..
            }
        ));
    }
}
