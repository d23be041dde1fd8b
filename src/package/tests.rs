//! The package rules on small packages built byte by byte, so that every
//! field a hostile tool could set (names without the UTF-8 flag, lying
//! sizes, link modes, the encryption flag) is under the test's control.

use std::io::Write;

use proptest::prelude::*;

use super::*;

/// One entry of a hand-built zip.
#[derive(Clone)]
struct Raw {
    name: Vec<u8>,
    data: Vec<u8>,
    deflate: bool,
    flags: u16,
    unix_mode: Option<u32>,
    /// The uncompressed size the headers claim, when it should lie.
    declared: Option<u32>,
}

fn raw(name: &str, data: &[u8]) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        data: data.to_vec(),
        deflate: false,
        flags: if name.is_ascii() { 0 } else { 0x0800 },
        unix_mode: None,
        declared: None,
    }
}

fn deflated(name: &str, data: &[u8]) -> Raw {
    Raw {
        deflate: true,
        ..raw(name, data)
    }
}

/// A zip of `entries`: local headers and data, central directory, end record.
fn build(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let body = if e.deflate {
            let mut enc =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(&e.data).unwrap();
            enc.finish().unwrap()
        } else {
            e.data.clone()
        };
        let mut crc = flate2::Crc::new();
        crc.update(&e.data);
        let method: u16 = if e.deflate { 8 } else { 0 };
        let size = e.declared.unwrap_or(e.data.len() as u32);
        let offset = out.len() as u32;
        let common = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(&20u16.to_le_bytes());
            buf.extend_from_slice(&e.flags.to_le_bytes());
            buf.extend_from_slice(&method.to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // time
            buf.extend_from_slice(&0x21u16.to_le_bytes()); // 1980-01-01
            buf.extend_from_slice(&crc.sum().to_le_bytes());
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buf.extend_from_slice(&size.to_le_bytes());
            buf.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(&0x04034b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&body);

        central.extend_from_slice(&0x02014b50u32.to_le_bytes());
        // Made by Unix (3), so the external attributes carry a mode.
        central.extend_from_slice(&(3u16 << 8 | 20).to_le_bytes());
        common(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        let mode = e.unix_mode.unwrap_or(0o100644);
        central.extend_from_slice(&(mode << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&e.name);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x06054b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The files `unpack` hands over: name, bytes, readable.
fn unpacked(zip: &[u8], limits: &PackageLimits) -> Result<Vec<(String, Vec<u8>)>, ParseError> {
    let mut out = Vec::new();
    unpack(zip, limits, &mut |file| {
        out.push((file.name, file.bytes));
        Ok(())
    })?;
    Ok(out)
}

fn names(zip: &[u8]) -> Vec<String> {
    unpacked(zip, &PackageLimits::default())
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

fn refused(zip: &[u8], limits: &PackageLimits) -> ParseError {
    unpacked(zip, limits).expect_err("the package is refused")
}

#[test]
fn files_come_out_with_their_bytes_and_folders_are_skipped() {
    let zip = build(&[
        raw("docs/", b""),
        raw("docs/招标文件.txt", "第一章 招标公告".as_bytes()),
        deflated(
            "补遗1.md",
            "# 补遗\n\n投标截止时间推迟至2027年1月1日".as_bytes(),
        ),
    ]);
    let files = unpacked(&zip, &PackageLimits::default()).unwrap();
    assert_eq!(
        files,
        vec![
            (
                "docs/招标文件.txt".to_string(),
                "第一章 招标公告".as_bytes().to_vec()
            ),
            (
                "补遗1.md".to_string(),
                "# 补遗\n\n投标截止时间推迟至2027年1月1日"
                    .as_bytes()
                    .to_vec()
            ),
        ]
    );
}

#[test]
fn entry_names_without_the_utf8_flag_are_read_as_gbk_or_cp437() {
    let (gbk, _, _) = encoding_rs::GBK.encode("招标文件.txt");
    let gbk_entry = Raw {
        name: gbk.to_vec(),
        flags: 0,
        ..raw("x", "招标".as_bytes())
    };
    // Info-ZIP writes UTF-8 without the flag.
    let utf8_unflagged = Raw {
        flags: 0,
        ..raw("澄清文件.txt", b"x")
    };
    // 0x81 then '.' is no GB18030 sequence: CP437, where 0x81 is "ü".
    // (Before a letter it would be: GBK wins, as a Chinese office needs.)
    let cp437 = Raw {
        name: b"gr\x81.txt".to_vec(),
        flags: 0,
        ..raw("x", b"x")
    };
    let windows_folders = raw("图纸\\总图.dwg", b"x");
    // "图纸" in GBK is valid UTF-8 ("ͼֽ"): without the flag it is GBK.
    let (short, _, _) = encoding_rs::GBK.encode("图纸.dwg");
    assert!(std::str::from_utf8(&short).is_ok());
    let ambiguous = Raw {
        name: short.to_vec(),
        flags: 0,
        ..raw("x", b"x")
    };
    // With the flag, the same bytes are what the flag says.
    let flagged = Raw {
        name: [b"x/".as_slice(), &short].concat(),
        flags: 0x0800,
        ..raw("x", b"x")
    };
    let accented = raw("café.txt", b"x");
    let zip = build(&[
        gbk_entry,
        utf8_unflagged,
        cp437,
        windows_folders,
        ambiguous,
        flagged,
        accented,
    ]);
    assert_eq!(
        names(&zip),
        vec![
            "招标文件.txt",
            "澄清文件.txt",
            "grü.txt",
            "图纸/总图.dwg",
            "图纸.dwg",
            "x/ͼֽ.dwg",
            "café.txt"
        ]
    );
}

#[test]
fn paths_outside_the_package_are_refused() {
    for name in [
        "../evil.txt",
        "docs/../../evil.txt",
        "/etc/passwd",
        "\\windows\\system.ini",
        "C:\\boot.ini",
        "a\0b.txt",
    ] {
        let zip = build(&[raw("ok.txt", b"fine"), raw(name, b"x")]);
        let err = refused(&zip, &PackageLimits::default());
        assert_eq!(err.kind, "unsafe_entry", "{name:?}: {err}");
    }
    // A `..` hidden in GBK bytes is decoded first, then checked.
    let (gbk, _, _) = encoding_rs::GBK.encode("../招标文件.txt");
    let zip = build(&[Raw {
        name: gbk.to_vec(),
        flags: 0,
        ..raw("x", b"x")
    }]);
    assert_eq!(
        refused(&zip, &PackageLimits::default()).kind,
        "unsafe_entry"
    );
}

#[test]
fn entries_of_the_same_name_are_refused_not_dropped() {
    let zip = build(&[raw("补遗.txt", b"first"), raw("补遗.txt", b"second")]);
    let err = refused(&zip, &PackageLimits::default());
    assert_eq!(err.kind, "unsafe_entry");
}

#[test]
fn links_are_refused() {
    let link = Raw {
        unix_mode: Some(0o120777),
        ..raw("招标文件.txt", b"/etc/passwd")
    };
    let err = refused(&build(&[link]), &PackageLimits::default());
    assert_eq!(err.kind, "unsafe_entry");
    assert!(err.message.contains("symbolic link"), "{err}");
}

#[test]
fn encrypted_entries_are_refused() {
    let locked = Raw {
        flags: 1,
        ..raw("补遗.pdf", b"\x00\x01scrambled")
    };
    let err = refused(
        &build(&[raw("招标文件.txt", b"x"), locked]),
        &PackageLimits::default(),
    );
    assert_eq!(err.kind, "encrypted");
    assert!(err.message.contains("补遗.pdf"), "{err}");
}

#[test]
fn a_bomb_by_ratio_is_refused_from_its_header() {
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let zip = build(&[deflated("招标文件.txt", &zeros)]);
    assert!(zip.len() < 64 * 1024, "the bomb is small: {}", zip.len());
    let err = refused(&zip, &PackageLimits::default());
    assert_eq!(err.kind, "too_large");
    assert!(err.message.contains("zip bomb"), "{err}");
    // Small files of blanks are below the floor and pass.
    let blanks = build(&[deflated("空白.txt", &vec![b' '; 64 * 1024])]);
    assert_eq!(names(&blanks), vec!["空白.txt"]);
}

#[test]
fn a_header_that_lies_about_the_size_is_caught_while_reading() {
    // A bomb whose header claims 1000 bytes: reading stops after 1001.
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let understated = Raw {
        declared: Some(1000),
        ..deflated("招标文件.txt", &zeros)
    };
    let err = refused(&build(&[understated]), &PackageLimits::default());
    assert_eq!(err.kind, "corrupt", "{err}");
    // A header that claims more than the entry holds.
    let overstated = Raw {
        declared: Some(5000),
        ..deflated("招标文件.txt", &[b'a'; 100])
    };
    let err = refused(&build(&[overstated]), &PackageLimits::default());
    assert_eq!(err.kind, "corrupt", "{err}");
}

#[test]
fn entry_count_entry_size_and_total_size_are_bounded() {
    let limits = PackageLimits {
        max_entries: 10,
        max_entry_bytes: 100,
        max_total_bytes: 250,
        ..PackageLimits::default()
    };
    let many: Vec<Raw> = (0..11).map(|i| raw(&format!("{i}.txt"), b"x")).collect();
    assert_eq!(refused(&build(&many), &limits).kind, "too_large");
    let big = build(&[raw("big.txt", &[b'a'; 101])]);
    assert_eq!(refused(&big, &limits).kind, "too_large");
    let three: Vec<Raw> = (0..3)
        .map(|i| raw(&format!("{i}.txt"), &[b'a'; 100]))
        .collect();
    assert_eq!(refused(&build(&three), &limits).kind, "too_large");
    assert_eq!(unpacked(&build(&three[..2]), &limits).unwrap().len(), 2);
}

#[test]
fn one_level_of_nesting_is_unpacked_and_no_deeper() {
    let inner = build(&[raw("补遗1.txt", "补遗".as_bytes())]);
    let outer = build(&[raw("招标文件.txt", b"x"), raw("补遗.zip", &inner)]);
    assert_eq!(
        names(&outer),
        vec!["招标文件.txt", "补遗.zip/补遗1.txt", "补遗.zip"]
    );
    let deeper = build(&[raw("招标文件.txt", b"x"), raw("outer.zip", &outer)]);
    let err = refused(&deeper, &PackageLimits::default());
    assert_eq!(err.kind, "unsupported_archive");
    assert!(err.message.contains("outer.zip/补遗.zip"), "{err}");
    // The total counts nested entries with their outer siblings.
    let sibling = raw("说明.txt", &[b'a'; 200]);
    let inner = build(&[raw("a.txt", &[b'a'; 200])]);
    let limits = PackageLimits {
        max_total_bytes: inner.len() as u64 + 200 + 150,
        ..PackageLimits::default()
    };
    let nested = build(&[raw("inner.zip", &inner), sibling]);
    assert_eq!(refused(&nested, &limits).kind, "too_large");
    // The entry limit counts nested entries too.
    let limits = PackageLimits {
        max_entries: 2,
        ..PackageLimits::default()
    };
    assert_eq!(refused(&outer, &limits).kind, "too_large");
}

#[test]
fn rar_and_7z_inside_are_refused_by_name_and_format() {
    let rar = build(&[
        raw("招标文件.txt", b"x"),
        raw("图纸.rar", b"Rar!\x1A\x07\x01\x00rest"),
    ]);
    let err = refused(&rar, &PackageLimits::default());
    assert_eq!(err.kind, "unsupported_archive");
    assert!(
        err.message.contains("图纸.rar") && err.message.contains("RAR"),
        "{err}"
    );
    let seven = build(&[raw("x.7z", &[b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C, 0, 4])]);
    assert!(
        refused(&seven, &PackageLimits::default())
            .message
            .contains("7z")
    );
}

#[test]
fn broken_and_empty_packages_are_refused() {
    assert_eq!(
        refused(b"PK\x03\x04 not a zip", &PackageLimits::default()).kind,
        "corrupt"
    );
    let only_folders = build(&[raw("docs/", b"")]);
    assert_eq!(
        refused(&only_folders, &PackageLimits::default()).kind,
        "empty"
    );
    let mut truncated = build(&[raw("招标文件.txt", &[b'a'; 4096])]);
    truncated.truncate(2000);
    assert_eq!(
        refused(&truncated, &PackageLimits::default()).kind,
        "corrupt"
    );
}

fn member<'a>(name: &'a str, size: u64, media_type: Option<&'a str>) -> Member<'a> {
    Member {
        name,
        size,
        media_type,
        unreadable: None,
        is_package: false,
    }
}

const PDF: Option<&str> = Some(sniff::PDF);
const DOCX: Option<&str> = Some(sniff::DOCX);
const TEXT: Option<&str> = Some(sniff::TEXT);

/// (name, role) in the order `assign_roles` answers.
fn roles(members: &[Member]) -> Vec<(String, Role)> {
    assign_roles(members)
        .unwrap()
        .into_iter()
        .map(|a| (members[a.index].name.to_string(), a.role))
        .collect()
}

fn role_error(members: &[Member]) -> ParseError {
    assign_roles(members).expect_err("refused")
}

#[test]
fn the_main_document_and_the_amendments_are_chosen_by_name_in_order() {
    let members = [
        member("工程量清单.xlsx", 90_000, Some(sniff::XLSX)),
        member("补遗10.pdf", 10, PDF),
        member("招标文件.pdf", 5_000, PDF),
        member("补遗2.pdf", 10, PDF),
        member("图纸/总平面图.pdf", 900_000, PDF),
        member("补遗1.pdf", 10, PDF),
    ];
    assert_eq!(
        roles(&members),
        vec![
            ("招标文件.pdf".into(), Role::Main),
            ("补遗1.pdf".into(), Role::Amendment),
            ("补遗2.pdf".into(), Role::Amendment),
            ("补遗10.pdf".into(), Role::Amendment),
            ("工程量清单.xlsx".into(), Role::Attachment),
            ("图纸/总平面图.pdf".into(), Role::Attachment),
        ]
    );
    let main = &assign_roles(&members).unwrap()[0];
    assert_eq!(main.reason, "its name says 招标文件");
}

#[test]
fn chinese_numerals_and_every_amendment_word_order_naturally() {
    let members = [
        member("第十次答疑.txt", 1, TEXT),
        member("第二次答疑.txt", 1, TEXT),
        member("采购文件.docx", 9, DOCX),
        member("第一次答疑.txt", 1, TEXT),
    ];
    let order: Vec<String> = roles(&members).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        order,
        vec![
            "采购文件.docx",
            "第一次答疑.txt",
            "第二次答疑.txt",
            "第十次答疑.txt"
        ]
    );
    for (word, says) in [
        ("澄清", "澄清"),
        ("更正公告", "更正"),
        ("Addendum No.1", "Addendum"),
        ("CORRIGENDUM", "CORRIGENDUM"),
        ("招标文件补遗", "补遗"),
    ] {
        let name = format!("{word}.pdf");
        let members = [member("磋商文件.pdf", 9, PDF), member(&name, 1, PDF)];
        assert_eq!(
            roles(&members)[1],
            (name.clone(), Role::Amendment),
            "{word}"
        );
        let reason = &assign_roles(&members).unwrap()[1].reason;
        assert!(
            reason.starts_with(&format!("its name says {says};")),
            "{reason}"
        );
    }
}

#[test]
fn english_names_say_which_is_the_main_document() {
    for name in [
        "Bidding Document.docx",
        "ITB_Section1.pdf",
        "RFP-2029-01.pdf",
        "tender_documents.pdf",
    ] {
        let members = [
            member("Volume 2 Specifications.pdf", 99_999, PDF),
            member(name, 10, PDF),
        ];
        assert_eq!(roles(&members)[0], (name.to_string(), Role::Main), "{name}");
    }
    // "itb" inside a word says nothing.
    let members = [
        member("Submittal_ITBs.pdf", 10, PDF),
        member("Big.pdf", 99, PDF),
    ];
    assert_eq!(roles(&members)[0].0, "Big.pdf");
}

#[test]
fn without_a_named_main_the_largest_readable_document_is_taken() {
    let members = [
        member("notice.txt", 300, TEXT),
        member("drawings.pdf", 90_000, PDF),
        member("photo.jpg", 80_000, None),
        member("prices.xlsx", 70_000, Some(sniff::XLSX)),
        member("tender.pdf", 5_000, PDF),
        member("澄清.txt", 60_000, TEXT),
    ];
    let assigned = assign_roles(&members).unwrap();
    assert_eq!(members[assigned[0].index].name, "tender.pdf");
    assert!(
        assigned[0].reason.contains("largest"),
        "{}",
        assigned[0].reason
    );
    assert_eq!(members[assigned[1].index].name, "澄清.txt");
    assert_eq!(assigned[1].role, Role::Amendment);
    assert!(assigned[2..].iter().all(|a| a.role == Role::Attachment));
    assert_eq!(assigned.len(), members.len());
}

#[test]
fn of_two_files_named_as_the_main_one_docx_is_taken_and_the_other_kept() {
    let members = [
        member("招标文件.pdf", 900_000, PDF),
        member("招标文件.docx", 50_000, DOCX),
    ];
    let assigned = assign_roles(&members).unwrap();
    assert_eq!(members[assigned[0].index].name, "招标文件.docx");
    assert_eq!(assigned[1].role, Role::Attachment);
    assert!(assigned[1].reason.contains("招标文件.docx was taken"));
}

#[test]
fn system_metadata_names_nothing() {
    let members = [
        member("__MACOSX/._补遗1.pdf", 10, None),
        member("._招标文件.docx", 10, None),
        member("招标文件.docx", 10, DOCX),
        member(".DS_Store", 10, None),
    ];
    let got = roles(&members);
    assert_eq!(got[0], ("招标文件.docx".into(), Role::Main));
    assert!(got[1..].iter().all(|(_, r)| *r == Role::Attachment));
}

#[test]
fn unreadable_named_documents_and_packages_without_a_document_are_refused() {
    // Without the amendment the summary would look complete and be wrong.
    let err = role_error(&[member("招标文件.pdf", 9, PDF), member("补遗1.jpg", 9, None)]);
    assert_eq!(err.kind, "unsupported_type");
    assert!(err.message.contains("补遗1.jpg"), "{err}");
    // The reason sniffing gave travels with it.
    let empty = Member {
        unreadable: Some("the document is empty (0 bytes)"),
        ..member("补遗2.pdf", 0, None)
    };
    let err = role_error(&[member("招标文件.pdf", 9, PDF), empty]);
    assert!(err.message.contains("empty (0 bytes)"), "{err}");
    // The largest other file is not the tender when the named one is unreadable.
    let err = role_error(&[
        member("招标文件.doc", 9, None),
        member("说明.txt", 99, TEXT),
    ]);
    assert_eq!(err.kind, "unsupported_type");
    let err = role_error(&[
        member("图纸.dwg", 9, None),
        member("清单.xlsx", 9, Some(sniff::XLSX)),
    ]);
    assert_eq!(err.kind, "no_main_document");
}

#[test]
fn a_nested_package_is_listed_as_a_package() {
    let members = [
        member("招标文件.txt", 9, TEXT),
        Member {
            is_package: true,
            ..member("附件.zip", 9, Some(sniff::ZIP))
        },
    ];
    assert_eq!(roles(&members)[1], ("附件.zip".into(), Role::Package));
}

#[test]
fn chinese_numbers_read_as_written() {
    let n = |s: &str| chinese_number(&s.chars().collect::<Vec<_>>());
    assert_eq!(n("一"), 1);
    assert_eq!(n("十"), 10);
    assert_eq!(n("十二"), 12);
    assert_eq!(n("二十三"), 23);
    assert_eq!(n("一百零五"), 105);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_unpack_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&bytes);
        let _ = unpacked(&zip, &PackageLimits::default());
    }

    #[test]
    fn flipped_bytes_in_a_package_unpack_or_fail_cleanly(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let inner = build(&[deflated("补遗1.txt", "补遗".repeat(50).as_bytes())]);
        let mut zip = build(&[
            deflated("招标文件.txt", "招标".repeat(200).as_bytes()),
            raw("inner.zip", &inner),
        ]);
        for (at, byte) in flips {
            let i = at.index(zip.len());
            zip[i] = byte;
        }
        let limits = PackageLimits::default();
        if let Ok(files) = unpacked(&zip, &limits) {
            let total: usize = files.iter().map(|(_, b)| b.len()).sum();
            prop_assert!(total as u64 <= limits.max_total_bytes);
        }
    }
}
