//! Clause-level findings: rejection clauses, requirements and contacts.
//! Scoring items are in [`super::scoring`], the documents a bid must
//! contain in [`super::forms`].

use std::sync::LazyLock;

use regex::Regex;

use super::normalize::{compact, tidy};
use super::text::{
    clause_number, is_enumerated, label_value, sentences, split_outside_brackets, strip_numbering,
};
use crate::document::Block;
use crate::filter::{Chunk, ClassifiedDocument};
use crate::summary::{Contact, Evidence, Rejection, Requirement};

static REJECT_CN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"否决|废标|无效(投标|响应|报价|标|处理|文件)|(投标|响应|报价|磋商|申请|标书|文件|保证金|其|均|则|即|否则|为|作|按|视为|宣布|属于?)[^，。；,;]{0,4}无效|(予以|将|应当?|一律|均|被|当场|人|可)拒收|被拒绝|予以拒绝|(将|应当?|可以?|有权)拒绝(并原封退回|接收|接受)?[^，。；：]{0,20}(投标文件|响应文件|申请文件|其投标|该投标|其响应|其磋商|报价|资格|投标$)|不予受理|不予接[受收]|恕不接[受收]|不接受|不予通过|不予开标|不予评审|不得进入|不进入下一阶段|不得参加(投标|本次|本项目|该项目)|无资格参加|(判定|认定|视为|评为|判为)[^，。；]{0,12}(不合格|不符合|不通过)|实质性不符合|非实质性(满足|响应)|非响应性|取消.{0,12}资格|没收|视为.{0,6}放弃|视为(未|没有)(提交|递交)|不响应处理|按不响应|视为不响应|作废")
        .expect("reject regex")
});
static REJECT_EN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bbe\s+(summarily\s+|outright\s+)?(rejected|disqualified|declared\s+(invalid|void|non-?responsive)|treated\s+as\s+(invalid|non-?responsive)|deemed\s+(invalid|non-?responsive)|considered\s+non-?responsive)|(summarily|outright)\s+rejected|rejected\s+(summarily|outright)|render(s|ed)?\s+the\s+(tender|bid|offer)\s+(invalid|void|non-?responsive)|non-?responsive|liable\s+(to|for)\s+(be\s+)?reject|(tender|bid|offer|proposal|quotation|emd|deposit|application)s?\b[^.;]{0,60}\b(shall|will|would)\s+not\s+be\s+(considered|accepted|entertained|opened|evaluated)|^\s*no\s+(tender|bid|offer|proposal)s?\s+(shall|will)\s+be\s+(considered|accepted|entertained)|excluded\s+from\s+(the\s+)?(evaluation|tender|further)|disqualif")
        .expect("reject regex")
});
/// Clauses that name a rejection without making one: reservations of the
/// buyer's rights, evidence that counts for nothing, the bidder's own
/// declarations in a form.
static NOT_REJECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)否决所有|所有投标.{0,3}否决|否決|拒绝所有|接受或拒绝|接受和拒绝|拒绝任何或所有|接受和否决|视为已获同意|视为认可|无效(案例|业绩)|证明无效|我方|我公司|我单位|我司|我们|贵方|贵公司|reject\s+any\s+or\s+all|right\s+to\s+reject|rejection\s+of\s+any")
        .expect("not rejection")
});
static MANDATORY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)★|必须|须|不得|严禁|禁止|不允许|不接受|应当|\bshall\b|\bmust\b")
        .expect("mandatory regex")
});
/// Words that make a data-sheet term binding. English "shall be:" is how a
/// bid data sheet introduces every value, so only "must" and "shall not"
/// count there; 须知 is a chapter name, not a 须.
static DATA_SHEET_MANDATORY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)★|必须|须[^知]|须$|不得|严禁|禁止|不允许|\bmust\b|shall\s+not")
        .expect("mandatory regex")
});
static LEAD_IN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)下列|以下|如下|下述|following").expect("lead-in regex"));
/// A lead-in that points at a table: "存在下表所列情形的，其投标将被否决".
static TABLE_LEAD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"下表|如下表|本表|表列|下列表").expect("table lead regex"));
/// A header cell of a table whose rows are rejection situations.
static REJECT_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"否决|无效|废标|拒绝|拒收|不予受理|不通过").expect("reject header regex")
});
/// A data-sheet answer: "是否接受联合体：不接受" is a field, not a clause.
static ANSWER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[■☑√□\s]*(不接受|不允许|否|无|不适用|不需要|不要求|不组织|不召开)[。.；;]?$")
        .expect("answer regex")
});
/// A multi-level clause number run into its text: "3.1响应文件…".
static SUB_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(\d+(?:\.\d+)+)[.．、]?\s*([^\d.．年月日时分秒万元%倍个份天周亿米])")
        .expect("sub number regex")
});

fn is_rejection(text: &str) -> bool {
    (REJECT_CN.is_match(text) || REJECT_EN.is_match(text)) && !NOT_REJECTION.is_match(text)
}

/// Whether a text is a data-sheet answer rather than a clause.
fn is_answer(text: &str) -> bool {
    if ANSWER.is_match(text.trim()) {
        return true;
    }
    match label_value(text) {
        Some((label, value)) => label.starts_with("是否") || ANSWER.is_match(value.trim()),
        None => false,
    }
}

