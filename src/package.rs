//! Zipped tender packages: a `.zip` of a tender's files, unpacked within
//! bounds into the task's files, and the rules that say which one is the
//! main document, which are its amendments (in order) and which are
//! attachments, kept and listed but not extracted.
//!
//! Nothing is written to a file system: entries are read into memory one at
//! a time, each through a reader bounded by what its header declares, so a
//! header that lies is caught rather than believed. Every entry is either
//! read or the whole package is refused with a [`ParseError`]: a package
//! whose amendment could not be read would give a summary that looks
//! complete and is wrong.

use std::cmp::Ordering;
use std::io::{Cursor, Read};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use zip::ZipArchive;

use crate::parse::{ParseError, sniff};

/// What a file of a task was taken as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The tender document the summary is read from.
    Main,
    /// An amendment, applied over the main document in its order.
    Amendment,
    /// Stored and listed, not extracted (drawings, bills of quantities...).
    Attachment,
    /// A zip package, unpacked into the task's other files.
    Package,
}

impl Role {
    /// The role's name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Amendment => "amendment",
            Role::Attachment => "attachment",
            Role::Package => "package",
        }
    }
}

/// Bounds on unpacking one package, nested zips included.
#[derive(Debug, Clone)]
pub struct PackageLimits {
    /// Most entries (files and folders, nested ones counted) a package may hold.
    pub max_entries: usize,
    /// Largest entry, decompressed.
    pub max_entry_bytes: u64,
    /// Most bytes all entries may decompress to, together.
    pub max_total_bytes: u64,
    /// Highest ratio of decompressed to compressed size accepted for an
    /// entry over [`RATIO_FLOOR`] bytes.
    pub max_ratio: u64,
}

impl Default for PackageLimits {
    fn default() -> Self {
        PackageLimits {
            max_entries: 1000,
            max_entry_bytes: 64 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            max_ratio: 100,
        }
    }
}

/// Entries smaller than this are not held to [`PackageLimits::max_ratio`]:
/// a small file of blanks compresses a thousandfold and harms nobody.
pub const RATIO_FLOOR: u64 = 1024 * 1024;

/// One file taken out of a package.
#[derive(Debug)]
pub struct Unpacked {
    /// Its path inside the package, `/`-separated; an entry of a nested zip
    /// is named `inner.zip/path`.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its media type, or why tenderflow cannot read it.
    pub media_type: Result<&'static str, ParseError>,
    /// Whether it is a nested zip package (whose entries came before it).
    pub is_package: bool,
}

/// Unpacks the zip `bytes`, handing each file (and each nested package, after
/// its entries) to `each` in archive order. Folders are skipped. A zip inside
/// the package is unpacked too, one level deep; anything deeper, a RAR or 7z
/// inside, a link, a path outside the package, an encrypted entry, or an
/// entry past a limit refuses the whole package.
pub fn unpack(
    bytes: &[u8],
    limits: &PackageLimits,
    each: &mut dyn FnMut(Unpacked) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let mut spent = Spent::default();
    let files = unpack_level(bytes, "", limits, &mut spent, each)?;
    if files == 0 {
        return Err(ParseError::new("empty", "the zip package holds no files"));
    }
    Ok(())
}

/// What the package has used of its limits so far.
#[derive(Default)]
struct Spent {
    entries: usize,
    /// Bytes read out.
    bytes: u64,
    /// Bytes that entries checked but not yet read declare, so that a nested
    /// zip's entries are held to what its outer siblings leave.
    reserved: u64,
}

/// One header, checked, before anything is decompressed.
struct Planned {
    index: usize,
    name: String,
    size: u64,
}

