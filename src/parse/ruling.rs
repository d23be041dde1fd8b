//! Table rules found in a page image, so that the layout cuts a scanned
//! ruled table into its cells as it does a drawn one.
//!
//! A rule is a long straight run of dark pixels: horizontal runs of a
//! twelfth of the page width or more, vertical runs of a third of an inch
//! or more (longer than any stroke of a character). Runs are followed
//! along the page's skew, so a rule on a scan a degree or two off still
//! reads as one run; adjacent rows of a thick rule merge into one. The
//! rules come out in the deskewed frame that the OCR'd words are put in.

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// An 8-bit gray image.
pub struct Gray {
    /// Pixels across.
    pub width: usize,
    /// Pixels down.
    pub height: usize,
    /// Row-major samples, 0 black.
    pub pixels: Vec<u8>,
}

/// A rule in image pixels, from (x0, y0) to (x1, y1), horizontal or
/// vertical.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelRule {
    /// Left end.
    pub x0: f64,
    /// Top end.
    pub y0: f64,
    /// Right end.
    pub x1: f64,
    /// Bottom end.
    pub y1: f64,
}

/// Darker than this is ink.
const INK: u8 = 170;
/// Light pixels a run may cross (JPEG and scanner noise).
const MAX_GAP: usize = 6;

/// The gray samples of a JPEG or binary PNM page image (`None` for what
/// cannot be decoded, or a JPEG larger than `width` by `height`).
pub fn decode_gray(bytes: &[u8], width: u32, height: u32) -> Option<Gray> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::Luma)
            .set_max_width(width as usize)
            .set_max_height(height as usize);
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
        let pixels = decoder.decode().ok()?;
        let info = decoder.info()?;
        let (w, h) = (usize::from(info.width), usize::from(info.height));
        return (pixels.len() == w * h).then_some(Gray {
            width: w,
            height: h,
            pixels,
        });
    }
    let (magic, w, h, data) = pnm_parts(bytes)?;
    if w > width as usize || h > height as usize {
        return None;
    }
    let pixels = match magic {
        "P5" => data.get(..w.checked_mul(h)?)?.to_vec(),
        "P6" => data
            .get(..w.checked_mul(h)?.checked_mul(3)?)?
            .chunks_exact(3)
            .map(|p| ((u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10) as u8)
            .collect(),
        "P4" => {
            let row = w.div_ceil(8);
            let data = data.get(..row * h)?;
            (0..h)
                .flat_map(|y| {
                    (0..w).map(move |x| {
                        if data[y * row + x / 8] & (0x80 >> (x % 8)) != 0 {
                            0
                        } else {
                            255
                        }
                    })
                })
                .collect()
        }
        _ => return None,
    };
    Some(Gray {
        width: w,
        height: h,
        pixels,
    })
}

/// A binary PNM's magic, size and samples.
fn pnm_parts(bytes: &[u8]) -> Option<(&'static str, usize, usize, &[u8])> {
    let magic = match bytes.get(..2)? {
        b"P4" => "P4",
        b"P5" => "P5",
        b"P6" => "P6",
        _ => return None,
    };
    let fields = if magic == "P4" { 3 } else { 4 };
    let mut values = Vec::new();
    let mut i = 2;
    while values.len() < fields - 1 {
        while bytes.get(i)?.is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while bytes.get(i)?.is_ascii_digit() {
            i += 1;
        }
        values.push(
            std::str::from_utf8(&bytes[start..i])
                .ok()?
                .parse::<usize>()
                .ok()?,
        );
    }
    // One whitespace byte ends the header.
    let data = bytes.get(i + 1..)?;
    Some((magic, values[0], values[1], data))
}

