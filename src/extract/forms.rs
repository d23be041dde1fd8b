//! The documents a bid must contain (投标文件组成): the items of a
//! "投标文件应包括下列内容：" list (inline, numbered lines, a table of
//! contents, a front-table cell), and the forms chapter's contents.

use std::sync::LazyLock;

use regex::Regex;

use super::clauses::evidence;
use super::normalize::{compact, tidy};
use super::text::{clause_number, is_enumerated, split_outside_brackets, strip_numbering};
use crate::document::Block;
use crate::filter::{Chunk, ClassifiedDocument};
use crate::summary::{Evidence, FormItem};

static FORMS_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(投标文件|响应文件|申请文件|报价文件|磋商文件|应答文件|tender|bid|proposal|submission|envelope[^.]{0,24})[^。]{0,16}(由下列|包括下列|应包括|包括以下|包括但不限于|由以下|组成|构成|comprise|consist\s+of|include\s+the\s+following|contain\s+the\s+following)|^目录[：:]|格式目录")
        .expect("forms lead")
});
/// A lead that announces a list below it ("由以下内容组成", "the following").
static LIST_FOLLOWS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)下列|以下|following|格式目录|目录").expect("list follows"));
/// The label of a front-table row whose value is the list.
static FORMS_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(投标|响应|申请|应答|报价|磋商)文件(的)?(组成|构成|内容|要求)$|^(投标|响应|应答)文件(的)?(组成|构成)及.{0,8}$")
        .expect("forms label")
});
static ENUM_SPLIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[（(]\s*\d+\s*[）)]|\d+\s*[）)]|[一二三四五六七八九十]+、|[；;]")
        .expect("enum split")
});
/// A list line beyond the usual markers: "1. 响应文件封皮", "附件5-1 …".
static LIST_MARK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:\d+\.(?:\s|[^\d\s.])|(?:附件|附表)\s*\d+(?:\s*[-–－]\s*\d+)*)")
        .expect("list mark")
});
/// A numbering cell of a table of contents: "1", "3.1.2", "附表1", "一", "附件5-1".
static NUMBER_CELL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?:附件|附表)\s*)?(?:\d+(?:\s*[.\-–－]\s*\d+)*|[一二三四五六七八九十]+|[（(][一二三四五六七八九十\d]+[）)])[、.．]?$")
        .expect("number cell")
});
/// Bracketed remarks about the form, not part of its name.
static REMARK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[（(][^（()）]*(?:格式|附件|如需|如有|填写|盖章|公章|扫描件|签字|应包含|自拟)[^（()）]*[）)]")
        .expect("remark")
});
/// "报价表须由…": the name ends before the instruction.
static INSTRUCTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(表|函|书|证明|件|单|材料|报告|方案)(须|应|必须|需)(由|说明|按|加盖|签字|包含|提供|附)",
    )
    .expect("instruction")
});
static EN_CUT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\s+(without|of\s+rs\.?|of\s+inr|in\s+(the\s+)?form\s+of|duly|in\s+duplicate|in\s+triplicate)\b|\s*\(|\s+[-–]\s+")
        .expect("en cut")
});
/// "Envelope 2 shall contain the duly filled in Priced Tender Volume".
static EN_CONTAINS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:shall\s+contain\s+(?:the\s+)?(?:duly\s+)?(?:filled\s+in\s+)?)(?P<item>(?:[A-Z][a-z]+\s+){1,5}[A-Z][a-z]+)")
        .expect("en contains")
});

/// Whether a line is an item of a list.
fn list_item(text: &str) -> bool {
    is_enumerated(text)
        && !text
            .trim_start()
            .starts_with(['•', '·', '●', '▪', '-', '–'])
        || LIST_MARK.is_match(text)
}

/// The text without its list marker ("附件5-1", "1.", "（3）", "★").
fn strip_marks(text: &str) -> String {
    static ANNEX: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*(?:附件|附表)\s*\d+(?:\s*[-–－]\s*\d+)*\s*[、.．:：]?\s*").expect("annex")
    });
    let t = ANNEX.replace(text.trim(), "");
    strip_numbering(&t)
        .trim_start_matches(['★', '▲', '*', '※', ' '])
        .trim()
        .to_string()
}

