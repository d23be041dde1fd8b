//! Scanned pages: OCR'd words placed back on the page as glyphs, so that
//! [`super::layout`] builds their lines, paragraphs, headings and aligned
//! tables as it does a text layer's.
//!
//! Tesseract's own line analysis decides which words share a line (it
//! follows a skewed line, which grouping by box position would break), and
//! every glyph of a line gets that line's baseline, and the line keeps
//! Tesseract's word order (CJK word boxes can overlap). A word's box is
//! split evenly among its characters. Chinese OCR gives half-width
//! punctuation (`:` `,` `(`) where the print has full-width; next to CJK
//! text it is made full-width again, as the rules read it. Sizes come from the height of the line's
//! CJK characters (their boxes are about one em), and sizes within a fifth
//! of the scan's body size are snapped to it: box heights are noisy, and
//! the layout reads a larger size as a heading.

use std::time::Instant;

use lopdf::{Document, ObjectId};

use super::{Glyph, Page, Rule};
use crate::document::{OcrPage, OcrReport, OcrWord};
use crate::parse::ocr::{Budget, Engine, Word};
use crate::parse::page_image::{ImageRequest, PageImage, page_image};
use crate::parse::ruling::{Gray, decode_gray, find_rules, profile_skew, rotated};
use crate::parse::textutil::is_cjk;
use crate::parse::{ParseError, ParseLimits};

/// Sizes this close to the body size (as a ratio) are the body size: a
/// heading is set a third larger or more, and box heights of short lines
/// vary by a fifth.
const SNAP: f64 = 1.3;

/// OCRs the pages `scanned` names (number and object id), one at a time,
/// replacing each page's glyphs and rules with what OCR read.
pub(super) fn ocr_pages(
    doc: &Document,
    pdf: &[u8],
    scanned: &[(u32, ObjectId)],
    pages: &mut [Page],
    engine: &Engine,
    limits: &ParseLimits,
) -> Result<OcrReport, ParseError> {
    if scanned.len() > limits.max_ocr_pages as usize {
        return Err(ParseError::too_large(format!(
            "the PDF has {} scanned pages, over the OCR limit of {}",
            scanned.len(),
            limits.max_ocr_pages
        )));
    }
    let request = ImageRequest {
        pdf,
        max_pixels: limits.max_ocr_pixels,
        renderer: &limits.pdftoppm,
    };
    let mut report = OcrReport {
        engine: engine.name.clone(),
        ..OcrReport::default()
    };
    for (number, id) in scanned {
        if limits.cancel.is_cancelled() {
            return Err(ParseError::new(
                "cancelled",
                "the parse was abandoned during OCR",
            ));
        }
        let budget = Budget {
            deadline: Instant::now() + limits.ocr_page_timeout,
            max_memory: limits.max_ocr_memory,
            cancel: &limits.cancel,
        };
        let image = page_image(doc, *number, *id, &request, &budget)?;
        let (image, gray, turned) = level(image);
        if Instant::now() >= budget.deadline {
            return Err(ParseError::too_large(format!(
                "page {number}: preparing its image for OCR ran past the page's time limit"
            )));
        }
        let words = engine
            .recognise(&image.bytes, image.dpi, &budget)
            .map_err(|e| ParseError::new(e.kind, format!("page {number}: {}", e.message)))?;
        let Some(page) = pages.iter_mut().find(|p| p.number == *number) else {
            continue;
        };
        let angle = skew(&words, image.width).unwrap_or(0.0);
        let words = deskewed(&words, &image, angle);
        page.rules = gray.map_or_else(Vec::new, |g| rules(&g, &image, angle));
        page.glyphs = glyphs(&words, &image);
        drop_rule_strokes(&mut page.glyphs, &page.rules);
        if image.source == "render" {
            // A rendering is of the page as shown (rotation applied).
            page.width = image.placed[2];
            page.height = image.placed[3];
        }
        let mut read = ocr_page(*number, &lines_normalised(&words), &image);
        read.turned = turned.to_degrees() as f32;
        report.pages.push(read);
        // The image is dropped here: one page's at a time.
    }
    let ocr: Vec<u32> = report.pages.iter().map(|p| p.page).collect();
    snap_sizes(pages, &ocr);
    Ok(report)
}

