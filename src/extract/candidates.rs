//! Candidate field values from a classified document, and the choice among
//! them. Three sources, most trusted first: rows of the bid data sheet
//! (前附表, Appendix to the Instructions), "label：value" pairs in the
//! notice and instructions, and sentence patterns ("X invites tenders for
//! Y", "本次评标采用综合评估法"). A field whose most trusted sources disagree
//! is left out with a warning: a wrong value is worse than a missing one.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::FixedOffset;
use regex::Regex;
use serde_json::Value;

use super::fields::{self, Kind, Spec, fields_for_label, lot_of, read_value};
use super::normalize::{compact, find_times, tidy};
use super::text::{clause_number, label_value, sentences, split_outside_brackets, strip_numbering};
use crate::document::Block;
use crate::filter::structure::is_toc_line;
use crate::filter::{Chunk, ClassifiedDocument};
use crate::summary::{Evidence, FieldValue, Warning};

/// A possible value of a field.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Field id.
    pub field: &'static str,
    /// Lot, for per-lot values.
    pub lot: Option<String>,
    /// Value as written.
    pub value: String,
    /// Normal form.
    pub normalized: Value,
    /// Where it is.
    pub evidence: Evidence,
    /// Trust in the source: 3 data sheet, 2 labelled pair, 1 sentence,
    /// 0 a cover's title.
    pub priority: u8,
}

/// What the candidate search needs to know about the document.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Offset of the document's times.
    pub offset: FixedOffset,
    /// Index of the document in the task (0 main, 1.. amendments).
    pub document: usize,
}

/// Parts whose text may state field values.
fn is_field_source(chunk: &Chunk) -> bool {
    chunk.keep
        && matches!(
            chunk.part.as_str(),
            "notice" | "instructions" | "data_sheet" | "other" | "amendment" | ""
        )
}

/// Every candidate value in `doc`.
pub fn collect(doc: &ClassifiedDocument, ctx: Context) -> Vec<Candidate> {
    collect_with_warnings(doc, ctx).0
}

/// Every candidate value in `doc`, and the warnings for values its rules
/// saw but left out.
pub fn collect_with_warnings(
    doc: &ClassifiedDocument,
    ctx: Context,
) -> (Vec<Candidate>, Vec<Warning>) {
    let mut out = Vec::new();
    for chunk in &doc.chunks {
        let lot = chunk_lot(chunk);
        if is_field_source(chunk) {
            let mut role: Option<String> = None;
            // "## 一、项目名称：" then the name as the next paragraph.
            let mut heading_label: Option<String> = None;
            for block in &chunk.blocks {
                let pending = heading_label.take();
                match block {
                    Block::Table { rows, page, .. } => {
                        table_candidates(chunk, rows, *page, lot.as_deref(), ctx, &mut out)
                    }
                    Block::Paragraph { text, page } | Block::ListItem { text, page, .. } => {
                        // A heading that opens a list ("资质要求如下：" then
                        // "1.…") names no single value.
                        let text = match pending {
                            Some(label)
                                if label_value(text).is_none()
                                    && strip_numbering(text) == text.trim()
                                    && !label.contains("如下")
                                    && !label.contains("以下") =>
                            {
                                format!("{label}：{}", text.trim())
                            }
                            _ => with_role(text, &mut role),
                        };
                        paragraph_candidates(chunk, &text, *page, lot.as_deref(), ctx, &mut out)
                    }
                    Block::Heading { text, page, .. } => {
                        role = None;
                        let stripped = strip_numbering(text);
                        if let Some(label) = stripped
                            .strip_suffix(['：', ':'])
                            .filter(|l| !fields_for_label(l).is_empty())
                        {
                            heading_label = Some(label.trim().to_string());
                        } else if label_value(&stripped).is_some() {
                            // "## 八、开标地点：X": a heading that is a pair.
                            paragraph_candidates(chunk, text, *page, lot.as_deref(), ctx, &mut out)
                        }
                    }
                }
            }
        }
        if chunk.keep && chunk.part != "forms" && chunk.part != "technical" {
            sentence_candidates(chunk, lot.as_deref(), ctx, &mut out);
        }
        if chunk.keep && chunk.part == "technical" {
            technical_candidates(chunk, lot.as_deref(), ctx, &mut out);
        }
    }
    cover_candidates(doc, ctx, &mut out);
    qualification_item(doc, ctx, &mut out);
    follow_pointers_to_the_notice(doc, &mut out);
    let warnings = super::english::add_candidates(doc, ctx, &mut out);
    (out, warnings)
}

/// A front-table row whose content sends the reader to the notice ("见招标
/// 公告", "详见第一章"), where the notice is that chapter.
static NOTICE_POINTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(详见|见|参见|按)\s*(本?(招标|采购|磋商|谈判)文件)?\s*(第[一1]章|第[一1]部分)?\s*[《“\x22]?(招标公告|采购公告|磋商公告|谈判公告|询价公告|竞争性磋商公告|竞争性谈判公告|投标邀请书?|邀请函)?")
        .expect("notice pointer")
});

/// A front-table row that says "详见招标公告" hands its field to the
/// notice: the value found there counts as the front table's, so a
/// labelled line elsewhere that disagrees does not make it unsure.
fn follow_pointers_to_the_notice(doc: &ClassifiedDocument, out: &mut [Candidate]) {
    let first_chapter_is_notice = doc
        .chunks
        .iter()
        .find(|c| c.part == "notice")
        .is_some_and(|c| {
            let s = compact(&c.section);
            s.starts_with("第一章") || s.starts_with("第1章") || s.starts_with("第一部分")
        });
    let mut pointed: Vec<(&'static str, Option<String>)> = Vec::new();
    for chunk in doc
        .chunks
        .iter()
        .filter(|c| c.keep && c.part == "data_sheet")
    {
        for block in &chunk.blocks {
            let Block::Table { rows, .. } = block else {
                continue;
            };
            for row in rows {
                let cells: Vec<&str> = row
                    .iter()
                    .map(|c| c.trim())
                    .filter(|c| !c.is_empty())
                    .collect();
                let [.., label, content] = cells.as_slice() else {
                    continue;
                };
                let content = compact(content);
                let Some(m) = NOTICE_POINTER.captures(&content) else {
                    continue;
                };
                let to_notice =
                    m.get(5).is_some() || (m.get(4).is_some() && first_chapter_is_notice);
                if !to_notice {
                    continue;
                }
                for spec in fields_for_label(label) {
                    pointed.push((spec.id, lot_of(label).or_else(|| chunk_lot(chunk))));
                }
            }
        }
    }
    for c in out.iter_mut() {
        if c.priority == 2
            && c.evidence.document == 0
            && NOTICE_SECTION.is_match(&c.evidence.section)
            && pointed
                .iter()
                .any(|(f, lot)| *f == c.field && *lot == c.lot)
        {
            c.priority = 3;
        }
    }
}

/// Where the document lists its qualification conditions ("供应商参加本次采
/// 购活动应具备以下资格条件：" then items), and the items.
struct QualificationList<'a> {
    chunk: &'a Chunk,
    lead: String,
    page: Option<u32>,
    items: Vec<(String, Option<u32>)>,
}

