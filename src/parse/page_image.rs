//! The image of a scanned PDF page, for OCR.
//!
//! A scan is usually one image drawn over the whole page: then its bytes
//! are taken from the PDF as they are (a DCT stream is a JPEG file that
//! Tesseract reads itself) or decoded once (Flate with its predictor, as
//! lopdf does, into a PNM). Anything else (CCITT or JBIG2 images, which
//! Leptonica cannot read from a PDF stream, several images or strips, an
//! inverted or masked image, a rotated page, text drawn as outlines) is
//! rendered whole by poppler's `pdftoppm`, in a subprocess bounded like
//! OCR's. Either way the image is checked against the pixel limit before
//! anything decodes it, and only one page's image is held at a time.

use std::path::Path;

use lopdf::{Dictionary, Document, Object, ObjectId};

use super::ParseError;
use super::ocr::{Budget, installed, limited, run_bounded};

/// Resolution scans are read at: the 300 dpi class that CJK glyphs, with
/// their many strokes, need. Images of lower or much higher resolution are
/// rendered at this one.
pub const OCR_DPI: u32 = 300;
/// Native image resolutions read as they are.
const DIRECT_DPI: std::ops::RangeInclusive<u32> = 200..=600;
/// Lowest resolution a page is rendered at to fit the pixel limit.
const MIN_DPI: u32 = 150;
/// Share of the page an image must cover to be the page's scan.
const MIN_COVER: f64 = 0.85;

/// A page image ready for OCR.
#[derive(Debug)]
pub struct PageImage {
    /// JPEG or PNM bytes.
    pub bytes: Vec<u8>,
    /// Pixels across and down.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// Resolution in dots per inch.
    pub dpi: u32,
    /// Where on the page the image is, in points from the page's top left:
    /// left, top, width, height.
    pub placed: [f64; 4],
    /// `image` (the page's own image) or `render`.
    pub source: &'static str,
}

/// What the caller tells [`page_image`].
pub struct ImageRequest<'a> {
    /// The PDF as submitted (pdftoppm reads it on stdin).
    pub pdf: &'a [u8],
    /// Most pixels the image may have.
    pub max_pixels: u64,
    /// The pdftoppm program.
    pub renderer: &'a Path,
}

/// The image to OCR for page `number` (1-based, object `id`) of `doc`.
pub fn page_image(
    doc: &Document,
    number: u32,
    id: ObjectId,
    request: &ImageRequest,
    budget: &Budget,
) -> Result<PageImage, ParseError> {
    let media = media_box(doc, id);
    if let Some(image) = own_image(doc, id, media, request.max_pixels) {
        return Ok(image);
    }
    render(number, media, request, budget)
}

/// The page's media box as (llx, lly, urx, ury), A4 when unreadable.
fn media_box(doc: &Document, id: ObjectId) -> [f64; 4] {
    let mut current = Some(id);
    // MediaBox is inheritable; the page tree's depth was checked on load.
    for _ in 0..64 {
        let Some(dict) = current.and_then(|c| doc.get_dictionary(c).ok()) else {
            break;
        };
        if let Ok(Object::Array(a)) = dict.get(b"MediaBox").map(|o| deref(doc, o))
            && a.len() == 4
        {
            let v: Vec<f64> = a.iter().filter_map(|o| number(deref(doc, o))).collect();
            if v.len() == 4 && v.iter().all(|x| x.is_finite()) && v[2] > v[0] && v[3] > v[1] {
                return [v[0], v[1], v[2], v[3]];
            }
        }
        current = dict.get(b"Parent").and_then(Object::as_reference).ok();
    }
    [0.0, 0.0, 595.0, 842.0]
}

fn deref<'a>(doc: &'a Document, object: &'a Object) -> &'a Object {
    match object {
        Object::Reference(id) => doc.get_object(*id).unwrap_or(object),
        other => other,
    }
}

