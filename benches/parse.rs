//! Parse benchmark over the corpus variants, and a PDF text-fidelity
//! comparison against other extractors.
//!
//! Run: `cargo bench --bench parse` (add `-- --runs 9` for more runs,
//! `-- --ocr-only` for the OCR table alone, `-- --isolation` for the cost
//! of parsing in a child process alone, `-- --pdf-only` for every corpus
//! PDF, dev and real, beside pdftotext, `-- --profile FILE` to parse one
//! file once under callgrind).
//! Prints two Markdown tables:
//! 1. per file: median parse time, pages/s (pages of the document's PDF
//!    rendering, so formats compare), MB/s, peak RSS growth while parsing,
//!    and `pdftotext` on the same PDFs when poppler-utils is installed;
//! 2. per PDF extractor: the share of gold strings (field values and
//!    rejection texts, as written) found in its text, and its median time;
//! 3. OCR of scanned PDFs (the committed scan fixture, and every
//!    `*.scan.pdf` in `--scans DIR`): tenderflow's parse against the
//!    `tesseract` command line on the same page images (taken out with
//!    poppler's `pdfimages -j`), CPU counting child processes, in pages per
//!    second per core; peak memory of our process and of one tesseract.
//!
//! Peak memory is the process's peak resident set (VmHWM) after resetting it
//! through /proc/self/clear_refs, minus the resident set before the parse:
//! Linux only, and it needs no allocator hooks (the crate forbids unsafe).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tenderflow::parse::{ParseLimits, parse, sniff::sniff};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/dev");
const DOCUMENTS: [&str; 3] = ["cn_construction", "cn_selection", "en_itt"];
const VARIANTS: [&str; 5] = ["pdf", "docx", "html", "md", "gbk.txt"];
/// The `.doc` renderings of the corpus, and a bill of quantities as XLSX
/// and XLS, made once with LibreOffice (see its README).
const LEGACY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/legacy");

fn main() {
    let runs = run_count();
    if std::env::args().any(|a| a == "--ocr-only") {
        ocr_section(runs);
        return;
    }
    if std::env::args().any(|a| a == "--isolation") {
        isolation_section(runs);
        return;
    }
    if let Some(path) = arg_after("--profile") {
        profile_once(Path::new(&path));
        return;
    }
    if std::env::args().any(|a| a == "--pdf-only") {
        pdf_section(runs);
        return;
    }
    let pdftotext = has_pdftotext();
    println!(
        "## Parse speed (median of {runs} runs, release build; CPU = user+system time per parse)\n"
    );
    println!(
        "| file | size KB | pages | wall ms | CPU ms | pages/s (CPU) | MB/s (CPU) | peak RSS +MB | pdftotext wall ms | pdftotext CPU ms | pdftotext pages/s (CPU) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for document in DOCUMENTS {
        let pages = pdf_pages(document);
        for variant in VARIANTS {
            let path = corpus(&format!("{document}.{variant}"));
            if path.exists() {
                speed_row(&path, pages, runs, pdftotext && variant == "pdf");
            }
        }
        let doc = Path::new(LEGACY).join(format!("{document}.doc"));
        if doc.exists() {
            speed_row(&doc, pages, runs, false);
        }
    }
    for sheet in ["bill_of_quantities.xlsx", "bill_of_quantities.xls"] {
        speed_row(&Path::new(LEGACY).join(sheet), 1, runs, false);
    }
    if !pdftotext {
        println!("\n(pdftotext columns empty: poppler-utils is not installed)");
    }
    println!("\n## PDF text fidelity: gold strings found as written (and ignoring whitespace)\n");
    println!("| extractor | cn_construction | cn_selection | en_itt | total ms (3 PDFs) |");
    println!("|---|---:|---:|---:|---:|");
    fidelity_row("tenderflow (pdf-extract glyphs + layout)", runs, |b, _| {
        let doc = parse(b, "application/pdf", &ParseLimits::default()).ok()?;
        Some(doc.plain_text())
    });
    fidelity_row("pdf-extract extract_text_from_mem", runs, |b, _| {
        pdf_extract::extract_text_from_mem(b).ok()
    });
    fidelity_row("lopdf Document::extract_text", runs, |b, _| {
        let doc = lopdf::Document::load_mem(b).ok()?;
        let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
        doc.extract_text(&pages).ok()
    });
    if pdftotext {
        fidelity_row("pdftotext (poppler, reading order)", runs, |_, p| {
            run_pdftotext(p, false)
        });
        fidelity_row("pdftotext -layout", runs, |_, p| run_pdftotext(p, true));
    }
    ocr_section(runs);
}