/// A heading or line that opens the qualification conditions: the field's
/// label with "以下/如下/下列" or a colon, or a heading that is the label
/// alone ("一、资格要求").
fn is_qualification_lead(text: &str, heading: bool) -> bool {
    static LABEL_ONLY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(合格的?)?(供应商|投标人|申请人|应答人)?的?(基本)?(资格|资质)(要求|条件)$")
            .expect("qualification heading")
    });
    let Some(spec) = fields::spec_of("qualification") else {
        return false;
    };
    let t = strip_numbering(text);
    let t = t.trim();
    let bare = t.trim_end_matches(['：', ':']);
    let opens =
        t.contains("如下") || t.contains("以下") || t.contains("下列") || t.ends_with(['：', ':']);
    // A label alone opens the list where it stands as a heading would: a
    // heading, or a numbered line ("一、资格要求", "2.2. 供应商资格要求").
    let heading = heading || t != text.trim();
    t.chars().count() <= 60
        && ((opens && spec.matches_anywhere(t)) || (heading && LABEL_ONLY.is_match(bare)))
}

fn qualification_list(doc: &ClassifiedDocument) -> Option<QualificationList<'_>> {
    // Across chunks: a sub-heading ("（一）投标人的资质要求如下：") starts a
    // chunk of its own in some exports.
    // A requirements chapter (采购需求) may hold the conditions too.
    let blocks = doc
        .chunks
        .iter()
        .filter(|c| is_field_source(c) || (c.keep && c.part == "technical"))
        .flat_map(|c| c.blocks.iter().map(move |b| (c, b)));
    let mut found: Option<QualificationList> = None;
    for (chunk, block) in blocks {
        let (text, page, heading, item) = match block {
            Block::Heading { text, page, .. } => (text, *page, true, false),
            Block::Paragraph { text, page } => (text, *page, false, false),
            Block::ListItem { text, page, .. } => (text, *page, false, true),
            Block::Table { .. } => {
                if found.is_some() {
                    break;
                }
                continue;
            }
        };
        match found.as_mut() {
            None => {
                if is_qualification_lead(text, heading || item) {
                    found = Some(QualificationList {
                        chunk,
                        lead: strip_numbering(text).trim().to_string(),
                        page,
                        items: Vec::new(),
                    });
                }
            }
            Some(list) => {
                let numbered = item || strip_numbering(text) != text.trim();
                let sub_lead = is_qualification_lead(text, false)
                    || strip_numbering(text).trim_end().ends_with(['：', ':']);
                // "（一）投标人的资质要求如下：" opens the items (a heading in
                // some exports); the next such line ends them.
                if sub_lead {
                    if list.items.is_empty() {
                        continue;
                    }
                    break;
                }
                if heading {
                    break;
                }
                if !numbered {
                    if list.items.is_empty() {
                        continue;
                    }
                    break;
                }
                list.items.push((text.clone(), page));
            }
        }
    }
    found
}

/// Where the qualification conditions are listed, for a warning when no
/// item of them is reported.
pub(crate) fn qualification_lead(doc: &ClassifiedDocument, ctx: Context) -> Option<Evidence> {
    let list = qualification_list(doc)?;
    Some(evidence(list.chunk, None, list.page, &list.lead, ctx))
}

/// A qualification list names the document's qualification in one item:
/// the first that asks for a certificate or licence (资质, 许可证), else the
/// first, which in every procurement method's template is the bidder's
/// basic standing ("具有独立承担民事责任的能力"). The item's first sentence
/// is its condition, without a trailing purpose ("，以证明其资质") or a
/// further condition added with 且. It is the least trusted source: a
/// labelled qualification prevails.
fn qualification_item(doc: &ClassifiedDocument, ctx: Context, out: &mut Vec<Candidate>) {
    static CERTIFICATE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"资质|许可证").expect("certificate regex"));
    let Some(list) = qualification_list(doc) else {
        return;
    };
    let Some((text, page)) = list
        .items
        .iter()
        .find(|(t, _)| CERTIFICATE.is_match(t))
        .or_else(|| list.items.first())
    else {
        return;
    };
    let Some(value) = qualification_condition(text) else {
        return;
    };
    let ev = evidence(list.chunk, clause_number(text).as_deref(), *page, text, ctx);
    push(out, "qualification", None, &value, Value::Null, &ev, 1);
}

/// The condition an item states: its first sentence, without a trailing
/// purpose or a further condition added with 且.
fn qualification_condition(item: &str) -> Option<String> {
    static TAIL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[，,]\s*(以证明|以便|用以证明|且)").expect("condition tail"));
    let item = strip_numbering(item);
    let first = fields::first_clause(item.trim());
    let cut = TAIL
        .find(&first)
        .map_or(first.as_str(), |m| &first[..m.start()]);
    let cut = cut.trim().trim_end_matches(['。', '.']).trim();
    let n = cut.chars().count();
    (4..=120).contains(&n).then(|| cut.to_string())
}

/// Trust in a cover's title: below every sentence of the body.
const COVER_PRIORITY: u8 = 0;

/// How many blocks from the start a cover page may take.
const COVER_BLOCKS: usize = 12;

/// A cover names the project on the line above the document's kind:
/// "某某公司2025年某某服务采购项目" then "招标文件". It is the least trusted
/// source of the project's name: any labelled name prevails.
fn cover_candidates(doc: &ClassifiedDocument, ctx: Context, out: &mut Vec<Candidate>) {
    static KIND_LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(公开|邀请)?(招标|采购|竞争性磋商|竞争性谈判|磋商|谈判|询价|比选|单一来源采购|采购需求)(文件|书)$")
            .expect("document kind line")
    });
    let Some(chunk) = doc.chunks.first() else {
        return;
    };
    let lines: Vec<(&str, Option<u32>)> = doc
        .chunks
        .iter()
        .flat_map(|c| c.blocks.iter())
        .take(COVER_BLOCKS)
        .filter_map(|b| match b {
            Block::Heading { text, page, .. } | Block::Paragraph { text, page } => {
                Some((text.trim(), *page))
            }
            _ => None,
        })
        .filter(|(t, _)| !t.is_empty())
        .collect();
    for pair in lines.windows(2) {
        let ((title, page), (kind, _)) = (pair[0], pair[1]);
        if !KIND_LINE.is_match(&compact(kind)) || !is_cover_title(title) {
            continue;
        }
        let ev = Evidence {
            section: "封面".to_string(),
            ..evidence(chunk, None, page, &format!("{title} {kind}"), ctx)
        };
        push(
            out,
            "project",
            None,
            title,
            Value::Null,
            &ev,
            COVER_PRIORITY,
        );
        return;
    }
}

/// A title line: short, one line, no label, nothing to fill in, not the
/// buyer's or agency's name alone.
fn is_cover_title(t: &str) -> bool {
    let n = t.chars().count();
    (6..=80).contains(&n)
        && !t.contains(['：', ':', '\n'])
        && !fields::is_blank_template(t)
        && !t.ends_with("公司")
        && !t.ends_with("中心")
        && !t.is_ascii()
}

/// Fields a requirements chapter (采购需求) states for the whole tender:
/// a service's term ("服务期限：一年"), joint bids ("本采购项目不接受联合
/// 响应") and who leads the team ("团队负责人资质及经验要求：…"). They count
/// as the least trusted source, so the notice and the instructions prevail.
const TECHNICAL_FIELDS: &[&str] = &["duration", "consortium", "pm"];

fn technical_candidates(chunk: &Chunk, lot: Option<&str>, ctx: Context, out: &mut Vec<Candidate>) {
    let mut found = Vec::new();
    for block in &chunk.blocks {
        if let Block::Paragraph { text, page } | Block::ListItem { text, page, .. } = block {
            paragraph_candidates(chunk, text, *page, lot, ctx, &mut found);
        }
    }
    sentence_candidates(chunk, lot, ctx, &mut found);
    out.extend(
        found
            .into_iter()
            .filter(|c| TECHNICAL_FIELDS.contains(&c.field))
            .map(|c| Candidate { priority: 1, ..c }),
    );
}