fn number(object: &Object) -> Option<f64> {
    match object {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

/// The page's single full-page image, when it is one OCR can read as it
/// is; `None` sends the page to rendering.
fn own_image(doc: &Document, id: ObjectId, media: [f64; 4], max_pixels: u64) -> Option<PageImage> {
    let page = doc.get_dictionary(id).ok()?;
    if page
        .get(b"Rotate")
        .ok()
        .and_then(|r| number(deref(doc, r)))
        .is_some_and(|r| r.rem_euclid(360.0) != 0.0)
    {
        return None;
    }
    let content = doc.get_page_content(id).ok()?;
    let ops = lopdf::content::Content::decode(&content).ok()?;
    let (direct, inherited) = doc.get_page_resources(id).ok()?;
    let mut resources: Vec<&Dictionary> = direct.into_iter().collect();
    resources.extend(inherited.iter().filter_map(|r| doc.get_dictionary(*r).ok()));
    let mut ctm = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let mut saved = Vec::new();
    let mut drawn: Vec<([f64; 6], ObjectId)> = Vec::new();
    for op in &ops.operations {
        match op.operator.as_str() {
            "q" => saved.push(ctm),
            "Q" => ctm = saved.pop().unwrap_or(ctm),
            "cm" => {
                let m: Vec<f64> = op.operands.iter().filter_map(number).collect();
                if m.len() != 6 {
                    return None;
                }
                ctm = multiply([m[0], m[1], m[2], m[3], m[4], m[5]], ctm);
            }
            "Do" => {
                let name = op.operands.first()?.as_name().ok()?;
                let xobject = resources.iter().find_map(|r| xobject(doc, r, name))?;
                drawn.push((ctm, xobject));
            }
            // Inline images and text: not a plain scan.
            "BI" | "Tj" | "TJ" | "'" | "\"" => return None,
            _ => {}
        }
    }
    let [(m, image_id)] = drawn.as_slice() else {
        return None;
    };
    let stream = doc.get_object(*image_id).ok()?.as_stream().ok()?;
    let dict = &stream.dict;
    if dict.get(b"Subtype").and_then(Object::as_name).ok()? != b"Image"
        || dict.get(b"ImageMask").is_ok()
        || dict.get(b"SMask").is_ok()
        || dict.get(b"Mask").is_ok()
        || dict.get(b"Decode").is_ok()
    {
        return None;
    }
    // Upright, not mirrored, covering the page.
    let (a, b, c, d, e, f) = (m[0], m[1], m[2], m[3], m[4], m[5]);
    if b.abs() > 1e-6 || c.abs() > 1e-6 || a <= 0.0 || d <= 0.0 {
        return None;
    }
    let (page_w, page_h) = (media[2] - media[0], media[3] - media[1]);
    let cover_x = (e + a).min(media[2]) - e.max(media[0]);
    let cover_y = (f + d).min(media[3]) - f.max(media[1]);
    if cover_x <= 0.0 || cover_y <= 0.0 || cover_x * cover_y < MIN_COVER * page_w * page_h {
        return None;
    }
    let width = u32::try_from(dict.get(b"Width").ok()?.as_i64().ok()?).ok()?;
    let height = u32::try_from(dict.get(b"Height").ok()?.as_i64().ok()?).ok()?;
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > max_pixels {
        return None;
    }
    let dpi = (f64::from(width) / (a / 72.0)).round();
    let dpi_y = (f64::from(height) / (d / 72.0)).round();
    if !(dpi.is_finite() && (dpi - dpi_y).abs() <= dpi * 0.02) {
        return None;
    }
    let dpi = dpi as u32;
    if !DIRECT_DPI.contains(&dpi) {
        return None;
    }
    let components = match color_components(doc, dict)? {
        n @ (1 | 3) => n,
        _ => return None,
    };
    let bits = dict.get(b"BitsPerComponent").ok()?.as_i64().ok()?;
    let filters = stream.filters().unwrap_or_default();
    let bytes = match filters.as_slice() {
        [b"DCTDecode"] => {
            let bytes = stream.content.clone();
            (jpeg_size(&bytes)? == (width, height)).then_some(bytes)?
        }
        [b"FlateDecode"] | [] => {
            let data = stream.decompressed_content().ok()?;
            pnm(&data, width, height, components, bits)?
        }
        _ => return None,
    };
    Some(PageImage {
        bytes,
        width,
        height,
        dpi,
        placed: [e - media[0], media[3] - (f + d), a, d],
        source: "image",
    })
}

/// `m` applied after `ctm`, as PDF's `cm` concatenates.
fn multiply(m: [f64; 6], ctm: [f64; 6]) -> [f64; 6] {
    [
        m[0] * ctm[0] + m[1] * ctm[2],
        m[0] * ctm[1] + m[1] * ctm[3],
        m[2] * ctm[0] + m[3] * ctm[2],
        m[2] * ctm[1] + m[3] * ctm[3],
        m[4] * ctm[0] + m[5] * ctm[2] + ctm[4],
        m[4] * ctm[1] + m[5] * ctm[3] + ctm[5],
    ]
}

fn xobject(doc: &Document, resources: &Dictionary, name: &[u8]) -> Option<ObjectId> {
    let xobjects = match resources.get(b"XObject").ok()? {
        Object::Dictionary(d) => d,
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        _ => return None,
    };
    xobjects.get(name).ok()?.as_reference().ok()
}

/// Components of the image's colour space, for the spaces OCR can take as
/// they are: gray, RGB, and ICC profiles of one or three components.
fn color_components(doc: &Document, dict: &Dictionary) -> Option<i64> {
    match deref(doc, dict.get(b"ColorSpace").ok()?) {
        Object::Name(n) if n == b"DeviceGray" || n == b"CalGray" => Some(1),
        Object::Name(n) if n == b"DeviceRGB" || n == b"CalRGB" => Some(3),
        Object::Array(a) if a.first().and_then(|o| o.as_name().ok()) == Some(b"ICCBased") => {
            let profile = deref(doc, a.get(1)?).as_stream().ok()?;
            profile.dict.get(b"N").ok()?.as_i64().ok()
        }
        _ => None,
    }
}

/// The frame size a JPEG's first start-of-frame marker gives.
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        // SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let h = u16::from_be_bytes([*bytes.get(i + 5)?, *bytes.get(i + 6)?]);
            let w = u16::from_be_bytes([*bytes.get(i + 7)?, *bytes.get(i + 8)?]);
            return Some((u32::from(w), u32::from(h)));
        }
        i += 2 + len;
    }
    None
}