/// Unpacks one zip (the package, or one nested in it under `prefix`);
/// answers how many files it handed over.
fn unpack_level(
    bytes: &[u8],
    prefix: &str,
    limits: &PackageLimits,
    spent: &mut Spent,
    each: &mut dyn FnMut(Unpacked) -> Result<(), ParseError>,
) -> Result<usize, ParseError> {
    let whose = if prefix.is_empty() {
        "the zip package".to_string()
    } else {
        format!("the nested zip {}", prefix.trim_end_matches('/'))
    };
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ParseError::corrupt(format!("{whose} is not a readable zip: {e}")))?;
    if archive.has_duplicate_names() {
        // The zip crate keeps one entry per name: the others would vanish.
        return Err(ParseError::new(
            "unsafe_entry",
            format!("{whose} holds several entries of the same name; repack it"),
        ));
    }
    let plan = check_headers(&mut archive, prefix, limits, spent, &whose)?;
    let mut files = 0;
    for planned in plan {
        let data = read_entry(&mut archive, &planned)?;
        spent.reserved -= planned.size;
        spent.bytes += data.len() as u64;
        let media_type = sniff::sniff(&data, &planned.name);
        match media_type {
            Ok(sniff::ZIP) if prefix.is_empty() => {
                let inner = format!("{}/", planned.name);
                files += unpack_level(&data, &inner, limits, spent, each)?;
                each(Unpacked {
                    name: planned.name,
                    bytes: data,
                    media_type: Ok(sniff::ZIP),
                    is_package: true,
                })?;
            }
            Ok(sniff::ZIP) => {
                return Err(ParseError::new(
                    "unsupported_archive",
                    format!(
                        "{} is a zip inside a zip inside the package: tenderflow unpacks \
                         one level of nesting; unpack it and submit the files",
                        planned.name
                    ),
                ));
            }
            Err(err) if err.kind == "unsupported_archive" => {
                return Err(ParseError::new(
                    "unsupported_archive",
                    format!("{} inside the package: {}", planned.name, err.message),
                ));
            }
            media_type => {
                files += 1;
                each(Unpacked {
                    name: planned.name,
                    bytes: data,
                    media_type,
                    is_package: false,
                })?;
            }
        }
    }
    Ok(files)
}

/// Checks every entry's header against the limits and refuses links, paths
/// outside the package and encrypted entries, before decompressing any.
fn check_headers(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    prefix: &str,
    limits: &PackageLimits,
    spent: &mut Spent,
    whose: &str,
) -> Result<Vec<Planned>, ParseError> {
    spent.entries += archive.len();
    if spent.entries > limits.max_entries {
        return Err(ParseError::too_large(format!(
            "{whose} brings the package to {} entries, over the limit of {}",
            spent.entries, limits.max_entries
        )));
    }
    let mut declared_total = spent.bytes + spent.reserved;
    let mut plan = Vec::new();
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| ParseError::corrupt(format!("{whose}: unreadable entry {index}: {e}")))?;
        // The UTF-8 flag, or an Info-ZIP Unicode-path field (which the zip
        // crate has already put in place of the raw name).
        let says_utf8 = entry.flags().as_u16() & 0x0800 != 0
            || entry
                .extra_data_fields()
                .any(|f| matches!(f, zip::ExtraField::UnicodePath(_)));
        let raw_name = entry_name(entry.name_raw(), says_utf8, entry.name().ok().as_deref());
        let name = safe_path(&raw_name)?;
        let name = format!("{prefix}{name}");
        if entry.is_symlink() {
            return Err(ParseError::new(
                "unsafe_entry",
                format!("{name} in the package is a symbolic link; packages may hold only files"),
            ));
        }
        if entry.is_dir() {
            continue;
        }
        if entry.encrypted() {
            return Err(ParseError::new(
                "encrypted",
                format!(
                    "{name} in the package is encrypted: submit the package without a password"
                ),
            ));
        }
        let size = entry.size();
        if size > limits.max_entry_bytes {
            return Err(ParseError::too_large(format!(
                "{name} in the package decompresses to {size} bytes, over the limit of {}",
                limits.max_entry_bytes
            )));
        }
        let compressed = entry.compressed_size().max(1);
        if size > RATIO_FLOOR && size / compressed > limits.max_ratio {
            return Err(ParseError::too_large(format!(
                "{name} in the package would grow {}-fold ({compressed} to {size} bytes), \
                 over the limit of {}-fold (a zip bomb?)",
                size / compressed,
                limits.max_ratio
            )));
        }
        declared_total = declared_total.saturating_add(size);
        if declared_total > limits.max_total_bytes {
            return Err(ParseError::too_large(format!(
                "the package decompresses to more than {} bytes, over the limit",
                limits.max_total_bytes
            )));
        }
        plan.push(Planned { index, name, size });
    }
    spent.reserved += plan.iter().map(|p| p.size).sum::<u64>();
    Ok(plan)
}