pub(crate) static ROLE_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(采购人|招标人|比选人|建设单位|采购代理机构|招标代理机构|代理机构)(的)?(信息|联系方式)[：:]?$")
        .expect("role header")
});

/// Government-procurement notices name a party in two lines: "1.采购人信息"
/// then "名称：X". The second line is read as "采购人：X".
fn with_role(text: &str, role: &mut Option<String>) -> String {
    let stripped = strip_numbering(text);
    if let Some(c) = ROLE_HEADER.captures(&stripped) {
        *role = Some(c[1].to_string());
        return text.to_string();
    }
    match (role.as_deref(), label_value(&stripped)) {
        (Some(r), Some((label, value))) if label == "名称" || label == "名 称" => {
            format!("{r}：{value}")
        }
        _ => text.to_string(),
    }
}

/// A lot named by the innermost heading that names one.
fn chunk_lot(chunk: &Chunk) -> Option<String> {
    chunk
        .section
        .rsplit(" > ")
        .find_map(|h| (h.chars().count() <= 40).then(|| lot_of(h)).flatten())
}

pub(super) fn evidence(
    chunk: &Chunk,
    clause: Option<&str>,
    page: Option<u32>,
    quote: &str,
    ctx: Context,
) -> Evidence {
    let section = match clause {
        Some(c) if !c.is_empty() => {
            if chunk.section.is_empty() {
                c.to_string()
            } else {
                format!("{} {c}", chunk.section)
            }
        }
        _ => chunk.section.clone(),
    };
    Evidence {
        section,
        page,
        quote: quote.to_string(),
        document: ctx.document,
        ocr: None,
    }
}

// ---------------------------------------------------------------- tables

static LOT_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(包号|包|标段|标段号|标包|分包号|采购包|lot|lot\s+no\.?|package)$")
        .expect("lot header")
});

/// A clause reference standing where a label would: "ITB 18.1", "3.4.1".
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^((ITB|ITT|ITC|BDS|GCC|SCC|clause)\s*)?\d+(\.\d+)*$").expect("reference regex")
});

fn table_candidates(
    chunk: &Chunk,
    rows: &[Vec<String>],
    page: Option<u32>,
    lot: Option<&str>,
    ctx: Context,
    out: &mut Vec<Candidate>,
) {
    if let Some(header) = rows.first()
        && let Some(lot_col) = header.iter().position(|h| LOT_HEADER.is_match(h.trim()))
    {
        lot_table_candidates(chunk, rows, lot_col, page, ctx, out);
        return;
    }
    let priority = if chunk.part == "data_sheet" { 3 } else { 2 };
    let named = rows.first().and_then(|h| named_columns(h));
    // "| 11 | 磋商有效期 |" then "|  | 磋商有效期：180个日历日 |": a row of a
    // number and a title, whose content follows in a row of its own.
    let mut titled: Option<(String, String)> = None;
    for (i, row) in rows.iter().enumerate() {
        let title = titled.take();
        if named.is_none() {
            let cells: Vec<&str> = row
                .iter()
                .map(|c| c.trim())
                .filter(|c| !c.is_empty())
                .collect();
            match (cells.as_slice(), title) {
                ([number, t], _)
                    if REFERENCE.is_match(number) && !fields_for_label(t).is_empty() =>
                {
                    titled = Some((number.to_string(), t.to_string()));
                }
                ([content], Some((number, t))) => {
                    let quote = format!("{number} | {t} | {content}");
                    let ev = evidence(chunk, Some(&number), page, &quote, ctx);
                    content_candidates(&t, content, lot, &ev, priority, ctx, out);
                    continue;
                }
                _ => {}
            }
        }
        let (label, content, clause) = match named {
            Some(_) if i == 0 => continue,
            Some((l, c)) => {
                let cell = |k: usize| row.get(k).map(|x| x.trim()).unwrap_or("");
                let clause = (l != 0 && c != 0)
                    .then(|| cell(0))
                    .filter(|x| !x.is_empty());
                (cell(l), cell(c), clause)
            }
            None => {
                let cells: Vec<&str> = row
                    .iter()
                    .map(|c| c.trim())
                    .filter(|c| !c.is_empty())
                    .collect();
                if cells.len() < 2 {
                    continue;
                }
                let label = cells[cells.len() - 2];
                let clause = if cells.len() >= 3 {
                    Some(cells[0])
                } else {
                    REFERENCE.is_match(label).then_some(label)
                };
                (label, cells[cells.len() - 1], clause)
            }
        };
        if label.is_empty() || content.is_empty() {
            continue;
        }
        let quote = row.join(" | ");
        let ev = evidence(chunk, clause, page, &quote, ctx);
        content_candidates(label, content, lot, &ev, priority, ctx, out);
    }
}

/// The label and content columns a data-sheet header names ("条款名称" and
/// "编列内容", "Description" and "Particulars"), so that a trailing 备注
/// column is not read as the content.
fn named_columns(header: &[String]) -> Option<(usize, usize)> {
    const CONTENT: &[&str] = &[
        "编列内容",
        "说明与要求",
        "约定内容",
        "具体内容",
        "具体要求",
        "particulars",
        "details",
        "规定",
        "要求",
        "内容",
    ];
    const LABEL: &[&str] = &[
        "条款名称",
        "名称",
        "项目",
        "事项",
        "description",
        "subject",
        "内容",
    ];
    let cells: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let find = |names: &[&str], not: Option<usize>| {
        names.iter().find_map(|n| {
            cells
                .iter()
                .position(|c| c == n)
                .filter(|i| Some(*i) != not)
        })
    };
    let content = find(CONTENT, None)?;
    let label = find(LABEL, Some(content))?;
    Some((label, content))
}

/// A table with a lot column: each row is a lot, each other column a field
/// whose header names it ("最高限价（万元）").
fn lot_table_candidates(
    chunk: &Chunk,
    rows: &[Vec<String>],
    lot_col: usize,
    page: Option<u32>,
    ctx: Context,
    out: &mut Vec<Candidate>,
) {
    let header = &rows[0];
    for row in rows.iter().skip(1) {
        let Some(lot_cell) = row.get(lot_col).map(|c| c.trim()) else {
            continue;
        };
        if lot_cell.is_empty() {
            continue;
        }
        let lot_name =
            lot_of(lot_cell).unwrap_or_else(|| lot_name_from_cell(&header[lot_col], lot_cell));
        let quote = row.join(" | ");
        for (i, cell) in row.iter().enumerate() {
            if i == lot_col || cell.trim().is_empty() {
                continue;
            }
            let Some(head) = header.get(i) else { continue };
            let unit = header_unit(head);
            let content = match unit {
                Some(u) if !cell.contains(u) && cell.trim().parse::<f64>().is_ok() => {
                    format!("{}{u}", cell.trim())
                }
                _ => cell.trim().to_string(),
            };
            let ev = evidence(chunk, None, page, &quote, ctx);
            for spec in fields_for_label(head) {
                if let Some((value, normalized)) = read_value(spec.kind, &content, ctx.offset) {
                    let value = if content != cell.trim() {
                        cell.trim().to_string() + unit.unwrap_or("")
                    } else {
                        value
                    };
                    out.push(Candidate {
                        field: spec.id,
                        lot: Some(lot_name.clone()),
                        value,
                        normalized,
                        evidence: ev.clone(),
                        priority: 3,
                    });
                }
            }
        }
    }
}

fn lot_name_from_cell(header: &str, cell: &str) -> String {
    if cell.chars().all(|c| c.is_ascii_digit()) {
        if header.to_ascii_lowercase().starts_with("lot") {
            format!("Lot {cell}")
        } else if header.contains("标段") {
            format!("{cell}标段")
        } else {
            format!("包{cell}")
        }
    } else {
        cell.to_string()
    }
}