/// Raw samples as a PNM file: PGM for gray, PPM for RGB, PBM for 1-bit
/// gray (PDF's 1 is white, PBM's is black). `None` when the samples are
/// short of the size the dictionary claims.
fn pnm(data: &[u8], width: u32, height: u32, components: i64, bits: i64) -> Option<Vec<u8>> {
    let (w, h) = (width as usize, height as usize);
    let (magic, row) = match (components, bits) {
        (1, 8) => ("P5", w),
        (3, 8) => ("P6", w * 3),
        (1, 1) => ("P4", w.div_ceil(8)),
        _ => return None,
    };
    let size = row.checked_mul(h)?;
    let samples = data.get(..size)?;
    let header = if magic == "P4" {
        format!("{magic}\n{width} {height}\n")
    } else {
        format!("{magic}\n{width} {height}\n255\n")
    };
    let mut out = Vec::with_capacity(header.len() + size);
    out.extend_from_slice(header.as_bytes());
    if magic == "P4" {
        out.extend(samples.iter().map(|b| !b));
    } else {
        out.extend_from_slice(samples);
    }
    Some(out)
}

/// Renders page `number` with pdftoppm as an 8-bit gray PGM, at
/// [`OCR_DPI`] or lower to fit the pixel limit.
fn render(
    number: u32,
    media: [f64; 4],
    request: &ImageRequest,
    budget: &Budget,
) -> Result<PageImage, ParseError> {
    let (w_in, h_in) = ((media[2] - media[0]) / 72.0, (media[3] - media[1]) / 72.0);
    let fit = ((request.max_pixels as f64) / (w_in * h_in)).sqrt().floor();
    let dpi = (OCR_DPI as f64).min(fit);
    // NaN (a page of no size) fails too.
    if dpi.is_nan() || dpi < MIN_DPI as f64 {
        return Err(ParseError::too_large(format!(
            "page {number} is {w_in:.0} by {h_in:.0} inches: at {MIN_DPI} dpi its image would pass \
             the limit of {} pixels",
            request.max_pixels
        )));
    }
    let dpi = dpi as u32;
    if !installed(request.renderer) {
        return Err(ParseError::new(
            "needs_ocr",
            format!(
                "page {number} needs rendering for OCR, and {} is not installed: install \
                 poppler-utils",
                request.renderer.display()
            ),
        ));
    }
    let mut command = limited(request.renderer, budget.max_memory);
    command
        .args(["-gray", "-r", &dpi.to_string()])
        .args(["-f", &number.to_string(), "-l", &number.to_string()])
        .arg("-");
    let out = run_bounded(command, request.pdf, budget).map_err(|e| match e {
        super::ocr::RunError::Spawn(err) => ParseError::new(
            "needs_ocr",
            format!(
                "page {number} needs rendering for OCR, and {} cannot be run ({err}): \
                 install poppler-utils",
                request.renderer.display()
            ),
        ),
        other => other.into_parse_error("rendering"),
    })?;
    let (width, height) = pgm_size(&out).ok_or_else(|| {
        ParseError::corrupt(format!("page {number} could not be rendered for OCR"))
    })?;
    if u64::from(width) * u64::from(height) > request.max_pixels {
        return Err(ParseError::too_large(format!(
            "page {number} renders to {width} by {height} pixels, over the limit of {}",
            request.max_pixels
        )));
    }
    let scale = 72.0 / f64::from(dpi);
    Ok(PageImage {
        bytes: out,
        width,
        height,
        dpi,
        placed: [
            0.0,
            0.0,
            f64::from(width) * scale,
            f64::from(height) * scale,
        ],
        source: "render",
    })
}