/// The real documents beside the synthetic corpus.
const REAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/real");

/// The value after `flag` on the command line.
fn arg_after(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).cloned()
}

/// Every corpus PDF, dev and real, sorted by name within each folder.
fn corpus_pdfs() -> Vec<PathBuf> {
    let mut all = Vec::new();
    for dir in [CORPUS, REAL] {
        let mut pdfs: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pdf"))
            .collect();
        pdfs.sort();
        all.extend(pdfs);
    }
    all
}

/// The speed table for every corpus PDF (dev and real) alone, beside
/// pdftotext in the same run: `--pdf-only`.
fn pdf_section(runs: usize) {
    let pdftotext = has_pdftotext();
    println!("## PDF parse speed (median of {runs} runs, release build)\n");
    println!(
        "| file | size KB | pages | wall ms | CPU ms | pages/s (CPU) | MB/s (CPU) | peak RSS +MB | pdftotext wall ms | pdftotext CPU ms | pdftotext pages/s (CPU) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for path in corpus_pdfs() {
        let bytes = std::fs::read(&path).expect("a corpus PDF");
        let pages = parse(&bytes, "application/pdf", &ParseLimits::default())
            .ok()
            .and_then(|d| d.meta.page_count)
            .unwrap_or(0);
        speed_row(&path, pages, runs, pdftotext);
    }
}

/// Parses one file once and prints what it found: the target for
/// `valgrind --tool=callgrind`, which counts instructions, not time.
fn profile_once(path: &Path) {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let bytes = std::fs::read(path).expect("the file to profile");
    let media_type = sniff(&bytes, name).expect("a known type");
    let doc = parse(&bytes, media_type, &ParseLimits::default()).expect("parse");
    println!(
        "{name}: {} blocks, {} pages",
        doc.blocks.len(),
        doc.meta.page_count.unwrap_or(0)
    );
}