/// The unit a column header states: "最高限价（万元）" -> "万元".
fn header_unit(header: &str) -> Option<&'static str> {
    ["万元", "元", "日历天", "天", "个月", "%"]
        .into_iter()
        .find(|u| header.contains(&format!("（{u}）")) || header.contains(&format!("({u})")))
}

/// Candidates from a label and its content. The content may itself hold
/// "sub-label：value" pairs separated by ；, which name further fields of
/// the label's family (or any field, when the label names none).
pub(crate) fn content_candidates(
    label: &str,
    content: &str,
    lot: Option<&str>,
    ev: &Evidence,
    priority: u8,
    ctx: Context,
    out: &mut Vec<Candidate>,
) {
    let specs = fields_for_label(label);
    let lot = lot_of(label).or(lot.map(str::to_string));
    let allowed: Vec<&str> = specs
        .iter()
        .flat_map(|s| std::iter::once(s.id).chain(s.family.iter().copied()))
        .collect();
    let mut found: Vec<&str> = Vec::new();
    // A cell's lines (" / " or a line break) are pieces too: "（1）是否接受联合体投标：■否 □是
    // / （2）是否需要提交样品：■否 □是".
    let pieces: Vec<String> = split_outside_brackets(content, &['；', ';'])
        .into_iter()
        .flat_map(|p| {
            p.split(" / ")
                .flat_map(|x| x.split('\n'))
                .flat_map(split_after_options)
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut has_pairs = false;
    for piece in &pieces {
        glued_duration_candidates(piece, lot.as_deref(), ev, priority, out);
        let Some((sub_label, sub_value)) = label_value(piece) else {
            continue;
        };
        has_pairs = true;
        if let Some(sub_lot) = lot_only(&sub_label) {
            // "包1：2万元；包2：1.3万元": the row's own fields, per lot.
            for spec in &specs {
                if let Some((value, normalized)) = read_value(spec.kind, &sub_value, ctx.offset) {
                    found.push(spec.id);
                    out.push(Candidate {
                        field: spec.id,
                        lot: Some(sub_lot.clone()),
                        value,
                        normalized,
                        evidence: ev.clone(),
                        priority,
                    });
                }
            }
            continue;
        }
        for spec in fields_for_label(&sub_label) {
            if !specs.is_empty() && !allowed.contains(&spec.id) {
                continue;
            }
            if let Some((value, normalized)) = read_value(spec.kind, &sub_value, ctx.offset) {
                found.push(spec.id);
                out.push(Candidate {
                    field: spec.id,
                    lot: lot_of(&sub_label).or(lot.clone()),
                    value,
                    normalized,
                    evidence: ev.clone(),
                    priority,
                });
            }
        }
    }
    // Content that names lots ("第一标段…，第二标段…") but was not split
    // by lot above is not one value for the whole tender: leave it.
    let names_lots = lot.is_none() && fields::LOT.is_match(content);
    // "1.基本要求：A。 / 2.具体要求见合同条款。": the general requirement is
    // the row's value.
    let general = pieces
        .first()
        .and_then(|p| label_value(p))
        .filter(|(sub, _)| {
            fields_for_label(sub).is_empty() && GENERAL_REQUIREMENT.is_match(&strip_numbering(sub))
        });
    // A title that names several lots ("某工程第一标段、第二标段") is the
    // whole tender's.
    let several_lots = fields::LOT.find_iter(content).count() >= 2;
    for spec in specs {
        if found.contains(&spec.id) || (names_lots && !(spec.id == "project" && several_lots)) {
            continue;
        }
        if let Some((_, sub_value)) = general.as_ref().filter(|_| is_text_kind(spec)) {
            if let Some((value, normalized)) = read_value(spec.kind, sub_value, ctx.offset) {
                push(
                    out,
                    spec.id,
                    lot.as_deref(),
                    &value,
                    normalized,
                    ev,
                    priority,
                );
            }
            continue;
        }
        if has_pairs && is_text_kind(spec) && label_value(&pieces[0]).is_some() {
            continue;
        }
        if let Some((value, normalized)) = read_value(spec.kind, content, ctx.offset) {
            out.push(Candidate {
                field: spec.id,
                lot: lot.clone(),
                value,
                normalized,
                evidence: ev.clone(),
                priority,
            });
        }
    }
}

/// The sub-label of a cell's general requirement, before the particular
/// ones.
static GENERAL_REQUIREMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(基本|总体|一般|总|通用)(要求|规定)$").expect("general requirement")
});

/// "服务周期12个月": a term label with its duration glued on, no colon.
static GLUED_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:服务周期|服务期限|服务期|合同期限|履约期限)(?:为)?\s*((?:\d+|[一二三四五六七八九十两]+)\s*(?:个月|个日历月|年|日历天|个日历日|天))[。.]?$")
        .expect("glued duration")
});

fn glued_duration_candidates(
    text: &str,
    lot: Option<&str>,
    ev: &Evidence,
    priority: u8,
    out: &mut Vec<Candidate>,
) {
    for part in split_outside_brackets(text, &['，', ',', '：', ':']) {
        if let Some(c) = GLUED_DURATION.captures(part.trim())
            && let Some(f) = super::normalize::find_durations(&c[1]).into_iter().next()
        {
            push(out, "duration", lot, &f.text, f.normalized, ev, priority);
        }
    }
}

/// "…：■否 □是（2）是否需要提交样品：■否 □是": checkbox questions run
/// together (PDF text); a numbered question after an option starts anew.
static OPTION_THEN_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[□■☑☐√][\p{Han}]{1,4}\s*[（(]\d{1,2}[）)]").expect("option then number")
});

fn split_after_options(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut from = 0;
    for m in OPTION_THEN_NUMBER.find_iter(text) {
        let cut = m
            .as_str()
            .rfind(['（', '('])
            .map_or(m.end(), |i| m.start() + i);
        out.push(&text[from..cut]);
        from = cut;
    }
    out.push(&text[from..]);
    out
}

/// The lot a label consists of alone ("包1", "第二标段", "Lot 2").
fn lot_only(label: &str) -> Option<String> {
    let lot = lot_of(label)?;
    let rest = label.replace(&lot, "");
    rest.trim_matches(|c: char| c.is_whitespace() || "（）()第".contains(c))
        .is_empty()
        .then_some(lot)
}

fn is_text_kind(spec: &Spec) -> bool {
    matches!(
        spec.kind,
        Kind::Text
            | Kind::Standard
            | Kind::Party
            | Kind::Grade
            | Kind::Cert
            | Kind::Place
            | Kind::Bool
            | Kind::DateOrText
    )
}

// ---------------------------------------------------------------- paragraphs

