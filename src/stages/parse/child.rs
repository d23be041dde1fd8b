//! Parsing in a child process, so that a parse can really be stopped and
//! bounded.
//!
//! A parse on a thread cannot be stopped from outside: pdf-extract and the
//! other parsers never look at a flag, so a parse abandoned at the handler
//! timeout ran on, and slow documents piled up. A child process can be:
//! the parent kills its whole process group (the parse and the `tesseract`
//! or `pdftoppm` it runs) at the deadline or when the handler is dropped,
//! the kernel caps its address space and CPU time, and a crash (a stack
//! overflow, an abort on a failed allocation) ends only the child.
//!
//! The protocol: the parent runs `tenderflow parse-child` with the
//! [`ParseLimits`] as arguments ([`ChildArgs`]), writes the document's
//! bytes to its stdin, and reads one [`Reply`] in JSON from its stdout.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::document::ParsedDocument;
use crate::parse::{self, ParseLimits, sniff};
use crate::stages::StageError;

/// The subcommand the child runs as.
pub const SUBCOMMAND: &str = "parse-child";

/// Most bytes of the child's stderr kept for the error message.
const MAX_STDERR: u64 = 16 * 1024;

/// The kinds a child may report, as the in-process parse gives them.
const PARSE_KINDS: [&str; 9] = [
    "unsupported_type",
    "unsupported_archive",
    "unsupported_encoding",
    "corrupt",
    "encrypted",
    "needs_ocr",
    "too_large",
    "empty",
    "cancelled",
];

/// What bounds one parse process, beside its [`ParseLimits`].
#[derive(Debug, Clone, PartialEq)]
pub struct Confinement {
    /// The tenderflow binary.
    pub program: PathBuf,
    /// Address space, in bytes.
    pub max_memory: u64,
    /// CPU time, in seconds.
    pub max_cpu_seconds: u64,
}

/// The child's command line: the document's name and every limit.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ChildArgs {
    /// The document's file name (its extension helps sniffing).
    #[arg(long)]
    pub filename: String,
    /// Address space of the process, in bytes (RLIMIT_AS).
    #[arg(long)]
    pub max_memory: u64,
    /// CPU time of the process, in seconds (RLIMIT_CPU).
    #[arg(long)]
    pub max_cpu_seconds: u64,
    #[arg(long)]
    pub max_input_bytes: u64,
    #[arg(long)]
    pub max_pages: u32,
    #[arg(long)]
    pub max_zip_entries: usize,
    #[arg(long)]
    pub max_uncompressed_bytes: u64,
    #[arg(long)]
    pub max_xml_depth: usize,
    #[arg(long)]
    pub max_object_depth: usize,
    #[arg(long)]
    pub max_blocks: usize,
    #[arg(long)]
    pub max_ocr_pages: u32,
    #[arg(long)]
    pub max_ocr_pixels: u64,
    #[arg(long)]
    pub ocr_page_timeout_ms: u64,
    #[arg(long)]
    pub max_ocr_memory: u64,
    #[arg(long)]
    pub tesseract: PathBuf,
    #[arg(long)]
    pub pdftoppm: PathBuf,
}

impl ChildArgs {
    /// The arguments for parsing `filename` under `limits` and `confinement`.
    pub fn new(filename: &str, limits: &ParseLimits, confinement: &Confinement) -> ChildArgs {
        ChildArgs {
            // An argument cannot hold a NUL; the name only helps sniffing.
            filename: filename.replace('\0', ""),
            max_memory: confinement.max_memory,
            max_cpu_seconds: confinement.max_cpu_seconds,
            max_input_bytes: limits.max_input_bytes,
            max_pages: limits.max_pages,
            max_zip_entries: limits.max_zip_entries,
            max_uncompressed_bytes: limits.max_uncompressed_bytes,
            max_xml_depth: limits.max_xml_depth,
            max_object_depth: limits.max_object_depth,
            max_blocks: limits.max_blocks,
            max_ocr_pages: limits.max_ocr_pages,
            max_ocr_pixels: limits.max_ocr_pixels,
            ocr_page_timeout_ms: limits.ocr_page_timeout.as_millis() as u64,
            max_ocr_memory: limits.max_ocr_memory,
            tesseract: limits.tesseract.clone(),
            pdftoppm: limits.pdftoppm.clone(),
        }
    }

