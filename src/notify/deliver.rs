//! One callback: the JSON body made from a terminal event, the signed POST,
//! and what its answer means for what happens next. Plain types and one
//! HTTP client, testable without a broker.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::policy::{CallbackPolicy, CheckedResolver, Refused};
use super::sign;
use crate::config::NotifySettings;
use crate::envelope::Stage;
use crate::events::{ErrorInfo, Event, EventKind};
use crate::summary::Summary;

/// The header naming one callback: the terminal event's id, the same on
/// every attempt and every duplicate of the event, so a receiver keeps the
/// first and drops the rest.
pub const DELIVERY_HEADER: &str = "x-tenderflow-delivery";

/// The header naming the event kind (`completed`, `dead_lettered`).
pub const EVENT_HEADER: &str = "x-tenderflow-event";

/// Largest callback body, in bytes: past it the compact summary is left out
/// (the receiver fetches it from `summary_url`).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Most bytes of an answer read, for the log of a failed callback.
const MAX_ANSWER_BYTES: usize = 2048;

/// Longest text of one field value in the compact summary.
const MAX_VALUE_CHARS: usize = 500;

/// The JSON body of a callback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackBody {
    /// The [`DELIVERY_HEADER`] value again, for receivers that keep bodies.
    pub delivery_id: Uuid,
    pub task_id: Uuid,
    /// The submitter's id for the task, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// `done` or `failed`.
    pub state: &'static str,
    /// When the task ended so, by the worker's clock.
    pub at: DateTime<Utc>,
    /// Where the whole summary is (done only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_url: Option<String>,
    /// The headline fields of the summary (done only; absent when the
    /// summary could not be read or is too large for the body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<CompactSummary>,
    /// The stage that gave up (failed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// Why (failed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// The summary cut down for a callback: each field's value as written and
/// normalised, and how many of the longer lists there are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompactSummary {
    pub fields: BTreeMap<String, CompactField>,
    pub rejections: usize,
    pub requirements: usize,
    pub scoring_items: usize,
    pub warnings: usize,
}

/// One field of a [`CompactSummary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompactField {
    pub value: String,
    pub normalized: serde_json::Value,
}

impl CompactSummary {
    /// The compact form of `summary`.
    pub fn of(summary: &Summary) -> CompactSummary {
        let fields = summary
            .fields
            .iter()
            .map(|(id, field)| {
                let value = field.value.chars().take(MAX_VALUE_CHARS).collect();
                let normalized = match &field.normalized {
                    serde_json::Value::String(s) if s.chars().count() > MAX_VALUE_CHARS => {
                        serde_json::Value::Null
                    }
                    other => other.clone(),
                };
                (id.clone(), CompactField { value, normalized })
            })
            .collect();
        CompactSummary {
            fields,
            rejections: summary.rejections.len(),
            requirements: summary.requirements.len(),
            scoring_items: summary.scoring.len(),
            warnings: summary.warnings.len(),
        }
    }
}

impl CallbackBody {
    /// The body for terminal `event` (`None` for any other kind), with the
    /// summary's compact form when the caller could read it.
    pub fn for_event(
        event: &Event,
        public_url: Option<&str>,
        summary: Option<CompactSummary>,
    ) -> Option<CallbackBody> {
        let mut body = CallbackBody {
            delivery_id: event.event_id,
            task_id: event.task_id,
            external_id: event.callback.as_ref().and_then(|c| c.external_id.clone()),
            state: "done",
            at: event.at,
            summary_url: None,
            summary: None,
            stage: None,
            error: None,
        };
        match &event.kind {
            EventKind::Completed { .. } => {
                let path = format!("/v1/tasks/{}/summary", event.task_id);
                body.summary_url = Some(match public_url {
                    Some(base) => format!("{}{path}", base.trim_end_matches('/')),
                    None => path,
                });
                body.summary = summary;
            }
            EventKind::DeadLettered { error } => {
                body.state = "failed";
                body.stage = Some(event.stage);
                body.error = Some(error.clone());
            }
            _ => return None,
        }
        Some(body)
    }

