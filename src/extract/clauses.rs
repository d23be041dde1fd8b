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
    Regex::new(r"否决|废标|[件标应价]无效|无效(投标|响应|报价)|无效投标|投标无效|响应无效|按无效|作无效|视为无效|无效处理|拒收|拒绝|不予受理|不予接受|恕不接受|不接受|不予通过|不得进入|不进入下一阶段|不合格|取消.{0,8}资格|没收|视为.{0,6}放弃|不响应处理|按不响应|视为不响应|作废标|无效标|作废")
        .expect("reject regex")
});
static REJECT_EN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(shall|will|may|must)\s+be\s+(rejected|disqualified|excluded|declared\s+invalid|treated\s+as\s+non-?responsive|deemed\s+non-?responsive|considered\s+non-?responsive)|render(s|ed)?\s+the\s+(tender|bid|offer)\s+(invalid|void|non-?responsive)|non-?responsive|shall\s+not\s+be\s+(considered|accepted|opened)|liable\s+to\s+be\s+rejected|disqualif")
        .expect("reject regex")
});
static NOT_REJECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"重新招标|重新采购|否决所有|视为已获同意|视为认可").expect("not rejection")
});
static MANDATORY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)★|必须|须|不得|严禁|禁止|不允许|不接受|应当|\bshall\b|\bmust\b")
        .expect("mandatory regex")
});
/// Words that make a data-sheet term binding. English "shall be:" is how a
/// bid data sheet introduces every value, so only "must" and "shall not"
/// count there.
static DATA_SHEET_MANDATORY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)★|必须|须|不得|严禁|禁止|不允许|\bmust\b|shall\s+not")
        .expect("mandatory regex")
});
static LEAD_IN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)下列|以下|如下|following").expect("lead-in regex"));

fn is_rejection(text: &str) -> bool {
    (REJECT_CN.is_match(text) || REJECT_EN.is_match(text)) && !NOT_REJECTION.is_match(text)
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
    }
}

/// Every rejection clause of the kept chunks: clauses that say so
/// (否决, 无效, 拒收, "shall be rejected"...), items listed under such a
/// lead-in, ★ clauses, and 须/不得 terms of the bid data sheet.
pub fn rejections(doc: &ClassifiedDocument, document: usize) -> Vec<Rejection> {
    let mut out: Vec<Rejection> = Vec::new();
    for chunk in doc.chunks.iter().filter(|c| c.keep) {
        // The clause of a "有下列情形之一的，…将被拒绝：" lead-in while its
        // items follow.
        let mut listing: Option<String> = None;
        for block in &chunk.blocks {
            match block {
                Block::Paragraph { text, page } | Block::ListItem { text, page, .. } => {
                    if let Some(lead) = listing.as_ref().filter(|_| is_enumerated(text)) {
                        let item = strip_numbering(text);
                        let marker = text.trim().strip_suffix(item.as_str()).unwrap_or("").trim();
                        let item = item.trim_end_matches(['；', ';', '。', '.']).to_string();
                        let clause = format!("{lead} {marker}").trim().to_string();
                        let ev = evidence(chunk, Some(clause), *page, text, document);
                        push_rejection(&mut out, item, "listed", ev);
                        continue;
                    }
                    listing = None;
                    let clause = clause_number(text);
                    for sentence in sentences(text) {
                        let kind = if sentence.contains('★') {
                            Some("starred")
                        } else if is_rejection(&sentence) {
                            Some("explicit")
                        } else {
                            None
                        };
                        if let Some(kind) = kind {
                            let clause = clause_number(&sentence).or_else(|| clause.clone());
                            let lead = clause.clone().unwrap_or_default();
                            let ev = evidence(chunk, clause, *page, &sentence, document);
                            push_rejection(&mut out, strip_numbering(&sentence), kind, ev);
                            if kind == "explicit"
                                && sentence.trim_end().ends_with(['：', ':'])
                                && LEAD_IN.is_match(&sentence)
                            {
                                listing = Some(lead);
                            }
                        }
                    }
                }
                Block::Table { rows, page, .. } if chunk.part != "evaluation" => {
                    table_rejections(chunk, rows, *page, document, &mut out);
                    listing = None;
                }
                _ => listing = None,
            }
        }
    }
    out
}

fn table_rejections(
    chunk: &Chunk,
    rows: &[Vec<String>],
    page: Option<u32>,
    document: usize,
    out: &mut Vec<Rejection>,
) {
    for row in rows {
        let Some(content) = row.last() else { continue };
        let label = if row.len() >= 2 {
            row[row.len() - 2].trim()
        } else {
            ""
        };
        let clause = (row.len() >= 3).then(|| row[0].trim().to_string());
        for seg in split_outside_brackets(content, &['。', '；', ';']) {
            let kind = if seg.contains('★') {
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
                strip_numbering(&seg)
            };
            let ev = evidence(chunk, clause.clone(), page, &row.join(" | "), document);
            push_rejection(out, text, kind, ev);
        }
    }
}

fn push_rejection(out: &mut Vec<Rejection>, text: String, kind: &str, evidence: Evidence) {
    let key = compact(&text);
    if key.chars().count() < 4 || out.iter().any(|r| compact(&r.text) == key) {
        return;
    }
    out.push(Rejection {
        text: tidy(&text),
        kind: kind.to_string(),
        evidence,
    });
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
}