/// Whether a ★ marks the text as a substantive clause: not a ★ inside
/// quotes (a definition of the mark) nor a bare ★ section title.
fn is_starred(text: &str) -> bool {
    let t = text.trim();
    let starred = t.contains('★') && {
        let unquoted = t
            .replace("“★”", "")
            .replace("\"★\"", "")
            .replace("「★」", "");
        unquoted.contains('★')
    } || (t.starts_with(['*', '＊'])
        && !t.starts_with("**")
        && t.chars().nth(1).is_some_and(|c| !c.is_whitespace()));
    if !starred {
        return false;
    }
    let rest = strip_numbering(t.trim_start_matches(['★', '*', '＊']));
    let title = rest.chars().count() <= 15 && !rest.contains(['，', '。', '；', '：', ',', ':']);
    !(title && t.starts_with('★') && is_enumerated(t.trim_start_matches('★')))
}

/// The marker style of a list item, for telling siblings from sub-items:
/// a lower rank is an outer level.
fn marker_style(text: &str) -> Option<(u8, String)> {
    static STYLES: LazyLock<Vec<(u8, Regex)>> = LazyLock::new(|| {
        let r = |rank, re: &str| (rank, Regex::new(re).expect("style regex"));
        vec![
            r(10, r"^\s*[一二三四五六七八九十]+\s*[、.．]"),
            r(20, r"^\s*[（(]\s*[一二三四五六七八九十]+\s*[）)]"),
            r(40, r"^\s*[（(]\s*\d+\s*[）)]"),
            r(50, r"^\s*\d+\s*[）)]"),
            r(30, r"^\s*\d+\s*[、．]"),
            r(60, r"^\s*[①-⑳]"),
            r(70, r"^\s*[（(]?[a-zA-Z][）)]"),
            r(80, r"^\s*[•·●▪\-–■]"),
        ]
    });
    if let Some(c) = SUB_NUMBER.captures(text) {
        let depth = c[1].matches('.').count() as u8;
        return Some((30 + depth, format!("n{depth}")));
    }
    STYLES
        .iter()
        .enumerate()
        .find(|(_, (_, re))| re.is_match(text))
        .map(|(i, (rank, _))| (*rank, format!("s{i}")))
}

/// A text without its leading marker or clause number.
fn strip_item(text: &str) -> String {
    let t = text.trim().trim_start_matches(['■', '☑']);
    let t = match SUB_NUMBER.captures(t) {
        Some(c) => t[c.get(2).map_or(0, |m| m.start())..].to_string(),
        None => t.to_string(),
    };
    strip_numbering(&t)
}

/// The evidence of a clause: its chunk's section with the clause number.
pub(super) fn evidence(
    chunk: &Chunk,
    clause: Option<String>,
    page: Option<u32>,
    quote: &str,
    document: usize,
) -> Evidence {
    let section = match clause {
        Some(c) if !chunk.section.is_empty() => format!("{} {c}", chunk.section),
        Some(c) => c,
        None => chunk.section.clone(),
    };
    Evidence {
        section,
        page,
        quote: quote.to_string(),
        document,
        ocr: None,
    }
}

/// An open "有下列情形之一的，…将被拒绝：" lead-in whose items follow.
struct Listing {
    /// The lead-in's clause reference, for the items' evidence.
    lead: String,
    /// The lead-in's own marker style, which ends the list when it recurs.
    lead_style: Option<(u8, String)>,
    /// The first item's marker style.
    item_style: Option<(u8, String)>,
    /// Whether unmarked lines are items too (lines of one table cell,
    /// one-cell rows under a lead-in row).
    loose: bool,
}

impl Listing {
    /// A list in one table cell or table, where any line may be an item.
    fn cell(lead: String) -> Self {
        Listing {
            lead,
            lead_style: None,
            item_style: None,
            loose: true,
        }
    }

    fn new(lead: String, lead_text: &str) -> Self {
        Listing {
            lead,
            lead_style: marker_style(lead_text),
            item_style: None,
            loose: false,
        }
    }

    /// Whether `text` is an item of the list; `None` ends the list,
    /// `Some(false)` skips the line (an unticked option, a sub-heading).
    fn accepts(&mut self, text: &str) -> Option<bool> {
        let t = text.trim();
        if t.starts_with('□') {
            return Some(false);
        }
        let style = marker_style(t);
        if let (Some(s), Some(l)) = (&style, &self.lead_style)
            && (s.1 == l.1 || s.0 <= l.0)
        {
            return None;
        }
        match (&style, &self.item_style) {
            (None, _) if self.loose => {}
            (None, _) => return None,
            (Some(s), None) => self.item_style = Some(s.clone()),
            (Some(s), Some(i)) if s.1 == i.1 || s.0 > i.0 => {}
            (Some(_), Some(_)) => return None,
        }
        if t.ends_with(['：', ':']) && !is_rejection(t) {
            return Some(false);
        }
        Some(true)
    }
}

/// Whether a sentence opens a list of rejection situations.
fn is_lead(sentence: &str) -> bool {
    is_rejection(sentence) && LEAD_IN.is_match(sentence)
}

