//! Scoring items: the rows of scoring tables and "报价部分（30分）" lines,
//! and the factor subtotals a front table states.

use std::sync::LazyLock;

use regex::Regex;

use super::clauses::evidence;
use super::normalize::tidy;
use super::text::{clause_number, split_outside_brackets, strip_numbering};
use crate::document::Block;
use crate::filter::{Chunk, ClassifiedDocument};
use crate::summary::ScoringItem;

static POINTS_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(分值|分数|标准分|满分|最高分|权重|权值|分值范围|得分范围|分值区间|weightage|weighting|weights?|points|marks|max(imum)?\s+(score|points|marks)|score)\s*([（(].{0,4}[）)])?$")
        .expect("points header")
});
/// Header words of a column that names the scoring items or factors.
static NAME_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)评|项|因素|要素|指标|内容|名称|criteri|item|factor|description|category|aspect",
    )
    .expect("name header")
});
/// Header words of a numbering column.
static NUMBER_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(序号|条款号|编号|条目号|no\.?|s/?n|sl\.?\s*no\.?)$").expect("number header")
});
/// Points or weight as written: "5分", "0-25", "-30-0分", "40%",
/// "（满分30分）".
static POINTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[（(]?\s*(?:满分|最高|共|计|分值)?\s*(-?\d+(?:\.\d+)?)\s*(?:分\s*)?(?:(?:[-－—–~～]|至)\s*(-?\d+(?:\.\d+)?))?\s*(分|%|％|points?|marks?)?\s*[）)]?$")
        .expect("points")
});
/// A trailing "（30%）" or "（0-25分）" after an item name.
static TRAILING_POINTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\s*[（(][^（()）]*\d[^（()）]*(?:分|%|％)\s*[）)]\s*$").expect("trailing points")
});
static FACTOR_CLEAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(评分标准|评审标准|评分细则)?\s*[（(]\s*\d+(\.\d+)?\s*分\s*[）)]\s*$|评分标准$|评审标准$",
    )
    .expect("factor clean")
});

/// Points or weight read from text: the number (the top of a range) and,
/// for a range, both ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Points {
    /// The number, or the top of the range.
    pub value: f64,
    /// Low and high end of a range.
    pub range: Option<[f64; 2]>,
}

/// Reads "5分", "20", "60%", "0-25", "-30-0分", "（满分30分）".
pub fn parse_points(text: &str) -> Option<Points> {
    let t = super::normalize::fold_width(text.trim());
    let c = POINTS.captures(t.trim())?;
    let a: f64 = c[1].parse().ok()?;
    match c.get(2).and_then(|m| m.as_str().parse::<f64>().ok()) {
        Some(b) => Some(Points {
            value: a.max(b),
            range: Some([a.min(b), a.max(b)]),
        }),
        None => Some(Points {
            value: a,
            range: None,
        }),
    }
}

/// Scoring items of every table with a points column and a name column,
/// and of the evaluation chapter's lines and cells.
pub fn scoring(doc: &ClassifiedDocument, document: usize) -> Vec<ScoringItem> {
    let mut out = Vec::new();
    for chunk in doc.chunks.iter().filter(|c| c.keep && c.part != "forms") {
        let mut pending: Option<String> = None;
        for block in &chunk.blocks {
            match block {
                Block::Table { rows, page, .. } => {
                    if scoring_table(chunk, rows, *page, document, &mut out) {
                        pending = None;
                    } else if chunk.part == "evaluation" {
                        for row in rows {
                            for cell in row {
                                scan_piece(chunk, cell, *page, document, &mut pending, &mut out);
                            }
                        }
                    }
                }
                Block::Paragraph { text, page } | Block::ListItem { text, page, .. }
                    if chunk.part == "evaluation" =>
                {
                    scan_piece(chunk, text, *page, document, &mut pending, &mut out)
                }
                _ => {}
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|i| seen.insert((i.name.clone(), i.points.clone(), i.group.clone())));
    out
}

static SCORE_LINE_CN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[（(]?[0-9一二三四五六七八九十]+[)）、.．]\s*)?(?P<name>[^（(：:，,。；\d][^（(：:，,。；]{1,23}?)\s*[（(](?:满分|最高|共|计)?\s*(?P<pts>-?\d+(?:\.\d+)?(?:\s*分?\s*(?:[-－—–~～]|至)\s*-?\d+(?:\.\d+)?)?)\s*分[)）]")
        .expect("score line")
});
static SCORE_LINE_EN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\(?[0-9a-z]+[.)]\s*)?(?P<name>[A-Z][A-Za-z ,&/-]{2,50}?)\s*(?:[-–:]\s*|\()\s*(?P<pts>\d+(?:\.\d+)?)\s*(?P<unit>%|points|marks)\)?\.?$")
        .expect("score line")
});
/// "技术方案：40分" (one of several in a cell, split at ；).
static SCORE_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[（(]?[0-9一二三四五六七八九十]+[)）、.．]\s*)?(?P<name>[^：:，,。\d]{2,20}?)\s*[：:]\s*(?P<pts>-?\d+(?:\.\d+)?(?:\s*(?:[-－—–~～]|至)\s*-?\d+(?:\.\d+)?)?)\s*分$")
        .expect("score pair")
});
/// The price score stated in a formula sentence: "价格分满分30分".
static PRICE_SENTENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<name>价格分|报价分|价格得分|报价得分|价格部分|报价部分)(?:的)?(?:满分|最高分|最高得|满分为|为|占)\s*(?:为)?\s*(?P<pts>\d+(?:\.\d+)?)\s*分")
        .expect("price sentence")
});
/// "（0-2分）" standing alone, the points of the name before it.
static BARE_POINTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[（(]\s*(?:满分|最高|共|计)?\s*-?\d+(?:\.\d+)?(?:\s*分?\s*(?:[-－—–~～]|至)\s*-?\d+(?:\.\d+)?)?\s*分\s*[）)]$")
        .expect("bare points")
});