/// Reads one planned entry, refusing one that holds more or fewer bytes
/// than its header declared (the header's size is what the limits checked).
fn read_entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    planned: &Planned,
) -> Result<Vec<u8>, ParseError> {
    let name = &planned.name;
    let entry = archive
        .by_index(planned.index)
        .map_err(|e| ParseError::corrupt(format!("{name} in the package cannot be read: {e}")))?;
    let mut data = Vec::with_capacity(planned.size.min(RATIO_FLOOR) as usize);
    entry
        .take(planned.size.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| ParseError::corrupt(format!("{name} in the package cannot be read: {e}")))?;
    if data.len() as u64 != planned.size {
        let held = if data.len() as u64 > planned.size {
            "more".to_string()
        } else {
            data.len().to_string()
        };
        return Err(ParseError::corrupt(format!(
            "{name} in the package declares {} bytes but holds {held} (a lying header)",
            planned.size
        )));
    }
    Ok(data)
}

/// An entry's name from its raw bytes: UTF-8 when the bytes are valid UTF-8
/// (Info-ZIP on Linux and macOS writes UTF-8 without the zip's UTF-8 flag),
/// else GBK/GB18030 as Chinese Windows writes it, else CP437, the zip
/// format's own default (as the zip crate decodes it). One case is
/// ambiguous: short GBK names can be valid UTF-8 too ("图纸" in GBK reads
/// as "ͼֽ"). Without the flag or a Unicode-path field, bytes that are UTF-8
/// only of two-byte characters (accented Latin, Greek, Cyrillic...) and
/// decode as GBK to Chinese are taken as GBK: real UTF-8 Chinese is made of
/// three-byte characters.
fn entry_name(raw: &[u8], says_utf8: bool, cp437: Option<&str>) -> String {
    let gbk = || encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(raw);
    if let Ok(utf8) = std::str::from_utf8(raw) {
        let two_byte_only = utf8.chars().all(|c| (c as u32) < 0x800);
        if says_utf8 || utf8.is_ascii() || !two_byte_only {
            return utf8.to_string();
        }
        return match gbk() {
            Some(gbk) if gbk.chars().any(is_cjk) => gbk.into_owned(),
            _ => utf8.to_string(),
        };
    }
    if let Some(gbk) = gbk() {
        return gbk.into_owned();
    }
    match cp437 {
        Some(name) => name.to_string(),
        None => String::from_utf8_lossy(raw).into_owned(),
    }
}

/// A CJK ideograph (the unified blocks and extension A).
fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// The entry's path, `/`-separated, or an error when it could reach outside
/// the package: absolute, a drive letter, a `..` component, a NUL.
fn safe_path(name: &str) -> Result<String, ParseError> {
    let unsafe_path = |why: &str| {
        ParseError::new(
            "unsafe_entry",
            format!("the package has an entry named {name:?}, {why}"),
        )
    };
    if name.contains('\0') {
        return Err(unsafe_path("which holds a NUL"));
    }
    // Old Windows tools write `\` between folders.
    let name_slashed = name.replace('\\', "/");
    if name_slashed.starts_with('/') {
        return Err(unsafe_path("an absolute path"));
    }
    let bytes = name_slashed.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Err(unsafe_path("a path with a drive letter"));
    }
    let mut parts = Vec::new();
    for part in name_slashed.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_path("which climbs out of the package (..)")),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(unsafe_path("which names nothing"));
    }
    let mut path = parts.join("/");
    if name_slashed.ends_with('/') {
        path.push('/');
    }
    Ok(path)
}

/// A file of a package as the role rules see it.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    /// Its path inside the package.
    pub name: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type, `None` when tenderflow cannot read it.
    pub media_type: Option<&'a str>,
    /// Why tenderflow cannot read it, when it cannot and the reason is known.
    pub unreadable: Option<&'a str>,
    /// Whether it is a nested package.
    pub is_package: bool,
}

/// A member's role and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// Index into the members.
    pub index: usize,
    /// What it was taken as.
    pub role: Role,
    /// Why, for people.
    pub reason: String,
}