/// Every rejection clause of the kept chunks: clauses that say so
/// (否决, 无效, 拒收, "shall be rejected"...), items listed under such a
/// lead-in, rows of a table of rejection situations, ★ clauses and ★ rows,
/// and 须/不得 terms of the bid data sheet.
pub fn rejections(doc: &ClassifiedDocument, document: usize) -> Vec<Rejection> {
    let mut out: Vec<Rejection> = Vec::new();
    for chunk in doc
        .chunks
        .iter()
        .filter(|c| !c.keep && c.part == "contract")
    {
        tender_stage_rejections(chunk, document, &mut out);
    }
    for chunk in doc.chunks.iter().filter(|c| c.keep) {
        let blocks = joined(&chunk.blocks);
        let mut listing: Option<Listing> = None;
        // The last paragraph, for a "如下表" lead-in, and the shape of the
        // last rejection table (columns, last row number, how many rows it
        // gave), for a table continued after a break.
        let mut last_text = String::new();
        let mut run: Option<(usize, u32, usize)> = None;
        for block in &blocks {
            match block {
                Block::Paragraph { text, page } | Block::ListItem { text, page, .. } => {
                    // "本条款不适用" under a table row withdraws that row.
                    if let Some((_, _, n)) = run.as_mut()
                        && NOT_APPLICABLE.is_match(text.trim())
                    {
                        if *n > 0 {
                            out.pop();
                            *n -= 1;
                        }
                        continue;
                    }
                    lines(chunk, text, *page, document, &mut listing, &mut out);
                    // Only the row right above can be withdrawn.
                    if let Some(r) = run.as_mut() {
                        r.2 = 0;
                    }
                    last_text = text.clone();
                }
                Block::Table { rows, page, .. } => {
                    let lead_table = is_rejection(&last_text) && TABLE_LEAD.is_match(&last_text);
                    if let Some(r) =
                        rejection_table(chunk, rows, *page, document, lead_table, run, &mut out)
                    {
                        run = Some(r);
                    } else if chunk.part != "evaluation" {
                        run = None;
                        table_rejections(chunk, rows, *page, document, &mut out);
                    }
                    listing = None;
                    last_text.clear();
                }
                Block::Heading { .. } => {
                    listing = None;
                    run = None;
                    last_text.clear();
                }
            }
        }
    }
    out
}

/// A rule of the tender stage that a bid is refused, in words that only
/// the tender stage uses: "No tender shall be considered unless the EMD is
/// so deposited".
static TENDER_STAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*no\s+(tender|bid|offer|proposal|quotation)s?\s+(shall|will)\s+be\s+(considered|accepted|entertained|opened)\b|\b(the|any|such|their)\s+(tender|bid|offer|quotation)s?\b[^.;]{0,60}\b(shall|will)\s+be\s+(summarily\s+)?(rejected|disqualified)")
        .expect("tender stage regex")
});

/// Conditions of contract are not read for rejections, but those of
/// Indian and Commonwealth works tenders carry tender-stage rules too (the
/// earnest money deposit's): those sentences count.
fn tender_stage_rejections(chunk: &Chunk, document: usize, out: &mut Vec<Rejection>) {
    for block in joined(&chunk.blocks) {
        let (Block::Paragraph { text, page } | Block::ListItem { text, page, .. }) = &block else {
            continue;
        };
        for sentence in sentences(text) {
            if TENDER_STAGE.is_match(&sentence) && !NOT_REJECTION.is_match(&sentence) {
                let clause = clause_number(text);
                let ev = evidence(chunk, clause, *page, &sentence, document);
                let text = strip_item(&sentence)
                    .trim_end_matches(['。', '.', '；', ';'])
                    .to_string();
                push_rejection(out, text, "explicit", ev);
            }
        }
    }
}

static NOT_APPLICABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(本条款?|本项|此条)?不适用[。.]?$").expect("n/a regex"));

/// The blocks with a PDF line break mended: an English paragraph that
/// stops mid-sentence and one that goes on in lower case are one.
fn joined(blocks: &[Block]) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::with_capacity(blocks.len());
    for b in blocks {
        if let (Some(Block::Paragraph { text: prev, .. }), Block::Paragraph { text, .. }) =
            (out.last_mut(), b)
        {
            let open = prev
                .trim_end()
                .ends_with(|c: char| c.is_ascii_alphabetic() || c == ',');
            if open
                && text
                    .trim_start()
                    .starts_with(|c: char| c.is_ascii_lowercase())
            {
                prev.push(' ');
                prev.push_str(text.trim());
                continue;
            }
        }
        out.push(b.clone());
    }
    out
}

/// The rejections of one paragraph (or one line of a table cell): an item
/// of an open list, or its sentences that are rejection clauses, one of
/// which may open a list (with its items inline or in the next lines).
fn lines(
    chunk: &Chunk,
    text: &str,
    page: Option<u32>,
    document: usize,
    listing: &mut Option<Listing>,
    out: &mut Vec<Rejection>,
) {
    if let Some(list) = listing.as_mut() {
        match list.accepts(text) {
            Some(true) => {
                let item = strip_item(text);
                let marker = text.trim().strip_suffix(item.as_str()).unwrap_or("").trim();
                let item = item
                    .trim_end_matches(['；', ';', '。', '.', '】'])
                    .to_string();
                let clause = format!("{} {marker}", list.lead).trim().to_string();
                let ev = evidence(chunk, Some(clause), page, text, document);
                push_rejection(out, item, "listed", ev);
                return;
            }
            Some(false) => return,
            None => *listing = None,
        }
    }
    let clause =
        clause_number(text).or_else(|| SUB_NUMBER.captures(text).map(|c| c[1].to_string()));
    for sentence in sentences(text) {
        // An inline list: "…将被否决：（1）…；（2）…".
        if let Some((head, rest)) = split_lead(&sentence) {
            let ev = evidence(chunk, clause.clone(), page, &sentence, document);
            push_rejection(out, strip_item(&head), "explicit", ev);
            for (marker, item) in inline_items(&rest) {
                let c = format!("{} {marker}", clause.clone().unwrap_or_default())
                    .trim()
                    .to_string();
                let ev = evidence(chunk, Some(c), page, &sentence, document);
                push_rejection(out, item, "listed", ev);
            }
            continue;
        }
        for piece in clauses_of(&sentence) {
            let kind = if is_starred(&piece) && !is_answer(&piece) {
                "starred"
            } else if is_rejection(&piece) && !is_answer(&piece) {
                "explicit"
            } else {
                continue;
            };
            let ev = evidence(chunk, clause.clone(), page, &sentence, document);
            push_rejection(out, strip_item(&piece), kind, ev);
            if kind == "explicit" && piece.trim_end().ends_with(['：', ':']) && is_lead(&piece) {
                *listing = Some(Listing::new(clause.clone().unwrap_or_default(), text));
            }
        }
    }
}