/// Width and height from a binary PGM's header.
fn pgm_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]);
    let mut fields = head.split_ascii_whitespace();
    if fields.next()? != "P5" {
        return None;
    }
    let w = fields.next()?.parse().ok()?;
    let h = fields.next()?.parse().ok()?;
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_size_is_read_from_the_frame_header() {
        // SOI, an APP0 of 4 bytes, SOF0 of a 3x2 gray frame.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00,
            0x02, 0x00, 0x03, 0x01, 0x01, 0x11, 0x00,
        ];
        assert_eq!(jpeg_size(&jpeg), Some((3, 2)));
        assert_eq!(jpeg_size(&jpeg[..10]), None);
        assert_eq!(jpeg_size(b"not a jpeg"), None);
        assert_eq!(jpeg_size(&[0xFF, 0xD8, 0xFF, 0xC0]), None);
    }

    #[test]
    fn samples_become_pnm_and_short_samples_none() {
        let gray = pnm(&[0, 255, 7, 9], 2, 2, 1, 8).expect("pgm");
        assert_eq!(&gray[..], b"P5\n2 2\n255\n\x00\xff\x07\x09");
        let bits = pnm(&[0b1010_0000], 3, 1, 1, 1).expect("pbm");
        assert_eq!(&bits[..], b"P4\n3 1\n\x5f");
        assert!(pnm(&[0; 3], 2, 2, 1, 8).is_none());
        assert!(pnm(&[0; 16], 2, 2, 4, 8).is_none());
        assert!(pnm(&[0; 16], u32::MAX, u32::MAX, 3, 8).is_none());
    }

    #[test]
    fn pgm_header_gives_the_size() {
        assert_eq!(
            pgm_size(b"P5\n2481 3508\n255\n\xff\xff"),
            Some((2481, 3508))
        );
        assert_eq!(pgm_size(b"P6\n1 1\n255\n"), None);
        assert_eq!(pgm_size(b""), None);
    }

    #[test]
    fn cm_concatenates_before_the_current_matrix() {
        let scaled = multiply(
            [2.0, 0.0, 0.0, 3.0, 0.0, 0.0],
            [1.0, 0.0, 0.0, 1.0, 10.0, 20.0],
        );
        assert_eq!(scaled, [2.0, 0.0, 0.0, 3.0, 10.0, 20.0]);
    }
}