/// The skew of the text lines in radians (positive when they run down to
/// the right), by projection profile: the angle at which the rows of ink
/// are most sharply peaked, searched within ±5° on a quarter-size image,
/// in steps of 0.2° and then 0.02°.
pub fn profile_skew(gray: &Gray) -> f64 {
    const STEP: usize = 4;
    let mut ink = Vec::new();
    for by in 0..gray.height / STEP {
        for bx in 0..gray.width / STEP {
            let dark = (0..STEP).any(|dy| {
                let row = (by * STEP + dy) * gray.width + bx * STEP;
                gray.pixels[row..row + STEP].iter().any(|p| *p < INK)
            });
            if dark {
                ink.push((bx as f64, by as f64));
            }
        }
    }
    let rows = (gray.width + gray.height) / STEP + 2;
    let score = |angle: f64| {
        let (sin, cos) = angle.sin_cos();
        let mut histogram = vec![0u32; 2 * rows];
        for (x, y) in &ink {
            let v = round(y * cos - x * sin) + rows as isize;
            if let Some(h) = histogram.get_mut(v.max(0) as usize) {
                *h += 1;
            }
        }
        histogram.iter().map(|h| f64::from(*h).powi(2)).sum::<f64>()
    };
    let best = |from: f64, to: f64, step: f64| {
        let n = ((to - from) / step).round() as i32;
        // Each angle scored once (`max_by` on the angles would score both
        // sides of every comparison); ties go to the last, as there.
        (0..=n)
            .map(|i| {
                let angle = (from + f64::from(i) * step).to_radians();
                (angle, score(angle))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0.0, |(angle, _)| angle)
    };
    let coarse = best(-5.0, 5.0, 0.2).to_degrees();
    best(coarse - 0.2, coarse + 0.2, 0.02)
}

/// `t.round() as isize` (half away from zero) for the finite values of
/// page coordinates, without a call into libm.
fn round(t: f64) -> isize {
    let whole = t as isize;
    let fraction = t - whole as f64;
    if fraction >= 0.5 {
        whole + 1
    } else if fraction <= -0.5 {
        whole - 1
    } else {
        whole
    }
}

/// `gray` turned by `-angle` about its centre (bilinear, white outside),
/// so that lines skewed by `angle` run level.
pub fn rotated(gray: &Gray, angle: f64) -> Gray {
    let (w, h) = (gray.width, gray.height);
    let (sin, cos) = angle.sin_cos();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let at = |x: isize, y: isize| -> f64 {
        if x < 0 || y < 0 || x as usize >= w || y as usize >= h {
            255.0
        } else {
            f64::from(gray.pixels[y as usize * w + x as usize])
        }
    };
    let mut pixels = Vec::with_capacity(w * h);
    for v in 0..h {
        let dv = v as f64 - cy;
        for u in 0..w {
            let du = u as f64 - cx;
            let x = du * cos - dv * sin + cx;
            let y = du * sin + dv * cos + cy;
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
            let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
            pixels.push((top * (1.0 - fy) + bottom * fy).round() as u8);
        }
    }
    Gray {
        width: w,
        height: h,
        pixels,
    }
}

impl Gray {
    /// The image as a binary PGM file.
    pub fn to_pgm(&self) -> Vec<u8> {
        let mut out = format!("P5\n{} {}\n255\n", self.width, self.height).into_bytes();
        out.extend_from_slice(&self.pixels);
        out
    }
}

/// The horizontal and vertical rules of `gray`, in the frame turned by
/// `-angle` about the image centre (the frame [`super::pdf::scan`] puts
/// the words in).
pub fn find_rules(gray: &Gray, angle: f64) -> Vec<PixelRule> {
    let (w, h) = (gray.width, gray.height);
    if w < 16 || h < 16 {
        return Vec::new();
    }
    let (sin, cos) = angle.sin_cos();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    // Deskewed (u, v) back to the image's (x, y):
    // x = (u - cx) cos - (v - cy) sin + cx, y = (u - cx) sin + (v - cy) cos + cy,
    // stepped along a row in 32.32 fixed point from the row's start (an
    // error under a millionth of a pixel across a page; at angle 0 each
    // row is the image's own, copied in one stretch).
    let (step_x, step_y) = (fixed(cos), fixed(sin));
    let min_h = (w / 12).max(40);
    let min_v = (h / 33).max(40);
    // One pass over the ink, row by row, following each row's run and
    // every column's at once. A column's run is known to have ended only
    // at that column's next ink, so the vertical runs come out of order
    // across columns but in order along each; `merge` sorts each kind by
    // position, stably, so they come out as if the columns had been
    // walked one by one.
    let mut horizontal = Vec::new();
    let mut vertical = Vec::new();
    let mut columns = vec![Run::default(); w];
    let mut samples = vec![255; w];
    for v in 0..h {
        // The row of the level frame, sampled along the turn.
        let dv = v as f64 - cy;
        let x = fixed(-cx * cos - dv * sin + cx);
        let y = fixed(-cx * sin + dv * cos + cy);
        sample_row(gray, (x, y), (step_x, step_y), &mut samples);
        let mut row = Run::default();
        for u in ink_in(&samples) {
            if let Some((a, b)) = row.ink(u, min_h) {
                horizontal.push((v as f64, a as f64, b as f64));
            }
            if let Some((a, b)) = columns[u].ink(v, min_v) {
                vertical.push((u as f64, a as f64, b as f64));
            }
        }
        if let Some((a, b)) = row.finish(min_h) {
            horizontal.push((v as f64, a as f64, b as f64));
        }
    }
    for (u, column) in columns.iter().enumerate() {
        if let Some((a, b)) = column.finish(min_v) {
            vertical.push((u as f64, a as f64, b as f64));
        }
    }
    let mut rules: Vec<PixelRule> = merge(horizontal)
        .into_iter()
        .map(|(y, x0, x1)| PixelRule {
            x0,
            y0: y,
            x1,
            y1: y,
        })
        .collect();
    rules.extend(merge(vertical).into_iter().map(|(x, y0, y1)| PixelRule {
        x0: x,
        y0,
        x1: x,
        y1,
    }));
    rules
}

/// Samples `gray` along a line from `start` by `step` per sample (32.32
/// fixed point, `step.0` at most one pixel), filling `out`; white outside
/// the image. The line crosses the image's rows and columns in straight
/// stretches (at a degree's turn, a row's samples move to the next image
/// row every 57), each copied whole: sample `k` is pixel
/// `(floor(x + k step.0), floor(y + k step.1))`, as stepping one by one
/// would give.
fn sample_row(gray: &Gray, start: (i64, i64), step: (i64, i64), out: &mut [u8]) {
    const ONE: i64 = 1 << 32;
    let (w, h) = (gray.width, gray.height);
    let (mut x, mut y) = start;
    let mut u = 0;
    while u < out.len() {
        let (px, py) = (x >> 32, y >> 32);
        // Samples while x keeps to one pixel a sample: its fraction falls
        // by ONE - step.0 a sample and must stay at or above zero.
        let (fx, lag) = (x - (px << 32), ONE - step.0);
        let along = if lag <= 0 { i64::MAX } else { fx / lag + 1 };
        // Samples while y keeps to its row.
        let fy = y - (py << 32);
        let down = match step.1 {
            0 => i64::MAX,
            s if s > 0 => (ONE - fy - 1) / s + 1,
            s => fy / -s + 1,
        };
        let n = along.min(down).min((out.len() - u) as i64) as usize;
        let segment = &mut out[u..u + n];
        segment.fill(255);
        if (0..h as i64).contains(&py) {
            // The part of [px, px + n) inside the row.
            let from = px.max(0);
            let to = (px + n as i64).min(w as i64);
            if from < to {
                let row = py as usize * w;
                let (from, to) = (from as usize, to as usize);
                let at = (from as i64 - px) as usize;
                segment[at..at + (to - from)].copy_from_slice(&gray.pixels[row + from..row + to]);
            }
        }
        x += n as i64 * step.0;
        y += n as i64 * step.1;
        u += n;
    }
}

/// `t` in 32.32 fixed point, floored.
fn fixed(t: f64) -> i64 {
    (t * (1u64 << 32) as f64).floor() as i64
}

/// Runs of ink at least `min` long along a line of `len` pixels, crossing
/// gaps of up to [`MAX_GAP`].
#[cfg(test)]
fn runs(len: usize, min: usize, ink: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    let mut run = Run::default();
    let mut out: Vec<(usize, usize)> = (0..len)
        .filter(|i| ink(*i))
        .filter_map(|i| run.ink(i, min))
        .collect();
    out.extend(run.finish(min));
    out
}

/// The positions of the ink samples of a row, skipping light stretches
/// a block at a time (most of a page is paper).
fn ink_in(samples: &[u8]) -> impl Iterator<Item = usize> + '_ {
    const BLOCK: usize = 32;
    samples
        .chunks(BLOCK)
        .enumerate()
        // The lightest-of test folds to vector minimums.
        .filter(|(_, block)| block.iter().fold(u8::MAX, |m, p| m.min(*p)) < INK)
        .flat_map(|(i, block)| {
            block
                .iter()
                .enumerate()
                .filter(|(_, p)| **p < INK)
                .map(move |(j, _)| i * BLOCK + j)
        })
}

