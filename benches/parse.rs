//! Parse benchmark over the corpus variants, and a PDF text-fidelity
//! comparison against other extractors.
//!
//! Run: `cargo bench --bench parse` (add `-- --runs 9` for more runs).
//! Prints two Markdown tables:
//! 1. per file: median parse time, pages/s (pages of the document's PDF
//!    rendering, so formats compare), MB/s, peak RSS growth while parsing,
//!    and `pdftotext` on the same PDFs when poppler-utils is installed;
//! 2. per PDF extractor: the share of gold strings (field values and
//!    rejection texts, as written) found in its text, and its median time.
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

fn main() {
    let runs = run_count();
    let pdftotext = has_pdftotext();
    println!("## Parse speed (median of {runs} runs, release build)\n");
    println!(
        "| file | size KB | pages | median ms | pages/s | MB/s | peak RSS +MB | pdftotext ms | pdftotext pages/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for document in DOCUMENTS {
        let pages = pdf_pages(document);
        for variant in VARIANTS {
            let path = corpus(&format!("{document}.{variant}"));
            if path.exists() {
                speed_row(&path, pages, runs, pdftotext && variant == "pdf");
            }
        }
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
    let mut peak = 0.0f64;
    for _ in 0..runs {
        let before = reset_peak_rss();
        let start = Instant::now();
        let doc = parse(&bytes, media_type, &ParseLimits::default()).expect("parse");
        times.push(start.elapsed());
        peak = peak.max(peak_rss_mb().unwrap_or(0.0) - before.unwrap_or(0.0));
        drop(doc);
    }
    let t = median(times).as_secs_f64();
    let mb = bytes.len() as f64 / 1e6;
    let (tool_ms, tool_pages) = if with_pdftotext {
        let tool = median(
            (0..runs)
                .map(|_| {
                    let start = Instant::now();
                    let _ = run_pdftotext(path, false);
                    start.elapsed()
                })
                .collect(),
        )
        .as_secs_f64();
        (
            format!("{:.1}", tool * 1e3),
            format!("{:.0}", pages as f64 / tool),
        )
    } else {
        (String::new(), String::new())
    };
    println!(
        "| {name} | {:.0} | {pages} | {:.1} | {:.0} | {:.1} | {:.1} | {tool_ms} | {tool_pages} |",
        bytes.len() as f64 / 1024.0,
        t * 1e3,
        pages as f64 / t,
        mb / t,
        peak.max(0.0),
    );
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