/// Grades of a scale ("优：9-10分"), not scoring items.
fn is_grade(name: &str) -> bool {
    matches!(
        name,
        "优" | "优秀"
            | "良"
            | "良好"
            | "中"
            | "中等"
            | "一般"
            | "较好"
            | "较差"
            | "差"
            | "合格"
            | "不合格"
            | "好"
            | "较优"
    )
}

/// A short line that could be an item's name whose points follow.
fn name_only(text: &str) -> Option<String> {
    let t = strip_numbering(text);
    let n = t.chars().count();
    ((2..=20).contains(&n)
        && !t.contains(['，', ',', '。', '；', ';', '：', ':', '（', '('])
        && !t.contains('分')
        && !is_grade(&t))
    .then_some(t)
}

fn push_item(
    out: &mut Vec<ScoringItem>,
    chunk: &Chunk,
    name: &str,
    points: &str,
    group: Option<String>,
    quote: &str,
    page: Option<u32>,
    document: usize,
) {
    let name = tidy(name);
    let Some(p) = parse_points(points) else {
        return;
    };
    if name.is_empty()
        || is_total(&name)
        || name.contains("总分")
        || is_grade(&name)
        || name.to_lowercase().contains("total")
        || (p.range.is_none() && p.value == 0.0)
    {
        return;
    }
    out.push(ScoringItem {
        name,
        points: points.trim().to_string(),
        points_value: Some(p.value),
        points_range: p.range,
        group,
        evidence: evidence(chunk, clause_number(quote), page, quote, document),
    });
}

/// Scoring items written in a line or a cell of the evaluation chapter:
/// "（1）报价部分（30分）", "绿电绿证（0-2分）", "Price – 60 points",
/// "技术方案：40分；售后服务：10分", "价格分满分30分", and a name line
/// followed by its "（0-2分）".
fn scan_piece(
    chunk: &Chunk,
    text: &str,
    page: Option<u32>,
    document: usize,
    pending: &mut Option<String>,
    out: &mut Vec<ScoringItem>,
) {
    let t = text.trim();
    let first = t.lines().next().unwrap_or("").trim();
    if let Some(c) = SCORE_LINE_CN.captures(first) {
        let pts = format!("{}分", c["pts"].trim());
        push_item(out, chunk, &c["name"], &pts, None, t, page, document);
        *pending = None;
        return;
    }
    if let Some(c) = SCORE_LINE_EN.captures(first) {
        let p = format!("{}{}", &c["pts"], if &c["unit"] == "%" { "%" } else { "" });
        push_item(out, chunk, &c["name"], &p, None, t, page, document);
        *pending = None;
        return;
    }
    if BARE_POINTS.is_match(first) {
        if let Some(name) = pending.take() {
            let pts = first
                .trim_matches(['（', '(', '）', ')'])
                .trim()
                .to_string();
            push_item(out, chunk, &name, &pts, None, t, page, document);
        }
        return;
    }
    let mut found = false;
    // Two or more "name：N分" pairs; a single one is as often a grade line.
    let pairs: Vec<(String, String)> = split_outside_brackets(first, &['；', ';'])
        .iter()
        .filter_map(|seg| {
            SCORE_PAIR
                .captures(seg.trim())
                .map(|c| (c["name"].to_string(), format!("{}分", c["pts"].trim())))
        })
        .collect();
    if pairs.len() >= 2 {
        for (name, pts) in pairs {
            push_item(out, chunk, &name, &pts, None, t, page, document);
            found = true;
        }
    }
    for c in PRICE_SENTENCE.captures_iter(t) {
        let pts = format!("{}分", &c["pts"]);
        push_item(out, chunk, &c["name"], &pts, None, t, page, document);
        found = true;
    }
    *pending = if found { None } else { name_only(first) };
}