    /// The JSON bytes, at most [`MAX_BODY_BYTES`]: the compact summary is
    /// dropped, then the error message cut, to fit.
    pub fn encode(mut self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(&self).expect("a callback body serialises");
        if bytes.len() > MAX_BODY_BYTES && self.summary.take().is_some() {
            bytes = serde_json::to_vec(&self).expect("a callback body serialises");
        }
        if bytes.len() > MAX_BODY_BYTES
            && let Some(error) = &mut self.error
        {
            error.message = error.message.chars().take(1000).collect();
            bytes = serde_json::to_vec(&self).expect("a callback body serialises");
        }
        bytes
    }
}

/// Why a callback did not go through, and so what happens next.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// Worth another try later: a 5xx, 408 or 429 answer, a timeout, a
    /// refused or broken connection.
    #[error("{0}")]
    Transient(String),
    /// Will fail the same way every time: another 4xx answer, a redirect
    /// (none is followed), a URL the policy refuses.
    #[error("{kind}: {message}")]
    Permanent { kind: &'static str, message: String },
}

impl CallbackError {
    fn permanent(kind: &'static str, message: impl Into<String>) -> Self {
        CallbackError::Permanent {
            kind,
            message: message.into(),
        }
    }

    /// The error as a dead letter's headers record it.
    pub fn info(&self) -> ErrorInfo {
        match self {
            CallbackError::Transient(message) => ErrorInfo {
                kind: "transient".into(),
                message: message.clone(),
            },
            CallbackError::Permanent { kind, message } => ErrorInfo {
                kind: (*kind).into(),
                message: message.clone(),
            },
        }
    }
}

impl From<Refused> for CallbackError {
    fn from(refused: Refused) -> Self {
        CallbackError::permanent("callback_refused", refused.to_string())
    }
}

/// What an answer's status means: `Ok` for 2xx.
pub fn classify(status: reqwest::StatusCode) -> Result<(), CallbackError> {
    let code = status.as_u16();
    match code {
        200..=299 => Ok(()),
        408 | 429 => Err(CallbackError::Transient(format!(
            "the receiver answered {status}"
        ))),
        300..=399 => Err(CallbackError::permanent(
            "callback_redirected",
            format!(
                "the receiver answered {status}; redirects are not followed: configure the final URL"
            ),
        )),
        400..=499 => Err(CallbackError::permanent(
            "callback_rejected",
            format!("the receiver answered {status}"),
        )),
        _ => Err(CallbackError::Transient(format!(
            "the receiver answered {status}"
        ))),
    }
}

/// Sends callbacks: one HTTP client that follows no redirect, uses no proxy
/// (which would connect where the policy did not look), resolves through
/// the policy, and gives up after `notify.timeout_ms`.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: CallbackPolicy,
    secret: Vec<u8>,
}

impl Sender {
    /// The sender `settings` describe.
    pub fn new(settings: &NotifySettings) -> anyhow::Result<Sender> {
        let policy = CallbackPolicy::from_settings(settings);
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .dns_resolver(CheckedResolver {
                policy: policy.clone(),
            })
            .user_agent(concat!("tenderflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("building the callback HTTP client: {e}"))?;
        let secret = settings
            .secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec())
            .unwrap_or_default();
        Ok(Sender {
            client,
            policy,
            secret,
        })
    }

    /// POSTs `body` to `url`, signed, as the event of `kind` with
    /// `delivery_id`.
    pub async fn send(
        &self,
        url: &str,
        kind: &str,
        delivery_id: Uuid,
        body: Vec<u8>,
    ) -> Result<(), CallbackError> {
        let url = self.policy.check(url)?;
        if self.secret.is_empty() {
            return Err(CallbackError::permanent(
                "callback_refused",
                "notify.secret is not set: callbacks are not sent unsigned",
            ));
        }
        let signature = sign::signature(&self.secret, Utc::now().timestamp(), &body);
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(sign::SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, delivery_id.to_string())
            .header(EVENT_HEADER, kind)
            .body(body)
            .send()
            .await;
        let mut answer = match sent {
            Ok(answer) => answer,
            Err(err) => return Err(request_failed(&err)),
        };
        let status = answer.status();
        let verdict = classify(status);
        if let Err(err) = &verdict {
            let excerpt = read_excerpt(&mut answer).await;
            tracing::warn!(%status, answer = %excerpt, error = %err, "callback not accepted");
        }
        verdict
    }
}

/// A request that got no answer: refused by the policy at resolution
/// (permanent), or a timeout or connection failure (transient).
fn request_failed(err: &reqwest::Error) -> CallbackError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return refused.clone().into();
        }
        source = cause.source();
    }
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut chain = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(next) = cause {
        chain.push_str(": ");
        chain.push_str(&next.to_string());
        cause = next.source();
    }
    CallbackError::Transient(format!("the callback request {what}: {chain}"))
}