    /// The command line after the program: `parse-child --key=value ...`.
    /// Every value is joined to its key, so a file name that starts with
    /// `-` stays a value.
    pub fn to_args(&self) -> Vec<OsString> {
        let pair = |key: &str, value: &dyn std::fmt::Display| format!("--{key}={value}").into();
        let path = |key: &str, value: &Path| {
            let mut arg = OsString::from(format!("--{key}="));
            arg.push(value);
            arg
        };
        vec![
            SUBCOMMAND.into(),
            pair("filename", &self.filename),
            pair("max-memory", &self.max_memory),
            pair("max-cpu-seconds", &self.max_cpu_seconds),
            pair("max-input-bytes", &self.max_input_bytes),
            pair("max-pages", &self.max_pages),
            pair("max-zip-entries", &self.max_zip_entries),
            pair("max-uncompressed-bytes", &self.max_uncompressed_bytes),
            pair("max-xml-depth", &self.max_xml_depth),
            pair("max-object-depth", &self.max_object_depth),
            pair("max-blocks", &self.max_blocks),
            pair("max-ocr-pages", &self.max_ocr_pages),
            pair("max-ocr-pixels", &self.max_ocr_pixels),
            pair("ocr-page-timeout-ms", &self.ocr_page_timeout_ms),
            pair("max-ocr-memory", &self.max_ocr_memory),
            path("tesseract", &self.tesseract),
            path("pdftoppm", &self.pdftoppm),
        ]
    }

    /// The parse limits the arguments carry. OCR processes get no more
    /// address space than the child itself: `prlimit` cannot raise a hard
    /// limit.
    pub fn limits(&self) -> ParseLimits {
        ParseLimits {
            max_input_bytes: self.max_input_bytes,
            max_pages: self.max_pages,
            max_zip_entries: self.max_zip_entries,
            max_uncompressed_bytes: self.max_uncompressed_bytes,
            max_xml_depth: self.max_xml_depth,
            max_object_depth: self.max_object_depth,
            max_blocks: self.max_blocks,
            max_ocr_pages: self.max_ocr_pages,
            max_ocr_pixels: self.max_ocr_pixels,
            ocr_page_timeout: Duration::from_millis(self.ocr_page_timeout_ms),
            max_ocr_memory: self.max_ocr_memory.min(self.max_memory),
            tesseract: self.tesseract.clone(),
            pdftoppm: self.pdftoppm.clone(),
            cancel: Default::default(),
        }
    }
}

/// The child's answer on its stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The parsed document.
    Parsed(ParsedDocument),
    /// The parse error, as the in-process parse gives it.
    Failed { kind: String, message: String },
}

// The child's side.

/// Runs as the child: confines itself, reads the document from stdin,
/// parses it, writes the [`Reply`] to stdout. Exits 0 whenever it could
/// answer, a parse error included; a non-zero status means it could not.
pub fn run(args: &ChildArgs) -> ExitCode {
    if let Err(err) = confine(args) {
        eprintln!("parse-child: cannot set its limits: {err}");
        return ExitCode::from(2);
    }
    let mut bytes = Vec::new();
    // One byte past the limit is enough for the parse to say `too_large`.
    let read = std::io::stdin()
        .lock()
        .take(args.max_input_bytes.saturating_add(1))
        .read_to_end(&mut bytes);
    if let Err(err) = read {
        eprintln!("parse-child: reading the document: {err}");
        // An allocator that fails the reservation (rather than aborting)
        // says so here: it is the memory limit all the same.
        if err.kind() == std::io::ErrorKind::OutOfMemory {
            return ExitCode::from(OUT_OF_MEMORY);
        }
        return ExitCode::from(2);
    }
    let limits = args.limits();
    let reply = match sniff::sniff(&bytes, &args.filename)
        .and_then(|media_type| parse::parse(&bytes, media_type, &limits))
    {
        Ok(doc) => Reply::Parsed(doc),
        Err(err) => Reply::Failed {
            kind: err.kind.to_string(),
            message: err.message,
        },
    };
    drop(bytes);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer(&mut out, &reply)
        .map_err(std::io::Error::from)
        .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("parse-child: writing the reply: {err}");
            ExitCode::from(3)
        }
    }
}

/// Dies with the worker that started it, and takes no more address space
/// and CPU time than it is allowed; hard limits too, so that nothing it
/// runs can raise them.
fn confine(args: &ChildArgs) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, Signal, set_parent_process_death_signal, setrlimit};
    set_parent_process_death_signal(Some(Signal::KILL))?;
    let limit = |value| Rlimit {
        current: Some(value),
        maximum: Some(value),
    };
    setrlimit(Resource::As, limit(args.max_memory))?;
    setrlimit(Resource::Cpu, limit(args.max_cpu_seconds))?;
    Ok(())
}

// The parent's side.

