//! OCR in the summary: every evidence whose quote was read by OCR says so,
//! with its confidence, and a value read with low confidence is left out
//! with a warning rather than reported as certain.
//!
//! This runs after extraction, over the finished summary, with each
//! document's OCR side table from its parsed artifact: the rules that find
//! values need not know where their text came from.

use std::collections::BTreeMap;

use crate::document::OcrReport;
use crate::summary::{Evidence, FieldValue, OcrQuote, Summary, Warning};

/// Below this confidence (0 to 100, Tesseract's word confidence) a value
/// read by OCR is left out. Tesseract gives clean 300 dpi print 85 to 96;
/// the words it misreads on the dev scans sit mostly under 60.
pub const MIN_CONFIDENCE: f32 = 60.0;

/// A code (a tender number) read by OCR needs more: one look-alike
/// character ("IJZB" for "LJZB") makes it wrong, and no normal form checks
/// it. The misread one on the dev scans came at 69.
pub const MIN_CODE_CONFIDENCE: f32 = 80.0;

/// Marks the OCR'd evidence of `summary` and leaves out the values read
/// with low confidence. `reports[i]` is document `i`'s OCR side table.
pub fn mark(summary: &mut Summary, reports: &[Option<&OcrReport>]) {
    if reports.iter().all(Option::is_none) {
        return;
    }
    let mut warnings = Vec::new();
    keep_confident(&mut summary.fields, reports, &mut warnings);
    for fields in summary.lots.values_mut() {
        keep_confident(fields, reports, &mut warnings);
    }
    summary.lots.retain(|_, fields| !fields.is_empty());
    let sure = |ev: &mut Evidence, what: &str, warnings: &mut Vec<Warning>| {
        note(ev, None, reports);
        match ev.ocr {
            Some(q) if q.confidence < MIN_CONFIDENCE => {
                warnings.push(doubt(None, what, ev));
                false
            }
            _ => true,
        }
    };
    // Points and contacts are values: doubtful ones go. Clause texts stay,
    // their evidence carrying the confidence for the reader to weigh.
    summary
        .scoring
        .retain_mut(|s| sure(&mut s.evidence, &s.name, &mut warnings));
    summary
        .score_totals
        .retain_mut(|s| sure(&mut s.evidence, &s.name, &mut warnings));
    summary
        .contacts
        .retain_mut(|c| sure(&mut c.evidence, &c.role, &mut warnings));
    for r in &mut summary.rejections {
        note(&mut r.evidence, None, reports);
    }
    for r in &mut summary.requirements {
        note(&mut r.evidence, None, reports);
    }
    for f in &mut summary.forms {
        note(&mut f.evidence, None, reports);
    }
    for w in &mut summary.warnings {
        for ev in &mut w.evidence {
            note(ev, None, reports);
        }
    }
    summary.warnings.extend(warnings);
}

/// Marks a map of fields; a field whose value was read with low
/// confidence is moved into a warning.
fn keep_confident(
    fields: &mut BTreeMap<String, FieldValue>,
    reports: &[Option<&OcrReport>],
    warnings: &mut Vec<Warning>,
) {
    let mut doubtful = Vec::new();
    for (id, field) in fields.iter_mut() {
        note(&mut field.evidence, Some(&field.value), reports);
        for old in &mut field.superseded {
            note(&mut old.evidence, Some(&old.value), reports);
        }
        let least = if is_code(&field.value) {
            MIN_CODE_CONFIDENCE
        } else {
            MIN_CONFIDENCE
        };
        if field.evidence.ocr.is_some_and(|q| q.confidence < least) {
            doubtful.push(id.clone());
        }
    }
    for id in doubtful {
        if let Some(field) = fields.remove(&id) {
            warnings.push(doubt(Some(&id), &field.value, &field.evidence));
        }
    }
    // A code read by OCR with a look-alike character ("IJZB" for "LJZB")
    // has no normal form to catch it; where the scan reads it otherwise
    // elsewhere, neither reading is sure.
    let mut misread = Vec::new();
    for (id, field) in fields.iter() {
        if field.evidence.ocr.is_none() {
            continue;
        }
        let Some(Some(report)) = reports.get(field.evidence.document) else {
            continue;
        };
        if let Some(other) = read_otherwise(report, &field.value) {
            misread.push((id.clone(), other));
        }
    }
    for (id, other) in misread {
        if let Some(field) = fields.remove(&id) {
            warnings.push(Warning {
                field: Some(id),
                message: format!(
                    "\"{}\" was read by OCR, and the scan reads it elsewhere as \"{other}\": \
                     left out; check it on the scan",
                    field.value
                ),
                evidence: vec![field.evidence.clone()],
            });
        }
    }
}

