//! OCR of scanned pages with the Tesseract command line.
//!
//! Tesseract runs as a subprocess, one page image a call, rather than in
//! process through a binding crate: a subprocess can be killed at the
//! handler's deadline (a thread inside a C++ library cannot), a crash or a
//! runaway allocation in it takes down only itself, its memory is capped by
//! `prlimit`, and it needs no C headers or bindgen at build time. The bench
//! (`cargo bench --bench parse`) measures what the process costs per page.
//!
//! The page image goes in on stdin (JPEG or PNM; Leptonica sniffs it), the
//! TSV report comes out on stdout: one row per word with its box, its
//! confidence and its block, paragraph and line numbers.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::ParseError;

/// The language data OCR reads with: simplified Chinese, and English for
/// the Latin text tenders mix in.
pub const LANGUAGES: &str = "chi_sim+eng";

/// Most bytes a subprocess may print before it is stopped as runaway.
const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// How often a waiting parse looks at its deadline and cancel flag.
const POLL: Duration = Duration::from_millis(20);

/// A flag a parse looks at between and during its slow steps: set, it
/// kills the running OCR process and fails the parse. The parse stage sets
/// it when the handler is abandoned at its timeout.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Asks the parse to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the parse was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A Tesseract installation that has the languages OCR needs.
#[derive(Debug, Clone)]
pub struct Engine {
    program: PathBuf,
    /// `tesseract 5.3.0 chi_sim+eng`.
    pub name: String,
}

/// The engine at `program` (a name looked up on `PATH`, or a path), or
/// why OCR is not available. Looked up once per program and remembered.
pub fn engine(program: &Path) -> Result<Engine, String> {
    type Probed = Vec<(PathBuf, Result<Engine, String>)>;
    static FOUND: OnceLock<Mutex<Probed>> = OnceLock::new();
    let found = FOUND.get_or_init(Mutex::default);
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, known)) = found.iter().find(|(p, _)| p == program) {
        return known.clone();
    }
    let result = probe(program);
    found.push((program.to_path_buf(), result.clone()));
    result
}

fn probe(program: &Path) -> Result<Engine, String> {
    let run = |arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{} cannot be run ({e})", program.display()))
    };
    let version = run("--version")?;
    let version = String::from_utf8_lossy(&version.stdout);
    let version = version.lines().next().unwrap_or("tesseract").trim();
    let langs = run("--list-langs")?;
    let langs = String::from_utf8_lossy(&langs.stdout);
    let missing: Vec<&str> = LANGUAGES
        .split('+')
        .filter(|l| !langs.lines().any(|have| have.trim() == *l))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} has no language data for {} (Debian: tesseract-ocr-chi-sim, tesseract-ocr-eng)",
            program.display(),
            missing.join(", ")
        ));
    }
    Ok(Engine {
        program: program.to_path_buf(),
        name: format!("{version} {LANGUAGES}"),
    })
}

/// One word Tesseract read, with its box in image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word.
    pub text: String,
    /// Confidence, 0 to 100.
    pub confidence: f32,
    /// Left edge.
    pub left: u32,
    /// Top edge.
    pub top: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Block, paragraph and line numbers: words with the same are on one
    /// line of Tesseract's layout analysis.
    pub line: (u32, u32, u32),
}

/// What bounds one subprocess.
#[derive(Debug, Clone)]
pub struct Budget<'a> {
    /// When the process is killed, whatever it is doing.
    pub deadline: Instant,
    /// Address space the process may take, in bytes.
    pub max_memory: u64,
    /// Checked while waiting: set, the process is killed.
    pub cancel: &'a CancelFlag,
}

impl Engine {
    /// Reads the words of `image` (JPEG or PNM bytes) scanned at `dpi`.
    pub fn recognise(
        &self,
        image: &[u8],
        dpi: u32,
        budget: &Budget,
    ) -> Result<Vec<Word>, ParseError> {
        let mut command = limited(&self.program, budget.max_memory);
        command
            .args(["stdin", "stdout", "-l", LANGUAGES, "--psm", "3", "--dpi"])
            .arg(dpi.to_string())
            .arg("tsv")
            // One thread per page: the stage's own concurrency spreads the
            // pages over the cores, and OpenMP's spinning threads would
            // only fight it.
            .env("OMP_THREAD_LIMIT", "1");
        let out = run_bounded(command, image, budget).map_err(|e| e.into_parse_error("OCR"))?;
        Ok(parse_tsv(&String::from_utf8_lossy(&out)))
    }
}