/// A sentence's clauses for reporting: split at ；, a consequence
/// ("否则…", "则…") kept with the clause before it.
fn clauses_of(sentence: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for seg in split_outside_brackets(sentence, &['；', ';']) {
        let back = seg.starts_with("否则") || seg.starts_with('则') || seg.starts_with("并");
        match out.last_mut() {
            Some(prev) if back => {
                prev.push('；');
                prev.push_str(&seg);
            }
            _ => out.push(seg),
        }
    }
    out
}

/// "…之一的，其投标将被否决：（1）…；（2）…" as the lead-in and the rest,
/// when items follow the colon in the same sentence.
fn split_lead(sentence: &str) -> Option<(String, String)> {
    let i = sentence.find(['：', ':'])?;
    let (head, rest) = sentence.split_at(i);
    let rest = rest.trim_start_matches(['：', ':']).trim();
    (is_lead(head) && inline_items(rest).len() >= 2).then(|| (head.to_string(), rest.to_string()))
}

/// The "（1）…；（2）…" items of a run of text, each with its marker.
fn inline_items(text: &str) -> Vec<(String, String)> {
    static MARK: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:^|[；;。，\s])\s*([（(]\d+[）)]|\d+[）)]|[①-⑳])").expect("inline marker")
    });
    let marks: Vec<(usize, usize, String)> = MARK
        .captures_iter(text)
        .filter_map(|c| {
            c.get(1)
                .map(|m| (m.start(), m.end(), m.as_str().to_string()))
        })
        .collect();
    if marks.first().is_none_or(|m| m.0 > 0) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (k, (_, end, marker)) in marks.iter().enumerate() {
        let stop = marks.get(k + 1).map_or(text.len(), |m| m.0);
        let item = text[*end..stop]
            .trim()
            .trim_end_matches(['；', ';', '。', '.', '，'])
            .to_string();
        if !item.is_empty() {
            out.push((marker.clone(), item));
        }
    }
    out
}

/// A table whose rows are rejection situations: its header names them
/// (否决情形, 无效情形), the paragraph before points at it (存在下表所列
/// 情形的，其投标将被否决), or it continues such a table (same columns,
/// numbering going on). Every row's situation is reported. Returns the
/// table's shape when it was one.
fn rejection_table(
    chunk: &Chunk,
    rows: &[Vec<String>],
    page: Option<u32>,
    document: usize,
    lead: bool,
    run: Option<(usize, u32, usize)>,
    out: &mut Vec<Rejection>,
) -> Option<(usize, u32, usize)> {
    let cols = rows.first()?.len();
    let number = |r: &Vec<String>| r.first().and_then(|c| c.trim().parse::<u32>().ok());
    let header = rows[0]
        .iter()
        .any(|c| c.chars().count() <= 12 && REJECT_HEADER.is_match(c));
    let continued = run.is_some_and(|(c, last, _)| c == cols && number(&rows[0]) == Some(last + 1));
    if cols < 2 || !(header || lead || continued) {
        return None;
    }
    let skip = usize::from(number(&rows[0]).is_none());
    let mut last = run.map_or(0, |r| r.1);
    let mut count = 0;
    for row in &rows[skip..] {
        if let Some(n) = number(row) {
            last = n;
        }
        let Some(content) = row
            .iter()
            .enumerate()
            .filter(|(i, c)| *i > 0 || number(row).is_none() && !c.is_empty())
            .map(|(_, c)| c)
            .max_by_key(|c| c.chars().count())
        else {
            continue;
        };
        let clause = row[0].trim().to_string();
        for (k, sentence) in split_outside_brackets(content, &['。']).iter().enumerate() {
            let s = sentence.trim();
            if s.starts_with(['（', '(']) && s.ends_with(['）', ')']) {
                continue;
            }
            // After the first, a sentence is a situation ("…的") or a
            // rejection clause, not a remark ("同时…进行后续处理").
            if k > 0 && !s.ends_with('的') && !is_rejection(s) {
                continue;
            }
            let ev = evidence(
                chunk,
                Some(clause.clone()),
                page,
                &row.join(" | "),
                document,
            );
            if push_rejection(out, strip_item(s), "listed", ev) {
                count += 1;
            }
        }
    }
    Some((cols, last, count))
}