/// Parses `bytes` in a child process, killed with everything it started
/// when `deadline` passes (the message's `timeout`, for the error) or when
/// the returned future is dropped.
pub async fn parse_in_child(
    bytes: Bytes,
    filename: &str,
    limits: &ParseLimits,
    confinement: &Confinement,
    deadline: Instant,
    timeout: Duration,
) -> Result<ParsedDocument, StageError> {
    let args = ChildArgs::new(filename, limits, confinement);
    let mut child = tokio::process::Command::new(&confinement.program)
        .args(args.to_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that one signal reaches its OCR processes too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            // Retried: a full process table or a binary being replaced
            // by a deployment passes.
            StageError::transient(format!(
                "the parse process {} could not be started: {e}",
                confinement.program.display()
            ))
        })?;
    // Dropped before `child` (declared after it): kills the group, then
    // tokio kills and reaps the child itself.
    let group = Group(child.id());
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let max_reply = limits.max_input_bytes.saturating_mul(8).max(64 << 20);
    let exchange = async {
        let feed = async {
            if let Some(mut stdin) = stdin {
                // A child that stops reading (it refused the document, or
                // died) closes the pipe: its status says why, not this.
                let _ = stdin.write_all(&bytes).await;
            }
        };
        let (reply, errors, ()) = tokio::join!(
            read_bounded(stdout, max_reply),
            read_bounded(stderr, MAX_STDERR),
            feed
        );
        let status = child.wait().await;
        (status, reply, errors)
    };
    let (status, reply, errors) = match tokio::time::timeout_at(deadline, exchange).await {
        Ok(done) => done,
        Err(_) => {
            return Err(StageError::permanent(
                "parse_timeout",
                format!(
                    "parsing {filename} ran past the limit of {} ms (parse.timeout_ms) and was \
                     stopped, with every process it started",
                    timeout.as_millis()
                ),
            ));
        }
    };
    // Whatever it left behind (an OCR process it lost) goes with it.
    drop(group);
    let status =
        status.map_err(|e| StageError::transient(format!("waiting for the parse process: {e}")))?;
    let (reply, overflow) = reply;
    if overflow {
        return Err(StageError::permanent(
            "too_large",
            format!("the parsed document is over {max_reply} bytes"),
        ));
    }
    let stderr = String::from_utf8_lossy(&errors.0).into_owned();
    let confinement = confinement.clone();
    tokio::task::spawn_blocking(move || outcome(status, &reply, &stderr, &confinement))
        .await
        .map_err(|e| StageError::transient(format!("decoding the parsed document: {e}")))?
}

