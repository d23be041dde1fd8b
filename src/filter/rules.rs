//! Rules that tell which part of a tender document a section is, from its
//! heading path and, when the headings say nothing, its vocabulary.

use std::sync::LazyLock;

use regex::Regex;

use crate::document::Block;

/// A section's classification.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Part of the document (`contract`, `data_sheet`, ...).
    pub part: &'static str,
    /// Category (one of [`super::CATEGORIES`]).
    pub category: &'static str,
    /// Confidence, 0 to 1.
    pub score: f32,
    /// Why.
    pub reason: String,
    /// Whether extraction reads it.
    pub keep: bool,
}

/// Parts recognised from headings, most specific first.
static PARTS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let p = |part, re: &str| (part, Regex::new(re).expect("part regex"));
    vec![
        p(
            "contract",
            r"(?i)合同条款|通用条款|专用条款|合同通用|合同专用|合同主要条款|合同格式|合同文本|合同协议书|合同草案|合同书$|合同(范本|样本|模板|示范文本)|^第.{1,3}(章|部分)\s*(采购|服务|货物|施工)?合同$|conditions\s+of\s+(the\s+)?contract|general\s+conditions|special\s+conditions|particular\s+conditions|contract\s+conditions|form\s+of\s+contract",
        ),
        p(
            "evaluation",
            r"(?i)评标办法|评审办法|评分办法|评分标准|评审标准|评分细则|评标标准|评审细则|磋商办法|评定办法|evaluation\s+(criteria|method|procedure)|tender\s+evaluation|evaluation\s+and\s+comparison",
        ),
        p(
            "forms",
            r"(?i)投标文件格式|响应文件格式|申请文件格式|报价文件格式|投标文件的组成|响应文件的组成|申请文件的组成|文件格式$|(确认书|承诺书|承诺函|声明函|声明书|授权书|委托书|投标函|响应函|报价函|偏离表|证明书)([（(][^）)]{0,8}[）)])?$|forms?\s+of\s+(tender|bid)|tender\s+forms|bidding\s+forms|returnable\s+(documents|schedules)",
        ),
        p(
            "data_sheet",
            r"(?i)前附表|须知附表|data\s+sheet|appendix\s+to\s+(the\s+)?instructions|bid\s+data|tender\s+data|特别说明",
        ),
        p(
            "technical",
            r"(?i)技术标准|技术要求|技术规范|技术参数|采购需求|需求书|任务书|服务要求|用户需求|specifications?|technical\s+requirements|scope\s+of\s+works?|employer'?s\s+requirements",
        ),
        p(
            "boq",
            r"(?i)工程量清单|报价清单|分项报价|bill\s+of\s+quantities|pricing\s+schedule",
        ),
        p("drawings", r"(?i)^第.{1,3}章\s*图纸|^图纸$|^drawings$"),
        p(
            "amendment",
            r"(?i)更正公告|变更公告|补遗|补充通知|澄清(公告|文件)|答疑纪要|addendum|corrigendum|clarification\s+no",
        ),
        p(
            "notice",
            r"(?i)招标公告|比选公告|采购公告|磋商公告|谈判公告|询价公告|投标邀请|邀请书|资格预审公告|invitation\s+(to|for)\s+(tender|bid)s?|notice\s+of\s+(tender|invitation)",
        ),
        p(
            "instructions",
            r"(?i)须知|instructions\s+to\s+(tenderers|bidders)",
        ),
    ]
});

/// Categories by the words of a section's own heading, inside instructions.
static TOPICS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let t = |cat, re: &str| (cat, Regex::new(re).expect("topic regex"));
    vec![
        t(
            "disqualification",
            r"(?i)否决|无效|废标|拒绝|拒收|reject|disqualif",
        ),
        t("bond", r"(?i)保证金|担保|保函|deposit|bond|security"),
        t("qualification", r"(?i)资格|资质|eligib|qualif"),
        t(
            "schedule",
            r"(?i)开标|递交|截止|时间|submission|closing|opening|deadline",
        ),
        t("contact", r"(?i)联系|contact"),
        t(
            "commercial",
            r"(?i)报价|价格|付款|支付|price|pricing|payment",
        ),
    ]
});

/// Words of contract conditions, for sections whose headings say nothing.
static CONTRACT_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)发包人|承包人|监理人应|委托人|违约金|索赔|the\s+contractor\s+shall|superintending\s+officer|liquidated\s+damages|the\s+employer\s+shall")
        .expect("contract words")
});

