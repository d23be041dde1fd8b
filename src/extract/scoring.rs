//! Scoring items: the rows of scoring tables and "报价部分（30分）" lines,
//! and the factor subtotals a front table states.

use std::sync::LazyLock;

use regex::Regex;

use super::clauses::evidence;
use super::normalize::tidy;
use super::text::{clause_number, split_outside_brackets};
use crate::document::Block;
use crate::filter::{Chunk, ClassifiedDocument};
use crate::summary::ScoringItem;

static POINTS_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(分值|分数|标准分|满分|最高分|权重|权值|分值范围|weightage|weighting|weights?|points|marks|max(imum)?\s+(score|points|marks)|score)\s*([（(].{0,4}[）)])?$")
        .expect("points header")
});
static NAME_HEADERS: &[&str] = &[
    "评分项",
    "评分子项",
    "评审内容",
    "评分内容",
    "评审细项",
    "子项",
    "评分因素",
    "评审因素",
    "评审项目",
    "评分项目",
    "评审要素",
    "评分要素",
    "项目",
    "内容",
    "criteria",
    "criterion",
    "sub-criteria",
    "item",
    "factor",
    "description",
];
static POINTS_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(\d+(?:\.\d+)?)\s*(分|%|％|points?|marks?)?\s*$").expect("points value")
});
static FACTOR_CLEAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(评分标准|评审标准|评分细则)?\s*[（(]\s*\d+(\.\d+)?\s*分\s*[）)]\s*$|评分标准$|评审标准$",
    )
    .expect("factor clean")
});

/// Scoring items of every table with a points column and a name column.
pub fn scoring(doc: &ClassifiedDocument, document: usize) -> Vec<ScoringItem> {
    let mut out = Vec::new();
    for chunk in doc.chunks.iter().filter(|c| c.keep && c.part != "forms") {
        for block in &chunk.blocks {
            match block {
                Block::Table { rows, page, .. } => {
                    scoring_table(chunk, rows, *page, document, &mut out)
                }
                Block::Paragraph { text, page } if chunk.part == "evaluation" => {
                    scoring_line(chunk, text, *page, document, &mut out)
                }
                _ => {}
            }
        }
    }
    out
}

static SCORE_LINE_CN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[（(]?[0-9一二三四五六七八九十]+[)）、.．]\s*)?(?P<name>[^（(：:，,。；]{2,20}?)\s*[（(](?:满分|最高|共|计)?\s*(?P<pts>\d+(?:\.\d+)?)\s*分[)）]")
        .expect("score line")
});
static SCORE_LINE_EN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\(?[0-9a-z]+[.)]\s*)?(?P<name>[A-Z][A-Za-z ,&/-]{2,50}?)\s*(?:[-–:]\s*|\()\s*(?P<pts>\d+(?:\.\d+)?)\s*(?P<unit>%|points|marks)\)?\.?$")
        .expect("score line")
});

/// Scoring items written as lines of the evaluation chapter: "（1）报价部分
/// （30分）", "Price – 60 points", "Technical (40%)".
fn scoring_line(
    chunk: &Chunk,
    text: &str,
    page: Option<u32>,
    document: usize,
    out: &mut Vec<ScoringItem>,
) {
    let t = text.trim();
    let (c, points) = if let Some(c) = SCORE_LINE_CN.captures(t) {
        let p = format!("{}分", &c["pts"]);
        (c, p)
    } else if let Some(c) = SCORE_LINE_EN.captures(t) {
        let p = format!("{}{}", &c["pts"], if &c["unit"] == "%" { "%" } else { "" });
        (c, p)
    } else {
        return;
    };
    let name = tidy(&c["name"]);
    if is_total(&name) || name.contains("总分") || name.to_lowercase().contains("total") {
        return;
    }
    out.push(ScoringItem {
        name,
        points,
        points_value: c["pts"].parse().ok(),
        group: None,
        evidence: evidence(chunk, clause_number(t), page, t, document),
    });
}

fn header_index(header: &[String], names: &[&str]) -> Vec<usize> {
    let lower: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    names
        .iter()
        .filter_map(|n| lower.iter().position(|h| h == n))
        .collect()
}

