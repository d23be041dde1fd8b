//! Evaluation against gold answer keys: runs parse, filter and extract on
//! every variant of every document in a folder that has a `.gold.json`
//! beside it, and counts fields right, wrong (decoys apart) and missing,
//! and rejection clauses, scoring items and forms found.
//!
//! A value is right when it equals the gold value after folding white space
//! and full-width characters, or when both read wholly as the same amount,
//! time, duration, percentage or number of copies. English gold gives a
//! substring the value must contain.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use crate::extract::normalize::{
    Found, compact, default_offset, find_copies, find_durations, find_money, find_percent,
    find_times,
};
use crate::extract::summarize_files_blocking;
use crate::summary::{FieldValue, Summary};

/// The result of one document variant.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Document name (the gold file's stem).
    pub document: String,
    /// Variant (`md`, `docx`, `doc`, `wps`, `pdf`, `html`, `gbk.txt`, `txt`).
    pub variant: String,
    /// Why the variant could not be summarised, if it could not.
    pub error: Option<String>,
    /// Gold fields.
    pub fields: usize,
    /// Fields right.
    pub right: usize,
    /// Fields wrong (decoys included).
    pub wrong: usize,
    /// Fields whose value is one of the gold file's decoys.
    pub decoys: usize,
    /// Fields missing.
    pub missing: usize,
    /// Rejection clauses found, of the gold total.
    pub rejections: (usize, usize),
    /// Reported rejection clauses that hold none of the gold's texts: a
    /// watch on precision, not a failure (gold files do not list every
    /// clause).
    pub extra_rejections: usize,
    /// Scoring items found, of the gold total.
    pub scores: (usize, usize),
    /// Forms found, of the gold total.
    pub forms: (usize, usize),
    /// Each miss and wrong value, for `-v`.
    pub misses: Vec<String>,
    /// Each extra rejection, for `-v`.
    pub extras: Vec<String>,
}

impl Row {
    /// Whether everything in the gold file was found and nothing was wrong.
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.right == self.fields
            && self.wrong == 0
            && self.rejections.0 == self.rejections.1
            && self.scores.0 == self.scores.1
            && self.forms.0 == self.forms.1
    }
}

/// The results of a folder.
#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    /// One row per document variant.
    pub rows: Vec<Row>,
    /// Whether `render` lists each miss.
    pub verbose: bool,
}

impl EvalReport {
    /// Whether every variant of every document passed.
    pub fn passed(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(Row::passed)
    }

    /// One line over every scored variant: fields right of all gold fields
    /// (with the share), wrong and missing, and rejections, scoring items
    /// and forms found of all listed, with the extra rejections.
    pub fn overall(&self) -> String {
        let scored: Vec<&Row> = self.rows.iter().filter(|r| r.error.is_none()).collect();
        let sum = |f: &dyn Fn(&Row) -> usize| scored.iter().map(|r| f(r)).sum::<usize>();
        let pct = |a: usize, b: usize| {
            if b == 0 {
                100.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        let (fields, right) = (sum(&|r| r.fields), sum(&|r| r.right));
        let rej = (sum(&|r| r.rejections.0), sum(&|r| r.rejections.1));
        let sco = (sum(&|r| r.scores.0), sum(&|r| r.scores.1));
        let frm = (sum(&|r| r.forms.0), sum(&|r| r.forms.1));
        format!(
            "overall: fields {right}/{fields} right ({:.1} %), {} wrong, {} missing; \
             rejections {}/{} ({:.1} %), {} extra; scoring {}/{} ({:.1} %); forms {}/{} ({:.1} %); \
             {} of {} variants scored",
            pct(right, fields),
            sum(&|r| r.wrong),
            sum(&|r| r.missing),
            rej.0,
            rej.1,
            pct(rej.0, rej.1),
            sum(&|r| r.extra_rejections),
            sco.0,
            sco.1,
            pct(sco.0, sco.1),
            frm.0,
            frm.1,
            pct(frm.0, frm.1),
            scored.len(),
            self.rows.len(),
        )
    }

    /// The results as a table, with each miss listed when verbose.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<18} {:<8} {:>6} {:>6} {:>6} {:>7} {:>8} {:>11} {:>6} {:>8} {:>7}",
            "document",
            "variant",
            "fields",
            "right",
            "wrong",
            "decoys",
            "missing",
            "rejections",
            "extra",
            "scoring",
            "forms"
        );
        for r in &self.rows {
            if let Some(e) = &r.error {
                let _ = writeln!(out, "{:<18} {:<8} error: {e}", r.document, r.variant);
                continue;
            }
            let _ = writeln!(
                out,
                "{:<18} {:<8} {:>6} {:>6} {:>6} {:>7} {:>8} {:>11} {:>6} {:>8} {:>7}",
                r.document,
                r.variant,
                r.fields,
                r.right,
                r.wrong,
                r.decoys,
                r.missing,
                format!("{}/{}", r.rejections.0, r.rejections.1),
                r.extra_rejections,
                format!("{}/{}", r.scores.0, r.scores.1),
                format!("{}/{}", r.forms.0, r.forms.1),
            );
            if self.verbose {
                for m in r.misses.iter().chain(&r.extras) {
                    let _ = writeln!(out, "    {m}");
                }
            }
        }
        let _ = writeln!(out, "{}", self.overall());
        let passed = self.rows.iter().filter(|r| r.passed()).count();
        let _ = writeln!(out, "{passed} of {} variants passed", self.rows.len());
        out
    }
}