fn paragraph_candidates(
    chunk: &Chunk,
    text: &str,
    page: Option<u32>,
    lot: Option<&str>,
    ctx: Context,
    out: &mut Vec<Candidate>,
) {
    if is_toc_line(text) {
        return;
    }
    let clause = clause_number(text);
    for seg in split_outside_brackets(text, &['。', '；', ';']) {
        // Full-width spaces separate "招标人：X　联系人：Y" on one line.
        for piece in seg
            .split('\u{3000}')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let ev = evidence(chunk, clause.as_deref(), page, piece, ctx);
            // "本合同服务期为[…]" is the contract form's wording: the
            // requirements stated for the tender prevail over it.
            let wei_priority = if strip_numbering(piece).starts_with("本合同") {
                1
            } else {
                2
            };
            // "接收响应文件的截止时间为A，递交地点为: B": when the text before
            // the first colon holds a comma, it is no label but statements.
            let main_label = label_value(piece).map(|(l, _)| l).unwrap_or_default();
            let (head, rest) = match label_value(piece) {
                Some((label, value)) => {
                    content_candidates(&label, &value, lot, &ev, 2, ctx, out);
                    let head = piece
                        .find(label.as_str())
                        .map_or("", |i| &piece[..i])
                        .to_string();
                    (head, value)
                }
                None => (String::new(), piece.to_string()),
            };
            let head_parts = split_outside_brackets(&head, &['，', ',']);
            let rest_parts = split_outside_brackets(&rest, &['，', ',']);
            // "采购预算：27.5万元，各供应商最高响应限价：13.75万元": a later
            // part with a label of its own is a pair of its own.
            for part in rest_parts.iter().skip(1) {
                if let Some((label, value)) = label_value(part) {
                    content_candidates(&label, &value, lot, &ev, 2, ctx, out);
                }
            }
            for part in head_parts.into_iter().chain(rest_parts) {
                glued_duration_candidates(&part, lot, &ev, wei_priority, out);
                if let Some((label, value)) = split_wei(&part) {
                    // "谈判地点：X，时间为Y": the bare time is the time of
                    // what the place is for.
                    let label = match main_label.strip_suffix("地点") {
                        Some(what) if !what.is_empty() && (label == "时间" || label == "日期") =>
                        {
                            format!("{what}{label}")
                        }
                        _ => label,
                    };
                    let specs = fields_for_label(&label);
                    for spec in specs {
                        if let Some((v, n)) = read_value(spec.kind, &value, ctx.offset) {
                            out.push(Candidate {
                                field: spec.id,
                                lot: lot_of(&label).or(lot.map(str::to_string)),
                                value: v,
                                normalized: n,
                                evidence: ev.clone(),
                                priority: wei_priority,
                            });
                        }
                    }
                }
            }
        }
    }
}

/// "招标人为X" -> ("招标人", "X").
fn split_wei(part: &str) -> Option<(String, String)> {
    let i = part.find('为')?;
    let label = strip_numbering(&part[..i]);
    let value = part[i + '为'.len_utf8()..].trim();
    (label.chars().count() >= 2 && !value.is_empty() && !label.contains(['：', ':']))
        .then(|| (label, value.to_string()))
}

// ---------------------------------------------------------------- sentences

static EN_INVITES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^(?P<owner>[A-Z][\w&.,' -]{2,100}?)\s*\(\s*(?:the|hereinafter)?\s*["“']?(?:Employer|Purchaser|Client|Owner|Authority|Council|Agency)["”']?\s*\)\s+(?:hereby\s+)?invites?\s+(?:sealed\s+)?(?:tenders|bids|quotations|proposals|offers)\s+(?:for|from[^.]*?for)\s+(?:the\s+)?(?P<project>.+?)\.?$"#)
        .expect("invites regex")
});
static CN_INVITES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<owner>[\p{Han}（）()]{2,40}?)(?:现|拟)?(?:对|就)(?P<project>[^，。；]{2,60}?)(?:项目)?(?:进行|组织|实施)(?:公开|邀请)?(?:招标|比选|竞争性磋商|竞争性谈判|询价|采购|遴选)")
        .expect("cn invites regex")
});
static CN_PROJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"本(?:招标|采购)项目(?P<project>[^，。；]{2,60}?)(?:已由|已经|经)")
        .expect("cn project")
});
/// Words that show a "X对Y进行招标" sentence is a rule about tenders in
/// general ("投标人或者其他利害关系人对依法必须进行招标的项目…"), not the
/// invitation.
static INVITES_NOT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"投标人|供应商|利害关系人|依法|必须|应当|任何|其他").expect("invites not")
});

/// "X受Y（采购人）委托，…": the agency X runs the tender for the owner Y.
static CN_ENTRUSTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<agency>[\p{Han}（）()]{4,40}?(?:公司|中心|机构|集团|事务所|院))(?:受|接受)(?P<owner>[\p{Han}（）()]{4,40}?(?:公司|中心|局|委员会|院|校|学|厅|办公室|集团|银行|政府|所))(?:[（(][^）)]{0,10}[）)])?(?:的)?(?:委托)")
        .expect("entrusted regex")
});
/// A statement on joint bids: "本项目不允许联合体参选".
static CONSORTIUM_WORDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"联合体|联合响应|联合投标|联合参选").expect("consortium words"));
static EN_CLOSING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)closing\s+(date|time)|deadline\s+for\s+(the\s+)?(submission|receipt)|tenders?\s+(must|shall)\s+be\s+(submitted|received|deposited)|submitted\s+(no\s+later\s+than|before)")
        .expect("closing regex")
});
static EN_SITE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)site\s+(show-?round|visit|briefing|inspection)|pre-?(tender|bid)\s+(meeting|briefing)").expect("site regex")
});
static EN_REGISTERED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(registered\s+with\b.*?(?:workhead|work\s+head|category|grade|class)\b.+?)\.?$",
    )
    .expect("registered regex")
});
static EN_PM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:project\s+manager|site\s+manager|resident\s+engineer|project\s+director)\b[^.]*?\b(?:shall|must)\s+(?:have|possess|hold)\s+(?P<req>.+?)\.?$").expect("pm regex")
});
static ADOPTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)采用|评标办法|评审办法|evaluated\s+(using|under|by|on|based)|evaluation\s+method",
    )
    .expect("adopts regex")
});

fn push(
    out: &mut Vec<Candidate>,
    field: &'static str,
    lot: Option<&str>,
    value: &str,
    normalized: Value,
    ev: &Evidence,
    priority: u8,
) {
    out.push(Candidate {
        field,
        lot: lot.map(str::to_string),
        value: tidy(value),
        normalized,
        evidence: ev.clone(),
        priority,
    });
}

fn sentence_candidates(chunk: &Chunk, lot: Option<&str>, ctx: Context, out: &mut Vec<Candidate>) {
    for block in &chunk.blocks {
        let (text, page) = match block {
            Block::Paragraph { text, page } | Block::ListItem { text, page, .. } => {
                (text.clone(), *page)
            }
            Block::Heading { text, page, .. } => (text.clone(), *page),
            Block::Table { rows, page, .. } => (
                rows.iter()
                    .map(|r| r.last().cloned().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("；"),
                *page,
            ),
        };
        if is_toc_line(&text) {
            continue;
        }
        let clause = clause_number(&text);
        for sentence in sentences(&text)
            .into_iter()
            .flat_map(|s| split_outside_brackets(&s, &['；', ';']))
        {
            let s = strip_numbering(&sentence);
            let ev = evidence(chunk, clause.as_deref(), page, &sentence, ctx);
            sentence_patterns(chunk, &s, lot, &ev, ctx, out);
        }
    }
}

fn sentence_patterns(
    chunk: &Chunk,
    s: &str,
    lot: Option<&str>,
    ev: &Evidence,
    ctx: Context,
    out: &mut Vec<Candidate>,
) {
    if (ADOPTS.is_match(s) || chunk.part == "evaluation" && s.chars().count() < 40)
        && let Some(m) = fields::find_method(s)
    {
        push(out, "eval_method", lot, &m.text, Value::Null, ev, 1);
    }
    if chunk.part == "evaluation" {
        return;
    }
    if let Some(c) = EN_INVITES.captures(s) {
        push(out, "owner", lot, c["owner"].trim(), Value::Null, ev, 1);
        push(out, "project", lot, c["project"].trim(), Value::Null, ev, 1);
    }
    if let Some(c) = CN_INVITES.captures(s)
        && !INVITES_NOT.is_match(&c["owner"])
        && !INVITES_NOT.is_match(&c["project"])
    {
        push(out, "owner", lot, &c["owner"], Value::Null, ev, 1);
        push(out, "project", lot, &c["project"], Value::Null, ev, 1);
    }
    if let Some(c) = CN_ENTRUSTED.captures(s) {
        push(out, "agency", lot, &c["agency"], Value::Null, ev, 1);
        push(out, "owner", lot, &c["owner"], Value::Null, ev, 1);
    }
    let first = fields::first_clause(s);
    let first = split_outside_brackets(&first, &['，', ','])
        .into_iter()
        .next()
        .unwrap_or_default();
    if s.contains("正本")
        && s.contains("副本")
        && let Some(f) = super::normalize::find_copies(s)
    {
        push(out, "copies", lot, &f.text, f.normalized, ev, 1);
    }
    if CONSORTIUM_WORDS.is_match(&first)
        && first.chars().count() <= 30
        && let Some((v, n)) = read_value(Kind::Bool, &first, ctx.offset)
    {
        push(out, "consortium", lot, &v, n, ev, 1);
    }
    if let Some(c) = CN_PROJECT.captures(s) {
        push(out, "project", lot, &c["project"], Value::Null, ev, 1);
    }
    let dated = |re: &Regex, field: &'static str, out: &mut Vec<Candidate>| {
        if re.is_match(s)
            && !s.to_lowercase().contains("clarification")
            && let Some(t) = find_times(s, ctx.offset).into_iter().next()
        {
            push(out, field, lot, &t.text, t.normalized, ev, 1);
        }
    };
    dated(&EN_CLOSING, "deadline_bid", out);
    dated(&EN_SITE, "site_visit", out);
    if let Some(c) = EN_REGISTERED.captures(s) {
        push(out, "registration", lot, &c[1], Value::Null, ev, 1);
    }
    if let Some(c) = EN_PM.captures(s) {
        push(out, "pm", lot, &c["req"], Value::Null, ev, 1);
    }
}

