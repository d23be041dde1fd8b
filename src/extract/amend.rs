//! Amendments (补遗, 澄清, 更正公告, addenda): the values they change, and
//! how those replace the main document's values while keeping the old ones.

use std::sync::LazyLock;

use regex::Regex;

use super::candidates::{Candidate, Chosen, Context, collect, content_candidates};
use super::fields::{SPECS, read_value};
use super::text::{clause_number, sentences};
use crate::document::Block;
use crate::filter::ClassifiedDocument;
use crate::summary::{Evidence, Warning};

static CHANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)变更为|更改为|修改为|更正为|调整为|延期至|延长至|推迟至|顺延至|延至|改为|现为|amended\s+to|changed\s+to|revised\s+to|extended\s+to|postponed\s+to|shall\s+now\s+be|is\s+now|now\s+reads?")
        .expect("change regex")
});
static OLD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)原(公告|招标|采购|文件|内容|定|为|投标|开标|截止|递交|响应|最高|预算|工期|项目|名称|时间)|更正前|变更前|修改前|\boriginal(ly)?\b|\bprevious(ly)?\b")
        .expect("old regex")
});
static ORIGINAL_COL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(原|更正前|变更前|修改前|原内容|原文|original|previous|was)")
        .expect("orig col")
});
static NEW_COL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(现|更正后|变更后|修改后|更正为|变更为|更正内容|修改内容|调整后|revised|amended|new|now)").expect("new col")
});

/// Candidate new values an amendment states: "X变更为Y" sentences, tables
/// with "原/更正后" columns, and plain "label：value" pairs that do not speak
/// of the old value.
pub fn candidates(doc: &ClassifiedDocument, ctx: Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    for chunk in doc.chunks.iter().filter(|c| c.keep) {
        for block in &chunk.blocks {
            match block {
                Block::Paragraph { text, page } | Block::ListItem { text, page, .. } => {
                    for sentence in sentences(text) {
                        let ev = Evidence {
                            section: join(&chunk.section, clause_number(text)),
                            page: *page,
                            quote: sentence.clone(),
                            document: ctx.document,
                            ocr: None,
                        };
                        change_sentence(&sentence, &ev, ctx, &mut out);
                    }
                }
                Block::Table { rows, page, .. } => {
                    change_table(&chunk.section, rows, *page, ctx, &mut out)
                }
                Block::Heading { .. } => {}
            }
        }
    }
    let changed: Vec<&str> = out.iter().map(|c| c.field).collect();
    let plain: Vec<Candidate> = collect(doc, ctx)
        .into_iter()
        .filter(|c| !changed.contains(&c.field))
        .filter(|c| !CHANGE.is_match(&c.evidence.quote) && !OLD.is_match(&c.evidence.quote))
        .collect();
    out.extend(plain);
    out
}

fn join(section: &str, clause: Option<String>) -> String {
    match clause {
        Some(c) if !section.is_empty() => format!("{section} {c}"),
        Some(c) => c,
        None => section.to_string(),
    }
}

/// "原投标截止时间为A，现变更为B" gives B for every field the words before
/// the change name.
fn change_sentence(sentence: &str, ev: &Evidence, ctx: Context, out: &mut Vec<Candidate>) {
    let Some(m) = CHANGE.find(sentence) else {
        return;
    };
    let before = &sentence[..m.start()];
    let chars: Vec<char> = before.chars().collect();
    // The words just before the change name the field: 30 characters of
    // Chinese, or about a dozen English words.
    let window = if chars.iter().any(|c| super::normalize::is_cjk(*c)) {
        30
    } else {
        90
    };
    let before: String = chars[chars.len().saturating_sub(window)..].iter().collect();
    let before = before.as_str();
    let after = &sentence[m.end()..];
    for spec in SPECS.iter().filter(|s| s.matches_anywhere(before)) {
        if let Some((value, normalized)) = read_value(spec.kind, after, ctx.offset) {
            out.push(Candidate {
                field: spec.id,
                lot: super::fields::lot_of(before),
                value,
                normalized,
                evidence: ev.clone(),
                priority: 4,
            });
        }
    }
}

fn change_table(
    section: &str,
    rows: &[Vec<String>],
    page: Option<u32>,
    ctx: Context,
    out: &mut Vec<Candidate>,
) {
    let Some(header) = rows.first() else { return };
    let orig = header.iter().position(|h| ORIGINAL_COL.is_match(h.trim()));
    let Some(new) = header.iter().position(|h| NEW_COL.is_match(h.trim())) else {
        return;
    };
    let Some(label_col) =
        (0..header.len()).find(|i| Some(*i) != orig && *i != new && !header[*i].contains("序号"))
    else {
        return;
    };
    for row in rows.iter().skip(1) {
        let (Some(label), Some(value)) = (row.get(label_col), row.get(new)) else {
            continue;
        };
        let ev = Evidence {
            section: section.to_string(),
            page,
            quote: row.join(" | "),
            document: ctx.document,
            ocr: None,
        };
        let mut found = Vec::new();
        content_candidates(label, value, None, &ev, 4, ctx, &mut found);
        out.extend(found);
    }
}

/// Applies an amendment's chosen values to the summary's: a changed value
/// replaces the old one, which is kept in `superseded` with its evidence.
pub fn apply(base: &mut Chosen, amendment: Chosen, warnings: &mut Vec<Warning>) {
    for (lot, fields) in amendment {
        let target = base.entry(lot).or_default();
        for (id, mut new) in fields {
            if let Some(old) = target.remove(&id) {
                if super::normalize::compact(&old.value) == super::normalize::compact(&new.value)
                    && old.normalized == new.normalized
                {
                    target.insert(id, old);
                    continue;
                }
                let mut history = old.superseded.clone();
                let mut old_plain = old;
                old_plain.superseded.clear();
                history.push(old_plain);
                new.superseded = history;
                warnings.push(Warning {
                    field: Some(id.clone()),
                    message: format!(
                        "{id} amended to \"{}\" by document {}",
                        new.value, new.evidence.document
                    ),
                    evidence: vec![new.evidence.clone()],
                });
            }
            target.insert(id, new);
        }
    }
}