fn table_rejections(
    chunk: &Chunk,
    rows: &[Vec<String>],
    page: Option<u32>,
    document: usize,
    out: &mut Vec<Rejection>,
) {
    // A one-cell row "不符合下列要求的响应将被拒绝：" lists the one-cell
    // rows after it.
    let mut listing: Option<Listing> = None;
    for row in rows {
        let filled: Vec<&String> = row.iter().filter(|c| !c.trim().is_empty()).collect();
        if filled.len() == 1 {
            let text = filled[0];
            if let Some(list) = listing.as_mut()
                && !text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_end()
                    .ends_with(['：', ':'])
                && list.accepts(text) == Some(true)
            {
                let item = strip_item(text);
                let item = item.trim_end_matches(['；', ';', '。', '.']).to_string();
                let ev = evidence(chunk, Some(list.lead.clone()), page, text, document);
                push_rejection(out, item, "listed", ev);
                continue;
            }
            listing = None;
            for line in text.lines() {
                lines(chunk, line, page, document, &mut listing, out);
            }
            if let Some(l) = listing.as_mut() {
                l.loose = true;
                l.lead_style = None;
            }
            continue;
        }
        listing = None;
        let Some(content) = row.last() else { continue };
        let label = if row.len() >= 2 {
            row[row.len() - 2].trim()
        } else {
            ""
        };
        let clause = (row.len() >= 3).then(|| row[0].trim().to_string());
        if starred_row(chunk, rows, row, page, document, out) {
            continue;
        }
        // A label that is a lead-in: "如发现下列情况之一的，其投标文件将可能
        // 被拒绝 | （1）…；（2）…".
        if is_lead(label) && content.lines().count() < 2 && inline_items(content.trim()).len() >= 2
        {
            let ev = evidence(chunk, clause.clone(), page, &row.join(" | "), document);
            push_rejection(out, strip_item(label), "explicit", ev);
            for (marker, item) in inline_items(content.trim()) {
                let c = format!("{} {marker}", clause.clone().unwrap_or_default());
                let ev = evidence(chunk, Some(c.trim().to_string()), page, content, document);
                push_rejection(out, item, "listed", ev);
            }
            continue;
        }
        if is_lead(label) && content.lines().count() >= 2 {
            let ev = evidence(chunk, clause.clone(), page, &row.join(" | "), document);
            push_rejection(out, strip_item(label), "explicit", ev);
            let lead = clause.clone().unwrap_or_default();
            let mut list: Option<Listing> = None;
            for line in content.lines().filter(|l| !l.trim().is_empty()) {
                if list.is_none() {
                    list = Some(Listing::cell(lead.clone()));
                }
                lines(chunk, line, page, document, &mut list, out);
            }
            continue;
        }
        let mut cell_listing: Option<Listing> = None;
        for line in content.lines() {
            if cell_listing.is_some() {
                lines(chunk, line, page, document, &mut cell_listing, out);
                continue;
            }
            for seg in split_outside_brackets(line, &['。', '；', ';']) {
                let kind = if is_answer(&seg) {
                    continue;
                } else if is_starred(&seg) {
                    "starred"
                } else if is_rejection(&seg) {
                    "explicit"
                } else if chunk.part == "data_sheet" && DATA_SHEET_MANDATORY.is_match(&seg) {
                    "mandatory"
                } else {
                    continue;
                };
                let text = if seg.chars().count() < 8 && !label.is_empty() {
                    format!("{label}：{seg}")
                } else {
                    strip_item(&seg)
                };
                let ev = evidence(chunk, clause.clone(), page, &row.join(" | "), document);
                push_rejection(out, text, kind, ev);
                if kind == "explicit" && seg.trim_end().ends_with(['：', ':']) && is_lead(&seg) {
                    cell_listing = Some(Listing::cell(clause.clone().unwrap_or_default()));
                }
            }
        }
    }
}

/// A requirement row marked ★ in a cell of its own ("1 | ★ | 并发数 |
/// 支持200qps并发"): the requirement is a ★ clause. A row that only points
/// elsewhere ("详见…") is not one.
fn starred_row(
    chunk: &Chunk,
    rows: &[Vec<String>],
    row: &[String],
    page: Option<u32>,
    document: usize,
    out: &mut Vec<Rejection>,
) -> bool {
    let Some(star) = row
        .iter()
        .position(|c| matches!(c.trim(), "★" | "*" | "＊"))
    else {
        return false;
    };
    // The requirement column: the header's 要求/内容/参数 column, else the
    // longest cell after the mark.
    static REQ: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"要求|内容|参数|指标值|描述|规格|标准").expect("req regex"));
    let by_header = rows.first().and_then(|h| {
        h.iter()
            .enumerate()
            .skip(star + 1)
            .filter(|(i, c)| REQ.is_match(c) && *i < row.len())
            .map(|(i, _)| i)
            .max_by_key(|i| row[*i].chars().count())
    });
    let col = by_header
        .filter(|i| *i < row.len())
        .or_else(|| (star + 1..row.len()).max_by_key(|i| row[*i].chars().count()));
    let Some(col) = col else { return true };
    let content = row[col].trim().trim_end_matches(['；', ';', '。', '.']);
    if content.is_empty()
        || content.starts_with("详见")
        || content.starts_with('见')
        || content.starts_with("参见")
    {
        return true;
    }
    let label = if col > star + 1 {
        row[col - 1].trim()
    } else {
        ""
    };
    let text = if label.is_empty() || label.chars().count() > 20 {
        content.to_string()
    } else {
        format!("{label}：{content}")
    };
    let clause = row[0].trim().to_string();
    let ev = evidence(chunk, Some(clause), page, &row.join(" | "), document);
    push_rejection(out, text, "starred", ev);
    true
}

/// Adds a rejection unless it is too short or the same clause at the same
/// place is already in. The same words on two rows of a table are two
/// clauses. Returns whether it was added.
fn push_rejection(out: &mut Vec<Rejection>, text: String, kind: &str, evidence: Evidence) -> bool {
    let key = compact(&text);
    if key.chars().count() < 4
        || out
            .iter()
            .any(|r| compact(&r.text) == key && r.evidence.section == evidence.section)
    {
        return false;
    }
    out.push(Rejection {
        text: tidy(&text),
        kind: kind.to_string(),
        evidence,
    });
    true
}