// ---------------------------------------------------------------- choice

/// The key two candidates agree on: the normal form, else the compact text.
fn agreement_key(c: &Candidate) -> String {
    if c.normalized.is_null() {
        compact(&c.value)
    } else {
        c.normalized.to_string()
    }
}

/// The chosen fields (by lot; `None` is the whole tender) and warnings.
pub type Chosen = BTreeMap<Option<String>, BTreeMap<String, FieldValue>>;

/// Chooses one value per field and lot. The most trusted sources must
/// agree; less trusted ones that disagree only raise a warning.
pub fn choose(candidates: Vec<Candidate>) -> (Chosen, Vec<Warning>) {
    let mut groups: BTreeMap<(Option<String>, &'static str), Vec<Candidate>> = BTreeMap::new();
    for c in candidates {
        groups.entry((c.lot.clone(), c.field)).or_default().push(c);
    }
    let mut chosen: Chosen = BTreeMap::new();
    let mut warnings = Vec::new();
    for ((lot, field), mut group) in groups {
        // "总价限价X元，短信单价限价为0.033元/条": a rate per unit is no
        // rival of the total; it only stands when no total is given.
        if group.iter().any(|c| !is_unit_rate(&c.value)) {
            group.retain(|c| !is_unit_rate(&c.value));
        }
        group.sort_by_key(|c| std::cmp::Reverse(c.priority));
        let top = group[0].priority;
        let best: Vec<&Candidate> = group.iter().filter(|c| c.priority == top).collect();
        let key = agreement_key(best[0]);
        let disagree: Vec<&Candidate> = best
            .iter()
            .copied()
            .filter(|c| agreement_key(c) != key)
            .collect();
        if !disagree.is_empty() {
            warnings.push(Warning {
                field: Some(field.to_string()),
                message: format!(
                    "the document gives {field} as both \"{}\" and \"{}\"; left out",
                    best[0].value, disagree[0].value
                ),
                evidence: vec![best[0].evidence.clone(), disagree[0].evidence.clone()],
            });
            continue;
        }
        let other = group
            .iter()
            .filter(|c| c.priority < top)
            .find(|c| agreement_key(c) != key && c.priority >= 2);
        if let Some(o) = other {
            warnings.push(Warning {
                field: Some(field.to_string()),
                message: format!(
                    "{field} is \"{}\" in the data sheet but \"{}\" elsewhere; the data sheet prevails",
                    best[0].value, o.value
                ),
                evidence: vec![best[0].evidence.clone(), o.evidence.clone()],
            });
        }
        let c = best[0];
        chosen.entry(lot).or_default().insert(
            field.to_string(),
            FieldValue {
                value: c.value.clone(),
                normalized: c.normalized.clone(),
                evidence: c.evidence.clone(),
                superseded: Vec::new(),
                source: source_of(c).to_string(),
            },
        );
    }
    resolve_same_as_deadline(&mut chosen);
    (chosen, warnings)
}

/// A money amount per unit: "0.033元/条", "5元每次".
static UNIT_RATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[元¥￥]\s*(/|每)\s*[^\s\d]").expect("unit rate"));

fn is_unit_rate(value: &str) -> bool {
    UNIT_RATE.is_match(value)
}

static NOTICE_SECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)公告|邀请|邀请书|invitation|notice").expect("notice section")
});

/// The kind of source a candidate came from, for the reader to judge it.
pub(crate) fn source_of(c: &Candidate) -> &'static str {
    if c.evidence.document > 0 {
        return "amendment";
    }
    match c.priority {
        // A notice value a front-table row points to.
        3 if NOTICE_SECTION.is_match(&c.evidence.section) && !c.evidence.quote.contains(" | ") => {
            "notice"
        }
        3.. => "front_table",
        2 if NOTICE_SECTION.is_match(&c.evidence.section) => "notice",
        2 if c.evidence.quote.contains(" | ") => "table",
        2 => "labelled_line",
        1 => "sentence",
        _ => "cover",
    }
}

/// Where bids are handed in is where they are opened when the document
/// names no other place: consultations and negotiations (磋商, 谈判) often
/// state only "响应文件递交地点", and suppliers attend there. The
/// submission place is never a field of its own; when an opening place is
/// stated, it is dropped.
pub(crate) fn submission_place_as_opening(chosen: &mut Chosen, warnings: &mut Vec<Warning>) {
    for fields in chosen.values_mut() {
        let Some(place) = fields.remove("submission_place") else {
            continue;
        };
        if fields.contains_key("opening_place") {
            continue;
        }
        warnings.push(Warning {
            field: Some("opening_place".to_string()),
            message: format!(
                "opening_place is the place where bids are submitted (\"{}\"): the document names no other opening place",
                place.value
            ),
            evidence: vec![place.evidence.clone()],
        });
        fields.insert("opening_place".to_string(), place);
    }
}

