//! Word binary files built by hand: a FIB, one UTF-16 piece, a PAPX page
//! per paragraph group, a CHPX page and a style sheet, in a compound file.

use super::*;
use crate::parse::ole;

/// Where the text starts in the WordDocument stream.
const TEXT_AT: usize = 1024;

/// A paragraph: its text with its mark (`\r`, or `\u{7}` for a cell or
/// row end), its style, and its paragraph sprms.
pub(crate) struct P<'a>(pub &'a str, pub u16, pub Vec<u8>);

/// A normal paragraph.
pub(crate) fn p(text: &str) -> P<'_> {
    P(text, 0, Vec::new())
}

/// sprms: in a table cell.
pub(crate) fn cell() -> Vec<u8> {
    vec![0x16, 0x24, 1]
}

/// sprms: a row end (optionally a header row).
pub(crate) fn row_end(header: bool) -> Vec<u8> {
    let mut s = vec![0x16, 0x24, 1, 0x17, 0x24, 1];
    if header {
        s.extend([0x04, 0x34, 1]);
    }
    s
}

/// sprms: a row end with these cell boundaries (sprmTDefTable).
fn row_with(bounds: &[i16]) -> Vec<u8> {
    let mut s = row_end(false);
    let remainder = 1 + bounds.len() * 2;
    s.extend([0x08, 0xD6]);
    s.extend(((remainder + 1) as u16).to_le_bytes());
    s.push((bounds.len() - 1) as u8);
    for b in bounds {
        s.extend(b.to_le_bytes());
    }
    s
}

/// sprms: list instance `ilfo` at `ilvl`, plus `more`.
fn listed(ilfo: u16, ilvl: u8, more: Vec<u8>) -> Vec<u8> {
    let mut s = vec![0x0B, 0x46];
    s.extend(ilfo.to_le_bytes());
    s.extend([0x0A, 0x26, ilvl]);
    s.extend(more);
    s
}

/// sprms: depth 2, with an inner cell or row mark.
fn inner(mark: u16) -> Vec<u8> {
    let mut s = vec![0x16, 0x24, 1, 0x49, 0x66, 2, 0, 0, 0];
    if mark != 0 {
        s.extend(mark.to_le_bytes());
        s.push(1);
    }
    s
}

/// Options of a built file.
#[derive(Default)]
pub(crate) struct Build<'a> {
    /// Character ranges (cp start, cp end) marked deleted.
    pub deleted: Vec<(u32, u32)>,
    /// The header subdocument's text.
    pub header: &'a str,
    pub encrypted: bool,
    pub n_fib: Option<u16>,
    /// PlfLst (with its LVLs) and PlfLfo.
    pub lists: Option<(Vec<u8>, Vec<u8>)>,
    /// The Data stream, if any.
    pub data: Vec<u8>,
    /// The sprms of the runs in `deleted` instead of sprmCFRMarkDel.
    pub marked_with: Vec<u8>,
    /// Font names (SttbfFfn).
    pub fonts: Vec<&'a str>,
}