fn scoring_table(
    chunk: &Chunk,
    rows: &[Vec<String>],
    page: Option<u32>,
    document: usize,
    out: &mut Vec<ScoringItem>,
) {
    let Some(header) = rows.first() else { return };
    let Some(points_col) = header.iter().position(|h| POINTS_HEADER.is_match(h.trim())) else {
        return;
    };
    let names = header_index(header, NAME_HEADERS);
    let Some(&name_col) = names.first() else {
        return;
    };
    let group_col = names
        .iter()
        .copied()
        .find(|&c| c != name_col && c < name_col);
    for row in rows.iter().skip(1) {
        let (Some(name), Some(points)) = (row.get(name_col), row.get(points_col)) else {
            continue;
        };
        let Some(p) = POINTS_VALUE.captures(points) else {
            continue;
        };
        let group = group_col
            .and_then(|g| row.get(g))
            .map(|g| FACTOR_CLEAN.replace(g.trim(), "").trim().to_string())
            .filter(|g| !g.is_empty());
        let mut name = tidy(name);
        if looks_like_description(&name) {
            match &group {
                Some(g) => name = g.clone(),
                None => continue,
            }
        }
        if name.is_empty() || is_total(&name) {
            continue;
        }
        let quote = row.join(" | ");
        out.push(ScoringItem {
            name,
            points: points.trim().to_string(),
            points_value: p[1].parse().ok(),
            group: group.filter(|g| *g != row[name_col].trim()),
            evidence: evidence(chunk, None, page, &quote, document),
        });
    }
}

fn looks_like_description(name: &str) -> bool {
    let limit = if name.chars().any(super::normalize::is_cjk) {
        24
    } else {
        80
    };
    name.chars().count() > limit
        || name.contains(['；', '。', ';'])
        || (name.contains('，') && name.contains("分"))
}

fn is_total(name: &str) -> bool {
    let n = name.to_lowercase();
    matches!(
        n.as_str(),
        "合计" | "总分" | "小计" | "总计" | "total" | "sub-total" | "subtotal"
    )
}

/// Factor subtotals stated as "施工组织设计：35分；项目管理机构：10分".
pub fn score_totals(doc: &ClassifiedDocument, document: usize) -> Vec<ScoringItem> {
    static TOTAL_LABEL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"分值构成|分值分配|评分构成|权重分配").expect("total label"));
    static PAIR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(.{2,20}?)[：:]\s*(\d+(?:\.\d+)?)\s*分$").expect("pair"));
    let mut out = Vec::new();
    for chunk in doc
        .chunks
        .iter()
        .filter(|c| c.keep && c.part == "evaluation")
    {
        for block in &chunk.blocks {
            let Block::Table { rows, page, .. } = block else {
                continue;
            };
            for row in rows
                .iter()
                .filter(|r| r.len() >= 2 && TOTAL_LABEL.is_match(&r[r.len() - 2]))
            {
                for seg in split_outside_brackets(&row[row.len() - 1], &['；', ';']) {
                    if let Some(c) = PAIR.captures(seg.trim()) {
                        out.push(ScoringItem {
                            name: c[1].trim().to_string(),
                            points: format!("{}分", &c[2]),
                            points_value: c[2].parse().ok(),
                            group: None,
                            evidence: evidence(chunk, None, *page, &row.join(" | "), document),
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(md: &str) -> ClassifiedDocument {
        crate::filter::classify(&crate::parse::text::parse_markdown(md.as_bytes()).unwrap())
    }

    #[test]
    fn scoring_items_written_as_lines() {
        let doc = classified(
            "# 第三章 评审办法\n（1）报价部分（30分）\n（2）技术部分（满分50分）：按响应程度评分。\n总分（100分）\n",
        );
        let items = scoring(&doc, 0);
        let got: Vec<(&str, f64)> = items
            .iter()
            .map(|i| (i.name.as_str(), i.points_value.unwrap()))
            .collect();
        assert_eq!(got, vec![("报价部分", 30.0), ("技术部分", 50.0)]);
        let en =
            classified("# SECTION 3 EVALUATION CRITERIA\nPrice - 60 points\nTechnical (40%)\n");
        let got: Vec<(String, String)> = scoring(&en, 0)
            .into_iter()
            .map(|i| (i.name, i.points))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Price".to_string(), "60".to_string()),
                ("Technical".to_string(), "40%".to_string())
            ]
        );
    }
}