/// Variant order in the table.
const VARIANTS: &[&str] = &[
    "md", "docx", "doc", "wps", "pdf", "scan.pdf", "html", "gbk.txt", "txt",
];

/// Evaluates every document of `dir` that has a `.gold.json` beside it.
pub fn run(dir: &Path, verbose: bool) -> anyhow::Result<EvalReport> {
    let mut golds: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".gold.json"))
        .collect();
    golds.sort();
    anyhow::ensure!(
        !golds.is_empty(),
        "no .gold.json files in {}",
        dir.display()
    );
    let mut report = EvalReport {
        rows: Vec::new(),
        verbose,
    };
    for gold_path in golds {
        let name = gold_path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let stem = name.trim_end_matches(".gold.json").to_string();
        let gold: Value = serde_json::from_slice(&std::fs::read(&gold_path)?)
            .with_context(|| format!("reading {}", gold_path.display()))?;
        for variant in VARIANTS {
            let path = dir.join(format!("{stem}.{variant}"));
            if !path.exists() {
                continue;
            }
            let mut row = Row {
                document: stem.clone(),
                variant: variant.to_string(),
                ..Row::default()
            };
            match summarize_files_blocking(std::slice::from_ref(&path)) {
                Ok(summary) => score(&gold, &summary, &mut row),
                Err(e) => row.error = Some(format!("{e:#}")),
            }
            report.rows.push(row);
        }
    }
    Ok(report)
}

/// Scores one summary against its gold.
pub fn score(gold: &Value, summary: &Summary, row: &mut Row) {
    match &gold["fields"] {
        Value::Object(fields) => score_cn_fields(gold, fields, summary, row),
        Value::Array(fields) => score_en_fields(fields, summary, row),
        _ => {}
    }
    score_lists(gold, summary, row);
}

fn score_cn_fields(
    gold: &Value,
    fields: &serde_json::Map<String, Value>,
    summary: &Summary,
    row: &mut Row,
) {
    for (id, g) in fields {
        let want = g["value"].as_str().unwrap_or_default();
        row.fields += 1;
        let Some(got) = summary.fields.get(id) else {
            row.missing += 1;
            row.misses.push(format!("missing {id}: want {want}"));
            continue;
        };
        if same_value(want, &got.value) {
            row.right += 1;
            continue;
        }
        row.wrong += 1;
        let decoys = gold["wrong"][id].as_array().cloned().unwrap_or_default();
        let decoy = decoys
            .iter()
            .filter_map(Value::as_str)
            .any(|d| same_value(d, &got.value));
        if decoy {
            row.decoys += 1;
        }
        row.misses.push(format!(
            "{} {id}: got {} [{}], want {want}",
            if decoy { "DECOY" } else { "wrong" },
            got.value,
            got.evidence.section
        ));
    }
}

/// The field id an English gold label names, and its lot.
fn en_label(label: &str) -> (Option<&'static str>, Option<String>) {
    const MAP: &[(&str, &str)] = &[
        ("项目名称", "project"),
        ("招标人", "owner"),
        ("招标编号", "tender_no"),
        ("投标截止", "deadline_bid"),
        ("踏勘", "site_visit"),
        ("注册资格/工作类别", "registration"),
        ("工期", "duration"),
        ("投标有效期", "validity"),
        ("投标保证金", "bond"),
        ("履约担保", "performance_bond"),
        ("缺陷责任期", "warranty"),
        ("联合体投标", "consortium"),
        ("备选投标方案", "alternatives"),
        ("投标文件份数", "copies"),
        ("评标办法", "eval_method"),
        ("项目经理", "pm"),
        ("开标地点", "opening_place"),
        ("类似业绩", "track_record"),
        ("质量标准", "quality"),
        ("分包", "subcontracting"),
        ("资质", "qualification"),
        ("最高限价", "price_cap"),
    ];
    let (base, lot) = match label.split_once('（') {
        Some((b, rest)) => (b, Some(rest.trim_end_matches('）').to_string())),
        None => (label, None),
    };
    (MAP.iter().find(|(l, _)| *l == base).map(|(_, id)| *id), lot)
}

