//! Package benchmark: unpacking zip packages (decompression, sniffing each
//! entry, the role rules) as ingest does before it stores the files, and
//! refusing hostile ones.
//!
//! Run: `cargo bench --bench package` (add `-- --runs 9` for more runs), or
//! `cargo bench --profile eval --bench package` to skip a release build of
//! every dependency: the time goes to inflating, in the (then optimised)
//! zip and flate2 crates.
//! Prints a Markdown table: per package, the median wall and CPU time of one
//! unpack, decompressed MB/s (CPU), and the peak resident-set growth while
//! unpacking (VmHWM after a reset through /proc/self/clear_refs; Linux only).
//! The store's writes are not included: they are the store's cost.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use tenderflow::package::{Member, PackageLimits, assign_roles, unpack};
use zip::write::SimpleFileOptions;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/dev");

fn main() {
    let runs = run_count();
    let build = if cfg!(debug_assertions) {
        "eval profile: dependencies optimised, tenderflow not"
    } else {
        "release build"
    };
    println!(
        "## Package unpacking (median of {runs} runs, {build}; CPU = user+system time per unpack)\n"
    );
    println!(
        "| package | zip KB | files | out MB | result | wall ms | CPU ms | MB/s (CPU) | peak RSS +MB |"
    );
    println!("|---|---:|---:|---:|---|---:|---:|---:|---:|");
    let corpus = corpus_package();
    row("dev corpus, every variant (deflated)", &corpus, runs);
    let small: Vec<(String, Vec<u8>)> = (0..999)
        .map(|i| (format!("附件/{i:04}.txt"), noise(4096, i)))
        .collect();
    row("999 files of 4 KB", &zip_of(&small), runs);
    let big = vec![("招标文件.txt".to_string(), noise(48 * 1024 * 1024, 7))];
    row("one 48 MiB file", &zip_of(&big), runs);
    let zeros = vec![("招标文件.txt".to_string(), vec![0u8; 64 * 1024 * 1024])];
    row("ratio bomb: 64 MiB of zeros", &zip_of(&zeros), runs);
    row(
        "lying bomb: the same, header says 1000 bytes",
        &understated(&zip_of(&zeros), 1000),
        runs,
    );
}

/// Every document of the dev corpus in one package, deflated.
fn corpus_package() -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(CORPUS)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| !p.to_string_lossy().ends_with(".json"))
                .map(|p| (file_name(&p), std::fs::read(&p).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    zip_of(&files)
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Text-like bytes that deflate about as well as prose does (not a
/// thousandfold, as blanks would).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b" etaoinshrdlucmfwypvbgkjqxz0123456789\n"[(state >> 33) as usize % 38]
        })
        .collect()
}

fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut buf);
    for (name, data) in files {
        w.start_file(name.as_str(), SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
    buf.into_inner()
}

/// Rewrites every uncompressed size field of a one-entry zip to `size`.
fn understated(zip: &[u8], size: u32) -> Vec<u8> {
    let find = |sig: &[u8]| zip.windows(4).position(|w| w == sig).unwrap();
    let (local, central) = (find(b"PK\x03\x04"), find(b"PK\x01\x02"));
    let mut out = zip.to_vec();
    out[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
    out[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
    out
}

/// One package: unpack it as ingest does (entries counted, never kept
/// beyond the callback) and choose the roles.
fn unpack_once(zip: &[u8]) -> (usize, u64, Result<(), String>) {
    let mut files = Vec::new();
    let mut out = 0u64;
    let result = unpack(zip, &PackageLimits::default(), &mut |file| {
        out += file.bytes.len() as u64;
        files.push((
            file.name,
            file.bytes.len() as u64,
            file.media_type.ok(),
            file.is_package,
        ));
        Ok(())
    })
    .map_err(|e| e.kind.to_string());
    let result = result.and_then(|()| {
        let members: Vec<Member> = files
            .iter()
            .map(|(name, size, media_type, is_package)| Member {
                name,
                size: *size,
                media_type: *media_type,
                unreadable: None,
                is_package: *is_package,
            })
            .collect();
        assign_roles(&members)
            .map(|_| ())
            .map_err(|e| e.kind.to_string())
    });
    (files.len(), out, result)
}

fn row(label: &str, zip: &[u8], runs: usize) {
    let (files, out, result) = unpack_once(zip);
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..runs {
        let before = reset_peak_rss();
        let (wall, cpu) = timed(|| {
            let _ = unpack_once(zip);
        });
        if let (Some(before), Some(peak)) = (before, peak_rss_mb()) {
            peaks.push(peak - before);
        }
        walls.push(wall);
        cpus.push(cpu);
    }
    let wall = median(walls);
    let cpu = median_f(cpus);
    let mb = out as f64 / (1024.0 * 1024.0);
    println!(
        "| {label} | {} | {files} | {mb:.1} | {} | {:.2} | {cpu:.2} | {:.0} | {} |",
        zip.len() / 1024,
        match result {
            Ok(()) => "unpacked".to_string(),
            Err(kind) => format!("refused: {kind}"),
        },
        wall.as_secs_f64() * 1e3,
        mb / (cpu.max(1e-6) / 1e3),
        if peaks.is_empty() {
            String::new()
        } else {
            format!("{:.1}", median_f(peaks))
        },
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

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn median_f(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `f` until at least 200 ms of CPU have gone (CPU time is counted in
/// 10 ms ticks); the wall time and CPU ms of one run.
fn timed(mut f: impl FnMut()) -> (Duration, f64) {
    let (start, cpu_start) = (Instant::now(), cpu_ms());
    let mut n = 0u32;
    loop {
        f();
        n += 1;
        let used = cpu_ms() - cpu_start;
        if used >= 200.0 || n >= 10_000 {
            return (start.elapsed() / n, used / f64::from(n));
        }
    }
}

/// CPU time (user + system) of this process in ms, from /proc/self/stat.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<f64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) * 10.0
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
