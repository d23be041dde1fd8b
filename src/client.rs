//! A small client of the HTTP API, for the command line: `status`, `tasks`
//! and following a task for `submit --wait`. It returns data and strings;
//! printing and progress bars are the caller's.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::config::Settings;
use crate::envelope::Stage;
use crate::projector::db::{DeadLetterPage, Page};
use crate::projector::view::{StageState, TaskState, TaskView};

/// How long a follower keeps asking for a task the API does not know yet
/// (just submitted, not yet projected).
const UNKNOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause before a follower reconnects to a watch stream that ended early.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// Reconnections a follower makes before it gives up.
const MAX_RECONNECTS: u32 = 20;

/// Why a call to the API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("{message} ({status}, {code})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error's stable code.
        code: String,
        /// The error's message.
        message: String,
    },
    /// The API could not be reached.
    #[error("cannot reach the API at {base}: {detail}")]
    Unreachable {
        /// The API's base URL.
        base: String,
        /// What went wrong.
        detail: String,
    },
    /// The API answered something this client does not understand.
    #[error("unexpected answer from the API: {0}")]
    Protocol(String),
}

impl ClientError {
    /// Whether the API said it does not know the thing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// What `POST /v1/dead-letters/replay` answers.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayAnswer {
    /// The tasks put back on a queue.
    pub replayed: Vec<Uuid>,
    /// Selected dead letters not replayed, with the reason.
    pub skipped: Vec<Skipped>,
    /// Named tasks with no waiting dead letter at the stage.
    pub not_found: Vec<Uuid>,
}

/// What `DELETE /v1/tasks/{id}` answers.
#[derive(Debug, Clone, Deserialize)]
pub struct CancelAnswer {
    /// The task.
    pub task_id: Uuid,
    /// When it was cancelled (the first time, when asked again).
    pub cancelled_at: chrono::DateTime<chrono::Utc>,
    /// Why, as the first cancel said.
    pub reason: Option<String>,
    /// Whether it was cancelled already before this request.
    pub already: bool,
}

/// A dead letter a replay left alone.
#[derive(Debug, Clone, Deserialize)]
pub struct Skipped {
    /// Its task, when it names one.
    pub task_id: Option<Uuid>,
    /// Why.
    pub reason: String,
}

/// The search filters of the task list (see `GET /v1/tasks`).
#[derive(Debug, Clone, Default)]
pub struct TaskSearch {
    /// Only the tasks submitted with this reference.
    pub external_id: Option<String>,
    /// Text in the project name, tender number or owner.
    pub q: Option<String>,
    /// Bid deadline at or after this RFC 3339 time.
    pub deadline_after: Option<String>,
    /// Bid deadline at or before this RFC 3339 time.
    pub deadline_before: Option<String>,
}