/// The words with their punctuation as [`glyphs`] writes it.
fn lines_normalised(words: &[Word]) -> Vec<Word> {
    let mut out = Vec::with_capacity(words.len());
    for line in words.chunk_by(|a, b| a.line == b.line) {
        out.extend(full_width_punctuation(line));
    }
    out
}

fn ocr_page(number: u32, words: &[Word], image: &PageImage) -> OcrPage {
    let confidence = if words.is_empty() {
        0.0
    } else {
        words.iter().map(|w| w.confidence).sum::<f32>() / words.len() as f32
    };
    OcrPage {
        page: number,
        confidence,
        dpi: image.dpi,
        source: image.source.to_string(),
        turned: 0.0,
        words: words
            .iter()
            .map(|w| OcrWord {
                text: w.text.clone(),
                confidence: w.confidence,
            })
            .collect(),
    }
}

/// The words as glyphs in page coordinates (points, top-left origin).
fn glyphs(words: &[Word], image: &PageImage) -> Vec<Glyph> {
    let [left, top, width, height] = image.placed;
    let sx = width / f64::from(image.width.max(1));
    let sy = height / f64::from(image.height.max(1));
    let mut glyphs = Vec::new();
    for words in words.chunk_by(|a, b| a.line == b.line) {
        let words = full_width_punctuation(words);
        let words = words.as_slice();
        // The median bottom: one box too tall (Tesseract's are, at
        // times) must not sink the line into the table row below.
        let mut bottoms: Vec<u32> = words.iter().map(|w| w.top + w.height).collect();
        bottoms.sort_unstable();
        let bottom = bottoms[bottoms.len() / 2];
        let baseline = top + f64::from(bottom) * sy;
        let size = line_size(words) * sy;
        // Each glyph a hair right of the one before at least: the layout
        // sorts a line by x, and nudging only the overlapping ones keeps
        // the line's extent as Tesseract measured it.
        let mut last_x = f64::MIN;
        for w in words {
            let chars: Vec<char> = w.text.chars().collect();
            let step = f64::from(w.width) * sx / chars.len().max(1) as f64;
            let x0 = left + f64::from(w.left) * sx;
            for (i, c) in chars.iter().enumerate() {
                let x = (x0 + step * i as f64).max(last_x + 0.01);
                last_x = x;
                glyphs.push(Glyph {
                    x,
                    y: baseline,
                    width: step,
                    size,
                    text: c.to_string(),
                });
            }
        }
    }
    glyphs
}

/// Skews under this are left as they are.
const MIN_TURN: f64 = 0.2 * std::f64::consts::PI / 180.0;

/// The page image turned level when its lines are skewed (measured by
/// projection profile), with its gray samples and the angle turned.
/// Tesseract follows skewed lines, but reads their characters better
/// upright: on a dev page turned 1.3°, "480 日历天" read as "480 Hk"
/// until the image was turned back. An image that cannot be decoded goes
/// to OCR as it is, without rules.
fn level(image: PageImage) -> (PageImage, Option<Gray>, f64) {
    let Some(gray) = decode_gray(&image.bytes, image.width, image.height) else {
        return (image, None, 0.0);
    };
    let angle = profile_skew(&gray);
    if angle.abs() < MIN_TURN {
        return (image, Some(gray), 0.0);
    }
    let level = rotated(&gray, angle);
    let image = PageImage {
        bytes: level.to_pgm(),
        ..image
    };
    (image, Some(level), angle)
}

/// The table rules of the page image, in page coordinates of the
/// deskewed frame.
fn rules(gray: &Gray, image: &PageImage, angle: f64) -> Vec<Rule> {
    let [left, top, width, height] = image.placed;
    let sx = width / gray.width.max(1) as f64;
    let sy = height / gray.height.max(1) as f64;
    find_rules(gray, angle)
        .into_iter()
        .map(|r| Rule {
            x0: left + r.x0 * sx,
            y0: top + r.y0 * sy,
            x1: left + r.x1 * sx,
            y1: top + r.y1 * sy,
        })
        .collect()
}