static MAIN_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)招标文件|采购文件|磋商文件|谈判文件|询价文件|bidding[ _-]*documents?|tender[ _-]*documents?|(^|[^a-z])(itb|itt|rfp)([^a-z]|$)")
        .expect("main name regex")
});
static AMENDMENT_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)补遗|澄清|更正|答疑|addend(um|a)?|corrigend(um|a)?|amendments?|clarifications?",
    )
    .expect("amendment name regex")
});
static ATTACHMENT_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)图纸|清单|drawing|(^|[^a-z])boq([^a-z]|$)|bill[ _-]*of[ _-]*quantit")
        .expect("attachment name regex")
});

/// Chooses each member's role: the main document by name (招标文件,
/// 采购文件, 磋商文件, 谈判文件, 询价文件, Bidding/Tender Document, ITB, ITT,
/// RFP), else the largest readable document; amendments by name (补遗, 澄清,
/// 更正, 答疑, Addendum, Corrigendum, Amendment, Clarification) in the
/// natural order of their names; everything else an attachment. Answers the
/// main document first, then the amendments in order, then the rest in
/// archive order. Refuses a package whose main document or an amendment is
/// named but cannot be read, and one with no readable document at all.
pub fn assign_roles(members: &[Member]) -> Result<Vec<Assigned>, ParseError> {
    let candidate = |m: &Member| !m.is_package && !is_system_file(m.name);
    let mut amendments: Vec<usize> = Vec::new();
    let mut named_main: Vec<usize> = Vec::new();
    for (i, m) in members.iter().enumerate().filter(|(_, m)| candidate(m)) {
        if name_says(&AMENDMENT_NAME, m.name).is_some() {
            if m.media_type.is_none() {
                return Err(ParseError::new(
                    "unsupported_type",
                    format!(
                        "{} is named as an amendment but tenderflow cannot read it ({}); \
                         without it the summary would miss its changes",
                        m.name,
                        m.unreadable.unwrap_or("not a format tenderflow reads")
                    ),
                ));
            }
            amendments.push(i);
        } else if name_says(&MAIN_NAME, m.name).is_some()
            && name_says(&ATTACHMENT_NAME, m.name).is_none()
        {
            named_main.push(i);
        }
    }
    amendments.sort_by(|&a, &b| {
        natural_cmp(file_name(members[a].name), file_name(members[b].name)).then(a.cmp(&b))
    });
    let main = choose_main(members, &named_main, &amendments)?;

    let mut out = vec![main.clone()];
    let count = amendments.len();
    for (n, &i) in amendments.iter().enumerate() {
        let word = name_says(&AMENDMENT_NAME, members[i].name).unwrap_or_default();
        out.push(Assigned {
            index: i,
            role: Role::Amendment,
            reason: format!(
                "its name says {word}; amendment {} of {count} in name order",
                n + 1
            ),
        });
    }
    for (i, m) in members.iter().enumerate() {
        if i == main.index || amendments.contains(&i) {
            continue;
        }
        let (role, reason) = if m.is_package {
            (
                Role::Package,
                "a zip inside the package, unpacked".to_string(),
            )
        } else if named_main.contains(&i) {
            (
                Role::Attachment,
                format!(
                    "also named as a main document; {} was taken",
                    members[main.index].name
                ),
            )
        } else if is_system_file(m.name) {
            (Role::Attachment, "operating-system metadata".to_string())
        } else {
            (
                Role::Attachment,
                "not named as the main document or an amendment: stored, not extracted".to_string(),
            )
        };
        out.push(Assigned {
            index: i,
            role,
            reason,
        });
    }
    Ok(out)
}