/// "开标时间：同投标截止时间" takes the deadline's normal form.
pub(crate) fn resolve_same_as_deadline(chosen: &mut Chosen) {
    for fields in chosen.values_mut() {
        let deadline = fields.get("deadline_bid").map(|f| f.normalized.clone());
        if let (Some(deadline), Some(opening)) = (deadline, fields.get_mut("opening_time"))
            && (opening.value.contains("同投标截止")
                || opening.value.to_lowercase().contains("same as"))
        {
            opening.normalized = deadline;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::normalize::default_offset;

    fn chosen(md: &str) -> Chosen {
        let doc =
            crate::filter::classify(&crate::parse::text::parse_markdown(md.as_bytes()).unwrap());
        let ctx = Context {
            offset: default_offset(),
            document: 0,
        };
        choose(collect(&doc, ctx)).0
    }

    #[test]
    fn a_cells_general_requirement_and_a_quality_statements_lead_clause() {
        let c = chosen(
            "# 投标人须知前附表\n| 条款号 | 条款名称 | 编列内容 |\n|---|---|---|\n| 1.3.3 | 质量标准 | 1.基本要求：严格执行国家、行业和某某集团有关工程建设质量管理的法律、法规和规章制度，贯彻国家及行业现行规范，保证工程满足验收规范的要求。 / 2.具体要求见合同条款。 |\n",
        );
        assert_eq!(
            c[&None]["quality"].value,
            "严格执行国家、行业和某某集团有关工程建设质量管理的法律、法规和规章制度"
        );
        let c = chosen("# 招标公告\n质量要求：合格，符合国家现行验收规范。\n");
        assert_eq!(
            c[&None]["quality"].value, "合格，符合国家现行验收规范",
            "short: whole"
        );
    }

    #[test]
    fn the_cover_title_names_the_project_when_nothing_else_does() {
        let c = chosen(
            "招标编号：AB-2025-01\n\n某某公司2025年某某服务公开招标采购\n\n招标文件\n\n# 第一章 招标公告\n本项目采用公开招标方式。\n",
        );
        assert_eq!(
            c[&None]["project"].value,
            "某某公司2025年某某服务公开招标采购"
        );
        assert_eq!(c[&None]["project"].source, "cover");
        let c = chosen(
            "某某服务采购项目\n\n招标文件\n\n# 第一章 招标公告\n项目名称：某某服务采购项目（二期）\n",
        );
        assert_eq!(
            c[&None]["project"].value, "某某服务采购项目（二期）",
            "a label prevails"
        );
        let c = chosen("某某有限公司\n\n招标文件\n");
        assert!(
            c.get(&None).is_none_or(|f| !f.contains_key("project")),
            "a buyer's name is no title"
        );
    }

    #[test]
    fn a_requirements_chapter_states_the_team_leader() {
        let c = chosen(
            "# 第五部分 采购需求书\n2、项目服务团队负责人资质及经验要求：供应商团队负责人具备10年以上的相关行业从业经验。\n",
        );
        assert_eq!(
            c[&None]["pm"].value,
            "供应商团队负责人具备10年以上的相关行业从业经验"
        );
        assert_eq!(c[&None]["pm"].source, "sentence");
    }

    #[test]
    fn a_front_table_row_that_points_to_the_notice_makes_the_notice_value_its_own() {
        let md = "# 第一章 招标公告\n1. 项目名称：某某服务采购项目\n\n# 第二章 投标人须知\n## 投标人须知前附表\n| 条款号 | 条款名称 | 编列内容 |\n|---|---|---|\n| 1.1.2 | 项目名称 | 详见招标公告 |\n\n## 1. 总则\n项目名称：某某服务采购项目二期\n";
        let c = chosen(md);
        assert_eq!(c[&None]["project"].value, "某某服务采购项目");
        assert_eq!(c[&None]["project"].source, "notice");
        // Without the pointer the two labelled lines are equals, and unsure.
        let c = chosen(&md.replace(
            "| 1.1.2 | 项目名称 | 详见招标公告 |",
            "| 1.1.3 | 招标人 | 某某公司 |",
        ));
        assert!(c.get(&None).is_none_or(|f| !f.contains_key("project")));
    }

    #[test]
    fn a_title_that_names_several_lots_is_the_whole_tenders() {
        let c = chosen(
            "# 招标公告\n1. 项目名称：某某道路改造工程第一标段、第二标段\n\n2. 工期：第一标段180日历天，第二标段200日历天\n",
        );
        assert_eq!(
            c[&None]["project"].value,
            "某某道路改造工程第一标段、第二标段"
        );
        assert!(
            !c[&None].contains_key("duration"),
            "per-lot terms are no whole-tender value"
        );
    }

    #[test]
    fn a_list_of_qualification_conditions_gives_its_certificate_or_first_item() {
        let c = chosen(
            "# 第一章 采购公告\n## 二、供应商参加本次采购活动应具备以下资格条件\n（一）具有独立承担民事责任的能力。\n\n（二）具有良好的商业信誉。\n",
        );
        assert_eq!(
            c[&None]["qualification"].value,
            "具有独立承担民事责任的能力"
        );
        assert_eq!(c[&None]["qualification"].source, "sentence");
        let c = chosen(
            "# 第一部分 招标公告\n## 四、合格投标人的基本资质要求（须同时满足）：\n（一）投标人的资质要求如下：\n\n1.投标人须具有独立承担民事责任的能力。\n\n2.投标人近三年至少有1个类似案例。\n\n3. 供应商需具备某某直连能力，并出具合作协议，以证明其资质。\n\n（二）其他必须满足的要求：\n\n1.持有有效的营业执照。\n",
        );
        assert_eq!(
            c[&None]["qualification"].value, "供应商需具备某某直连能力，并出具合作协议",
            "the item that asks for a certificate, without its purpose"
        );
        let c = chosen(
            "# 竞争性磋商公告\n4、供应商资格条件：\n\n（1）供应商必须是在中华人民共和国境内依法注册的法人或其他组织，且有能力为本项目提供服务。\n\n（2）供应商须承诺开具增值税专用发票。\n",
        );
        assert_eq!(
            c[&None]["qualification"].value,
            "供应商必须是在中华人民共和国境内依法注册的法人或其他组织"
        );
        let c = chosen(
            "# 投标人须知前附表\n| 条款号 | 条款名称 | 编列内容 |\n|---|---|---|\n| 1.4.1 | 投标人资质条件、能力和信誉 | 资质条件：建筑工程施工总承包二级及以上；财务要求：近三年无亏损 |\n\n# 第一章 招标公告\n## 投标人资格要求\n1. 具有独立法人资格。\n",
        );
        assert_eq!(
            c[&None]["qualification"].value, "建筑工程施工总承包二级及以上",
            "a labelled qualification prevails"
        );
    }

    #[test]
    fn the_submission_place_stands_in_for_an_unnamed_opening_place() {
        let mut only = chosen(
            "# 竞争性磋商公告\n（2）递交地点。\n\n纸质版响应文件递交地点：某市某区某路3号某大厦B座7层。供应商须派代表当面递交。\n",
        );
        let mut warnings = Vec::new();
        submission_place_as_opening(&mut only, &mut warnings);
        assert_eq!(
            only[&None]["opening_place"].value,
            "某市某区某路3号某大厦B座7层"
        );
        assert!(!only[&None].contains_key("submission_place"));
        assert_eq!(warnings.len(), 1);

        let mut both = chosen(
            "# 招标公告\n投标文件递交地点：某市某路1号收发室\n\n开标地点：某市某路1号6楼会议室\n",
        );
        let mut warnings = Vec::new();
        submission_place_as_opening(&mut both, &mut warnings);
        assert_eq!(both[&None]["opening_place"].value, "某市某路1号6楼会议室");
        assert!(!both[&None].contains_key("submission_place"));
        assert!(warnings.is_empty());
    }

    #[test]
    fn entrusted_agency_and_consortium_sentences() {
        let c = chosen(
            "# 采购公告\n甲乙招标代理有限公司受丙丁市某某管理中心（即采购人）委托，对某服务项目进行竞争性磋商。\n（七）本项目不允许联合体参选。\n",
        );
        assert_eq!(c[&None]["agency"].value, "甲乙招标代理有限公司");
        assert_eq!(c[&None]["owner"].value, "丙丁市某某管理中心");
        assert_eq!(c[&None]["consortium"].value, "本项目不允许联合体参选");
        assert_eq!(c[&None]["consortium"].source, "sentence");
    }

    #[test]
    fn statements_before_a_colon_and_general_rules() {
        let c = chosen(
            "# 供应商须知\n## 二、响应文件的递交\n1.接收响应文件的截止时间为2025年3月19日13:30前，递交地点为: 某市某路5楼会议室。\n投标人或者其他利害关系人对依法必须进行招标的项目的评标结果有异议的，应当提出。\n",
        );
        assert_eq!(c[&None]["deadline_bid"].value, "2025年3月19日13:30");
        assert!(!c[&None].contains_key("project"));
        assert!(!c[&None].contains_key("owner"));
    }

    #[test]
    fn contents_lines_and_checkbox_cells() {
        assert!(is_toc_line("二、供应商应具备以下资格条件\t2"));
        assert!(!is_toc_line("投标有效期：90天"));
        let c = chosen(
            "# 第二章 投标人须知\n## 投标人须知前附表\n| 序号 | 内容 |\n|---|---|\n| 20 | （1）是否接受联合体投标：■否  □是 / （2）是否需要提交样品：■否  □是 |\n",
        );
        assert_eq!(c[&None]["consortium"].value, "否");
        assert_eq!(c[&None]["consortium"].source, "front_table");
    }

    #[test]
    fn named_columns_skip_a_remarks_column() {
        let c = chosen(
            "# 第二章 投标人须知\n## 前附表\n| 序号 | 条款名称 | 编列内容 | 备注 |\n|---|---|---|---|\n| 1 | 投标有效期 | 90日历天 | 自截止之日起28天内不得撤回 |\n",
        );
        assert_eq!(c[&None]["validity"].value, "90日历天");
        assert_eq!(
            c[&None]["validity"].evidence.section,
            "第二章 投标人须知 > 前附表 1"
        );
    }

    #[test]
    fn unit_rates_yield_to_a_total_and_contract_wording_to_requirements() {
        let c = chosen(
            "# 商务要求\n\n1.服务期限：合同签署生效之日起一年。\n\n2.预算上限：总价限价1000元，短信服务单价限价为0.03元/条。\n\n本合同服务期为[合同签署生效之日起两年]。\n",
        );
        assert_eq!(c[&None]["price_cap"].value, "1000元");
        assert_eq!(c[&None]["duration"].value, "合同签署生效之日起一年");
        let only_rate = chosen("# 商务要求\n\n短信服务单价限价为0.03元/条。\n");
        assert_eq!(only_rate[&None]["price_cap"].value, "0.03元/条");
    }

    #[test]
    fn requirements_chapter_gives_term_and_joint_bids_only() {
        let c = chosen(
            "# 第三章 采购需求\n\n1.服务期限：一年，自供应商启动服务之日起算。\n\n2.本采购项目不接受联合响应。\n\n3.投标保证金：5万元。\n",
        );
        assert_eq!(c[&None]["duration"].value, "一年");
        assert_eq!(c[&None]["consortium"].value, "不接受联合响应");
        assert!(!c[&None].contains_key("bond"));
        let notice = chosen(
            "# 第一章 采购公告\n\n服务期限：两年。\n\n# 第三章 采购需求\n\n服务期限：一年。\n",
        );
        assert_eq!(notice[&None]["duration"].value, "两年");
    }

    #[test]
    fn a_titled_row_takes_the_content_of_the_row_below() {
        let c = chosen(
            "# 供应商须知前附表\n| 序号 | 内容 |\n|---|---|\n| 10 | 磋商货币 |\n|  | 磋商货币：人民币 |\n| 11 | 磋商有效期 |\n|  | 磋商有效期：90个日历日 |\n",
        );
        assert_eq!(c[&None]["validity"].value, "90个日历日");
        assert_eq!(
            c[&None]["validity"].evidence.quote,
            "11 | 磋商有效期 | 磋商有效期：90个日历日"
        );
    }

    #[test]
    fn pairs_after_a_comma_and_the_time_of_a_place() {
        let c = chosen(
            "# 采购公告\n\n7、采购预算：20万元，各供应商最高响应限价：10万元。\n\n3.谈判地点：某市某路1号会议室，时间为2025年3月19日13:30。\n",
        );
        assert_eq!(c[&None]["budget"].value, "20万元");
        assert_eq!(c[&None]["price_cap"].value, "10万元");
        assert_eq!(c[&None]["opening_place"].value, "某市某路1号会议室");
        assert_eq!(c[&None]["opening_time"].value, "2025年3月19日13:30");
    }

    #[test]
    fn a_term_glued_to_its_label() {
        let c =
            chosen("# 采购公告\n\n采购内容：2个供应商，每个供应商5万次查询，服务周期12个月。\n");
        assert_eq!(c[&None]["duration"].value, "12个月");
        let none = chosen("# 采购公告\n\n服务周期内每12个月结算一次。\n");
        assert!(none.get(&None).is_none_or(|f| !f.contains_key("duration")));
    }

    #[test]
    fn each_line_of_a_cell_is_a_piece() {
        let ctx = Context {
            offset: default_offset(),
            document: 0,
        };
        let ev = Evidence {
            section: String::new(),
            page: None,
            quote: String::new(),
            document: 0,
            ocr: None,
        };
        let mut out = Vec::new();
        content_candidates(
            "---",
            "（1） 是否接受联合体投标：■否  □是\n（2） 是否需要提交样品：■否  □是",
            None,
            &ev,
            3,
            ctx,
            &mut out,
        );
        let c: Vec<_> = out.iter().filter(|c| c.field == "consortium").collect();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].value, "否");
        let mut run_together = Vec::new();
        content_candidates(
            "---",
            "（1）是否接受联合体投标：■否 □是（2）是否需要提交样品：■否 □是",
            None,
            &ev,
            3,
            ctx,
            &mut run_together,
        );
        let c: Vec<_> = run_together
            .iter()
            .filter(|c| c.field == "consortium")
            .collect();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].value, "否");
    }

    #[test]
    fn labels_in_headings() {
        let c = chosen(
            "# 第一部分 招标公告\n\n## 一、 项目名称：\n\n某公司2025年数据采购项目\n\n## 七、 开标时间：\n\n开标及递交投标文件截止时间：2025年08月27日下午14:30整。\n\n## 八、 开标及递交投标文件地点：某市某路1号6层\n",
        );
        assert_eq!(c[&None]["project"].value, "某公司2025年数据采购项目");
        assert_eq!(c[&None]["opening_time"].value, "2025年08月27日下午14:30整");
        assert_eq!(c[&None]["deadline_bid"].value, "2025年08月27日下午14:30整");
        assert_eq!(c[&None]["opening_place"].value, "某市某路1号6层");
        let list = chosen(
            "# 招标公告\n\n## （一）投标人的资质要求如下：\n\n1.投标人须具有独立承担民事责任的能力。\n\n## 资格要求：\n\n1.具备独立承担民事责任的能力。\n",
        );
        // No heading-label pair: the list's first item, by the list rule.
        assert_eq!(
            list[&None]["qualification"].value,
            "投标人须具有独立承担民事责任的能力"
        );
        assert_eq!(list[&None]["qualification"].source, "sentence");
    }

    #[test]
    fn disagreeing_data_sheet_rows_leave_the_field_out() {
        let (c, warnings) = {
            let doc = crate::filter::classify(
                &crate::parse::text::parse_markdown(
                    "# 前附表\n| 条款号 | 条款名称 | 编列内容 |\n|---|---|---|\n| 1 | 投标保证金 | 10万元 |\n| 2 | 投标保证金 | 20万元 |\n"
                        .as_bytes(),
                )
                .unwrap(),
            );
            let ctx = Context {
                offset: default_offset(),
                document: 0,
            };
            choose(collect(&doc, ctx))
        };
        assert!(c.get(&None).is_none_or(|f| !f.contains_key("bond")));
        assert!(warnings.iter().any(|w| w.field.as_deref() == Some("bond")));
    }
}