/// Drops the glyphs Tesseract read from a vertical rule's stroke (`|`,
/// `[`, `【`...): they stand on the rule, inside its extent.
fn drop_rule_strokes(glyphs: &mut Vec<Glyph>, rules: &[Rule]) {
    // Not "1", "l" or "I": a value's last character may stand by a rule.
    const STROKES: &[&str] = &["|", "丨", "[", "]", "【", "】"];
    glyphs.retain(|g| {
        if !STROKES.contains(&g.text.as_str()) {
            return true;
        }
        // A word's box is split evenly among its characters, so the
        // stroke's glyph may be a character wide: the rule falls in it.
        let slack = g.size * 0.3;
        !rules.iter().any(|r| {
            !r.is_horizontal()
                && r.x0 >= g.x - slack
                && r.x0 <= g.x + g.width + slack
                && g.y >= r.y0
                && g.y - g.size <= r.y1
        })
    });
}

/// The words with their boxes turned about the image centre so that the
/// text lines run level. Tesseract reads skewed lines well (it follows
/// them itself), so the image is not turned, only the geometry the layout
/// reads: on a scan a degree and a half off, the left margin drifts by a
/// fifth of an inch from the top of the page to the bottom, enough to
/// break paragraphs and columns.
pub(super) fn deskewed(words: &[Word], image: &PageImage, angle: f64) -> Vec<Word> {
    if angle == 0.0 {
        return words.to_vec();
    }
    let (sin, cos) = angle.sin_cos();
    let (cx, cy) = (f64::from(image.width) / 2.0, f64::from(image.height) / 2.0);
    words
        .iter()
        .map(|w| {
            let (x, y) = (f64::from(w.left) - cx, f64::from(w.top + w.height) - cy);
            let left = x * cos + y * sin + cx;
            let bottom = -x * sin + y * cos + cy;
            Word {
                left: left.max(0.0).round() as u32,
                top: (bottom - f64::from(w.height)).max(0.0).round() as u32,
                ..w.clone()
            }
        })
        .collect()
}