/// A run of ink being followed along one line of pixels, told only of
/// the line's ink: a run ends at the first ink after more than
/// [`MAX_GAP`] light pixels, or at the end of the line.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    start: Option<usize>,
    last_ink: usize,
}

impl Run {
    /// Ink at pixel `i` (past the last ink); the run it shows has ended,
    /// if that run is at least `min` long.
    fn ink(&mut self, i: usize, min: usize) -> Option<(usize, usize)> {
        let ended = match self.start {
            None => {
                self.start = Some(i);
                None
            }
            Some(s) if i - self.last_ink > MAX_GAP + 1 => {
                self.start = Some(i);
                (self.last_ink - s + 1 >= min).then_some((s, self.last_ink))
            }
            Some(_) => None,
        };
        self.last_ink = i;
        ended
    }

    /// The run still open at the end of the line, if long enough.
    fn finish(&self, min: usize) -> Option<(usize, usize)> {
        let s = self.start?;
        (self.last_ink - s + 1 >= min).then_some((s, self.last_ink))
    }
}

/// Runs on neighbouring lines (a thick or stepped rule) that overlap,
/// merged into one at their mean position: (position, start, end).
fn merge(mut runs: Vec<(f64, f64, f64)>) -> Vec<(f64, f64, f64)> {
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // (sum of positions, count, last position, start, end)
    let mut groups: Vec<(f64, f64, f64, f64, f64)> = Vec::new();
    for (pos, a, b) in runs {
        let found = groups
            .iter_mut()
            .rev()
            .take_while(|g| pos - g.2 <= 3.0)
            .find(|g| a <= g.4 && b >= g.3);
        match found {
            Some(g) => {
                g.0 += pos;
                g.1 += 1.0;
                g.2 = pos;
                g.3 = g.3.min(a);
                g.4 = g.4.max(b);
            }
            None => groups.push((pos, 1.0, pos, a, b)),
        }
    }
    groups
        .into_iter()
        .map(|(sum, n, _, a, b)| (sum / n, a, b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white image with a 3-pixel-thick box and a short stroke.
    fn boxed(w: usize, h: usize) -> Gray {
        let mut pixels = vec![255u8; w * h];
        let mut dark = |x: usize, y: usize| pixels[y * w + x] = 0;
        for x in 20..w - 20 {
            for t in 0..3 {
                dark(x, 30 + t);
                dark(x, h - 30 + t);
            }
        }
        for y in 30..h - 27 {
            for t in 0..3 {
                dark(20 + t, y);
                dark(w - 22 + t, y);
            }
        }
        // A character's stroke: too short for a rule.
        for y in 100..130 {
            dark(200, y);
        }
        Gray {
            width: w,
            height: h,
            pixels,
        }
    }

    #[test]
    fn a_box_gives_four_rules_and_a_stroke_none() {
        let rules = find_rules(&boxed(600, 400), 0.0);
        assert_eq!(rules.len(), 4, "{rules:?}");
        let top = rules[0];
        assert!(
            (top.y0 - 31.0).abs() < 0.01 && top.x0 == 20.0 && top.x1 == 580.0,
            "{top:?}"
        );
        assert!(rules.iter().all(|r| r.x0 != 200.0));
    }

    /// Text-like rows of ink, running down to the right by `slope`.
    fn lines(w: usize, h: usize, slope: f64) -> Gray {
        let mut pixels = vec![255u8; w * h];
        for row in 0..8 {
            for x in 40..w - 40 {
                // Dashes, as words are: ink and gaps along the line.
                if x % 30 < 22 {
                    let y = (60.0 + row as f64 * 60.0 + x as f64 * slope) as usize;
                    for t in 0..12 {
                        pixels[(y + t) * w + x] = 0;
                    }
                }
            }
        }
        Gray {
            width: w,
            height: h,
            pixels,
        }
    }

    #[test]
    fn the_profile_finds_the_skew_and_turning_levels_it() {
        let slope = 1.5_f64.to_radians().tan();
        let gray = lines(1200, 600, slope);
        let angle = profile_skew(&gray);
        // Within the quarter-size image's resolution; the words' slope
        // takes out what is left.
        assert!(
            (angle.to_degrees() - 1.5).abs() <= 0.15,
            "{}",
            angle.to_degrees()
        );
        let level = rotated(&gray, angle);
        assert!(profile_skew(&level).to_degrees().abs() <= 0.15);
        assert!(profile_skew(&lines(1200, 600, 0.0)).to_degrees().abs() <= 0.15);
        let pgm = level.to_pgm();
        assert!(pgm.starts_with(b"P5\n1200 600\n255\n"));
        assert_eq!(pgm.len(), 16 + 1200 * 600);
    }

    #[test]
    fn a_row_sampled_in_stretches_is_the_row_sampled_one_by_one() {
        let (w, h) = (301, 203);
        let gray = Gray {
            width: w,
            height: h,
            pixels: (0..w * h).map(|i| (i * 31 % 251) as u8).collect(),
        };
        for degrees in [0.0, 0.13, -0.7, 1.9, -4.4, 9.9] {
            let (sin, cos) = f64::to_radians(degrees).sin_cos();
            let step = (fixed(cos), fixed(sin));
            for start in [
                (-40.3, 10.9),
                (0.0, 0.0),
                (12.5, 190.2),
                (-0.5, -3.7),
                (250.0, 100.01),
            ] {
                let start = (fixed(start.0), fixed(start.1));
                let mut stretches = vec![0; w + 37];
                sample_row(&gray, start, step, &mut stretches);
                let (mut x, mut y) = start;
                let one_by_one: Vec<u8> = (0..w + 37)
                    .map(|_| {
                        let (px, py) = ((x >> 32) as usize, (y >> 32) as usize);
                        x += step.0;
                        y += step.1;
                        if px < w && py < h {
                            gray.pixels[py * w + px]
                        } else {
                            255
                        }
                    })
                    .collect();
                assert_eq!(stretches, one_by_one, "{degrees}° from {start:?}");
            }
        }
    }

    #[test]
    fn round_is_f64_round() {
        for t in [
            0.0,
            0.49999999999999994,
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.49,
            7.0,
            -7.0,
            1e9 + 0.5,
        ] {
            assert_eq!(round(t), t.round() as isize, "{t}");
        }
        for i in -2000..2000 {
            let t = f64::from(i) * 0.137 + 0.0001 * f64::from(i % 7);
            assert_eq!(round(t), t.round() as isize, "{t}");
        }
    }

    #[test]
    fn runs_cross_small_gaps_only() {
        let line: Vec<bool> = (0..100).map(|i| !(50..53).contains(&i)).collect();
        assert_eq!(runs(100, 60, |i| line[i]), vec![(0, 99)]);
        let line: Vec<bool> = (0..100).map(|i| !(40..50).contains(&i)).collect();
        assert_eq!(runs(100, 30, |i| line[i]), vec![(0, 39), (50, 99)]);
    }

    #[test]
    fn pnm_decodes_and_garbage_does_not() {
        let g = decode_gray(b"P5\n2 1\n255\n\x00\xff", 2, 1).expect("pgm");
        assert_eq!(g.pixels, vec![0, 255]);
        let g = decode_gray(b"P4\n3 1\n\xa0", 3, 1).expect("pbm");
        assert_eq!(g.pixels, vec![0, 255, 0]);
        assert!(decode_gray(b"P5\n2 2\n255\n\x00", 2, 2).is_none());
        assert!(decode_gray(b"P5\n99999999999999999999 2\n255\n", 2, 2).is_none());
        assert!(
            decode_gray(
                b"P6\n4294967296 4294967296\n255\n",
                usize::MAX as u32,
                u32::MAX
            )
            .is_none()
        );
        assert!(decode_gray(b"P5\n3 1\n255\n\x00\x00\x00", 2, 2).is_none());
        assert!(decode_gray(&[0xFF, 0xD8, 0xFF, 0xC0, 0, 1], 10, 10).is_none());
        assert!(decode_gray(b"", 1, 1).is_none());
    }
}
