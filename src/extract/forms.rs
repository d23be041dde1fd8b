//! The documents a bid must contain (投标文件组成): the items of a
//! "投标文件应包括下列内容：" list, and the forms chapter's contents.

use std::sync::LazyLock;

use regex::Regex;

use super::clauses::evidence;
use super::normalize::{compact, tidy};
use super::text::{clause_number, is_enumerated, split_outside_brackets, strip_numbering};
use crate::document::Block;
use crate::filter::ClassifiedDocument;
use crate::summary::{Evidence, FormItem};

static FORMS_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(投标文件|响应文件|申请文件|报价文件|磋商文件|tender|bid|proposal|submission)[^。]{0,16}(由下列|包括下列|应包括|包括以下|由以下|组成|comprise|consist\s+of|include\s+the\s+following|contain\s+the\s+following)|^目录[：:]")
        .expect("forms lead")
});
static ENUM_SPLIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[（(]\s*\d+\s*[）)]|\d+\s*[）)]|[一二三四五六七八九十]+、|[；;]")
        .expect("enum split")
});

/// The documents a bid must contain: items of a "投标文件应包括下列内容："
/// list, the table of contents of the forms chapter, and its sub-headings.
pub fn forms(doc: &ClassifiedDocument, document: usize) -> Vec<FormItem> {
    let mut out: Vec<FormItem> = Vec::new();
    for chunk in doc.chunks.iter().filter(|c| c.keep) {
        let mut listing = false;
        for block in &chunk.blocks {
            let (text, page) = match block {
                Block::Paragraph { text, page } | Block::ListItem { text, page, .. } => {
                    (text.as_str(), *page)
                }
                Block::Heading { text, page, .. } if chunk.part == "forms" => {
                    if is_enumerated(text) {
                        push_form(
                            &mut out,
                            &strip_numbering(text),
                            evidence(chunk, None, *page, text, document),
                        );
                    }
                    continue;
                }
                _ => continue,
            };
            if listing && is_enumerated(text) {
                push_form(
                    &mut out,
                    &strip_numbering(text),
                    evidence(chunk, None, page, text, document),
                );
                continue;
            }
            listing = false;
            for sentence in split_outside_brackets(text, &['。']) {
                let Some(m) = FORMS_LEAD.find(&sentence) else {
                    if chunk.part == "forms"
                        && is_enumerated(&sentence)
                        && sentence.chars().count() <= 24
                    {
                        push_form(
                            &mut out,
                            &strip_numbering(&sentence),
                            evidence(chunk, None, page, &sentence, document),
                        );
                    }
                    continue;
                };
                let after = &sentence[m.end()..];
                let items = if m.as_str().ends_with(['：', ':']) {
                    after.trim()
                } else {
                    let Some(colon) = after.find(['：', ':']) else {
                        continue;
                    };
                    let colon_len = after[colon..].chars().next().map_or(1, char::len_utf8);
                    after[colon + colon_len..].trim()
                };
                if items.is_empty() {
                    listing = true;
                    continue;
                }
                for item in ENUM_SPLIT.split(items) {
                    push_form(
                        &mut out,
                        item,
                        evidence(chunk, clause_number(text), page, &sentence, document),
                    );
                }
            }
        }
    }
    out
}

fn push_form(out: &mut Vec<FormItem>, raw: &str, evidence: Evidence) {
    let name = tidy(
        raw.trim()
            .trim_end_matches(['；', ';', '。', '.', ',', '，'])
            .trim_end_matches(" and")
            .trim(),
    );
    let name = name.trim_end_matches('等').trim().to_string();
    let n = name.chars().count();
    if !(2..=40).contains(&n)
        || name.contains("组成")
        || name.contains("格式")
        || name.contains("其他")
        || name.contains("规定的")
        || name.to_lowercase().contains("other")
    {
        return;
    }
    if out.iter().any(|f| compact(&f.name) == compact(&name)) {
        return;
    }
    out.push(FormItem { name, evidence });
}