fn score_en_fields(fields: &[Value], summary: &Summary, row: &mut Row) {
    for g in fields {
        let label = g["label"].as_str().unwrap_or_default();
        let expect = g["expect"].as_str().unwrap_or_default();
        row.fields += 1;
        let (id, lot) = en_label(label);
        let got: Option<&FieldValue> = id.and_then(|id| match &lot {
            None => summary.fields.get(id),
            Some(l) => summary
                .lots
                .iter()
                .find(|(name, _)| compact(name) == compact(l))
                .and_then(|(_, f)| f.get(id)),
        });
        match got {
            None => {
                row.missing += 1;
                row.misses.push(format!("missing {label}: want …{expect}…"));
            }
            Some(v) if compact(&v.value).contains(&compact(expect)) => row.right += 1,
            Some(v) => {
                row.wrong += 1;
                row.misses
                    .push(format!("wrong {label}: got {}, want …{expect}…", v.value));
            }
        }
    }
}

fn score_lists(gold: &Value, summary: &Summary, row: &mut Row) {
    let rejections: Vec<String> = summary
        .rejections
        .iter()
        .map(|r| compact(&r.text))
        .collect();
    let gold_rej = gold["rejections"].as_array().cloned().unwrap_or_default();
    row.rejections.1 = gold_rej.len();
    let gold_texts: Vec<String> = gold_rej
        .iter()
        .map(|g| rejection_key(g["text"].as_str().or(g.as_str()).unwrap_or_default()))
        .collect();
    for (g, key) in gold_rej.iter().zip(&gold_texts) {
        let text = g["text"].as_str().or(g.as_str()).unwrap_or_default();
        if rejections.iter().any(|r| r.contains(key.as_str())) {
            row.rejections.0 += 1;
        } else {
            row.misses.push(format!("rejection not found: {text}"));
        }
    }
    for (r, reported) in summary.rejections.iter().zip(&rejections) {
        if !gold_texts.iter().any(|k| reported.contains(k.as_str())) {
            row.extra_rejections += 1;
            row.extras.push(format!("extra rejection: {}", r.text));
        }
    }
    let gold_scores = gold["scores"].as_array().cloned().unwrap_or_default();
    row.scores.1 = gold_scores.len();
    for g in &gold_scores {
        let (name, points) = match g {
            Value::Array(pair) => (
                pair[0].as_str().unwrap_or(""),
                pair[1].as_str().unwrap_or(""),
            ),
            _ => (
                g["name"].as_str().unwrap_or(""),
                g["score"].as_str().unwrap_or(""),
            ),
        };
        // A range ("0-25", "-30-0分") must be the item's range; a number
        // its number, and the item no range.
        let want = crate::extract::scoring::parse_points(points);
        let hit = want.is_some_and(|want| {
            summary.scoring.iter().any(|s| {
                compact(&s.name).contains(&compact(name))
                    && match want.range {
                        Some(r) => s.points_range == Some(r),
                        None => s.points_range.is_none() && s.points_value == Some(want.value),
                    }
            })
        });
        if hit {
            row.scores.0 += 1;
        } else {
            row.misses
                .push(format!("scoring item not found: {name} {points}"));
        }
    }
    let gold_forms = gold["forms"].as_array().cloned().unwrap_or_default();
    row.forms.1 = gold_forms.len();
    for g in &gold_forms {
        let name = g.as_str().unwrap_or_default();
        if summary
            .forms
            .iter()
            .any(|f| compact(&f.name).contains(&compact(name)))
        {
            row.forms.0 += 1;
        } else {
            row.misses.push(format!("form not found: {name}"));
        }
    }
}

/// The folded form of a gold rejection text that a reported clause must
/// contain. The separator a gold text may end with ("…不足的；", "…的。")
/// belongs to the list, not to the clause.
fn rejection_key(text: &str) -> String {
    compact(text)
        .trim_end_matches(['；', ';', '。', '.', '，', ',', '：', ':'])
        .to_string()
}

/// A search for typed values in a text.
type Finder<'a> = dyn Fn(&str) -> Vec<Found> + 'a;