/// What parsing in a child process (`parse.isolation = "process"`) costs:
/// every corpus document, dev and real, parsed in this process and the
/// way the parse stage parses it (`tenderflow parse-child`, the document
/// through a pipe and the parsed document back as JSON), in one run, runs
/// interleaved so that drift hits both alike; each pair of parses must
/// give the same document.
fn isolation_section(runs: usize) {
    use tenderflow::stages::parse::child::{Confinement, parse_in_child};
    let confinement = Confinement {
        program: PathBuf::from(env!("CARGO_BIN_EXE_tenderflow")),
        max_memory: 2048 << 20,
        max_cpu_seconds: 300,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut files: Vec<PathBuf> = [CORPUS, REAL]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.to_string_lossy();
            !name.ends_with(".gold.json") && !name.ends_with("README.md")
        })
        .collect();
    files.sort();
    println!("## Parsing in a child process (median of {runs} runs, release build, wall time)\n");
    println!("| file | size KB | in process ms | child process ms | cost ms | ratio |");
    println!("|---|---:|---:|---:|---:|---:|");
    let limits = ParseLimits::default();
    let timeout = Duration::from_secs(600);
    let (mut total_in, mut total_child) = (Duration::ZERO, Duration::ZERO);
    for path in &files {
        let bytes = std::fs::read(path).expect("a corpus file");
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let media_type = sniff(&bytes, &name).expect("a known type");
        let (mut inside, mut outside) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let start = Instant::now();
            let here = parse(&bytes, media_type, &limits).expect("parses in process");
            inside.push(start.elapsed());
            let owned = bytes::Bytes::from(bytes.clone());
            let start = Instant::now();
            let deadline = tokio::time::Instant::now() + timeout;
            let there = runtime
                .block_on(parse_in_child(
                    owned,
                    &name,
                    &limits,
                    &confinement,
                    deadline,
                    timeout,
                ))
                .expect("parses in a child");
            outside.push(start.elapsed());
            assert!(here == there, "{name}: the child parsed another document");
        }
        let (a, b) = (median(inside), median(outside));
        total_in += a;
        total_child += b;
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:+.1} | {:.2} |",
            bytes.len() / 1024,
            ms(a),
            ms(b),
            ms(b) - ms(a),
            ms(b) / ms(a)
        );
    }
    println!(
        "| **all {} documents** | | {:.1} | {:.1} | {:+.1} | {:.2} |",
        files.len(),
        ms(total_in),
        ms(total_child),
        ms(total_child) - ms(total_in),
        ms(total_child) / ms(total_in)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The OCR table: our parse of each scan against the tesseract command
/// line on the same page images, in the same run.
fn ocr_section(runs: usize) {
    println!("\n## OCR of scanned PDFs (median of {runs} runs; CPU includes child processes)\n");
    if tenderflow::parse::ocr::engine(Path::new("tesseract")).is_err()
        || Command::new("pdfimages").arg("-v").output().is_err()
    {
        println!("(skipped: tesseract with chi_sim and eng, or poppler-utils, is not installed)");
        return;
    }
    let mut scans = vec![PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scan_cn_selection_p1.pdf"
    ))];
    let args: Vec<String> = std::env::args().collect();
    if let Some(dir) = args
        .iter()
        .position(|a| a == "--scans")
        .and_then(|i| args.get(i + 1))
    {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("the --scans folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".scan.pdf"))
            .collect();
        found.sort();
        scans.extend(found);
    }
    println!(
        "| scan | pages | tenderflow wall s/page | CPU s/page | pages/s per core | peak RSS +MB | tesseract CLI wall s/page | CPU s/page | pages/s per core | one tesseract peak RSS MB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for scan in scans {
        ocr_row(&scan, runs);
    }
}

fn ocr_row(scan: &Path, runs: usize) {
    let bytes = std::fs::read(scan).expect("scan");
    let pages = lopdf::Document::load_mem(&bytes)
        .map(|d| d.get_pages().len())
        .unwrap_or(0) as f64;
    let images = tempfile::tempdir().expect("a temporary folder");
    let root = images.path().join("p");
    let status = Command::new("pdfimages")
        .arg("-j")
        .arg(scan)
        .arg(&root)
        .status()
        .expect("pdfimages");
    assert!(status.success(), "pdfimages failed on {}", scan.display());
    let mut jpegs: Vec<PathBuf> = std::fs::read_dir(images.path())
        .expect("images")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    jpegs.sort();
    let cpu_all = || cpu_ms(false) + cpu_ms(true);
    let (mut wall, mut cpu, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let before = reset_peak_rss();
        let (start, c0) = (Instant::now(), cpu_all());
        let doc =
            parse(&bytes, "application/pdf", &ParseLimits::default()).expect("the scan parses");
        assert!(doc.ocr.is_some(), "{} was not OCR'd", scan.display());
        wall.push(start.elapsed());
        cpu.push(cpu_all() - c0);
        if let (Some(b), Some(p)) = (before, peak_rss_mb()) {
            rss.push(p - b);
        }
    }
    let (mut cli_wall, mut cli_cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (start, c0) = (Instant::now(), cpu_ms(true));
        for jpeg in &jpegs {
            let out = Command::new("tesseract")
                .arg(jpeg)
                .args([
                    "stdout",
                    "-l",
                    "chi_sim+eng",
                    "--psm",
                    "3",
                    "--dpi",
                    "300",
                    "tsv",
                ])
                .env("OMP_THREAD_LIMIT", "1")
                .output()
                .expect("tesseract");
            assert!(out.status.success());
        }
        cli_wall.push(start.elapsed());
        cli_cpu.push(cpu_ms(true) - c0);
    }
    let tesseract_peak = Command::new("/usr/bin/time")
        .args(["-f", "%M", "tesseract"])
        .arg(&jpegs[0])
        .args(["stdout", "-l", "chi_sim+eng", "--dpi", "300", "tsv"])
        .env("OMP_THREAD_LIMIT", "1")
        .output()
        .ok()
        .and_then(|o| {
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            err.lines().last()?.trim().parse::<f64>().ok()
        })
        .map_or(String::new(), |kb| format!("{:.0}", kb / 1024.0));
    let per_page = |d: Duration| d.as_secs_f64() / pages.max(1.0);
    let (c, cc) = (median_f(cpu), median_f(cli_cpu));
    println!(
        "| {} | {pages} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {tesseract_peak} |",
        scan.file_name().unwrap_or_default().to_string_lossy(),
        per_page(median(wall)),
        c / 1e3 / pages.max(1.0),
        pages / (c / 1e3).max(1e-6),
        if rss.is_empty() { 0.0 } else { median_f(rss) },
        per_page(median(cli_wall)),
        cc / 1e3 / pages.max(1.0),
        pages / (cc / 1e3).max(1e-6),
    );
}

