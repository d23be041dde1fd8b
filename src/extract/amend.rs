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
    let asked = questions_and_answers(doc, ctx, &mut out);
    let changed: Vec<&str> = out.iter().map(|c| c.field).collect();
    // A question is no "label：value" pair: what it holds was read above.
    let plain: Vec<Candidate> = collect(doc, ctx)
        .into_iter()
        .filter(|c| !changed.contains(&c.field))
        .filter(|c| {
            let quote = c.evidence.quote.trim();
            !QUESTION.is_match(quote)
                && ANSWER.find(quote).is_none_or(|m| m.start() > 0)
                && !asked.iter().any(|q| q == quote)
        })
        .filter(|c| !CHANGE.is_match(&c.evidence.quote) && !OLD.is_match(&c.evidence.quote))
        .collect();
    out.extend(plain);
    out
}

/// The start of a question: "问：", "问题2：", "Q3.", "Question 1:".
static QUESTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:第?\d*\s*[、.．]?\s*)?(?:问题?|提问|疑问|Q|Query|Question)\s*\d*\s*[：:.．]",
    )
    .expect("question regex")
});
/// The start of an answer, at the start of a text or inside it.
static ANSWER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:^|\s|[。？?；;])(?:答复?|回复|回答|解答|A|Reply|Answer|Response)\s*\d*\s*[：:]",
    )
    .expect("answer regex")
});
/// An answer that keeps the document as it is.
static NO_CHANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)不变|不作(调整|修改|变更)|维持原|以原.{0,12}为准|按原.{0,12}执行|以招标文件为准|以采购文件为准|remains?\s+unchanged|no\s+change|as\s+per\s+(the\s+)?(tender|bid)\s+document")
        .expect("no change regex")
});
static QA_HEADER_Q: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(问题|提问|疑问|质疑问题|澄清问题|问题内容|query|question)s?$")
        .expect("q column")
});
static QA_HEADER_A: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(答复|回复|答疑|解答|澄清答复|答复内容|回复内容|reply|answer|response)s?$")
        .expect("a column")
});

/// Amendments in question-and-answer form (答疑, clarifications): the
/// question names the field, the answer gives its new value ("问：本项目是否
/// 接受联合体投标？ 答：不接受。"). Only answers of a definite kind count (an
/// amount, a time, a duration, yes or no, copies, a method): a free-text
/// answer is too loose to replace a value.
///
/// Returns the rows of question-and-answer tables, which hold no plain
/// pairs.
fn questions_and_answers(
    doc: &ClassifiedDocument,
    ctx: Context,
    out: &mut Vec<Candidate>,
) -> Vec<String> {
    let mut asked = Vec::new();
    for chunk in doc.chunks.iter().filter(|c| c.keep) {
        let mut question: Option<String> = None;
        for block in &chunk.blocks {
            match block {
                Block::Paragraph { text, page } | Block::ListItem { text, page, .. } => {
                    let text = text.trim();
                    let answer_at = ANSWER.find(text).map(|m| m.start());
                    let (q, a) = match answer_at {
                        Some(i) if QUESTION.is_match(text) => {
                            (Some(text[..i].to_string()), Some(&text[i..]))
                        }
                        Some(0) => (question.take(), Some(text)),
                        _ if QUESTION.is_match(text) => {
                            question = Some(text.to_string());
                            continue;
                        }
                        _ => (None, None),
                    };
                    if let (Some(q), Some(a)) = (q, a) {
                        let ev = Evidence {
                            section: chunk.section.clone(),
                            page: *page,
                            quote: format!("{} {}", q.trim(), a.trim()),
                            document: ctx.document,
                            ocr: None,
                        };
                        answer_candidates(&q, a, &ev, ctx, out);
                    }
                }
                Block::Table { rows, page, .. } => {
                    question = None;
                    asked.extend(qa_table(&chunk.section, rows, *page, ctx, out));
                }
                Block::Heading { .. } => question = None,
            }
        }
    }
    asked
}