/// Whether two written values are the same: equal text after folding, or
/// both wholly the same typed value.
pub fn same_value(a: &str, b: &str) -> bool {
    if compact(a) == compact(b) {
        return true;
    }
    let z = default_offset();
    let finders: [&Finder<'_>; 5] = [
        &|s| find_money(s),
        &|s| find_times(s, z),
        &|s| find_durations(s),
        &|s| find_percent(s),
        &|s| find_copies(s).into_iter().collect(),
    ];
    finders
        .iter()
        .any(|find| match (whole(find(a), a), whole(find(b), b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        })
}

/// The normal form of `s` when one typed value covers all of it.
fn whole(found: Vec<Found>, s: &str) -> Option<Value> {
    let f = found.into_iter().next()?;
    (compact(&f.text) == compact(s)).then_some(f.normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_by_text_or_type() {
        assert!(same_value("2026年10月18日17时", "2026年10月18日17时00分"));
        assert!(same_value("540日历天", "540 日历天"));
        assert!(same_value("18650万元", "186,500,000元"));
        assert!(!same_value("540日历天", "28天"));
        assert!(!same_value("10%", "10天"));
        assert!(same_value("正本1份，副本4份", "正本1份、副本4份"));
    }

    #[test]
    fn rejections_found_and_extra() {
        let gold = serde_json::json!({
            "rejections": [
                {"text": "逾期送达的投标文件将被拒收"},
                {"text": "投标有效期不足的；"},
                {"text": "未提交投标保证金的"}
            ]
        });
        let reject = |t: &str| crate::summary::Rejection {
            text: t.to_string(),
            kind: "explicit".into(),
            evidence: crate::summary::Evidence {
                section: String::new(),
                page: None,
                quote: t.to_string(),
                document: 0,
                ocr: None,
            },
        };
        let summary = Summary {
            rejections: vec![
                reject("逾期送达的投标文件，将被拒收"),
                reject("逾期送达的投标文件将被拒收"),
                reject("投标有效期不足的"),
                reject("是否接受联合体：不接受"),
            ],
            ..Summary::default()
        };
        let mut row = Row::default();
        score_lists(&gold, &summary, &mut row);
        assert_eq!(row.rejections, (2, 3));
        // The comma variant and the data-sheet answer hold no gold text.
        assert_eq!(row.extra_rejections, 2);
        assert_eq!(row.extras.len(), 2);
        let mut passed = Row {
            rejections: (3, 3),
            extra_rejections: 5,
            ..Row::default()
        };
        passed.fields = 0;
        assert!(passed.passed(), "extras do not fail a row");
    }

    #[test]
    fn the_overall_line_adds_up_every_scored_variant() {
        let row = |right, wrong, rejections| Row {
            fields: 10,
            right,
            wrong,
            missing: 10 - right - wrong,
            rejections,
            extra_rejections: 1,
            ..Row::default()
        };
        let report = EvalReport {
            rows: vec![
                row(9, 0, (4, 5)),
                row(8, 1, (5, 5)),
                Row {
                    error: Some("corrupt".into()),
                    ..Row::default()
                },
            ],
            verbose: false,
        };
        let line = report.overall();
        assert!(
            line.contains("fields 17/20 right (85.0 %), 1 wrong, 2 missing"),
            "{line}"
        );
        assert!(line.contains("rejections 9/10 (90.0 %), 2 extra"), "{line}");
        assert!(line.contains("2 of 3 variants scored"), "{line}");
    }

    #[test]
    fn ranges_score_as_ranges() {
        let item = |name: &str, points: &str| {
            let p = crate::extract::scoring::parse_points(points).unwrap();
            crate::summary::ScoringItem {
                name: name.into(),
                points: points.into(),
                points_value: Some(p.value),
                points_range: p.range,
                group: None,
                evidence: crate::summary::Evidence {
                    section: String::new(),
                    page: None,
                    quote: String::new(),
                    document: 0,
                    ocr: None,
                },
            }
        };
        let summary = Summary {
            scoring: vec![item("项目案例", "0-25"), item("报价分", "40分")],
            ..Summary::default()
        };
        let gold = serde_json::json!({"scores": [
            {"name": "项目案例", "score": "0-25"},
            {"name": "报价分", "score": "40"},
            {"name": "项目案例", "score": "25"},
            {"name": "报价分", "score": "0-40"}
        ]});
        let mut row = Row::default();
        score_lists(&gold, &summary, &mut row);
        assert_eq!(row.scores, (2, 4));
    }
}