/// Whether `program` names an existing file, directly or on `PATH`: a
/// program run under prlimit that is missing fails as prlimit's exit
/// status, so the caller asks first to say what is missing.
pub fn installed(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `program` run under `prlimit --as`, where util-linux's prlimit is
/// installed, so that its address space is capped.
pub fn limited(program: &Path, max_memory: u64) -> Command {
    static PRLIMIT: OnceLock<bool> = OnceLock::new();
    let has_prlimit = *PRLIMIT.get_or_init(|| {
        Command::new("prlimit")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if has_prlimit {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--as={max_memory}"))
            .arg("--")
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The words of a Tesseract TSV report: level-5 rows with text, in order.
pub fn parse_tsv(tsv: &str) -> Vec<Word> {
    let mut words = Vec::new();
    for row in tsv.lines().skip(1) {
        let cols: Vec<&str> = row.splitn(12, '\t').collect();
        if cols.len() < 12 || cols[0] != "5" {
            continue;
        }
        let text = cols[11].trim();
        let num = |i: usize| cols[i].parse::<u32>().ok();
        let (Some(block), Some(par), Some(line), Some(left), Some(top), Some(width), Some(height)) =
            (num(2), num(3), num(4), num(6), num(7), num(8), num(9))
        else {
            continue;
        };
        let Ok(confidence) = cols[10].parse::<f32>() else {
            continue;
        };
        if text.is_empty() || !(0.0..=100.0).contains(&confidence) {
            continue;
        }
        words.push(Word {
            text: text.to_string(),
            confidence,
            left,
            top,
            width,
            height,
            line: (block, par, line),
        });
    }
    words
}

/// Why a bounded subprocess gave no output.
#[derive(Debug)]
pub enum RunError {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It ran past its deadline and was killed.
    Timeout,
    /// The parse was cancelled; it was killed.
    Cancelled,
    /// It printed more than [`MAX_OUTPUT`] bytes and was killed.
    Runaway,
    /// It exited with a failure; its standard error says why.
    Failed(String),
}

impl RunError {
    /// The parse error for a failed run of the `what` step.
    pub fn into_parse_error(self, what: &str) -> ParseError {
        match self {
            RunError::Spawn(e) => {
                ParseError::new("needs_ocr", format!("{what} could not be started: {e}"))
            }
            RunError::Timeout => ParseError::too_large(format!(
                "{what} of a page ran past its time limit and was stopped"
            )),
            RunError::Cancelled => ParseError::new(
                "cancelled",
                format!("the parse was abandoned during {what}; its process was stopped"),
            ),
            RunError::Runaway => ParseError::too_large(format!(
                "{what} printed more than {MAX_OUTPUT} bytes and was stopped"
            )),
            RunError::Failed(detail) => {
                ParseError::corrupt(format!("{what} failed on a page image: {detail}"))
            }
        }
    }
}

/// A child process that is killed and reaped when dropped, so that no
/// path out of [`run_bounded`] (an error, a panic) leaves it running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs `command` with `input` on its stdin and returns its stdout; kills
/// it at the budget's deadline, on cancel, or when it prints too much.
pub fn run_bounded(
    mut command: Command,
    input: &[u8],
    budget: &Budget,
) -> Result<Vec<u8>, RunError> {
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RunError::Spawn)?;
    let mut child = Reaped(child);
    let stdin = child.0.stdin.take();
    let stdout = child.0.stdout.take();
    let stderr = child.0.stderr.take();
    let overflow = AtomicBool::new(false);
    let quiet = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Writing and reading on their own threads: a child that fills its
        // output pipe before it has read all its input must not deadlock.
        if let Some(mut stdin) = stdin {
            scope.spawn(move || {
                // A child that exits early closes the pipe: not our error.
                let _ = stdin.write_all(input);
            });
        }
        let out = scope.spawn(|| read_capped(stdout, MAX_OUTPUT, &overflow));
        let err = scope.spawn(|| read_capped(stderr, 64 * 1024, &quiet));
        let status = loop {
            if budget.cancel.is_cancelled() {
                let _ = child.0.kill();
                return Err(RunError::Cancelled);
            }
            if Instant::now() >= budget.deadline {
                let _ = child.0.kill();
                return Err(RunError::Timeout);
            }
            if overflow.load(Ordering::SeqCst) {
                let _ = child.0.kill();
                return Err(RunError::Runaway);
            }
            match child.0.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => return Err(RunError::Failed(e.to_string())),
            }
        };
        let out = out.join().unwrap_or_default();
        let err = err.join().unwrap_or_default();
        if overflow.load(Ordering::SeqCst) {
            return Err(RunError::Runaway);
        }
        if !status.success() {
            let detail = String::from_utf8_lossy(&err);
            let detail = detail.trim();
            let detail = if detail.is_empty() {
                status.to_string()
            } else {
                detail.chars().take(300).collect()
            };
            return Err(RunError::Failed(detail));
        }
        Ok(out)
    })
}

/// Reads up to `cap` bytes, setting `overflow` when there was more.
fn read_capped(pipe: Option<impl Read>, cap: usize, overflow: &AtomicBool) -> Vec<u8> {
    let Some(pipe) = pipe else {
        return Vec::new();
    };
    let mut buf = Vec::new();
    let mut limited = pipe.take(cap as u64 + 1);
    let _ = limited.read_to_end(&mut buf);
    if buf.len() > cap {
        overflow.store(true, Ordering::SeqCst);
        buf.truncate(cap);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
        1\t1\t0\t0\t0\t0\t0\t0\t2561\t3566\t-1\t\n\
        4\t1\t1\t1\t1\t0\t330\t295\t590\t60\t-1\t\n\
        5\t1\t1\t1\t1\t1\t330\t313\t70\t28\t93.19\t一\n\
        5\t1\t1\t1\t1\t2\t407\t291\t46\t81\t41.5\t申请\n\
        5\t1\t1\t1\t1\t3\t500\t291\t46\t81\t95\t \n\
        5\t1\t1\t1\t2\t1\tx\t291\t46\t81\t95\tbad\n";

    #[test]
    fn tsv_words_keep_their_boxes_lines_and_confidences() {
        let words = parse_tsv(TSV);
        assert_eq!(words.len(), 2, "{words:?}");
        assert_eq!(words[0].text, "一");
        assert_eq!(words[0].line, (1, 1, 1));
        assert_eq!((words[1].left, words[1].height), (407, 81));
        assert!((words[1].confidence - 41.5).abs() < 1e-3);
    }

    #[test]
    fn tsv_of_garbage_reads_as_no_words() {
        assert!(parse_tsv("").is_empty());
        assert!(parse_tsv("\u{0}\t\t\n5\t1\n5\t\t\t\t\t\t\t\t\t\t\t\t\t\n").is_empty());
    }

    fn budget(cancel: &CancelFlag, seconds: u64) -> Budget<'_> {
        Budget {
            deadline: Instant::now() + Duration::from_secs(seconds),
            max_memory: 1 << 30,
            cancel,
        }
    }

    #[test]
    fn a_process_past_its_deadline_is_killed() {
        let cancel = CancelFlag::default();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let pid_file = dir.path().join("pid");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("echo $$ > {}; exec sleep 30", pid_file.display()));
        let started = Instant::now();
        let mut budget = budget(&cancel, 0);
        budget.deadline = Instant::now() + Duration::from_millis(300);
        let result = run_bounded(command, b"", &budget);
        assert!(matches!(result, Err(RunError::Timeout)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Killed and reaped: no such process any more.
        let pid = std::fs::read_to_string(&pid_file).expect("the child's pid");
        assert!(!Path::new(&format!("/proc/{}", pid.trim())).exists());
    }

    #[test]
    fn a_cancelled_parse_kills_its_process() {
        let cancel = CancelFlag::default();
        let flag = cancel.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.cancel();
        });
        let mut command = Command::new("sh");
        command.args(["-c", "exec sleep 30"]);
        let started = Instant::now();
        let result = run_bounded(command, b"", &budget(&cancel, 60));
        canceller.join().expect("canceller");
        assert!(matches!(result, Err(RunError::Cancelled)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_failing_process_reports_its_stderr() {
        let cancel = CancelFlag::default();
        let mut command = Command::new("sh");
        command.args(["-c", "cat >/dev/null; echo broken image >&2; exit 3"]);
        match run_bounded(command, &[0u8; 200_000], &budget(&cancel, 10)) {
            Err(RunError::Failed(detail)) => assert_eq!(detail, "broken image"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_process_that_prints_without_end_is_stopped() {
        let cancel = CancelFlag::default();
        let mut command = Command::new("sh");
        command.args(["-c", "exec cat /dev/zero"]);
        let result = run_bounded(command, b"", &budget(&cancel, 60));
        assert!(matches!(result, Err(RunError::Runaway)), "{result:?}");
    }

    #[test]
    fn input_larger_than_a_pipe_goes_through() {
        let cancel = CancelFlag::default();
        let mut command = Command::new("wc");
        command.arg("-c");
        let out = run_bounded(command, &vec![b'x'; 1 << 20], &budget(&cancel, 10)).expect("wc");
        assert_eq!(String::from_utf8_lossy(&out).trim(), "1048576");
    }

    #[test]
    fn a_missing_program_is_no_engine() {
        let err = engine(Path::new("/nonexistent/tesseract")).expect_err("no such program");
        assert!(err.contains("cannot be run"), "{err}");
    }
}