fn qa_table(
    section: &str,
    rows: &[Vec<String>],
    page: Option<u32>,
    ctx: Context,
    out: &mut Vec<Candidate>,
) -> Vec<String> {
    let Some(header) = rows.first() else {
        return Vec::new();
    };
    let q = header.iter().position(|h| QA_HEADER_Q.is_match(h.trim()));
    let a = header.iter().position(|h| QA_HEADER_A.is_match(h.trim()));
    let (Some(q), Some(a)) = (q, a) else {
        return Vec::new();
    };
    let mut asked = Vec::new();
    for row in rows.iter().skip(1) {
        let (Some(question), Some(answer)) = (row.get(q), row.get(a)) else {
            continue;
        };
        let ev = row_evidence(section, page, row, ctx);
        answer_candidates(question, answer, &ev, ctx, out);
        asked.push(ev.quote);
    }
    asked
}

fn answer_candidates(
    question: &str,
    answer: &str,
    ev: &Evidence,
    ctx: Context,
    out: &mut Vec<Candidate>,
) {
    use super::fields::Kind;
    let answer = ANSWER
        .find(answer)
        .filter(|m| m.start() == 0)
        .map_or(answer, |m| &answer[m.end()..])
        .trim();
    if answer.is_empty() || NO_CHANGE.is_match(answer) {
        return;
    }
    let question = QUESTION
        .find(question)
        .map_or(question, |m| &question[m.end()..]);
    for spec in SPECS.iter().filter(|s| s.matches_anywhere(question)) {
        let definite = matches!(
            spec.kind,
            Kind::Money
                | Kind::Date
                | Kind::DateOrText
                | Kind::Duration
                | Kind::PercentOrMoney
                | Kind::Bool
                | Kind::Copies
                | Kind::Method
        );
        if !definite {
            continue;
        }
        let Some((value, normalized)) = read_value(spec.kind, answer, ctx.offset) else {
            continue;
        };
        // "开标时间：另行通知" is no new time.
        if spec.kind == Kind::DateOrText && normalized.is_null() {
            continue;
        }
        out.push(Candidate {
            field: spec.id,
            lot: super::fields::lot_of(question),
            value,
            normalized,
            evidence: ev.clone(),
            priority: 4,
        });
    }
}

/// The evidence of a table row: the row's cells as the quote.
fn row_evidence(section: &str, page: Option<u32>, row: &[String], ctx: Context) -> Evidence {
    Evidence {
        section: section.to_string(),
        page,
        quote: row.join(" | "),
        document: ctx.document,
        ocr: None,
    }
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
        let ev = row_evidence(section, page, row, ctx);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::candidates::choose;
    use crate::extract::normalize::default_offset;

    fn amended(md: &str) -> Chosen {
        let doc =
            crate::filter::classify(&crate::parse::text::parse_markdown(md.as_bytes()).unwrap());
        let ctx = Context {
            offset: default_offset(),
            document: 1,
        };
        choose(candidates(&doc, ctx)).0
    }

    #[test]
    fn questions_and_answers_change_what_the_question_names() {
        let c = amended(
            "# 澄清答疑文件\n问：本项目是否接受联合体投标？\n\n答：不接受联合体投标。\n\n问题2：投标保证金金额是多少？ 答复：投标保证金为人民币伍万元整（50000元）。\n\n问题3：投标截止时间能否延后？\n\n答复：维持原投标截止时间不变。\n",
        );
        let fields = &c[&None];
        assert_eq!(fields["consortium"].value, "不接受联合体投标");
        assert_eq!(fields["bond"].normalized["amount"], 50000.0);
        assert!(
            !fields.contains_key("deadline_bid"),
            "an answer that keeps the time"
        );
    }

    #[test]
    fn a_question_and_answer_table() {
        let c = amended(
            "# 答疑\n| 序号 | 问题 | 答复 |\n|---|---|---|\n| 1 | 投标文件份数有何要求？ | 正本1份，副本4份 |\n| 2 | 开标时间是否调整？ | 开标时间另行通知 |\n",
        );
        let fields = &c[&None];
        assert_eq!(fields["copies"].value, "正本1份，副本4份");
        assert!(!fields.contains_key("opening_time"), "no time given");
    }
}