/// The first [`MAX_ANSWER_BYTES`] of an answer's body, as text.
async fn read_excerpt(answer: &mut reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ANSWER_BYTES {
        match answer.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(MAX_ANSWER_BYTES);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::ArtifactRef;
    use crate::events::{Callback, EVENT_SCHEMA};

    fn event(kind: EventKind) -> Event {
        Event {
            schema: EVENT_SCHEMA,
            event_id: Uuid::now_v7(),
            task_id: Uuid::now_v7(),
            stage: Stage::Filter,
            attempt: 3,
            at: Utc::now(),
            kind,
            callback: Some(Callback {
                url: "https://hooks.example.com/t".into(),
                external_id: Some("bid-42".into()),
            }),
        }
    }

    #[test]
    fn statuses_split_into_done_retry_and_give_up() {
        use reqwest::StatusCode as S;
        assert!(classify(S::OK).is_ok());
        assert!(classify(S::NO_CONTENT).is_ok());
        for retry in [
            S::SERVICE_UNAVAILABLE,
            S::INTERNAL_SERVER_ERROR,
            S::REQUEST_TIMEOUT,
            S::TOO_MANY_REQUESTS,
        ] {
            assert!(
                matches!(classify(retry), Err(CallbackError::Transient(_))),
                "{retry}"
            );
        }
        for permanent in [S::BAD_REQUEST, S::UNAUTHORIZED, S::NOT_FOUND, S::FOUND] {
            assert!(
                matches!(classify(permanent), Err(CallbackError::Permanent { .. })),
                "{permanent}"
            );
        }
    }

    #[test]
    fn a_completed_task_calls_back_done_with_its_summary_url() {
        let completed = event(EventKind::Completed {
            summary: ArtifactRef {
                key: "artifacts/summary/ab.json".into(),
                sha256: "ab".into(),
                size: 2,
            },
        });
        let body =
            CallbackBody::for_event(&completed, Some("https://tf.example.com/"), None).unwrap();
        assert_eq!(body.state, "done");
        assert_eq!(body.delivery_id, completed.event_id);
        assert_eq!(body.external_id.as_deref(), Some("bid-42"));
        assert_eq!(
            body.summary_url.unwrap(),
            format!(
                "https://tf.example.com/v1/tasks/{}/summary",
                completed.task_id
            )
        );
        let failed = event(EventKind::DeadLettered {
            error: ErrorInfo {
                kind: "corrupt".into(),
                message: "x".repeat(100_000),
            },
        });
        let body = CallbackBody::for_event(&failed, None, None).unwrap();
        assert_eq!(body.state, "failed");
        assert_eq!(body.stage, Some(Stage::Filter));
        let bytes = body.encode();
        assert!(bytes.len() <= MAX_BODY_BYTES, "{}", bytes.len());
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["error"]["kind"], "corrupt");
        assert!(json.get("summary_url").is_none());
        assert!(CallbackBody::for_event(&event(EventKind::Started), None, None).is_none());
    }
}