/// The skew of the text lines in radians (positive when they run down to
/// the right), the median over long lines of the slope of their word
/// bottoms; `None` when no line is long enough or the skew is negligible.
fn skew(words: &[Word], image_width: u32) -> Option<f64> {
    let mut slopes: Vec<f64> = Vec::new();
    for line in words.chunk_by(|a, b| a.line == b.line) {
        let mut heights: Vec<u32> = line.iter().map(|w| w.height).collect();
        heights.sort_unstable();
        let typical = f64::from(heights[heights.len() / 2]);
        // Commas and full stops sit low and small: only full-height words.
        let points: Vec<(f64, f64)> = line
            .iter()
            .filter(|w| f64::from(w.height) >= typical * 0.7)
            .map(|w| {
                (
                    f64::from(w.left) + f64::from(w.width) / 2.0,
                    f64::from(w.top + w.height),
                )
            })
            .collect();
        let span = points.last().map_or(0.0, |l| l.0) - points.first().map_or(0.0, |f| f.0);
        if points.len() < 4 || span < f64::from(image_width) * 0.3 {
            continue;
        }
        let n = points.len() as f64;
        let (mx, my) = (
            points.iter().map(|p| p.0).sum::<f64>() / n,
            points.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        if sxx > 0.0 {
            slopes.push(sxy / sxx);
        }
    }
    if slopes.len() < 3 {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let angle = slopes[slopes.len() / 2].atan();
    // Under a tenth of a degree, or past what a feeder does: leave it.
    (angle.abs() > 0.1_f64.to_radians() && angle.abs() < 10_f64.to_radians()).then_some(angle)
}

/// Half-width punctuation next to CJK text (within a line, across word
/// boundaries) as its full-width form.
pub(super) fn full_width_punctuation(words: &[Word]) -> Vec<Word> {
    let chars: Vec<char> = words.iter().flat_map(|w| w.text.chars()).collect();
    let mut at: usize = 0;
    words
        .iter()
        .map(|w| {
            let text = w
                .text
                .chars()
                .map(|c| {
                    let i = at;
                    at += 1;
                    let wide = full_width(c);
                    let near_cjk = chars.get(i.wrapping_sub(1)).is_some_and(|p| is_cjk(*p))
                        || chars.get(i + 1).is_some_and(|n| is_cjk(*n));
                    match wide {
                        Some(wide) if near_cjk => wide,
                        _ => c,
                    }
                })
                .collect();
            Word { text, ..w.clone() }
        })
        .collect()
}

fn full_width(c: char) -> Option<char> {
    Some(match c {
        ',' => '，',
        ':' => '：',
        ';' => '；',
        '(' => '（',
        ')' => '）',
        '!' => '！',
        '?' => '？',
        _ => return None,
    })
}

/// A line's measured height in image pixels: the lower median height of
/// its ideographs (a CJK glyph's box is close to its em; Tesseract's boxes
/// of single characters are often too tall, seldom too short), counting
/// each character, else the upper quartile of its words' heights.
fn line_size(words: &[Word]) -> f64 {
    let mut heights: Vec<u32> = words
        .iter()
        .filter(|w| w.text.chars().all(is_ideograph))
        .flat_map(|w| std::iter::repeat_n(w.height, w.text.chars().count()))
        .collect();
    if heights.is_empty() {
        // Latin words are as tall as their letters: x-height words ("was",
        // "on") are two thirds of those with ascenders or capitals, so the
        // upper quartile measures the line.
        let mut latin: Vec<u32> = words.iter().map(|w| w.height).collect();
        latin.sort_unstable();
        return latin
            .get(latin.len() * 3 / 4)
            .map_or(10.0, |h| f64::from(*h));
    }
    heights.sort_unstable();
    heights
        .get(heights.len().saturating_sub(1) / 2)
        .map_or(10.0, |h| f64::from(*h))
}

/// A CJK character that is not punctuation.
fn is_ideograph(c: char) -> bool {
    is_cjk(c) && !('\u{3000}'..='\u{303F}').contains(&c) && !('\u{FF00}'..='\u{FFEF}').contains(&c)
}

/// Sizes for the layout from the measured heights: a line measured from
/// ideographs is compared with the scan's typical ideograph height, a
/// Latin line with the typical Latin line; within [`SNAP`] of it, it is
/// body text, set in the body size; past it, a heading, set larger by as
/// much.
fn snap_sizes(pages: &mut [Page], ocr: &[u32]) {
    let same_line = |a: &Glyph, b: &Glyph| a.y == b.y && a.size == b.size;
    let has_ideograph = |line: &[Glyph]| line.iter().any(|g| g.text.chars().any(is_ideograph));
    let mut cjk = Vec::new();
    let mut latin = Vec::new();
    for page in pages.iter().filter(|p| ocr.contains(&p.number)) {
        for line in page.glyphs.chunk_by(same_line) {
            let into = if has_ideograph(line) {
                &mut cjk
            } else {
                &mut latin
            };
            into.extend(std::iter::repeat_n(line[0].size, line.len()));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    // The body size is the script most of the text is in: a few garbage
    // ideographs read off the dot leaders of an English contents page
    // must not set it.
    let cjk_first = cjk.len() >= latin.len();
    let (cjk, latin) = (median(&mut cjk), median(&mut latin));
    let body = if cjk_first {
        cjk.or(latin)
    } else {
        latin.or(cjk)
    };
    let Some(body) = body else {
        return;
    };
    let body = (body * 2.0).round() / 2.0;
    for page in pages.iter_mut().filter(|p| ocr.contains(&p.number)) {
        for line in page.glyphs.chunk_by_mut(same_line) {
            let typical = if has_ideograph(line) { cjk } else { latin }.unwrap_or(body);
            let ratio = line[0].size / typical.max(0.1);
            let snapped = if ratio < SNAP {
                body
            } else {
                (body * ratio * 2.0).round() / 2.0
            };
            line.iter_mut().for_each(|g| g.size = snapped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, left: u32, top: u32, height: u32, line: u32) -> Word {
        Word {
            text: text.to_string(),
            confidence: 90.0,
            left,
            top,
            width: 50 * text.chars().count() as u32,
            height,
            line: (1, 1, line),
        }
    }

    fn image() -> PageImage {
        PageImage {
            bytes: Vec::new(),
            width: 2480,
            height: 3508,
            dpi: 300,
            placed: [0.0, 0.0, 595.2, 841.92],
            source: "image",
        }
    }

    #[test]
    fn words_of_a_line_share_its_baseline_and_split_into_characters() {
        // The second word sits lower, as on a skewed scan: still one line.
        let words = [word("投标", 300, 400, 50, 1), word("截止", 420, 430, 50, 1)];
        let glyphs = glyphs(&words, &image());
        assert_eq!(glyphs.len(), 4);
        assert!(glyphs.iter().all(|g| g.y == glyphs[0].y));
        assert!((glyphs[0].y - 480.0 * 0.24).abs() < 1e-9);
        assert!((glyphs[1].x - glyphs[0].x - 50.0 * 0.24).abs() < 1e-9);
        assert!((glyphs[0].size - 12.0).abs() < 1e-9);
    }

    #[test]
    fn a_line_keeps_tesseracts_word_order_when_boxes_overlap() {
        let words = [word("申", 300, 400, 50, 1), word("请人", 320, 400, 50, 1)];
        let glyphs = glyphs(&words, &image());
        let mut sorted = glyphs.clone();
        sorted.sort_by(|a, b| a.x.total_cmp(&b.x));
        let text: String = sorted.iter().map(|g| g.text.as_str()).collect();
        assert_eq!(text, "申请人");
    }

    #[test]
    fn punctuation_next_to_cjk_is_full_width_and_latin_keeps_its_own() {
        let words = [
            word("编号:", 0, 0, 50, 1),
            word("LX-1", 0, 0, 50, 1),
            word("(", 0, 0, 50, 1),
            word("一)", 0, 0, 50, 1),
            word("a,b", 0, 0, 50, 1),
        ];
        let texts: Vec<String> = full_width_punctuation(&words)
            .into_iter()
            .map(|w| w.text)
            .collect();
        assert_eq!(texts, ["编号：", "LX-1", "（", "一）", "a,b"]);
    }

    #[test]
    fn a_skewed_page_is_levelled() {
        // Three long lines running down to the right by 2 px in 100.
        let mut words = Vec::new();
        for line in 0..3u32 {
            for i in 0..8u32 {
                let left = 200 + i * 250;
                let mut w = word("字", left, 500 + line * 100 + left / 50, 50, line);
                w.width = 50;
                words.push(w);
            }
        }
        let angle = skew(&words, 2480).expect("a skew");
        assert!((angle - 0.02_f64.atan()).abs() < 1e-3, "{angle}");
        let level = deskewed(&words, &image(), angle);
        for line in level.chunk_by(|a, b| a.line == b.line) {
            let tops: Vec<u32> = line.iter().map(|w| w.top).collect();
            assert!(
                tops.iter().max().unwrap() - tops.iter().min().unwrap() <= 2,
                "{tops:?}"
            );
        }
        let straight: Vec<Word> = (0..8u32)
            .map(|i| word("字", 200 + i * 250, 500, 50, 0))
            .collect();
        assert_eq!(skew(&straight, 2480), None);
    }

    #[test]
    fn a_line_is_measured_by_its_ideographs_else_its_words() {
        let words = [
            word("Tender", 300, 400, 40, 1),
            word("was", 500, 400, 26, 1),
            word("on", 600, 400, 26, 1),
            word("No.", 700, 400, 40, 1),
        ];
        assert_eq!(line_size(&words), 40.0);
        let words = [
            word("编号：", 300, 400, 70, 1),
            word("招标文件", 400, 400, 44, 1),
            word("LX", 700, 400, 60, 1),
        ];
        assert_eq!(line_size(&words), 44.0);
    }

    #[test]
    fn sizes_near_the_body_snap_to_it_and_headings_keep_theirs() {
        let glyph = |y: f64, size: f64, text: &str| Glyph {
            x: 0.0,
            y,
            width: 1.0,
            size,
            text: text.into(),
        };
        let mut pages = vec![Page {
            number: 1,
            glyphs: vec![
                glyph(10.0, 10.0, "招"),
                glyph(10.0, 10.0, "标"),
                glyph(20.0, 11.0, "文"),
                glyph(30.0, 12.5, "件"),
                glyph(40.0, 15.0, "第"),
                glyph(50.0, 7.0, "A"),
                glyph(60.0, 7.5, "B"),
                glyph(70.0, 12.0, "C"),
            ],
            ..Page::default()
        }];
        snap_sizes(&mut pages, &[1]);
        let sizes: Vec<f64> = pages[0].glyphs.iter().map(|g| g.size).collect();
        assert_eq!(sizes, [11.0, 11.0, 11.0, 11.0, 15.0, 11.0, 11.0, 17.5]);
    }
}