// ---------------------------------------------------------------- requirements

/// Requirements: sentences of qualification and technical sections, each
/// marked mandatory, scored or optional.
pub fn requirements(doc: &ClassifiedDocument, document: usize) -> Vec<Requirement> {
    let mut out = Vec::new();
    for chunk in doc.chunks.iter().filter(|c| c.keep) {
        let category = match (chunk.part.as_str(), chunk.category.as_str()) {
            ("technical", _) if chunk.section.contains("服务") => "service",
            ("technical", _) => "technical",
            (_, "qualification") => "qualification",
            (_, "commercial") => "commercial",
            _ => continue,
        };
        for block in &chunk.blocks {
            let (text, page) = match block {
                Block::Paragraph { text, page } | Block::ListItem { text, page, .. } => {
                    (text, *page)
                }
                _ => continue,
            };
            for sentence in sentences(text) {
                let level = requirement_level(&sentence);
                let ev = evidence(chunk, clause_number(text), page, &sentence, document);
                out.push(Requirement {
                    category: category.to_string(),
                    level: level.to_string(),
                    text: tidy(&strip_numbering(&sentence)),
                    evidence: ev,
                });
            }
        }
    }
    out
}

/// Qualification requirements the data sheet states in "label：value" rows.
pub fn data_sheet_requirements(doc: &ClassifiedDocument, document: usize) -> Vec<Requirement> {
    static QUAL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)资质|资格|业绩|项目经理|项目负责人|总监|财务|信誉|qualif|registered|registration|experience")
            .expect("qual regex")
    });
    let mut out = Vec::new();
    for chunk in doc
        .chunks
        .iter()
        .filter(|c| c.keep && c.part == "data_sheet")
    {
        for block in &chunk.blocks {
            let Block::Table { rows, page, .. } = block else {
                continue;
            };
            for row in rows.iter().filter(|r| r.len() >= 2) {
                let label = &row[row.len() - 2];
                if !QUAL.is_match(label) {
                    continue;
                }
                let content = &row[row.len() - 1];
                for seg in split_outside_brackets(content, &['；', ';']) {
                    let clause = (row.len() >= 3).then(|| row[0].clone());
                    let text = if label_value(&seg).is_some() {
                        tidy(&seg)
                    } else {
                        format!("{}：{}", strip_numbering(label), tidy(&seg))
                    };
                    out.push(Requirement {
                        category: "qualification".into(),
                        level: "mandatory".into(),
                        text,
                        evidence: evidence(chunk, clause, *page, &row.join(" | "), document),
                    });
                }
            }
        }
    }
    out
}

fn requirement_level(sentence: &str) -> &'static str {
    if MANDATORY.is_match(sentence) {
        "mandatory"
    } else if sentence.contains("得分")
        || sentence.contains("加分")
        || sentence.to_lowercase().contains("points")
    {
        "scored"
    } else {
        "optional"
    }
}

// ---------------------------------------------------------------- contacts

static ROLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(招标人|采购人|比选人|建设单位|招标代理机构|采购代理机构|代理机构|employer|purchaser|agent)(名称)?$").expect("role")
});
static PERSON: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(联系人|联 系 人|contact\s+person|contact)$").expect("person")
});
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(电话|联系电话|电 话|tel|telephone|phone)$").expect("phone")
});
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^(邮箱|电子邮箱|电子邮件|e-?mail)$").expect("email"));

/// Contacts: a role (招标人, 代理机构, Employer) with its person, telephone
/// and e-mail, from data-sheet rows and notice lines.
pub fn contacts(doc: &ClassifiedDocument, document: usize) -> Vec<Contact> {
    let mut out: Vec<Contact> = Vec::new();
    for chunk in doc.chunks.iter().filter(|c| c.keep) {
        // A role header line ("1.采购人信息") and the pair lines under it.
        let mut block_lines: Option<(String, Evidence)> = None;
        for block in &chunk.blocks {
            if let Some((text, ev)) = block_lines.take() {
                match block {
                    Block::Paragraph { text: line, .. } if label_value(line).is_some() => {
                        let sep = if text.ends_with('：') { "" } else { "；" };
                        block_lines = Some((format!("{text}{sep}{}", strip_numbering(line)), ev));
                        continue;
                    }
                    _ => contact_from_pairs(&text, ev, &mut out),
                }
            }
            match block {
                Block::Table { rows, page, .. } => {
                    for row in rows.iter().filter(|r| r.len() >= 2) {
                        let label = strip_numbering(&row[row.len() - 2]);
                        if ROLE.is_match(&label) {
                            let text = format!("{label}：{}", row[row.len() - 1]);
                            let ev = evidence(chunk, None, *page, &row.join(" | "), document);
                            contact_from_pairs(&text, ev, &mut out);
                        }
                    }
                }
                Block::Paragraph { text, page } => {
                    let stripped = strip_numbering(text);
                    if let Some(c) = super::candidates::ROLE_HEADER.captures(&stripped) {
                        let ev = evidence(chunk, None, *page, text, document);
                        block_lines = Some((format!("{}：", &c[1]), ev));
                    } else if text.contains("联系人")
                        || text.to_lowercase().contains("contact person")
                    {
                        let ev = evidence(chunk, None, *page, text, document);
                        contact_from_pairs(text, ev, &mut out);
                    }
                }
                _ => {}
            }
        }
        if let Some((text, ev)) = block_lines {
            contact_from_pairs(&text, ev, &mut out);
        }
    }
    out
}