fn run_count() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5)
}

fn corpus(name: &str) -> PathBuf {
    Path::new(CORPUS).join(name)
}

fn has_pdftotext() -> bool {
    Command::new("pdftotext").arg("-v").output().is_ok()
}

fn run_pdftotext(path: &Path, layout: bool) -> Option<String> {
    let mut cmd = Command::new("pdftotext");
    if layout {
        cmd.arg("-layout");
    }
    let out = cmd.arg(path).arg("-").output().ok()?;
    String::from_utf8(out.stdout).ok()
}

/// Pages of the document's PDF rendering: the unit all formats share.
fn pdf_pages(document: &str) -> u32 {
    let bytes = std::fs::read(corpus(&format!("{document}.pdf"))).unwrap_or_default();
    parse(&bytes, "application/pdf", &ParseLimits::default())
        .ok()
        .and_then(|d| d.meta.page_count)
        .unwrap_or(0)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn speed_row(path: &Path, pages: u32, runs: usize, with_pdftotext: bool) {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let bytes = std::fs::read(path).expect("corpus file");
    let media_type = sniff(&bytes, name).expect("sniff");
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut peak = 0.0f64;
    for _ in 0..runs {
        let before = reset_peak_rss();
        let (wall, per_cpu) = timed(false, || {
            parse(&bytes, media_type, &ParseLimits::default()).expect("parse");
        });
        times.push(wall);
        cpu.push(per_cpu);
        peak = peak.max(peak_rss_mb().unwrap_or(0.0) - before.unwrap_or(0.0));
    }
    let t = median(times).as_secs_f64();
    let c = median_f(cpu);
    let mb = bytes.len() as f64 / 1e6;
    let (tool_ms, tool_cpu, tool_pages) = if with_pdftotext {
        let mut wall = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..runs {
            let (w, c) = timed(true, || {
                let _ = run_pdftotext(path, false);
            });
            wall.push(w);
            cpu.push(c);
        }
        let tool_cpu = median_f(cpu);
        (
            format!("{:.1}", median(wall).as_secs_f64() * 1e3),
            format!("{tool_cpu:.1}"),
            per_second(pages as f64, tool_cpu),
        )
    } else {
        (String::new(), String::new(), String::new())
    };
    println!(
        "| {name} | {:.0} | {pages} | {:.2} | {c:.2} | {} | {} | {:.1} | {tool_ms} | {tool_cpu} | {tool_pages} |",
        bytes.len() as f64 / 1024.0,
        t * 1e3,
        per_second(pages as f64, c),
        per_second_1(mb, c),
        peak.max(0.0),
    );
}

/// Runs `f` repeatedly until at least 200 ms of CPU have gone (CPU time
/// is counted in 10 ms ticks), and returns the wall time and CPU ms of one
/// run; `children` counts the CPU of waited-for child processes instead.
fn timed(children: bool, mut f: impl FnMut()) -> (Duration, f64) {
    let (start, cpu_start) = (Instant::now(), cpu_ms(children));
    let mut n = 0u32;
    loop {
        f();
        n += 1;
        let used = cpu_ms(children) - cpu_start;
        if used >= 200.0 || n >= 10_000 {
            return (start.elapsed() / n, used / f64::from(n));
        }
    }
}

/// `amount` per second of `cpu_ms`, to one decimal.
fn per_second_1(amount: f64, cpu_ms: f64) -> String {
    format!("{:.1}", amount / (cpu_ms.max(1e-6) / 1e3))
}

/// `amount` per second of `cpu_ms`.
fn per_second(amount: f64, cpu_ms: f64) -> String {
    format!("{:.0}", amount / (cpu_ms.max(1e-6) / 1e3))
}

fn median_f(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// CPU time (user + system) of this process, or of its waited-for
/// children, in ms, from /proc/self/stat (clock ticks of 10 ms). The
/// machine is shared, so CPU time is steadier than wall time.
fn cpu_ms(children: bool) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<f64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // Fields 14-17 of stat (utime, stime, cutime, cstime) are 11-14 here.
    let (a, b) = if children { (13, 14) } else { (11, 12) };
    (fields.get(a).unwrap_or(&0.0) + fields.get(b).unwrap_or(&0.0)) * 10.0
}

/// Resets the peak resident set and returns the current one, in MB.
fn reset_peak_rss() -> Option<f64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_mb("VmRSS:")
}