/// A client of one API server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the API at `base` (such as `http://127.0.0.1:8080`),
    /// sending `token` as the bearer token when given.
    pub fn new(base: impl Into<String>, token: Option<String>) -> Self {
        ApiClient {
            base: base.into().trim_end_matches('/').to_string(),
            token,
            // Named, so that a cancel records who asked (`by`).
            http: reqwest::Client::builder()
                .user_agent(concat!("tenderflow-cli/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
        }
    }

    /// A client of the API the settings describe (`http.addr`, `http.token`);
    /// an unspecified listen address (`0.0.0.0`) is reached on localhost.
    pub fn from_settings(settings: &Settings) -> Self {
        let addr = settings.http.addr.replace("0.0.0.0", "127.0.0.1");
        let token = settings.http.token.as_ref().map(|t| t.expose().to_string());
        ApiClient::new(format!("http://{addr}"), token)
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One task's view.
    pub async fn status(&self, task_id: Uuid) -> Result<TaskView, ClientError> {
        self.get_json(&format!("/v1/tasks/{task_id}")).await
    }

    /// A page of tasks, newest first; with `external_id`, only the tasks
    /// submitted with that reference.
    pub async fn tasks(
        &self,
        state: Option<TaskState>,
        external_id: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page, ClientError> {
        let search = TaskSearch {
            external_id: external_id.map(str::to_string),
            ..TaskSearch::default()
        };
        self.search_tasks(state, limit, cursor, &search).await
    }

    /// A page of tasks, newest first, found by `search`.
    pub async fn search_tasks(
        &self,
        state: Option<TaskState>,
        limit: Option<usize>,
        cursor: Option<&str>,
        search: &TaskSearch,
    ) -> Result<Page, ClientError> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(state) = state {
            query.append_pair("state", state.as_str());
        }
        if let Some(id) = search.external_id.as_deref() {
            query.append_pair("external_id", id);
        }
        if let Some(limit) = limit {
            query.append_pair("limit", &limit.to_string());
        }
        for (key, value) in [
            ("cursor", cursor),
            ("q", search.q.as_deref()),
            ("deadline_after", search.deadline_after.as_deref()),
            ("deadline_before", search.deadline_before.as_deref()),
        ] {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        self.get_json(&format!("/v1/tasks?{}", query.finish()))
            .await
    }

    /// Follows a task until it is done or failed, calling `on_view` with
    /// each new view; answers the last one. Waits a while for a task the API
    /// does not know yet, and reconnects when the stream drops.
    pub async fn follow(
        &self,
        task_id: Uuid,
        mut on_view: impl FnMut(&TaskView),
    ) -> Result<TaskView, ClientError> {
        let started = tokio::time::Instant::now();
        let mut last: Option<TaskView> = None;
        let mut reconnects = 0;
        loop {
            match self.watch_once(task_id, &mut last, &mut on_view).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() && started.elapsed() < UNKNOWN_GRACE => {}
                Err(e @ ClientError::Api { .. }) => return Err(e),
                Err(e) if reconnects >= MAX_RECONNECTS => return Err(e),
                Err(_) => {}
            }
            if let Some(view) = last.as_ref().filter(|v| v.state.is_final()) {
                return Ok(view.clone());
            }
            reconnects += 1;
            if reconnects > MAX_RECONNECTS {
                return Err(ClientError::Protocol(format!(
                    "the watch of {task_id} kept ending before the task did"
                )));
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }

    async fn watch_once(
        &self,
        task_id: Uuid,
        last: &mut Option<TaskView>,
        on_view: &mut impl FnMut(&TaskView),
    ) -> Result<(), ClientError> {
        let mut response = self
            .send(
                self.http
                    .get(self.url(&format!("/v1/tasks/{task_id}/watch"))),
            )
            .await?;
        let mut parser = SseParser::default();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(e))? {
            for data in parser.push(&String::from_utf8_lossy(&chunk)) {
                let view: TaskView = serde_json::from_str(&data)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                if last.as_ref().is_none_or(|l| view.events > l.events) {
                    on_view(&view);
                    *last = Some(view);
                }
            }
        }
        Ok(())
    }

    /// A page of dead letters, oldest first: the waiting ones, or (with
    /// `settled`) every one the projector has seen.
    pub async fn dead_letters(
        &self,
        stage: Option<Stage>,
        settled: bool,
        cursor: Option<&str>,
    ) -> Result<DeadLetterPage, ClientError> {
        let mut query = vec![format!("settled={settled}")];
        if let Some(stage) = stage {
            query.push(format!("stage={stage}"));
        }
        if let Some(cursor) = cursor {
            query.push(format!("cursor={cursor}"));
        }
        self.get_json(&format!("/v1/dead-letters?{}", query.join("&")))
            .await
    }

    /// Cancels a task (`DELETE /v1/tasks/{id}`), with an optional reason.
    pub async fn cancel(
        &self,
        task_id: Uuid,
        reason: Option<&str>,
    ) -> Result<CancelAnswer, ClientError> {
        let response = self
            .send(
                self.http
                    .delete(self.url(&format!("/v1/tasks/{task_id}")))
                    .json(&serde_json::json!({ "reason": reason })),
            )
            .await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Replays dead letters (the body of `POST /v1/dead-letters/replay`);
    /// answers the API's report.
    pub async fn replay(&self, request: &serde_json::Value) -> Result<ReplayAnswer, ClientError> {
        let response = self
            .send(
                self.http
                    .post(self.url("/v1/dead-letters/replay"))
                    .json(request),
            )
            .await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// An export's bytes: `format` is `xlsx` or `csv`; `since` an RFC 3339
    /// completion time.
    pub async fn export(
        &self,
        format: &str,
        state: Option<TaskState>,
        since: Option<&str>,
    ) -> Result<bytes::Bytes, ClientError> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(state) = state {
            query.append_pair("state", state.as_str());
        }
        if let Some(since) = since {
            query.append_pair("since", since);
        }
        let path = format!("/v1/summaries.{format}?{}", query.finish());
        let request = self.http.get(self.url(&path));
        self.send(request)
            .await?
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(self.http.get(self.url(path))).await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(api_error(response).await)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, error: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            base: self.base.clone(),
            detail: error.to_string(),
        }
    }
}

async fn api_error(response: reqwest::Response) -> ClientError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: "unknown".into(),
            message: status
                .canonical_reason()
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR.as_str())
                .to_string(),
        },
    }
}

/// Splits a server-sent-events byte stream into the `data` of each event.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: String,
}

impl SseParser {
    /// Feeds a chunk; answers the data of every event it completed.
    pub fn push(&mut self, chunk: &str) -> Vec<String> {
        self.buffer.push_str(&chunk.replace("\r\n", "\n"));
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let frame: String = self.buffer.drain(..end + 2).collect();
            let data: Vec<&str> = frame
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        events
    }
}