/// A code: letters and digits with separators, both kinds present.
fn is_code(value: &str) -> bool {
    value.chars().count() >= 6
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.' | '(' | ')'))
        && value.chars().any(|c| c.is_ascii_digit())
        && value.chars().any(|c| c.is_ascii_alphabetic())
}

/// The class of characters OCR mistakes for one another.
fn look_alike(c: char) -> char {
    match c.to_ascii_uppercase() {
        'I' | 'L' | '1' | '|' | 'J' => '1',
        'O' | '0' | 'D' | 'Q' => '0',
        'S' | '5' => '5',
        'B' | '8' => '8',
        'Z' | '2' => '2',
        'G' | '6' => '6',
        other => other,
    }
}

/// Another reading of the code `value` on the OCR'd pages: the same
/// characters up to look-alikes, but not the same as written.
fn read_otherwise(report: &OcrReport, value: &str) -> Option<String> {
    if !is_code(value) {
        return None;
    }
    let want: Vec<char> = value.chars().map(look_alike).collect();
    for page in &report.pages {
        let text: Vec<char> = page
            .words
            .iter()
            .flat_map(|w| w.text.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        for window in text.windows(want.len()) {
            if window
                .iter()
                .map(|c| look_alike(*c))
                .eq(want.iter().copied())
            {
                let seen: String = window.iter().collect();
                if seen != value {
                    return Some(seen);
                }
            }
        }
    }
    None
}

/// Sets `ev.ocr` when its document's page was OCR'd: the confidence of
/// `value` where it is found as read, else of the whole quote.
fn note(ev: &mut Evidence, value: Option<&str>, reports: &[Option<&OcrReport>]) {
    let Some(Some(report)) = reports.get(ev.document) else {
        return;
    };
    let confidence = value
        .and_then(|v| report.confidence_of_found(ev.page, v))
        .or_else(|| report.confidence_of(ev.page, &ev.quote));
    ev.ocr = confidence.map(|confidence| OcrQuote { confidence });
}

fn doubt(field: Option<&str>, value: &str, ev: &Evidence) -> Warning {
    let confidence = ev.ocr.map_or(0.0, |q| q.confidence);
    let page = ev.page.map_or(String::new(), |p| format!(" on page {p}"));
    Warning {
        field: field.map(str::to_string),
        message: format!(
            "\"{value}\" was read by OCR{page} with low confidence ({confidence:.0} of 100): \
             left out; check it on the scan"
        ),
        evidence: vec![ev.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{OcrPage, OcrWord};

    fn report() -> OcrReport {
        let word = |text: &str, confidence: f32| OcrWord {
            text: text.to_string(),
            confidence,
        };
        OcrReport {
            engine: "tesseract".into(),
            pages: vec![OcrPage {
                page: 2,
                confidence: 80.0,
                dpi: 300,
                source: "image".into(),
                turned: 0.0,
                words: vec![
                    word("投标有效期", 95.0),
                    word(":", 70.0),
                    word("90", 93.0),
                    word("日历天", 92.0),
                    word("保证金", 91.0),
                    word(":", 88.0),
                    word("8O000", 31.0),
                    word("元", 90.0),
                ],
            }],
            blocks: Vec::new(),
        }
    }

    fn field(value: &str, page: Option<u32>, quote: &str) -> FieldValue {
        FieldValue {
            value: value.into(),
            normalized: serde_json::Value::Null,
            evidence: Evidence {
                section: "前附表".into(),
                page,
                quote: quote.into(),
                document: 0,
                ocr: None,
            },
            superseded: Vec::new(),
            source: "front_table".into(),
        }
    }

    #[test]
    fn a_code_needs_more_confidence_than_other_values() {
        let mut report = report();
        report.pages[0]
            .words
            .extend(["招标编号", ":", "IJZB-2026-SG-0418"].map(|t| OcrWord {
                text: t.to_string(),
                confidence: 69.0,
            }));
        let mut summary = Summary::default();
        summary.fields.insert(
            "tender_no".into(),
            field("IJZB-2026-SG-0418", Some(2), "招标编号: IJZB-2026-SG-0418"),
        );
        mark(&mut summary, &[Some(&report)]);
        assert!(!summary.fields.contains_key("tender_no"));
    }

    #[test]
    fn a_code_the_scan_reads_two_ways_is_left_out() {
        let mut report = report();
        report.pages[0].words.extend(
            [
                "招标编号",
                ":",
                "IJZB-2026-SG-0418",
                "项目",
                "LJZB-2026-SG-0418",
            ]
            .map(|t| OcrWord {
                text: t.to_string(),
                confidence: 90.0,
            }),
        );
        let mut summary = Summary::default();
        summary.fields.insert(
            "tender_no".into(),
            field("IJZB-2026-SG-0418", Some(2), "招标编号: IJZB-2026-SG-0418"),
        );
        summary.fields.insert(
            "validity".into(),
            field("90日历天", Some(2), "投标有效期: 90 日历天"),
        );
        mark(&mut summary, &[Some(&report)]);
        assert!(!summary.fields.contains_key("tender_no"));
        assert!(summary.fields.contains_key("validity"), "no code, no check");
        let warning = summary
            .warnings
            .iter()
            .find(|w| w.field.as_deref() == Some("tender_no"))
            .unwrap();
        assert!(
            warning.message.contains("LJZB-2026-SG-0418"),
            "{}",
            warning.message
        );

        // Read the same way everywhere: kept.
        let mut once = report.clone();
        once.pages[0]
            .words
            .retain(|w| w.text != "LJZB-2026-SG-0418");
        let mut summary = Summary::default();
        summary.fields.insert(
            "tender_no".into(),
            field("IJZB-2026-SG-0418", Some(2), "招标编号: IJZB-2026-SG-0418"),
        );
        mark(&mut summary, &[Some(&once)]);
        assert!(summary.fields.contains_key("tender_no"));
    }

    #[test]
    fn an_ocr_value_carries_its_confidence_and_a_doubtful_one_is_left_out() {
        let mut summary = Summary::default();
        summary.fields.insert(
            "validity".into(),
            field("90日历天", Some(2), "投标有效期: 90 日历天"),
        );
        summary
            .fields
            .insert("bond".into(), field("8O000元", Some(2), "保证金: 8O000 元"));
        let report = report();
        mark(&mut summary, &[Some(&report)]);
        let validity = &summary.fields["validity"];
        // The value's own words count, not the colon of the label.
        assert_eq!(validity.evidence.ocr, Some(OcrQuote { confidence: 92.0 }));
        assert!(!summary.fields.contains_key("bond"));
        let warning = summary.warnings.last().expect("a warning");
        assert_eq!(warning.field.as_deref(), Some("bond"));
        assert!(
            warning.message.contains("low confidence (31 of 100)"),
            "{}",
            warning.message
        );
        assert!(warning.evidence[0].ocr.is_some());
    }

    #[test]
    fn evidence_of_pages_that_were_not_scanned_is_left_alone() {
        let mut summary = Summary::default();
        summary.fields.insert(
            "validity".into(),
            field("90日历天", Some(5), "投标有效期：90日历天"),
        );
        let report = report();
        mark(&mut summary, &[Some(&report)]);
        assert_eq!(summary.fields["validity"].evidence.ocr, None);
        let mut summary = Summary::default();
        summary.fields.insert(
            "validity".into(),
            field("90日历天", Some(2), "投标有效期: 90 日历天"),
        );
        mark(&mut summary, &[None]);
        assert_eq!(summary.fields["validity"].evidence.ocr, None);
    }

    #[test]
    fn a_quote_not_found_as_read_gets_its_page_confidence() {
        let report = report();
        assert_eq!(report.confidence_of(Some(2), "完全不同的文字"), Some(80.0));
        assert_eq!(report.confidence_of(Some(3), "保证金"), None);
        assert_eq!(report.confidence_of(None, "保证金 | 8O000元"), Some(31.0));
    }
}