/// The header of a column: its first line, without a bracketed remark.
fn header_text(h: &str) -> String {
    static REMARK: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[（(][^）)]*[）)]").expect("remark"));
    let first = h.trim().lines().next().unwrap_or("").trim();
    let stripped = REMARK.replace_all(first, "");
    let s = stripped.trim();
    if s.is_empty() { first } else { s }.to_string()
}

/// An item name from its cell: the first line, without numbering or a
/// trailing "（30%）".
fn clean_name(cell: &str) -> String {
    let first = cell.trim().lines().next().unwrap_or("").trim();
    let n = TRAILING_POINTS.replace(first, "");
    tidy(&strip_numbering(n.trim()))
}

/// Points in a points cell: the whole cell, or its first line, or a
/// bracketed "（0-25分）" in it.
fn cell_points(cell: &str) -> Option<String> {
    let t = cell.trim();
    if parse_points(t).is_some() {
        return Some(t.to_string());
    }
    let first = t.lines().next().unwrap_or("").trim();
    if parse_points(first).is_some() {
        return Some(first.to_string());
    }
    static IN_BRACKETS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"[（(]\s*(-?\d+(?:\.\d+)?(?:\s*分?\s*(?:[-－—–~～]|至)\s*-?\d+(?:\.\d+)?)?\s*分)\s*[）)]")
            .expect("in brackets")
    });
    IN_BRACKETS.captures(t).map(|c| c[1].to_string())
}

/// Reads a scoring table; false when the table is not one.
fn scoring_table(
    chunk: &Chunk,
    rows: &[Vec<String>],
    page: Option<u32>,
    document: usize,
    out: &mut Vec<ScoringItem>,
) -> bool {
    let Some(header) = rows.first() else {
        return false;
    };
    let heads: Vec<String> = header.iter().map(|h| header_text(h)).collect();
    let body = &rows[1..];
    let points_col = heads
        .iter()
        .position(|h| POINTS_HEADER.is_match(h))
        .or_else(|| {
            // A 评分标准 column whose cells are "（0-25分）".
            heads.iter().enumerate().position(|(c, h)| {
                (h.contains("评分标准") || h.contains("评审标准"))
                    && body
                        .iter()
                        .filter(|r| r.get(c).is_some_and(|x| cell_points(x).is_some()))
                        .count()
                        * 2
                        > body.len()
            })
        });
    let Some(points_col) = points_col else {
        return false;
    };
    let name_like = |c: usize| {
        let cells: Vec<&String> = body
            .iter()
            .filter_map(|r| r.get(c))
            .filter(|x| !x.trim().is_empty())
            .collect();
        !cells.is_empty()
            && cells
                .iter()
                .filter(|x| {
                    let n = clean_name(x);
                    !n.is_empty() && !looks_like_description(&n) && parse_points(&n).is_none()
                })
                .count()
                * 2
                >= cells.len()
    };
    let candidates: Vec<usize> = (0..heads.len())
        .filter(|&c| {
            c != points_col
                && NAME_HEADER.is_match(&heads[c])
                && !NUMBER_HEADER.is_match(&heads[c])
                && !POINTS_HEADER.is_match(&heads[c])
                && name_like(c)
        })
        .collect();
    let name_col = candidates
        .iter()
        .copied()
        .filter(|&c| c < points_col)
        .max()
        .or_else(|| candidates.first().copied());
    let Some(name_col) = name_col else {
        return false;
    };
    let group_col = candidates.iter().copied().filter(|&c| c < name_col).max();
    let mut last_group: Option<String> = None;
    for row in body {
        let group = match group_col.and_then(|g| row.get(g)) {
            Some(g) if !g.trim().is_empty() => {
                let g = tidy(FACTOR_CLEAN.replace(clean_name_keep(g).as_str(), "").trim());
                last_group = (!g.is_empty()).then_some(g);
                last_group.clone()
            }
            _ => last_group.clone(),
        };
        let Some(raw) = row.get(name_col) else {
            continue;
        };
        let quote = row.join(" | ");
        let points = row.get(points_col).and_then(|p| cell_points(p));
        let (name, points) = match points {
            Some(p) => (clean_name(raw), p),
            None => {
                // A row shifted by a merged cell: "价格部分 |  | 报价分 | 40分".
                let Some(j) = (0..row.len())
                    .find(|&j| j != name_col && parse_points(row[j].trim()).is_some())
                else {
                    continue;
                };
                let Some(n) = (0..j)
                    .rev()
                    .map(|k| clean_name(&row[k]))
                    .find(|n| !n.is_empty())
                else {
                    continue;
                };
                (n, row[j].trim().to_string())
            }
        };
        let mut name = name;
        if name.is_empty() {
            // The name moved right of its column: "价格部分 |  | 报价分 | 40分".
            name = (name_col + 1..points_col.max(name_col + 1))
                .filter_map(|k| row.get(k))
                .map(|c| clean_name(c))
                .find(|n| !n.is_empty() && !looks_like_description(n))
                .unwrap_or_default();
        }
        if looks_like_description(&name) {
            match &group {
                Some(g) => name = g.clone(),
                None => continue,
            }
        }
        if name.is_empty() {
            continue;
        }
        let group = group.filter(|g| *g != name);
        push_item(out, chunk, &name, &points, group, &quote, page, document);
    }
    true
}