/// The compound file of a Word document of `paras`.
pub(crate) fn build(paras: &[P<'_>], options: &Build<'_>) -> Vec<u8> {
    let (word, table) = streams(paras, options);
    let mut streams = vec![("WordDocument", &word[..]), ("1Table", &table[..])];
    if !options.data.is_empty() {
        streams.push(("Data", &options.data[..]));
    }
    ole::test_file(&streams)
}

/// The WordDocument and 1Table streams.
pub(crate) fn streams(paras: &[P<'_>], options: &Build<'_>) -> (Vec<u8>, Vec<u8>) {
    let main: Vec<u16> = paras.iter().flat_map(|p| p.0.encode_utf16()).collect();
    let header: Vec<u16> = options.header.encode_utf16().collect();
    let mut units = main.clone();
    units.extend(&header);
    let mut word = vec![0u8; TEXT_AT];
    for u in &units {
        word.extend(u.to_le_bytes());
    }
    let fc = |cp: usize| (TEXT_AT + cp * 2) as u32;
    pad_to_page(&mut word);

    // PAPX pages, 12 paragraphs each.
    let mut papx_plc_fcs = vec![fc(0)];
    let mut papx_pns = Vec::new();
    let mut cp = 0usize;
    for group in paras.chunks(12) {
        let mut page = vec![0u8; 512];
        let mut fcs = vec![fc(cp)];
        let mut free = 511usize;
        for (i, para) in group.iter().enumerate() {
            cp += para.0.encode_utf16().count();
            fcs.push(fc(cp));
            let mut body = para.1.to_le_bytes().to_vec();
            body.extend(&para.2);
            if body.len() % 2 == 1 {
                body.push(0);
            }
            let size = 2 + body.len();
            free -= size;
            free -= free % 2;
            page[free] = 0;
            page[free + 1] = (body.len() / 2) as u8;
            page[free + 2..free + 2 + body.len()].copy_from_slice(&body);
            let bx = (group.len() + 1) * 4 + i * 13;
            page[bx] = (free / 2) as u8;
        }
        for (i, f) in fcs.iter().enumerate() {
            page[i * 4..i * 4 + 4].copy_from_slice(&f.to_le_bytes());
        }
        page[511] = group.len() as u8;
        papx_plc_fcs.push(fc(cp));
        papx_pns.push((word.len() / 512) as u32);
        word.extend(page);
    }

    // One CHPX page: runs alternate between plain and deleted.
    let mut bounds = vec![0u32];
    for (a, b) in &options.deleted {
        bounds.extend([*a, *b]);
    }
    bounds.push(main.len() as u32);
    let mut page = vec![0u8; 512];
    let crun = bounds.len() - 1;
    for (i, b) in bounds.iter().enumerate() {
        page[i * 4..i * 4 + 4].copy_from_slice(&fc(*b as usize).to_le_bytes());
    }
    let marked = if options.marked_with.is_empty() {
        vec![0x00, 0x08, 1]
    } else {
        options.marked_with.clone()
    };
    page[500] = marked.len() as u8;
    page[501..501 + marked.len()].copy_from_slice(&marked);
    for i in 0..crun {
        page[(crun + 1) * 4 + i] = if i % 2 == 1 { 250 } else { 0 };
    }
    page[511] = crun as u8;
    let chpx_pn = (word.len() / 512) as u32;
    word.extend(page);

    // The table stream: CLX, PlcBtePapx, PlcBteChpx, STSH, PlcfHdd.
    let mut table = Vec::new();
    let mut place = |data: Vec<u8>| {
        let at = table.len() as u32;
        table.extend(&data);
        (at, data.len() as u32)
    };
    let clx = place(fib::test_clx(&[(units.len() as u32, fc(0))]));
    let mut plc = Vec::new();
    for f in &papx_plc_fcs {
        plc.extend(f.to_le_bytes());
    }
    for pn in &papx_pns {
        plc.extend(pn.to_le_bytes());
    }
    let papx = place(plc);
    let mut plc = Vec::new();
    plc.extend(fc(0).to_le_bytes());
    plc.extend(fc(main.len()).to_le_bytes());
    plc.extend(chpx_pn.to_le_bytes());
    let chpx = place(plc);
    let stsh = place(styles::test_stsh(&[
        (0, 0x0FFF, "Normal", vec![]),
        (1, 0, "heading 1", vec![]),
        (2, 0, "heading 2", vec![]),
        // A list style: list instance 1, level 1.
        (
            0x0FFE,
            0,
            "List Number 2",
            vec![0x0B, 0x46, 1, 0, 0x0A, 0x26, 1],
        ),
    ]));
    let (lst, lfo) = options.lists.clone().unwrap_or_default();
    let lst = if lst.is_empty() { (0, 0) } else { place(lst) };
    let lfo = if lfo.is_empty() { (0, 0) } else { place(lfo) };
    let mut sttb = (options.fonts.len() as u16).to_le_bytes().to_vec();
    sttb.extend([0, 0]);
    for name in &options.fonts {
        let mut ffn = vec![0u8; 39];
        ffn.extend(name.encode_utf16().flat_map(u16::to_le_bytes));
        ffn.extend([0, 0]);
        sttb.push(ffn.len() as u8);
        sttb.extend(ffn);
    }
    let ffn = place(sttb);
    let mut hdd = Vec::new();
    for cp in [0u32, header.len() as u32] {
        hdd.extend(cp.to_le_bytes());
    }
    let hdd = place(hdd);

    let mut pairs = vec![(0u32, 0u32); 93];
    pairs[fib::STSHF] = stsh;
    pairs[fib::PLCF_HDD] = hdd;
    pairs[fib::PLCF_BTE_CHPX] = chpx;
    pairs[fib::PLCF_BTE_PAPX] = papx;
    pairs[fib::CLX] = clx;
    pairs[fib::PLF_LST] = lst;
    pairs[fib::STTBF_FFN] = ffn;
    pairs[fib::PLF_LFO] = lfo;
    let mut head = Vec::new();
    head.extend(0xA5ECu16.to_le_bytes());
    head.extend(options.n_fib.unwrap_or(0x00C1).to_le_bytes());
    head.extend([0u8; 6]);
    let flags: u16 = 0x0200 | if options.encrypted { 0x0100 } else { 0 };
    head.extend(flags.to_le_bytes());
    head.resize(32, 0);
    head.extend(14u16.to_le_bytes());
    head.extend([0u8; 28]);
    head.extend(22u16.to_le_bytes());
    let mut lw = [0u32; 22];
    lw[3] = main.len() as u32;
    lw[5] = header.len() as u32;
    for v in lw {
        head.extend(v.to_le_bytes());
    }
    head.extend((pairs.len() as u16).to_le_bytes());
    for (f, l) in pairs {
        head.extend(f.to_le_bytes());
        head.extend(l.to_le_bytes());
    }
    head.extend(0u16.to_le_bytes());
    word[..head.len()].copy_from_slice(&head);
    (word, table)
}

fn pad_to_page(bytes: &mut Vec<u8>) {
    let len = bytes.len().div_ceil(512) * 512;
    bytes.resize(len, 0);
}

fn parse(paras: &[P<'_>], options: &Build<'_>) -> ParsedDocument {
    parse_doc(&build(paras, options), &ParseLimits::default()).unwrap()
}

#[test]
fn paragraphs_headings_and_tables_in_reading_order() {
    let doc = parse(
        &[
            P("第一章 招标公告\r", 1, Vec::new()),
            p("本项目已具备招标条件。\r"),
            P("名称\u{7}", 0, cell()),
            P("金额\u{7}", 0, cell()),
            P("\u{7}", 0, row_end(true)),
            P("暂列金额\u{7}", 0, cell()),
            P("第一段\r", 0, cell()),
            P("第二段\u{7}", 0, cell()),
            P("\u{7}", 0, row_end(false)),
            P("Section 2 Instructions\r", 0, vec![0x40, 0x26, 1]),
            p("After the table.\r"),
        ],
        &Build::default(),
    );
    assert_eq!(
        doc.blocks,
        vec![
            Block::Heading {
                level: 1,
                text: "第一章 招标公告".into(),
                number: Some("第一章".into()),
                page: None
            },
            Block::Paragraph {
                text: "本项目已具备招标条件。".into(),
                page: None
            },
            Block::Table {
                rows: vec![
                    vec!["名称".into(), "金额".into()],
                    vec!["暂列金额".into(), "第一段\n第二段".into()],
                ],
                header_rows: 1,
                page: None
            },
            Block::Heading {
                level: 2,
                text: "Section 2 Instructions".into(),
                number: Some("Section 2".into()),
                page: None
            },
            Block::Paragraph {
                text: "After the table.".into(),
                page: None
            },
        ]
    );
    assert_eq!(doc.meta.format, "doc");
}

#[test]
fn fields_keep_their_result_and_drop_their_instruction() {
    let doc = parse(
        &[
            p("报名截止\u{13} HYPERLINK \"http://x\" \u{14}见公告网站\u{15}。\r"),
            p("第\u{13} PAGE \u{14}3\u{15}页，共\u{13}NUMPAGES\u{15}页\r"),
            p("外\u{13} IF \u{13} DATE \u{14}1\u{15} \u{14}内\u{15}尾\r"),
        ],
        &Build::default(),
    );
    assert_eq!(
        doc.plain_text(),
        "报名截止见公告网站。\n第3页，共页\n外内尾"
    );
}

#[test]
fn a_field_without_separator_stops_at_its_paragraph() {
    let doc = parse(
        &[p("甲\u{13} TOC \\o \r"), p("投标须知\r")],
        &Build::default(),
    );
    assert_eq!(doc.plain_text(), "甲\n投标须知");
}

#[test]
fn deleted_revisions_are_dropped_inserted_text_kept() {
    // "投标保证金5万元" with "5" deleted and "8" (inserted) kept.
    let text = "投标保证金58万元\r";
    let doc = parse(
        &[p(text)],
        &Build {
            deleted: vec![(5, 6)],
            ..Build::default()
        },
    );
    assert_eq!(doc.plain_text(), "投标保证金8万元");
}

#[test]
fn nested_tables_are_rows_inside_their_cell() {
    let doc = parse(
        &[
            P("a\r", 0, inner(0x244B)),
            P("b\r", 0, inner(0x244B)),
            P("\r", 0, inner(0x244C)),
            P("c\r", 0, inner(0x244B)),
            P("d\r", 0, inner(0x244B)),
            P("\r", 0, inner(0x244C)),
            P("\u{7}", 0, cell()),
            P("外\u{7}", 0, cell()),
            P("\u{7}", 0, row_end(false)),
        ],
        &Build::default(),
    );
    let Block::Table { rows, .. } = &doc.blocks[0] else {
        panic!("{:?}", doc.blocks);
    };
    assert_eq!(rows, &vec![vec!["a | b\nc | d".to_string(), "外".into()]]);
}

#[test]
fn special_characters_become_text_or_nothing() {
    let doc = parse(
        &[p("A\u{1}B\u{8}C\u{1E}D\u{1F}E\u{B}F\tG\r")],
        &Build::default(),
    );
    assert_eq!(doc.plain_text(), "ABC-DE\nF\tG");
}

#[test]
fn headers_and_footers_go_to_furniture() {
    let doc = parse(
        &[p("正文\r")],
        &Build {
            header: "某某项目招标文件\r第\u{13} PAGE \u{14}1\u{15}页\r",
            ..Build::default()
        },
    );
    assert_eq!(doc.plain_text(), "正文");
    assert_eq!(
        doc.meta.furniture,
        vec!["某某项目招标文件\n第1页".to_string()]
    );
}

#[test]
fn encrypted_and_word95_files_are_refused_clearly() {
    let paras = [p("x\r")];
    let encrypted = build(
        &paras,
        &Build {
            encrypted: true,
            ..Build::default()
        },
    );
    let err = parse_doc(&encrypted, &ParseLimits::default()).unwrap_err();
    assert_eq!(err.kind, "encrypted");
    let word95 = build(
        &paras,
        &Build {
            n_fib: Some(0x0065),
            ..Build::default()
        },
    );
    let err = parse_doc(&word95, &ParseLimits::default()).unwrap_err();
    assert_eq!(err.kind, "unsupported_type");
}

#[test]
fn many_paragraphs_span_several_property_pages() {
    let texts: Vec<String> = (0..40).map(|i| format!("第{i}段\r")).collect();
    let mut paras: Vec<P<'_>> = texts.iter().map(|t| p(t)).collect();
    paras.push(P("尾\u{7}", 0, cell()));
    paras.push(P("\u{7}", 0, row_end(false)));
    let doc = parse(&paras, &Build::default());
    assert_eq!(doc.blocks.len(), 41);
    assert!(
        matches!(&doc.blocks[40], Block::Table { rows, .. } if rows == &vec![vec!["尾".to_string()]])
    );
}

#[test]
fn list_numbers_are_rendered_as_word_shows_them() {
    let doc = parse(
        &[
            P("招标公告\r", 1, listed(1, 0, vec![])),
            P("投标人须知\r", 0, listed(1, 1, vec![])),
            P("\u{7}", 0, listed(1, 1, cell())),
            P("内容\u{7}", 0, cell()),
            P("\u{7}", 0, row_end(false)),
            P("继续\r", 3, vec![]),
            P("不编号\r", 3, listed(0, 0, vec![])),
            P("评标办法\r", 1, listed(1, 0, vec![])),
            P("细则\r", 0, listed(1, 1, vec![])),
        ],
        &Build {
            lists: Some(lists::test_lists(
                &[(1, 0x25, "第%1章"), (1, 0, "%2.")],
                &[],
            )),
            ..Build::default()
        },
    );
    assert_eq!(
        doc.blocks,
        vec![
            Block::Heading {
                level: 1,
                text: "第一章 招标公告".into(),
                number: Some("第一章".into()),
                page: None
            },
            Block::ListItem {
                text: "投标人须知".into(),
                number: Some("1.".into()),
                level: 1,
                page: None
            },
            Block::Table {
                rows: vec![vec!["2.".into(), "内容".into()]],
                header_rows: 0,
                page: None
            },
            Block::ListItem {
                text: "继续".into(),
                number: Some("3.".into()),
                level: 1,
                page: None
            },
            Block::Paragraph {
                text: "不编号".into(),
                page: None
            },
            Block::Heading {
                level: 1,
                text: "第二章 评标办法".into(),
                number: Some("第二章".into()),
                page: None
            },
            Block::ListItem {
                text: "细则".into(),
                number: Some("1.".into()),
                level: 1,
                page: None
            },
        ]
    );
}

#[test]
fn merged_cells_are_aligned_to_the_table_grid() {
    let doc = parse(
        &[
            P("a\u{7}", 0, cell()),
            P("b\u{7}", 0, cell()),
            P("\u{7}", 0, row_with(&[0, 1000, 3000])),
            P("c\u{7}", 0, cell()),
            P("d\u{7}", 0, cell()),
            P("e\u{7}", 0, cell()),
            P("\u{7}", 0, row_with(&[0, 1000, 2000, 3000])),
            P("f\u{7}", 0, cell()),
            P("\u{7}", 0, row_with(&[1000, 2000])),
            // An empty sliver last cell: the filler of a short row.
            P("h\u{7}", 0, cell()),
            P("\u{7}", 0, cell()),
            P("\u{7}", 0, row_with(&[0, 2000, 2080])),
            // Boundaries that do not match the cells: the row as it is.
            P("g\u{7}", 0, cell()),
            P("\u{7}", 0, row_with(&[0, 1000, 2000])),
        ],
        &Build::default(),
    );
    let Block::Table { rows, .. } = &doc.blocks[0] else {
        panic!("{:?}", doc.blocks);
    };
    assert_eq!(
        rows,
        &vec![
            vec!["a".to_string(), "b".into(), "".into()],
            vec!["c".into(), "d".into(), "e".into()],
            vec!["".into(), "f".into()],
            vec!["h".into(), "".into()],
            vec!["g".into()],
        ]
    );
}

#[test]
fn properties_too_large_for_their_page_are_read_from_the_data_stream() {
    // sprmPHugePapx: the row end's sprms are at offset 4 of the Data stream.
    let mut data = vec![0xEE; 4];
    let ttp = [0x17, 0x24, 1, 0x04, 0x34, 1];
    data.extend((ttp.len() as u16).to_le_bytes());
    data.extend(ttp);
    let mut huge = cell();
    huge.extend([0x46, 0x66, 4, 0, 0, 0]);
    let doc = parse(
        &[
            P("名称\u{7}", 0, cell()),
            P("\u{7}", 0, huge),
            P("保证金\u{7}", 0, cell()),
            P("\u{7}", 0, row_end(false)),
        ],
        &Build {
            data,
            ..Build::default()
        },
    );
    assert_eq!(
        doc.blocks,
        vec![Block::Table {
            rows: vec![vec!["名称".into()], vec!["保证金".into()]],
            header_rows: 1,
            page: None
        }]
    );
}

#[test]
fn symbol_font_characters_become_the_glyphs_they_draw() {
    // "£是 £否" with the two "£" in Wingdings 2 (font 1): its □ slot.
    let doc = parse(
        &[p("\u{A3}是 \u{A3}否\r")],
        &Build {
            deleted: vec![(0, 1), (3, 4)],
            marked_with: vec![0x4F, 0x4A, 1, 0, 0x51, 0x4A, 1, 0],
            fonts: vec!["宋体", "Wingdings 2"],
            ..Build::default()
        },
    );
    assert_eq!(doc.plain_text(), "□是 □否");
}