fn stage_mark(state: StageState) -> &'static str {
    match state {
        StageState::Pending => "·",
        StageState::Queued => "…",
        StageState::Running => "▶",
        StageState::Retrying => "↻",
        StageState::Succeeded => "✓",
        StageState::Failed => "✗",
        StageState::Dropped => "⊘",
    }
}

/// One line of progress: each stage's mark (and attempts past the first)
/// in a column of its own, then the overall state, e.g.
/// `ingest ✓   parse ↻2    filter ·    extract ·   retrying`. The columns
/// are as wide for every task and every stage, so lines of several tasks
/// stay aligned whatever their attempts.
pub fn progress_line(view: &TaskView) -> String {
    let width = Stage::ALL
        .iter()
        .map(|s| s.as_str().len())
        .max()
        .unwrap_or(0)
        + 4;
    let mut line = String::new();
    for stage in Stage::ALL {
        let cell = match view.stages.iter().find(|s| s.stage == stage) {
            Some(seen) if seen.attempts > 1 => {
                format!("{stage} {}{}", stage_mark(seen.state), seen.attempts)
            }
            Some(seen) => format!("{stage} {}", stage_mark(seen.state)),
            None => format!("{stage} {}", stage_mark(StageState::Pending)),
        };
        line.push_str(&format!("{cell:<width$} "));
    }
    line.push_str(view.state.as_str());
    line
}

fn time(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(|| "-".to_string(), |t| t.to_rfc3339())
}

/// A task's view for people, several lines.
pub fn render_status(view: &TaskView) -> String {
    let mut out = format!(
        "task      {}\nstate     {}\n",
        view.task_id,
        view.state.as_str()
    );
    let names: Vec<String> = view
        .documents
        .iter()
        .map(|d| format!("{} ({} bytes, sha256 {})", d.filename, d.size, d.sha256))
        .collect();
    out.push_str(&format!("documents {}\n", names.join(", ")));
    if let Some(id) = &view.external_id {
        out.push_str(&format!("external  {id}\n"));
    }
    if let Some(first) = view.duplicate_of {
        out.push_str(&format!(
            "duplicate of {first} (same idempotency key and documents)\n"
        ));
    }
    for file in &view.files {
        out.push_str(&format!(
            "file      {} {}: {}\n",
            file.role.as_str(),
            file.name,
            file.reason
        ));
    }
    out.push_str(&format!(
        "created   {}\nupdated   {}\n",
        view.created_at.to_rfc3339(),
        view.updated_at.to_rfc3339()
    ));
    for stage in &view.stages {
        out.push_str(&format!(
            "  {:<8} {:<9} attempts {}  started {}  finished {}\n",
            stage.stage.as_str(),
            format!("{:?}", stage.state).to_lowercase(),
            stage.attempts,
            time(stage.started_at),
            time(stage.finished_at),
        ));
    }
    if let Some(at) = view.next_retry_at {
        out.push_str(&format!("next retry {}\n", at.to_rfc3339()));
    }
    if let Some(error) = &view.last_error {
        out.push_str(&format!(
            "last error {} {}: {}\n",
            error.stage, error.kind, error.message
        ));
    }
    if let Some(cancelled) = &view.cancelled {
        out.push_str(&format!(
            "cancelled {} by {}{}\n",
            cancelled.at.to_rfc3339(),
            cancelled.by,
            cancelled
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ));
    }
    if let Some(summary) = &view.summary {
        out.push_str(&format!("summary   {}\n", summary.key));
    }
    out
}

/// A page of tasks for people: one line each, then the next cursor.
pub fn render_tasks(page: &Page) -> String {
    let mut out = String::new();
    for task in &page.tasks {
        let name = task.documents.first().map_or("-", |d| d.filename.as_str());
        out.push_str(&format!(
            "{}  {:<8} {:<8} {}  {}\n",
            task.task_id,
            task.state.as_str(),
            task.stage.as_str(),
            task.created_at.format("%Y-%m-%d %H:%M:%S"),
            name
        ));
    }
    if page.tasks.is_empty() {
        out.push_str("no tasks\n");
    }
    if let Some(cursor) = &page.next_cursor {
        out.push_str(&format!("more: --cursor {cursor}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_frames_split_across_chunks_come_out_whole() {
        let mut parser = SseParser::default();
        assert!(parser.push("event: task\ndata: {\"a\"").is_empty());
        assert_eq!(
            parser.push(":1}\n\n:keep-alive\n\ndata: 2\r\n\r\n"),
            vec!["{\"a\":1}", "2"]
        );
    }

    #[test]
    fn errors_keep_the_api_code() {
        let error = ClientError::Api {
            status: 404,
            code: "not_found".into(),
            message: "no task".into(),
        };
        assert!(error.is_not_found());
        assert_eq!(error.to_string(), "no task (404, not_found)");
    }
}