fn contact_from_pairs(text: &str, ev: Evidence, out: &mut Vec<Contact>) {
    let mut current: Option<Contact> = None;
    let pieces: Vec<String> = split_outside_brackets(text, &['；', ';', '\u{3000}', '，'])
        .into_iter()
        .flat_map(|p| p.split("  ").map(str::to_string).collect::<Vec<_>>())
        .collect();
    for piece in pieces {
        let Some((label, value)) = label_value(&piece) else {
            continue;
        };
        let value = value.trim().trim_end_matches(['。', '.']).to_string();
        if ROLE.is_match(&label) {
            if let Some(c) = current.take() {
                push_contact(out, c);
            }
            let organization = value.strip_prefix("名称：").unwrap_or(&value).to_string();
            current = Some(Contact {
                role: label.clone(),
                organization: Some(organization),
                person: None,
                phone: None,
                email: None,
                evidence: ev.clone(),
            });
            continue;
        }
        let c = current.get_or_insert_with(|| Contact {
            role: "contact".into(),
            organization: None,
            person: None,
            phone: None,
            email: None,
            evidence: ev.clone(),
        });
        if label == "名称" {
            c.organization = Some(value);
        } else if PERSON.is_match(&label) {
            c.person = Some(value);
        } else if PHONE.is_match(&label) {
            c.phone = Some(value);
        } else if EMAIL.is_match(&label) {
            c.email = Some(value);
        }
    }
    if let Some(c) = current {
        push_contact(out, c);
    }
}