/// A factor cell's first line, numbering kept off.
fn clean_name_keep(cell: &str) -> String {
    let first = cell.trim().lines().next().unwrap_or("").trim();
    let joined: String = cell
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("");
    let t = if joined.chars().count() <= 30 {
        joined
    } else {
        first.to_string()
    };
    strip_numbering(&t)
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
                            points_range: None,
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

    #[test]
    fn points_ranges_are_read_as_ranges() {
        assert_eq!(
            parse_points("0-25"),
            Some(Points {
                value: 25.0,
                range: Some([0.0, 25.0])
            })
        );
        assert_eq!(parse_points("-30-0分").unwrap().range, Some([-30.0, 0.0]));
        assert_eq!(parse_points("（满分30分）").unwrap().value, 30.0);
        assert_eq!(parse_points("40%").unwrap().range, None);
        assert!(parse_points("按比例得分").is_none());
    }

    #[test]
    fn tables_with_merged_factor_column_and_shifted_rows() {
        let doc = classified(
            "# 第三章 评审办法\n| 评审内容 | 评分细项 | 评分说明 | 分值（由需求方填写） |\n|---|---|---|---|\n| 商务部分（20分） | 企业资质 | 每提供一个证书得2分，最多得6分。 | 0-6 |\n|  | 类似业绩 | 每个案例得2分。 | 0-14 |\n| 价格部分 |  | 报价得分 | 40分 |\n| 总计 |  |  | 100 |\n",
        );
        let got: Vec<(String, String, Option<[f64; 2]>, Option<String>)> = scoring(&doc, 0)
            .into_iter()
            .map(|i| (i.name, i.points, i.points_range, i.group))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "企业资质".into(),
                    "0-6".into(),
                    Some([0.0, 6.0]),
                    Some("商务部分".into())
                ),
                (
                    "类似业绩".into(),
                    "0-14".into(),
                    Some([0.0, 14.0]),
                    Some("商务部分".into())
                ),
                (
                    "报价得分".into(),
                    "40分".into(),
                    None,
                    Some("价格部分".into())
                ),
            ]
        );
    }

    #[test]
    fn items_in_cells_lines_and_formula_sentences() {
        let doc = classified(
            "# 第三章 评标办法\n1.信用评价\n| （0分） | 失信行为记录（-10-0分） | 存在失信行为的扣10分 |\n|---|---|---|\n绿色认证\n| （0-4分） | 取得认证的得4分 |\n|---|---|\n优：9-10分\n技术方案：40分；售后服务：10分\n价格分满分30分，按公式计算。\n",
        );
        let got: Vec<(String, String)> = scoring(&doc, 0)
            .into_iter()
            .map(|i| (i.name, i.points))
            .collect();
        assert_eq!(
            got,
            vec![
                ("失信行为记录".into(), "-10-0分".into()),
                ("绿色认证".into(), "0-4分".into()),
                ("技术方案".into(), "40分".into()),
                ("售后服务".into(), "10分".into()),
                ("价格分".into(), "30分".into()),
            ]
        );
    }
}