/// The part a heading path names: contract anywhere in the path wins, since
/// nothing under a contract chapter is a tender term; otherwise the innermost
/// heading that names a part.
pub fn part_of(path: &[String]) -> Option<(&'static str, String)> {
    // "商务、技术要求及合同条款偏离表" is a form the bidder fills in.
    static DEVIATION: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"偏离表|应答表").expect("deviation regex"));
    if let Some(last) = path.last()
        && DEVIATION.is_match(last)
        && !path.iter().any(|h| h != last && PARTS[0].1.is_match(h))
    {
        return Some(("forms", last.clone()));
    }
    for heading in path {
        if PARTS[0].1.is_match(heading) {
            return Some(("contract", heading.clone()));
        }
    }
    for heading in path.iter().rev() {
        if let Some((part, _)) = PARTS.iter().find(|(_, re)| re.is_match(heading)) {
            return Some((part, heading.clone()));
        }
    }
    None
}

/// Classifies one section.
pub fn classify_section(path: &[String], blocks: &[Block]) -> Verdict {
    match part_of(path) {
        Some((part, heading)) => by_part(part, path, &heading),
        None => by_content(blocks),
    }
}

fn by_part(part: &'static str, path: &[String], heading: &str) -> Verdict {
    let reason = format!("heading \"{heading}\" names the {part} part");
    let (category, keep) = match part {
        "contract" => ("contract", false),
        "evaluation" => ("scoring", true),
        "forms" => ("forms", true),
        "data_sheet" => ("basic_info", true),
        "notice" | "amendment" => match topic_of(path.last().map(String::as_str).unwrap_or("")) {
            "other" => ("basic_info", true),
            topic => (topic, true),
        },
        "technical" => ("technical", true),
        "boq" => ("commercial", false),
        "drawings" => ("other", false),
        _ => (
            topic_of(path.last().map(String::as_str).unwrap_or("")),
            true,
        ),
    };
    Verdict {
        part,
        category,
        score: 0.9,
        reason,
        keep,
    }
}

fn topic_of(heading: &str) -> &'static str {
    TOPICS
        .iter()
        .find(|(_, re)| re.is_match(heading))
        .map(|(c, _)| *c)
        .unwrap_or("other")
}

/// Sections with no telling heading: contract vocabulary in most of the
/// paragraphs marks contract conditions; anything else is kept as `other`.
fn by_content(blocks: &[Block]) -> Verdict {
    let texts: Vec<String> = blocks.iter().map(Block::text).collect();
    let hits = texts.iter().filter(|t| CONTRACT_WORDS.is_match(t)).count();
    if texts.len() >= 4 && hits * 2 >= texts.len() {
        return Verdict {
            part: "contract",
            category: "contract",
            score: 0.6,
            reason: format!(
                "{hits} of {} blocks use contract-conditions words",
                texts.len()
            ),
            keep: false,
        };
    }
    Verdict {
        part: "other",
        category: "other",
        score: 0.3,
        reason: "no heading names a part".into(),
        keep: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parts_from_headings() {
        let part = |p: &[&str]| part_of(&path(p)).map(|(x, _)| x);
        assert_eq!(
            part(&["第四章 合同条款及格式", "第三节 合同附件格式"]),
            Some("contract")
        );
        assert_eq!(
            part(&["第三章 评标办法（综合评估法）", "评标办法前附表"]),
            Some("evaluation")
        );
        assert_eq!(
            part(&["第二章 投标人须知", "投标人须知前附表"]),
            Some("data_sheet")
        );
        assert_eq!(
            part(&[
                "SECTION 2 INSTRUCTIONS TO TENDERERS",
                "APPENDIX TO THE INSTRUCTIONS TO TENDERERS"
            ]),
            Some("data_sheet")
        );
        assert_eq!(
            part(&["SECTION 4 CONDITIONS OF CONTRACT"]),
            Some("contract")
        );
        assert_eq!(
            part(&["第二章 磋商须知", "3.4 磋商保证金"]),
            Some("instructions")
        );
        assert_eq!(part(&["更正公告"]), Some("amendment"));
        assert_eq!(part(&["第三章：合同草案"]), Some("contract"));
        assert_eq!(part(&["第一部分 合同书"]), Some("contract"));
        assert_eq!(part(&["磋商规则知晓确认书"]), Some("forms"));
        assert_eq!(part(&["法定代表人授权书（参考格式）"]), Some("forms"));
        assert_eq!(
            part(&["第二章 采购须知", "六、合同签订、履行和项目验收"]),
            Some("instructions")
        );
        assert_eq!(part(&["商务、技术要求及合同条款偏离表"]), Some("forms"));
        assert_eq!(
            part(&["第四章 合同条款及格式", "合同条款偏离表"]),
            Some("contract")
        );
    }

    #[test]
    fn headless_contract_text_is_recognised() {
        let blocks: Vec<Block> = (0..5)
            .map(|i| Block::Paragraph {
                text: format!("{i}.1 承包人应在收到后28天内提交，逾期按违约金计。"),
                page: None,
            })
            .collect();
        let v = classify_section(&[], &blocks);
        assert_eq!(v.category, "contract");
        assert!(!v.keep);
    }
}
