//! The command line: what each subcommand does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use uuid::Uuid;

use crate::broker;
use crate::client::{ApiClient, TaskSearch, render_status, render_tasks};
use crate::config::Settings;
use crate::envelope::{Stage, TaskOptions};
use crate::progress::{Progress, Submitting};
use crate::projector::view::TaskState;
use crate::store::Store;
use crate::submit::{Bulk, Follower, Outcome, Refs, Submitted, Submitter, file_name};
use crate::topology::Topology;

/// `print!` for the commands' output, except that a reader that went away
/// (`tenderflow ... | head`) ends the command quietly, as it would a Unix
/// tool, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(err) = write!(std::io::stdout().lock(), $($arg)*) {
            $crate::cli::stdout_failed(err);
        }
    }};
}

/// `println!`, as [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {
        out!("{}\n", format_args!($($arg)*))
    };
}

/// Ends the process when its output cannot be written: quietly (status 0)
/// when the reader has gone, which is what `| head` means; otherwise with
/// the error (status 1).
pub fn stdout_failed(err: std::io::Error) -> ! {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing the output: {err}");
    std::process::exit(1);
}

/// tenderflow: tender documents into sourced summaries, over RabbitMQ.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// A config file (TOML); also `TENDERFLOW_CONFIG`.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every stage and the notify consumer in one process: the
    /// single-machine default.
    Run {
        /// Messages each stage works on at once (default: stages.concurrency).
        #[arg(long)]
        concurrency: Option<u16>,
    },
    /// The status projector and the HTTP API.
    Serve,
    /// One task's status (from the API).
    Status {
        task_id: Uuid,
        /// Print the task view as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a task (through the API): its stages drop its messages.
    Cancel {
        task_id: Uuid,
        /// Why, recorded with the cancel.
        #[arg(long)]
        reason: Option<String>,
    },
    /// A page of tasks, newest first (from the API).
    Tasks {
        /// Only tasks in this state: queued, running, retrying, done, failed,
        /// duplicate, cancelled.
        #[arg(long)]
        state: Option<TaskState>,
        /// Only tasks submitted with this reference (`submit --external-id`).
        #[arg(long)]
        external_id: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// The page after this cursor.
        #[arg(long)]
        cursor: Option<String>,
        /// Only done tasks whose project name, tender number or owner
        /// contains this (any case).
        #[arg(long)]
        search: Option<String>,
        /// Only done tasks whose bid deadline is at or after this RFC 3339 time.
        #[arg(long)]
        deadline_after: Option<String>,
        /// Only done tasks whose bid deadline is at or before this RFC 3339 time.
        #[arg(long)]
        deadline_before: Option<String>,
        /// Print the page as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the summaries of done tasks as a spreadsheet (from the API).
    Export {
        /// Write the workbook (tasks, rejection clauses, scoring items) here.
        #[arg(long, value_name = "FILE", required_unless_present = "csv")]
        xlsx: Option<std::path::PathBuf>,
        /// Write the tasks sheet as CSV here.
        #[arg(long, value_name = "FILE")]
        csv: Option<std::path::PathBuf>,
        /// Only tasks completed at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Tasks in this state (default: done).
        #[arg(long)]
        state: Option<TaskState>,
    },
    /// One stage.
    Worker {
        /// ingest, parse, filter or extract.
        stage: Stage,
        /// Messages in hand at once (default: stages.concurrency).
        #[arg(long)]
        concurrency: Option<u16>,
    },
    /// The notify consumer alone: POSTs the completion callbacks.
    Notify {
        /// Callbacks in flight at once (default: notify.concurrency).
        #[arg(long)]
        concurrency: Option<u16>,
    },
    /// Submit documents: each file is its own task, with its amendments.
    Submit {
        /// The documents: files, folders (walked recursively for the
        /// formats tenderflow reads, hidden entries left out) and quoted
        /// glob patterns (`'archive/**/*.pdf'`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Files submitted at once: read, stored and waiting for their
        /// publish confirms.
        #[arg(long, default_value_t = DEFAULT_JOBS, value_parser = clap::value_parser!(u16).range(1..=1024))]
        jobs: u16,
        /// Amendments of the (single) main document, in order.
        #[arg(long = "amendment")]
        amendments: Vec<PathBuf>,
        /// Publish the files' paths instead of their bytes (for storage the
        /// workers share; checked against store.allowed_roots).
        #[arg(long)]
        by_reference: bool,
        /// Follow the tasks until each completes or fails; exit 1 if any failed.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Filter backend: rules or openai.
        #[arg(long, default_value = "rules")]
        filter_model: String,
        /// Extract backend: rules or openai.
        #[arg(long, default_value = "rules")]
        extract_model: String,
        /// With --wait: print each completed task's summary (from the store).
        #[arg(long, requires = "wait")]
        summary: bool,
        /// Your reference for the task (a project id, up to 200
        /// characters); `tasks --external-id` finds it again.
        #[arg(long)]
        external_id: Option<String>,
        /// Submit at most once: a second submit of the same documents
        /// under this key (within store.idempotency_window_ms) answers the
        /// first task. One task only (one file, with its amendments).
        #[arg(long)]
        idempotency_key: Option<String>,
        /// POST each task's outcome here when it ends (a host of
        /// notify.allowed_hosts; default: notify.default_url).
        #[arg(long)]
        callback_url: Option<String>,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Dead-letter queues.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// The projector's view database: retention and snapshots (run on
    /// the machine that holds `projector.db_path`).
    Projector {
        #[command(subcommand)]
        action: ProjectorAction,
    },
    /// The broker topology.
    Topology {
        #[command(subcommand)]
        action: TopologyAction,
    },
    /// Parse, filter and extract in-process (no broker) and print the summary.
    Extract {
        /// The main document.
        file: PathBuf,
        /// Its amendments, in order.
        amendments: Vec<PathBuf>,
        /// Print the summary JSON.
        #[arg(long)]
        json: bool,
    },
    /// Score extraction against the gold answers (`X.gold.json` beside each
    /// document) in a folder, every variant; exit 1 unless all is right.
    Eval {
        dir: PathBuf,
        /// List every miss.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Parse a document in-process (no broker) and print it.
    Parse {
        file: PathBuf,
        /// Print the parsed-document JSON.
        #[arg(long)]
        json: bool,
    },
    /// Internal: the parse stage's child process (the document on stdin,
    /// the parsed document on stdout).
    #[command(name = crate::stages::parse::child::SUBCOMMAND, hide = true)]
    ParseChild(crate::stages::parse::child::ChildArgs),
}

/// Dead-letter actions.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// The dead letters waiting (of one stage, or of all), oldest first,
    /// with their failure headers; read from the projector's index (the API).
    List {
        stage: Option<Stage>,
        /// The replayed ones too.
        #[arg(long)]
        settled: bool,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Put dead-lettered messages back on the stage's queue (or an earlier
    /// stage's, with --from), attempts reset.
    Replay {
        stage: Stage,
        /// Only this task (repeatable).
        #[arg(long = "task")]
        tasks: Vec<Uuid>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Run the tasks again from this stage (an earlier one): what the
        /// later stages made is made again, e.g. after an artifact was lost.
        #[arg(long)]
        from: Option<Stage>,
        /// Replay cancelled tasks too: their cancel is lifted.
        #[arg(long)]
        force: bool,
    },
}

/// Projector actions.
#[derive(Debug, Subcommand)]
pub enum ProjectorAction {
    /// Write a consistent copy of the view database (views, events, dead
    /// letters, the stream offset) to FILE; safe while `serve` runs.
    Snapshot {
        /// Where; must not exist.
        file: PathBuf,
    },
    /// Install a snapshot as the view database; `serve` then folds the
    /// events stream from the snapshot's offset. Stop `serve` first.
    Restore {
        file: PathBuf,
        /// Replace a database that holds tasks, events or an offset.
        #[arg(long)]
        force: bool,
    },
    /// Prune finished tasks past `projector.retain_finished_days` now, then
    /// rewrite the file (`VACUUM`) to give the space back. The rewrite
    /// locks the database: stop `serve` first.
    Vacuum,
}

/// Topology actions.
#[derive(Debug, Subcommand)]
pub enum TopologyAction {
    /// Declare every exchange, queue and binding (idempotent).
    Apply,
    /// Print the topology as a RabbitMQ definitions file.
    Export {
        /// The vhost the definitions name.
        #[arg(long, default_value = "/")]
        vhost: String,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // A parse child needs no settings: its limits are its arguments.
    if let Command::ParseChild(args) = &cli.command {
        return Ok(crate::stages::parse::child::run(args));
    }
    let settings = Arc::new(Settings::load(cli.config.as_deref())?);
    let _telemetry = crate::telemetry::init(&settings.log);
    match cli.command {
        Command::Run { concurrency } => {
            let parts = crate::startup::Parts {
                serve: true,
                notify: true,
            };
            crate::startup::run(settings, &Stage::ALL, concurrency, parts).await
        }
        Command::Worker { stage, concurrency } => {
            crate::startup::run(
                settings,
                &[stage],
                concurrency,
                crate::startup::Parts::default(),
            )
            .await
        }
        Command::Notify { concurrency } => {
            let parts = crate::startup::Parts {
                serve: false,
                notify: true,
            };
            crate::startup::run(settings, &[], concurrency, parts).await
        }
        Command::Serve => {
            let parts = crate::startup::Parts {
                serve: true,
                notify: false,
            };
            crate::startup::run(settings, &[], None, parts).await
        }
        Command::Status { task_id, json } => status(&settings, task_id, json).await,
        Command::Cancel { task_id, reason } => cancel(&settings, task_id, reason).await,
        Command::Tasks {
            state,
            external_id,
            limit,
            cursor,
            search,
            deadline_after,
            deadline_before,
            json,
        } => {
            let search = TaskSearch {
                external_id,
                q: search,
                deadline_after,
                deadline_before,
            };
            tasks(&settings, state, limit, cursor, &search, json).await
        }
        Command::Export {
            xlsx,
            csv,
            since,
            state,
        } => export(&settings, xlsx, csv, since, state).await,
        Command::Submit {
            files,
            jobs,
            amendments,
            by_reference,
            wait,
            timeout,
            filter_model,
            extract_model,
            summary,
            external_id,
            idempotency_key,
            callback_url,
            json,
        } => {
            let options = TaskOptions {
                filter_model,
                extract_model,
            };
            let request = SubmitRequest {
                files,
                jobs: usize::from(jobs),
                amendments,
                by_reference,
                wait,
                timeout,
                summary,
                json,
                refs: Refs {
                    external_id,
                    idempotency_key,
                    callback_url,
                },
            };
            submit(settings, request, options).await
        }
        Command::Dlq { action } => dead_letters(&settings, action).await,
        Command::Topology { action } => topology(&settings, action).await,
        Command::Projector { action } => {
            let settings = Arc::clone(&settings);
            tokio::task::spawn_blocking(move || projector(&settings, action)).await?
        }
        Command::Parse { file, json } => parse_file(&file, json),
        Command::ParseChild(_) => unreachable!("answered above"),
        Command::Extract {
            file,
            amendments,
            json,
        } => {
            let paths: Vec<PathBuf> = std::iter::once(file).chain(amendments).collect();
            let summary = crate::extract::summarize_files(&paths).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                out!("{}", crate::extract::render_report(&summary));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval { dir, verbose } => {
            let report =
                tokio::task::spawn_blocking(move || crate::eval::run(&dir, verbose)).await??;
            out!("{}", report.render());
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// `submit --jobs` unless given: enough files in hand that their syncs
/// are shared and their confirms come together (measured: the README's
/// "Bulk submission").
const DEFAULT_JOBS: u16 = 16;

struct SubmitRequest {
    files: Vec<PathBuf>,
    jobs: usize,
    amendments: Vec<PathBuf>,
    by_reference: bool,
    wait: bool,
    timeout: u64,
    summary: bool,
    json: bool,
    refs: Refs,
}

/// The tasks a submit makes: one per file named, or one of the main
/// document and its amendments. Problems of the names are reported and
/// counted as failures.
fn submit_tasks(request: &SubmitRequest, json: bool) -> anyhow::Result<(Vec<Vec<PathBuf>>, usize)> {
    if !request.amendments.is_empty() {
        if request.files.len() != 1 || !request.files[0].is_file() {
            anyhow::bail!("--amendment needs exactly one main document, a file");
        }
        let task = request
            .files
            .iter()
            .chain(&request.amendments)
            .cloned()
            .collect();
        return Ok((vec![task], 0));
    }
    let gathered = crate::submit::gather(&request.files);
    for problem in &gathered.problems {
        report_failure(json, &problem.path, &problem.reason);
    }
    if let Some(first) = gathered.skipped.first() {
        eprintln!(
            "note: left out {} file(s) of the folders whose extension is not one of {} \
             (e.g. {}); name a file to submit it anyway",
            gathered.skipped.len(),
            crate::submit::DOCUMENT_EXTENSIONS.join(", "),
            first.display()
        );
    }
    let tasks = gathered.files.into_iter().map(|f| vec![f]).collect();
    Ok((tasks, gathered.problems.len()))
}

/// A file that was not submitted, and why: on standard error, or as a
/// JSON line (`file`, `error`) among the tasks' with `--json`.
fn report_failure(json: bool, file: &str, reason: &str) {
    if json {
        outln!("{}", serde_json::json!({"file": file, "error": reason}));
    } else {
        eprintln!("error: {file}: {reason}");
    }
}

async fn submit(
    settings: Arc<Settings>,
    request: SubmitRequest,
    options: TaskOptions,
) -> anyhow::Result<ExitCode> {
    let (tasks, mut not_submitted) = submit_tasks(&request, request.json)?;
    if request.refs.idempotency_key.is_some() && tasks.len() + not_submitted != 1 {
        anyhow::bail!(
            "--idempotency-key makes one task: give one file (with its --amendment files), \
             or submit each file with its own key"
        );
    }
    if tasks.is_empty() {
        anyhow::bail!("nothing to submit");
    }
    let submitter = Submitter::new(Arc::clone(&settings))?;
    submitter.check(&options, &request.refs)?;
    let follower = if request.wait {
        // The tasks are new: any event of theirs counts, whatever the clocks say.
        let since = chrono::Utc::now() - chrono::Duration::minutes(10);
        Some(Follower::start(&settings, since).await?)
    } else {
        None
    };
    submitter.connect().await?;
    let bulk = Bulk {
        options,
        refs: request.refs.clone(),
        by_reference: request.by_reference,
        jobs: request.jobs,
    };
    let mut display = Submitting::new(tasks.len());
    let mut ids = Vec::new();
    let mut submitted = std::pin::pin!(submitter.submit_all(tasks, &bulk));
    while let Some((paths, result)) = submitted.next().await {
        let file = paths[0].display().to_string();
        let submitted = match result {
            Ok(submitted) => submitted,
            Err(err) => {
                not_submitted += 1;
                display.print(|| report_failure(request.json, &file, &err.to_string()));
                display.failed();
                continue;
            }
        };
        let task_id = submitted.task_id();
        let existing = matches!(submitted, Submitted::Existing(_));
        display.print(|| {
            if request.json {
                outln!(
                    "{}",
                    serde_json::json!({"task_id": task_id, "file": paths[0], "existing": existing})
                );
            } else if existing {
                outln!(
                    "{task_id}  {file}  (submitted before under this idempotency key; nothing new started)"
                );
            } else {
                outln!("{task_id}  {file}");
            }
        });
        display.submitted();
        // An earlier task may have ended long before the follower's start:
        // `status` shows it, the follower waits only for new tasks.
        if !existing {
            ids.push(task_id);
        }
    }
    display.finish();
    if not_submitted > 0 {
        eprintln!(
            "error: {not_submitted} of {} file(s) not submitted",
            ids.len() + not_submitted
        );
    }
    let all_submitted = if not_submitted == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    let Some(follower) = follower else {
        return Ok(all_submitted);
    };
    let mut display = Progress::new(&ids, request.json);
    let waiting = follower.wait(&ids, |event| display.show(event));
    let outcomes = tokio::time::timeout(std::time::Duration::from_secs(request.timeout), waiting)
        .await
        .context("timed out waiting for the tasks")??;
    display.finish();
    let mut failed = false;
    let store = Store::from_settings(&settings)?;
    for (task, outcome) in &outcomes {
        match outcome {
            Outcome::Completed { summary_key } if request.summary => {
                let bytes = store.get(summary_key).await?;
                let summary: serde_json::Value = serde_json::from_slice(&bytes)?;
                outln!("{task}  done:\n{}", serde_json::to_string_pretty(&summary)?);
            }
            Outcome::Completed { summary_key } => {
                outln!("{task}  done: summary at {summary_key}")
            }
            Outcome::Failed {
                stage,
                kind,
                message,
            } => {
                failed = true;
                outln!("{task}  FAILED at {stage}: {kind}: {message}");
            }
            Outcome::Duplicate { of } => {
                outln!("{task}  duplicate of {of} (same idempotency key and documents)");
            }
            Outcome::Cancelled { reason } => {
                failed = true;
                match reason {
                    Some(reason) => outln!("{task}  CANCELLED: {reason}"),
                    None => outln!("{task}  CANCELLED"),
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        all_submitted
    })
}

async fn status(settings: &Settings, task_id: Uuid, json: bool) -> anyhow::Result<ExitCode> {
    let client = ApiClient::from_settings(settings);
    let view = client.status(task_id).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        out!("{}", render_status(&view));
    }
    Ok(ExitCode::SUCCESS)
}

async fn tasks(
    settings: &Settings,
    state: Option<TaskState>,
    limit: Option<usize>,
    cursor: Option<String>,
    search: &TaskSearch,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = ApiClient::from_settings(settings);
    let page = client
        .search_tasks(state, limit, cursor.as_deref(), search)
        .await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&page)?);
    } else {
        out!("{}", render_tasks(&page));
    }
    Ok(ExitCode::SUCCESS)
}

/// Cancels a task through the API.
async fn cancel(
    settings: &Settings,
    task_id: Uuid,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let answer = ApiClient::from_settings(settings)
        .cancel(task_id, reason.as_deref())
        .await?;
    let when = answer.cancelled_at.to_rfc3339();
    if answer.already {
        outln!("{}  already cancelled at {when}", answer.task_id);
    } else {
        outln!("{}  cancelled at {when}", answer.task_id);
    }
    Ok(ExitCode::SUCCESS)
}

/// Exports through the API, each written to its file whole (to a
/// temporary name first, so a failed export leaves no half file).
async fn export(
    settings: &Settings,
    xlsx: Option<std::path::PathBuf>,
    csv: Option<std::path::PathBuf>,
    since: Option<String>,
    state: Option<TaskState>,
) -> anyhow::Result<ExitCode> {
    let client = ApiClient::from_settings(settings);
    for (format, path) in [("xlsx", xlsx), ("csv", csv)] {
        let Some(path) = path else { continue };
        let bytes = client.export(format, state, since.as_deref()).await?;
        let mut partial = path.clone().into_os_string();
        partial.push(".partial");
        std::fs::write(&partial, &bytes)
            .with_context(|| format!("writing {}", std::path::Path::new(&partial).display()))?;
        std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
        outln!("{} ({} bytes)", path.display(), bytes.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Dead letters through the API: the projector keeps their index, so
/// listing touches nothing in the broker.
async fn dead_letters(settings: &Settings, action: DlqAction) -> anyhow::Result<ExitCode> {
    let client = ApiClient::from_settings(settings);
    match action {
        DlqAction::List {
            stage,
            settled,
            json,
        } => {
            let mut cursor = None;
            let mut shown = 0;
            loop {
                let page = client
                    .dead_letters(stage, settled, cursor.as_deref())
                    .await?;
                for indexed in &page.dead_letters {
                    shown += 1;
                    if json {
                        outln!("{}", serde_json::to_string(indexed)?);
                        continue;
                    }
                    let letter = &indexed.letter;
                    let task = letter
                        .task_id
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "(no task)".into());
                    let settled = indexed
                        .settled_by
                        .as_deref()
                        .map(|by| format!("  [{by}]"))
                        .unwrap_or_default();
                    outln!(
                        "{task}  {}#{}  {}  attempts {}  last {}  {}: {}{settled}",
                        letter.stage,
                        letter.offset,
                        letter.filenames.join(", "),
                        letter.attempts,
                        letter.last_failure_at.as_deref().unwrap_or("-"),
                        letter.error_kind,
                        letter.error_message
                    );
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            if shown == 0 && !json {
                match stage {
                    Some(stage) => outln!("no dead letters at {stage}"),
                    None => outln!("no dead letters"),
                }
            }
        }
        DlqAction::Replay {
            stage,
            tasks,
            limit,
            from,
            force,
        } => {
            let mut request = serde_json::json!({"stage": stage});
            if force {
                request["force"] = serde_json::json!(true);
            }
            if !tasks.is_empty() {
                request["task_ids"] = serde_json::json!(tasks);
            }
            if let Some(limit) = limit {
                request["limit"] = serde_json::json!(limit);
            }
            if let Some(from) = from {
                request["from"] = serde_json::json!(from);
            }
            let report = client.replay(&request).await?;
            let to = from.unwrap_or(stage);
            for task in &report.replayed {
                outln!("{task}  replayed to {to}");
            }
            for skipped in &report.skipped {
                outln!(
                    "{}  skipped: {}",
                    skipped.task_id.map(|t| t.to_string()).unwrap_or_default(),
                    skipped.reason
                );
            }
            for task in &report.not_found {
                outln!("{task}  not found: no dead letter of it waits at {stage}");
            }
            if report.replayed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn topology(settings: &Settings, action: TopologyAction) -> anyhow::Result<ExitCode> {
    match action {
        TopologyAction::Apply => {
            let (conn, _channel, topology) = broker::open(settings, "tenderflow-topology").await?;
            outln!(
                "declared {} exchanges, {} queues, {} bindings with prefix {}",
                topology.exchanges.len(),
                topology.queues.len(),
                topology.bindings.len(),
                topology.prefix()
            );
            let _ = conn.close(200, "done".into()).await;
        }
        TopologyAction::Export { vhost } => {
            let topology = Topology::from_settings(settings)?;
            outln!(
                "{}",
                serde_json::to_string_pretty(&topology.export(&vhost))?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tenderflow projector ...`: on the database file itself, not through
/// the API, so a snapshot or restore works whether or not `serve` runs.
fn projector(settings: &Settings, action: ProjectorAction) -> anyhow::Result<ExitCode> {
    use crate::projector::{db::ViewDb, retention, snapshot};
    let db_path = &settings.projector.db_path;
    let describe = |s: &snapshot::Summary| {
        let offset = s
            .stream_offset
            .map_or("none".to_string(), |o| o.to_string());
        format!(
            "{} tasks, stream offset {offset}, fold version {}",
            s.tasks, s.fold_version
        )
    };
    match action {
        ProjectorAction::Snapshot { file } => {
            let taken = snapshot::snapshot(db_path, &file)?;
            outln!("wrote {}: {}", file.display(), describe(&taken));
        }
        ProjectorAction::Restore { file, force } => {
            let _alone = crate::projector::lock::alone(db_path, "restore")?;
            let restored = snapshot::restore(&file, db_path, force)?;
            let from = match restored.stream_offset {
                Some(offset) => format!("entry {}", offset + 1),
                None => "first entry".to_string(),
            };
            outln!(
                "restored {} into {}: {}; serve folds the events stream from its {from}",
                file.display(),
                db_path.display(),
                describe(&restored)
            );
        }
        ProjectorAction::Vacuum => {
            let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
            let _alone = crate::projector::lock::alone(db_path, "vacuum")?;
            let before = size(db_path);
            let db = ViewDb::open(db_path)
                .with_context(|| format!("opening the view database {}", db_path.display()))?;
            let days = settings.projector.retain_finished_days;
            let cutoff = retention::cutoff(chrono::Utc::now(), days);
            let pruned = db.vacuum(cutoff).context("vacuuming the view database")?;
            outln!(
                "pruned {} finished tasks and {} old tombstones (retain_finished_days = {days}); \
                 {} is {} bytes, was {before}",
                pruned.tasks,
                pruned.tombstones,
                db_path.display(),
                size(db_path)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_file(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let media_type = crate::parse::sniff::sniff(&bytes, &file_name(file))?;
    let doc = crate::parse::parse(&bytes, media_type, &crate::parse::ParseLimits::default())?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        out!("{}", crate::parse::render_text(&doc));
    }
    Ok(ExitCode::SUCCESS)
}