fn push_contact(out: &mut Vec<Contact>, c: Contact) {
    if c.person.is_none() && c.phone.is_none() && c.email.is_none() {
        return;
    }
    let same = out
        .iter()
        .any(|o| o.role == c.role && o.person == c.person && o.phone == c.phone);
    if !same {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(md: &str) -> ClassifiedDocument {
        crate::filter::classify(&crate::parse::text::parse_markdown(md.as_bytes()).unwrap())
    }

    #[test]
    fn tender_stage_rules_inside_conditions_of_contract() {
        let doc = classified(
            "# General Conditions of Contract\n## 1.0 Security Deposit\nThe tenderers shall submit Rs. 5,000 as earnest money by demand draft. No tender shall be considered unless the EMD is so deposited in the required form. The contract may be terminated and the security deposit forfeited if the contractor abandons the work.\n",
        );
        assert!(
            doc.chunks.iter().all(|c| !c.keep),
            "the chapter itself is not read"
        );
        let texts: Vec<String> = rejections(&doc, 0).into_iter().map(|r| r.text).collect();
        assert_eq!(
            texts,
            vec![
                "No tender shall be considered unless the EMD is so deposited in the required form"
            ]
        );
    }

    #[test]
    fn listed_items_under_a_rejection_lead_in() {
        let doc = classified(
            "# 第二章 须知\n4. 有下列情形之一的，其响应文件将被拒绝：\n1）未按规定格式填写的；\n2）无单位公章的。\n5. 其他说明。\n",
        );
        let r = rejections(&doc, 0);
        let kinds: Vec<(&str, &str)> = r
            .iter()
            .map(|x| (x.kind.as_str(), x.text.as_str()))
            .collect();
        assert!(kinds.contains(&("listed", "未按规定格式填写的")));
        assert!(kinds.contains(&("listed", "无单位公章的")));
        let item = r.iter().find(|x| x.text == "无单位公章的").unwrap();
        assert_eq!(item.evidence.section, "第二章 须知 4 2）");
        assert!(!kinds.iter().any(|(_, t)| t.contains("其他说明")));
    }

    fn texts(md: &str) -> Vec<String> {
        rejections(&classified(md), 0)
            .into_iter()
            .map(|r| r.text)
            .collect()
    }

    #[test]
    fn rows_of_a_rejection_table_are_each_a_clause() {
        let t = texts(
            "# 第三章 评标办法\n投标人存在下表所列情形的，其投标将被否决。\n\n| 序号 | 评审内容 | 否决情形 |\n|---|---|---|\n| 1 | 形式评审 | 投标函未盖章的。（以原件为准）。同时上报主管部门。 |\n| 2 | 资格评审 | 不符合实质性要求的。 |\n| 3 | 响应评审 | 不符合实质性要求的。 |\n",
        );
        assert!(t.contains(&"投标函未盖章的".to_string()), "{t:?}");
        // The same words on two rows are two clauses; a bracketed note is none.
        assert_eq!(t.iter().filter(|x| *x == "不符合实质性要求的").count(), 2);
        assert!(
            !t.iter()
                .any(|x| x.contains("以原件为准") || x.contains("上报"))
        );
    }

    #[test]
    fn items_numbered_under_the_lead_in_clause() {
        let t = texts(
            "# 第五章 评审\n3.审查中发现属于下列情况之一的，应按照无效响应文件处理：\n\n3.1响应文件份数不足的；\n\n3.2有效期不满足要求的；\n\n4.磋商小组可以要求澄清。\n",
        );
        assert!(t.contains(&"响应文件份数不足的".to_string()), "{t:?}");
        assert!(t.contains(&"有效期不满足要求的".to_string()));
        assert!(!t.iter().any(|x| x.contains("澄清")));
    }

    #[test]
    fn parenthesised_items_under_a_decimal_clause() {
        let t = texts(
            "# 第二章 须知\n21.8 如发现下列情况之一的，其磋商将被否决：\n\n（1） 未按规定密封的；\n\n（2） 报价低于成本的；\n",
        );
        assert!(t.contains(&"未按规定密封的".to_string()), "{t:?}");
        assert!(t.contains(&"报价低于成本的".to_string()));
    }

    #[test]
    fn inline_items_after_a_lead_in() {
        let t = texts(
            "# 第二章 须知\n有下列情形之一的，其投标将被否决：（1）未盖公章的；（2）报价超过限价的。\n",
        );
        assert!(t.contains(&"未盖公章的".to_string()), "{t:?}");
        assert!(t.contains(&"报价超过限价的".to_string()));
    }

    #[test]
    fn a_lead_in_row_lists_the_rows_below_it() {
        let t = texts(
            "# 须知前附表\n| 序号 | 内容 |\n|---|---|\n| 1 | 投标有效期：90天 |\n\n| 不符合下列要求的响应将被拒绝： |  |\n|---|---|\n| 响应文件须胶装成册。 |  |\n| 满足“*”号条款 |  |\n",
        );
        assert!(
            t.contains(&"不符合下列要求的响应将被拒绝：".to_string()),
            "{t:?}"
        );
        assert!(t.contains(&"响应文件须胶装成册".to_string()));
        assert!(t.contains(&"满足“*”号条款".to_string()));
    }

    #[test]
    fn a_lead_in_label_lists_the_lines_of_its_cell() {
        let doc = ClassifiedDocument {
            schema: crate::filter::CLASSIFIED_SCHEMA,
            format: "docx".into(),
            ocr: None,
            chunks: vec![Chunk {
                section: "须知前附表".into(),
                part: "data_sheet".into(),
                category: "basic_info".into(),
                score: 0.9,
                reason: String::new(),
                keep: true,
                blocks: vec![Block::Table {
                    rows: vec![vec![
                        "14".into(),
                        "19.6".into(),
                        "如发现下列情况之一的，其投标文件将被拒绝".into(),
                        "（1） 未交保证金的；\n■ 不满足“*”条款的。\n□ 不满足所有条款的。".into(),
                    ]],
                    header_rows: 0,
                    page: None,
                }],
            }],
        };
        let t: Vec<String> = rejections(&doc, 0).into_iter().map(|r| r.text).collect();
        assert!(t.contains(&"未交保证金的".to_string()), "{t:?}");
        assert!(t.contains(&"不满足“*”条款的".to_string()));
        // The unticked option does not apply.
        assert!(!t.iter().any(|x| x.contains("所有条款")));
    }

    #[test]
    fn starred_requirement_rows_but_not_pointers() {
        let t = texts(
            "# 第三章 采购需求\n| 序号 | 重要性 | 指标项 | 指标要求 |\n|---|---|---|---|\n| 1 | ★ | 并发数 | 支持100qps并发； |\n| 2 | ★ | 付款 | 详见第六节 |\n| 3 |  | 界面 | 简洁美观 |\n",
        );
        assert!(t.contains(&"并发数：支持100qps并发".to_string()), "{t:?}");
        assert!(!t.iter().any(|x| x.contains("详见") || x.contains("付款")));
        assert!(!t.iter().any(|x| x.contains("简洁")));
    }

    #[test]
    fn wording_of_invalidity_and_refusal() {
        let t = texts(
            "# 第五章 磋商程序\n供应商报价单应当加盖公章，否则无效。逾期送达的响应文件恕不接收。未领取文件的供应商均无资格参加本次磋商。价格文件不足3家的项目不予开标。用户明确表示拒绝的，不得再发送短信。磋商小组不得拒绝。招标人有权接受或拒绝任何投标。所有投标被否决的，重新招标。\n",
        );
        assert!(
            t.contains(&"供应商报价单应当加盖公章，否则无效".to_string()),
            "{t:?}"
        );
        assert!(t.contains(&"逾期送达的响应文件恕不接收".to_string()));
        assert!(t.contains(&"未领取文件的供应商均无资格参加本次磋商".to_string()));
        assert!(t.contains(&"价格文件不足3家的项目不予开标".to_string()));
        assert_eq!(t.len(), 4, "{t:?}");
    }

    #[test]
    fn data_sheet_answers_and_declarations_are_not_clauses() {
        let t = texts(
            "# 须知前附表\n| 条款号 | 条款名称 | 编列内容 |\n|---|---|---|\n| 1.4.2 | 联合体 | 是否接受联合体投标：不接受 |\n| 3.6 | 备选方案 | 不允许 |\n| 1.11 | 保证金 | 详见投标人须知前附表之附表一 |\n\n# 第六章 投标文件格式\n如我方违反承诺，我方同意被取消中标资格。\n",
        );
        assert!(t.is_empty(), "{t:?}");
    }

    #[test]
    fn english_rejection_wording() {
        let t = texts(
            "# Instructions to Tenderers\nFailing which their Tender will be summarily rejected. The tender may be liable for rejection. EMD in any other form will not be accepted. No tender shall be considered unless the EMD is deposited. The works shall not be considered complete until inspected.\n",
        );
        assert_eq!(t.len(), 4, "{t:?}");
        assert!(!t.iter().any(|x| x.contains("works")));
    }

    #[test]
    fn a_broken_english_line_is_one_sentence() {
        let t = texts(
            "# Instructions\nThe tender will be\n\nrejected if the rates are not in words.\n",
        );
        assert!(
            t.contains(&"The tender will be rejected if the rates are not in words.".to_string()),
            "{t:?}"
        );
    }
}