/// The form's name from a list item: its first clause, without remarks
/// and instructions.
pub fn form_name(raw: &str) -> String {
    let t = strip_marks(raw);
    let first = split_outside_brackets(&t, &['；', ';', '。'])
        .into_iter()
        .next()
        .unwrap_or_default();
    let mut name = first;
    let head = name
        .split_once(['：', ':'])
        .map(|(h, _)| h.to_string())
        .filter(|h| (2..=20).contains(&h.chars().count()) && !h.contains("包括"));
    if let Some(head) = head {
        name = head;
    } else if let Some(i) = name.find("包括但不限于") {
        let after = name[i + "包括但不限于".len()..].trim_start_matches(['：', ':']);
        name = after.split(['，', ',']).next().unwrap_or("").to_string();
    }
    name = REMARK.replace_all(&name, "").to_string();
    static SEALED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^加盖(?:公章|单位章|印章)的").expect("sealed"));
    name = SEALED.replace(&name, "").to_string();
    if let Some(m) = INSTRUCTION.find(&name) {
        let keep = m.start() + m.as_str().chars().next().map_or(0, char::len_utf8);
        let head = &name[..keep];
        // "报价表须由…" keeps "报价表"; the noun may be longer: "证明" / "材料".
        let noun_end = INSTRUCTION
            .captures(&name)
            .and_then(|c| c.get(1))
            .map_or(keep, |g| g.end());
        name = name[..noun_end.max(head.len())].to_string();
    }
    // "供应商必须是…的企业，提供营业执照副本复印件": the thing to provide.
    if name.chars().count() > 30
        && let Some(i) = name.rfind("提供")
        && name[..i].contains('须')
    {
        name = name[i + "提供".len()..].to_string();
        if name.chars().count() > 40
            && let Some(i) = name.rfind('的')
        {
            name = name[i + '的'.len_utf8()..].to_string();
        }
    }
    static RUN_ON: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[，,]\s*(需要|须|应|并|如)").expect("run on"));
    if let Some(m) = RUN_ON.find(&name) {
        name = name[..m.start()].to_string();
    }
    if !name.chars().any(super::normalize::is_cjk)
        && let Some(m) = EN_CUT.find(&name)
    {
        name = name[..m.start()].to_string();
    }
    tidy(
        name.trim()
            .trim_end_matches(['；', ';', '。', '.', ',', '，', '、'])
            .trim_end_matches(" and")
            .trim(),
    )
}

struct Forms<'a> {
    out: Vec<FormItem>,
    chunk: Option<&'a Chunk>,
    document: usize,
}

impl<'a> Forms<'a> {
    fn push(&mut self, raw: &str, page: Option<u32>, quote: &str) {
        let Some(chunk) = self.chunk else { return };
        let name = form_name(raw);
        let ev = evidence(chunk, clause_number(quote), page, quote, self.document);
        push_form(&mut self.out, &name, ev.clone());
        // Further forms the item names by their format: "过往案例一览表（格式见附件十二）".
        static BY_FORMAT: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"([^、，,。；;：:（()）]{2,30}?)\s*[（(]\s*(?:参考)?格式见[^（()）]*[）)]")
                .expect("by format")
        });
        let rest = raw.find(['。', '；']).map_or("", |i| &raw[i..]);
        for c in BY_FORMAT.captures_iter(rest) {
            let n = tidy(strip_marks(&c[1]).trim_start_matches(['等', '及']));
            if !compact(&name).contains(&compact(&n)) {
                push_form(&mut self.out, &n, ev.clone());
            }
        }
    }

    /// The numbered lines of a cell that holds the list.
    fn cell_list(&mut self, cell: &str, page: Option<u32>) {
        for line in list_lines(cell) {
            self.push(&line, page, &line);
        }
    }

    /// A table of contents: rows of a number and a name. False when the
    /// table is not one.
    fn toc_table(&mut self, rows: &[Vec<String>], page: Option<u32>) -> bool {
        let mut hits = 0;
        for row in rows {
            let Some(i) = row.iter().position(|c| NUMBER_CELL.is_match(c.trim())) else {
                continue;
            };
            if let Some(name) = row[i + 1..].iter().find(|c| !c.trim().is_empty()) {
                hits += 1;
                self.push(name, page, &row.join(" | "));
            }
        }
        hits > 0 || rows.len() <= 2
    }
}