/// A process group, killed when dropped.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        let pid = self
            .0
            .and_then(|id| rustix::process::Pid::from_raw(id as i32));
        if let Some(pid) = pid {
            // ESRCH (nothing left in the group) is the usual answer.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Reads `from` to its end, keeping the first `limit` bytes; whether more
/// came is the flag. Reads on past the limit, so the writer never blocks.
async fn read_bounded(from: Option<impl AsyncRead + Unpin>, limit: u64) -> (Vec<u8>, bool) {
    let Some(from) = from else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut from = from.take(limit);
    if from.read_to_end(&mut kept).await.is_err() {
        return (kept, false);
    }
    let mut rest = from.into_inner();
    let more = tokio::io::copy(&mut rest, &mut tokio::io::sink())
        .await
        .unwrap_or(0);
    (kept, more > 0)
}

/// The child's exit code when its memory limit refused an allocation it
/// could report (rather than abort on).
const OUT_OF_MEMORY: u8 = 3;

/// What the child's exit status, stdout and stderr mean for the stage.
pub fn outcome(
    status: ExitStatus,
    reply: &[u8],
    stderr: &str,
    confinement: &Confinement,
) -> Result<ParsedDocument, StageError> {
    let last_words = last_line(stderr);
    if let Some(signal) = status.signal() {
        let why = match signal {
            6 if stderr.contains("memory allocation of") => format!(
                ", out of its memory limit of {} MiB (parse.max_memory_mb)",
                confinement.max_memory >> 20
            ),
            24 => format!(
                ", out of its CPU time limit of {} s (parse.max_cpu_seconds)",
                confinement.max_cpu_seconds
            ),
            _ => String::new(),
        };
        return Err(StageError::permanent(
            "parser_crashed",
            format!(
                "the parse process was killed by {}{why}{last_words}",
                signal_name(signal)
            ),
        ));
    }
    if status.code() == Some(i32::from(OUT_OF_MEMORY)) {
        return Err(StageError::permanent(
            "parser_crashed",
            format!(
                "the parse process ran out of its memory limit of {} MiB \
                 (parse.max_memory_mb){last_words}",
                confinement.max_memory >> 20
            ),
        ));
    }
    if !status.success() {
        return Err(StageError::permanent(
            "parser_crashed",
            format!("the parse process failed ({status}){last_words}"),
        ));
    }
    match serde_json::from_slice::<Reply>(reply) {
        Ok(Reply::Parsed(doc)) => Ok(doc),
        Ok(Reply::Failed { kind, message }) => match PARSE_KINDS.iter().find(|k| **k == kind) {
            Some(kind) => Err(StageError::permanent(kind, message)),
            None => Err(StageError::permanent(
                "parser_crashed",
                format!("the parse process gave an unknown kind of error, {kind}: {message}"),
            )),
        },
        Err(err) => Err(StageError::permanent(
            "parser_crashed",
            format!(
                "the parse process {} gave no readable answer ({err}): is it a tenderflow \
                 binary? (parse.program){last_words}",
                confinement.program.display()
            ),
        )),
    }
}

/// `: <the last line of stderr>`, or nothing.
fn last_line(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}

/// `SIGSEGV` for 11: the signals a parse dies of, by name.
fn signal_name(signal: i32) -> String {
    let name = match signal {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        other => return format!("signal {other}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        ParseChild(ChildArgs),
    }

    fn confinement() -> Confinement {
        Confinement {
            program: "tenderflow".into(),
            max_memory: 512 << 20,
            max_cpu_seconds: 30,
        }
    }

    #[test]
    fn the_limits_survive_the_command_line() {
        let limits = ParseLimits {
            max_pages: 7,
            max_ocr_pixels: 1234,
            ocr_page_timeout: Duration::from_millis(4500),
            tesseract: "/opt/ocr/tesseract 5".into(),
            ..ParseLimits::default()
        };
        let args = ChildArgs::new("-odd\0 name.pdf", &limits, &confinement());
        let line = std::iter::once(OsString::from("tenderflow")).chain(args.to_args());
        let Sub::ParseChild(parsed) = Cli::try_parse_from(line).unwrap().command;
        assert_eq!(parsed, args);
        assert_eq!(parsed.filename, "-odd name.pdf");
        let mut expected = limits.clone();
        expected.max_ocr_memory = 512 << 20;
        assert_eq!(format!("{:?}", parsed.limits()), format!("{expected:?}"));
    }

    #[test]
    fn a_parse_error_keeps_its_kind() {
        let reply = br#"{"failed":{"kind":"encrypted","message":"needs a password"}}"#;
        let err = outcome(ExitStatus::from_raw(0), reply, "", &confinement()).unwrap_err();
        assert_eq!(err.info().kind, "encrypted");
        assert_eq!(err.info().message, "needs a password");
        assert!(!err.is_transient());
        let odd = br#"{"failed":{"kind":"gremlins","message":"?"}}"#;
        let err = outcome(ExitStatus::from_raw(0), odd, "", &confinement()).unwrap_err();
        assert_eq!(err.info().kind, "parser_crashed");
    }

    #[test]
    fn a_document_comes_back_whole() {
        let doc = crate::parse::text::parse_markdown("# 招标公告\n\n项目名称：学校\n".as_bytes())
            .unwrap();
        assert!(!doc.blocks.is_empty());
        let reply = serde_json::to_vec(&Reply::Parsed(doc.clone())).unwrap();
        let back = outcome(ExitStatus::from_raw(0), &reply, "", &confinement()).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn a_crash_names_its_signal_and_its_limit() {
        // A wait status of "killed by signal n" is n itself.
        let oom = "memory allocation of 1073741824 bytes failed\n";
        let err = outcome(ExitStatus::from_raw(6), b"", oom, &confinement()).unwrap_err();
        assert_eq!(err.info().kind, "parser_crashed");
        let message = err.info().message;
        assert!(message.contains("SIGABRT"), "{message}");
        assert!(message.contains("512 MiB"), "{message}");
        assert!(message.contains("memory allocation of"), "{message}");
        let err = outcome(ExitStatus::from_raw(24), b"", "", &confinement()).unwrap_err();
        assert!(err.info().message.contains("SIGXCPU"));
        assert!(err.info().message.contains("30 s"));
        let err = outcome(ExitStatus::from_raw(11), b"", "", &confinement()).unwrap_err();
        assert!(err.info().message.contains("SIGSEGV"));
        // A refused allocation the child could report, as its exit code.
        let status = ExitStatus::from_raw(i32::from(OUT_OF_MEMORY) << 8);
        let err = outcome(status, b"", "out of memory\n", &confinement()).unwrap_err();
        assert!(err.info().message.contains("memory limit of 512 MiB"));
        // Exit status 101 (a panic that escaped), as wait reports it.
        let panicked = "thread 'main' panicked at src/x.rs:1:1\nboom\n";
        let err = outcome(
            ExitStatus::from_raw(101 << 8),
            b"",
            panicked,
            &confinement(),
        );
        let message = err.unwrap_err().info().message;
        assert!(
            message.contains("101") && message.contains("boom"),
            "{message}"
        );
    }

    #[test]
    fn a_wrong_program_is_named() {
        let err = outcome(
            ExitStatus::from_raw(0),
            b"running 0 tests",
            "",
            &confinement(),
        );
        let message = err.unwrap_err().info().message;
        assert!(message.contains("parse.program"), "{message}");
    }
}