fn peak_rss_mb() -> Option<f64> {
    status_mb("VmHWM:")
}

fn status_mb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Gold field values and rejection texts of a document.
fn gold(document: &str) -> Vec<String> {
    let bytes = std::fs::read(corpus(&format!("{document}.gold.json"))).expect("gold");
    let gold: Value = serde_json::from_slice(&bytes).expect("gold JSON");
    let mut out: Vec<String> = match &gold["fields"] {
        Value::Object(f) => f
            .values()
            .filter_map(|v| v["value"].as_str().map(String::from))
            .collect(),
        Value::Array(f) => f
            .iter()
            .filter_map(|v| v["expect"].as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    for r in gold["rejections"].as_array().into_iter().flatten() {
        if let Some(t) = r["text"].as_str().or_else(|| r.as_str()) {
            out.push(t.to_string());
        }
    }
    out
}

/// Text without any whitespace, for the lenient comparison.
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn fidelity_row(label: &str, runs: usize, extract: impl Fn(&[u8], &Path) -> Option<String>) {
    let mut cells = Vec::new();
    let mut total = Duration::ZERO;
    for document in DOCUMENTS {
        let path = corpus(&format!("{document}.pdf"));
        let bytes = std::fs::read(&path).expect("corpus pdf");
        let mut times = Vec::new();
        let mut text = None;
        for _ in 0..runs {
            let start = Instant::now();
            text = extract(&bytes, &path);
            times.push(start.elapsed());
        }
        total += median(times);
        let text = text.unwrap_or_default();
        let gold = gold(document);
        let found = gold.iter().filter(|g| text.contains(g.as_str())).count();
        let squeezed = squeeze(&text);
        let loose = gold
            .iter()
            .filter(|g| squeezed.contains(&squeeze(g)))
            .count();
        cells.push(format!("{found} ({loose})/{}", gold.len()));
    }
    println!(
        "| {label} | {} | {:.0} |",
        cells.join(" | "),
        total.as_secs_f64() * 1e3
    );
}