/// The documents a bid must contain: items of a "投标文件应包括下列内容："
/// list, the table of contents of the forms chapter, and its sub-headings.
pub fn forms(doc: &ClassifiedDocument, document: usize) -> Vec<FormItem> {
    let mut f = Forms {
        out: Vec::new(),
        chunk: None,
        document,
    };
    for chunk in doc.chunks.iter().filter(|c| c.keep) {
        f.chunk = Some(chunk);
        // Inside a list: the lead has been read. `grace` counts the
        // paragraphs a lead may run on before its first item; `wrapped`
        // says the last item ran on to the next line.
        let mut listing = false;
        let mut started = false;
        let mut grace = 0;
        let mut wrapped = false;
        for block in &chunk.blocks {
            let (text, page) = match block {
                Block::Paragraph { text, page } | Block::ListItem { text, page, .. } => {
                    (text.as_str(), *page)
                }
                Block::Heading { text, page, .. } if chunk.part == "forms" => {
                    if is_enumerated(text) {
                        f.push(text, *page, text);
                    }
                    continue;
                }
                Block::Table { rows, page, .. } => {
                    front_table_list(&mut f, rows, *page);
                    if listing {
                        let before = f.out.len();
                        if f.toc_table(rows, *page) {
                            started |= f.out.len() > before;
                            wrapped = false;
                        } else {
                            listing = false;
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            if listing {
                if list_item(text) {
                    f.push(text, page, text);
                    started = true;
                    wrapped = !text.trim_end().ends_with(['。', '.', '；', ';', '）', ')']);
                    continue;
                }
                if !started && grace > 0 {
                    grace -= 1;
                    continue;
                }
                if started && wrapped {
                    wrapped = !text.trim_end().ends_with(['。', '.', '；', ';']);
                    continue;
                }
            }
            listing = false;
            for sentence in split_outside_brackets(text, &['。']) {
                if let Some(c) = EN_CONTAINS.captures(&sentence) {
                    f.push(&c["item"], page, &sentence);
                }
                let Some(m) = FORMS_LEAD.find(&sentence) else {
                    if chunk.part == "forms"
                        && is_enumerated(&sentence)
                        && sentence.chars().count() <= 24
                    {
                        f.push(&sentence, page, &sentence);
                    }
                    continue;
                };
                let after = &sentence[m.end()..];
                let items = if m.as_str().ends_with(['：', ':']) {
                    after.trim()
                } else {
                    match after.find(['：', ':']) {
                        Some(colon) => {
                            let colon_len = after[colon..].chars().next().map_or(1, char::len_utf8);
                            after[colon + colon_len..].trim()
                        }
                        None => {
                            // "五、响应文件的构成", "…shall contain the following Documents":
                            // the items follow below.
                            if LIST_FOLLOWS.is_match(&sentence) || sentence.chars().count() <= 20 {
                                listing = true;
                                started = false;
                                grace = 2;
                            }
                            continue;
                        }
                    }
                };
                listing = true;
                started = false;
                grace = 1;
                wrapped = false;
                if items.is_empty() {
                    continue;
                }
                let pieces: Vec<&str> = if ENUM_SPLIT.is_match(items) {
                    ENUM_SPLIT.split(items).collect()
                } else if !items.chars().any(super::normalize::is_cjk) {
                    // "Forwarding letter, Tender document cost and Earnest money deposit"
                    items
                        .split([',', ';'])
                        .flat_map(|p| p.split(" and "))
                        .collect()
                } else {
                    vec![items]
                };
                let quote = sentence.clone();
                for item in pieces {
                    f.push(item, page, &quote);
                }
                started = true;
            }
        }
    }
    f.out
}

/// The numbered items of a cell: its numbered lines, or, on one line,
/// the pieces "（1）…（2）…".
fn list_lines(cell: &str) -> Vec<String> {
    let lines: Vec<String> = cell
        .lines()
        .map(str::trim)
        .filter(|l| list_item(l))
        .map(str::to_string)
        .collect();
    if lines.len() >= 2 {
        return lines;
    }
    static INLINE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[（(]\s*\d+\s*[）)]").expect("inline"));
    let starts: Vec<usize> = INLINE.find_iter(cell).map(|m| m.start()).collect();
    if starts.len() < 2 {
        return Vec::new();
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &a)| {
            cell[a..starts.get(k + 1).copied().unwrap_or(cell.len())]
                .trim()
                .to_string()
        })
        .collect()
}

/// A front-table row "响应文件的组成 | （1）…（2）…", or the label in one row
/// and the list in the next.
fn front_table_list(f: &mut Forms<'_>, rows: &[Vec<String>], page: Option<u32>) {
    for (i, row) in rows.iter().enumerate() {
        let Some(label) = row
            .iter()
            .position(|c| FORMS_LABEL.is_match(&compact(&strip_numbering(c))))
        else {
            continue;
        };
        let value = row[label + 1..]
            .iter()
            .find(|c| !list_lines(c).is_empty())
            .or_else(|| {
                rows.get(i + 1)
                    .and_then(|next| next.iter().find(|c| !list_lines(c).is_empty()))
            });
        if let Some(v) = value {
            f.cell_list(v, page);
        }
    }
}

fn push_form(out: &mut Vec<FormItem>, name: &str, evidence: Evidence) {
    let name = name.trim().to_string();
    let n = name.chars().count();
    let lower = name.to_lowercase();
    if !(2..=60).contains(&n)
        || name.contains("组成")
        || name.contains("格式要求")
        || name.contains("按照")
        || name.ends_with("文件格式")
        || name.contains("规定的")
        || matches!(name.as_str(), "其他" | "其它" | "格式")
        || lower == "other"
        || lower.starts_with("other ")
    {
        return;
    }
    if out.iter().any(|f| compact(&f.name) == compact(&name)) {
        return;
    }
    out.push(FormItem { name, evidence });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(md: &str) -> ClassifiedDocument {
        crate::filter::classify(&crate::parse::text::parse_markdown(md.as_bytes()).unwrap())
    }

    fn names(md: &str) -> Vec<String> {
        forms(&classified(md), 0)
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    #[test]
    fn item_names_lose_remarks_and_instructions() {
        assert_eq!(
            form_name("4. 报价明细表须说明所提供货物的数量（格式见附件四）。"),
            "报价明细表"
        );
        assert_eq!(form_name("（1）★加盖公章的报价单；"), "报价单");
        assert_eq!(
            form_name(
                "（8）★1个同类型的成功案例及说明等（可使用子公司的案例），需要提供合同复印件"
            ),
            "1个同类型的成功案例及说明等（可使用子公司的案例）"
        );
        assert_eq!(
            form_name(
                "1、★供应商必须是在中华人民共和国境内依法注册的法人或其他组织，提供营业执照副本复印件；"
            ),
            "营业执照副本复印件"
        );
        assert_eq!(
            form_name("附件5-2 法定代表人（或单位负责人）授权书"),
            "法定代表人（或单位负责人）授权书"
        );
        assert_eq!(
            form_name("5、企业简介：包括但不限于企业概况、业务范围等"),
            "企业简介"
        );
        assert_eq!(
            form_name(
                "3、供应商须根据打分表的要求提供包括但不限于：服务需求响应、服务解决方案等，具体要求详见第五章"
            ),
            "服务需求响应、服务解决方案等"
        );
        assert_eq!(
            form_name("2. Tender document cost of Rs.1180/- (Rs. One"),
            "Tender document cost"
        );
    }

    #[test]
    fn lists_under_a_heading_line_and_annex_marks() {
        let got = names(
            "# 第二章 供应商须知\n五、响应文件的构成\n1. 响应文件封皮。\n2. 报价表须由法定代表人签字（格式见附件二）。\n附件2-1 人员信息表\n3.其他要求提供的文件。\n注：以上为必须包含的内容。\n4. 本条不是表。\n",
        );
        assert_eq!(
            got,
            vec!["响应文件封皮", "报价表", "人员信息表", "其他要求提供的文件"]
        );
    }

    #[test]
    fn front_table_cell_and_table_of_contents() {
        let got = names(
            "# 第一章 前附表\n| 序号 | 内容 | 说明 |\n|---|---|---|\n| 2 | 应答文件要求 | （1）★报价单；（2）★授权书； |\n",
        );
        assert_eq!(got, vec!["报价单", "授权书"]);
        let got = names(
            "# 第六章 投标文件格式\n投标文件格式目录\n| 序号 | 内容 | 提交方式 |\n|---|---|---|\n| 1 | 投标函格式 | √ |\n| 3.1.2 | 投标保证金银行保函格式 | √ |\n| 附表1 | 报价明细表 | √ |\n说明：\n| 1 | 二次放号查询 | 55万 |\n|---|---|---|\n",
        );
        assert_eq!(
            got,
            vec!["投标函格式", "投标保证金银行保函格式", "报价明细表"]
        );
    }

    #[test]
    fn english_envelope_lists() {
        let got = names(
            "# NOTICE INVITING TENDER\nEnvelope marked no 1 shall contain the following Documents and should be properly sealed.\n1. Forwarding letter without mentioning the cost.\n2. Earnest money deposit of Rs.10,000.00 in form of Demand\nDraft payable at Hardoi.\nEnvelope marked No.2 shall contain the duly filled in Priced Tender Volume in duplicate.\nThe tender shall comprise: Form of Tender, Schedule of Rates and Method Statement.\n",
        );
        assert_eq!(
            got,
            vec![
                "Forwarding letter",
                "Earnest money deposit",
                "Priced Tender Volume",
                "Form of Tender",
                "Schedule of Rates",
                "Method Statement"
            ]
        );
    }
}