/// The main document: the best readable one named so, else the largest
/// readable document that is not an amendment or named as an attachment.
fn choose_main(
    members: &[Member],
    named_main: &[usize],
    amendments: &[usize],
) -> Result<Assigned, ParseError> {
    let readable: Vec<usize> = named_main
        .iter()
        .copied()
        .filter(|&i| members[i].media_type.is_some())
        .collect();
    if let Some(best) = best_main(members, &readable) {
        let word = name_says(&MAIN_NAME, members[best].name).unwrap_or_default();
        return Ok(Assigned {
            index: best,
            role: Role::Main,
            reason: format!("its name says {word}"),
        });
    }
    if let Some(&unreadable) = named_main.first() {
        return Err(ParseError::new(
            "unsupported_type",
            format!(
                "{} is named as the main document but tenderflow cannot read it ({})",
                members[unreadable].name,
                members[unreadable]
                    .unreadable
                    .unwrap_or("not a format tenderflow reads")
            ),
        ));
    }
    members
        .iter()
        .enumerate()
        .filter(|(i, m)| {
            !m.is_package
                && !is_system_file(m.name)
                && !amendments.contains(i)
                && m.media_type.is_some_and(is_document_type)
                && name_says(&ATTACHMENT_NAME, m.name).is_none()
        })
        .max_by(|(a, ma), (b, mb)| ma.size.cmp(&mb.size).then(b.cmp(a)))
        .map(|(index, _)| Assigned {
            index,
            role: Role::Main,
            reason: "the largest readable document; no file is named as the main one".to_string(),
        })
        .ok_or_else(|| {
            ParseError::new(
                "no_main_document",
                "the package holds no document tenderflow can read as the tender document",
            )
        })
}

/// The last component of a path.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The word of `rule` a file's name (not its folder's) says, if it says one.
fn name_says(rule: &Regex, path: &str) -> Option<String> {
    rule.find(file_name(path)).map(|m| {
        m.as_str()
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_string()
    })
}

/// Of the readable files named as the main document, the one to take: DOCX
/// (its structure is read exactly) before PDF before the rest, then the
/// largest, then the first.
fn best_main(members: &[Member], named: &[usize]) -> Option<usize> {
    let rank = |i: usize| match members[i].media_type {
        Some(sniff::DOCX) => 0,
        Some(sniff::PDF) => 1,
        Some(t) if is_document_type(t) => 2,
        _ => 3,
    };
    named.iter().copied().min_by(|&a, &b| {
        rank(a)
            .cmp(&rank(b))
            .then(members[b].size.cmp(&members[a].size))
            .then(a.cmp(&b))
    })
}

/// Whether a media type is a document that can be the tender itself, not a
/// spreadsheet or an image.
fn is_document_type(media_type: &str) -> bool {
    !(media_type == sniff::XLSX
        || media_type == "application/vnd.ms-excel"
        || media_type.starts_with("image/")
        || media_type == sniff::ZIP)
}

/// macOS resource forks and folder metadata that zip tools add.
fn is_system_file(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    name.starts_with("__MACOSX/")
        || file.starts_with("._")
        || file.eq_ignore_ascii_case(".DS_Store")
        || file.eq_ignore_ascii_case("Thumbs.db")
        || file.eq_ignore_ascii_case("desktop.ini")
}

/// A piece of a name for natural ordering: a number (Arabic or Chinese
/// numerals) or one other character.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Piece {
    Number(u64),
    Char(char),
}

fn pieces(name: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let chars: Vec<char> = name.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            let mut n: u64 = 0;
            while i < chars.len() && chars[i].is_ascii_digit() {
                n = n
                    .saturating_mul(10)
                    .saturating_add(u64::from(chars[i] as u8 - b'0'));
                i += 1;
            }
            out.push(Piece::Number(n));
        } else if chinese_digit(c).is_some() {
            let start = i;
            while i < chars.len() && chinese_digit(chars[i]).is_some() {
                i += 1;
            }
            out.push(Piece::Number(chinese_number(&chars[start..i])));
        } else {
            out.push(Piece::Char(c.to_ascii_lowercase()));
            i += 1;
        }
    }
    out
}

/// Compares names so that 补遗2 comes before 补遗10 and 第二次 before 第十次.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    pieces(a).cmp(&pieces(b))
}

fn chinese_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        '十' => 10,
        '百' => 100,
        _ => return None,
    })
}

/// The value of a run of Chinese numerals: 十二 is 12, 二十三 is 23, 一百零五 is 105.
fn chinese_number(run: &[char]) -> u64 {
    let mut total = 0;
    let mut digit = 0;
    for &c in run {
        match chinese_digit(c).unwrap_or(0) {
            unit @ (10 | 100) => {
                total += digit.max(1) * unit;
                digit = 0;
            }
            d => digit = digit * 10 + d,
        }
    }
    total + digit
}

#[cfg(test)]
mod tests;
