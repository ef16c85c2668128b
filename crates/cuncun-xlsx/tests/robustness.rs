//! Uploads are untrusted: whatever arrives must come back as an error, never a panic.

mod common;

use cuncun_xlsx::resources::{COLUMNS, parse_resources, resources_template};
use cuncun_xlsx::{SheetError, error_report, read_rows};

#[test]
fn non_xlsx_bytes_give_clear_errors() {
    assert_eq!(read_rows(b"", COLUMNS), Err(SheetError::Empty));
    let csv = "资源类型,区划代码,名称\n音柱,500236100201,甲\n".as_bytes();
    let e = read_rows(csv, COLUMNS).expect_err("csv");
    assert!(matches!(e, SheetError::NotXlsx(_)), "{e}");
    assert!(e.to_string().contains(".xlsx"), "{e}");
    let xls = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0, 0, 0];
    assert_eq!(read_rows(&xls, COLUMNS), Err(SheetError::LegacyOrEncrypted));
    // A zip that is not a workbook.
    let e = read_rows(b"PK\x03\x04garbage", COLUMNS).expect_err("zip");
    assert!(matches!(e, SheetError::NotXlsx(_)), "{e}");

    let out = parse_resources(b"not a spreadsheet");
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].row, 0);
    assert!(
        out.errors[0].message.zh.contains(".xlsx"),
        "{}",
        out.errors[0]
    );
    // The report for a file we couldn't read still builds.
    assert!(error_report(&out.errors, Some(b"not a spreadsheet")).is_ok());
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn exercise(bytes: &[u8]) {
    let _ = read_rows(bytes, COLUMNS);
    let out = parse_resources(bytes);
    let _ = out.error_report(Some(bytes));
}

#[test]
fn random_and_damaged_files_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..200 {
        let len = rng.below(2048);
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 {
            // Past the magic-number check, into the zip reader.
            b.splice(0..0, *b"PK\x03\x04");
        }
        exercise(&b);
    }

    let template = resources_template().expect("template");
    // Truncations at many lengths, including inside the central directory at the end.
    let mut cut = 1;
    while cut < template.len() {
        exercise(&template[..cut]);
        cut += 1 + cut / 8;
    }
    for back in 1..64 {
        exercise(&template[..template.len() - back]);
    }
    // Flipped bytes inside an otherwise valid file.
    for _ in 0..150 {
        let mut b = template.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len());
            b[at] ^= 1 << rng.below(8);
        }
        exercise(&b);
    }
}

/// The workbook's parts with `edit` applied, written back uncompressed so damage lands in the
/// XML rather than failing the zip checksum.
fn rezip(xlsx: &[u8], mut edit: impl FnMut(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    use std::io::{Cursor, Read, Write};
    let mut src = zip::ZipArchive::new(Cursor::new(xlsx)).expect("zip");
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut f = src.by_index(i).expect("entry");
        let name = f.name().expect("entry name").to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("read");
        out.start_file(name.as_str(), opts).expect("start");
        out.write_all(&edit(&name, data)).expect("write");
    }
    out.finish().expect("finish").into_inner()
}

const SHEET: &str = "xl/worksheets/sheet1.xml";

#[test]
fn damaged_xml_inside_a_valid_zip_never_panics() {
    let template = resources_template().expect("template");
    // Unchanged but uncompressed: still reads.
    assert_eq!(parse_resources(&rezip(&template, |_, d| d)).valid.len(), 1);

    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let parts = [
        SHEET,
        "xl/sharedStrings.xml",
        "xl/styles.xml",
        "xl/workbook.xml",
        "[Content_Types].xml",
    ];
    for round in 0..300 {
        let part = parts[round % parts.len()];
        let b = rezip(&template, |name, mut d| {
            if name != part || d.is_empty() {
                return d;
            }
            match rng.below(3) {
                0 => d.truncate(rng.below(d.len())),
                1 => {
                    for _ in 0..1 + rng.below(8) {
                        let at = rng.below(d.len());
                        d[at] = b"<>\"/=0123456789:;&#x ABCZcrvst"[rng.below(29)];
                    }
                }
                _ => {
                    let at = rng.below(d.len());
                    let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                    d.splice(at..at, junk);
                }
            }
            d
        });
        exercise(&b);
    }

    // Hand-made hostile cells, each in its own data row 3.
    let nasty = [
        r#"<c r="XFD1048576"><v>1</v></c>"#,
        r#"<c r="A3" t="s"><v>999999</v></c>"#,
        r#"<c r="B3"><v>1e400</v></c>"#,
        r#"<c r="B3"><v>NaN</v></c>"#,
        r#"<c r="B3"><v>-500236100201</v></c>"#,
        r#"<c r="F3" s="7"><v>-5</v></c>"#,
        r#"<c r="F3" s="7"><v>1e20</v></c>"#,
        r#"<c r="F3" t="d"><v>not-a-date</v></c>"#,
        r#"<c r="C3" t="e"><v>#N/A</v></c>"#,
        r#"<c r="C3" t="inlineStr"><is><t>内联</t></is></c>"#,
        r#"<c r="ZZZZ3"><v>1</v></c>"#,
        r#"<c r="A0"><v>1</v></c>"#,
        r#"<c><v>1</v></c>"#,
    ];
    for cell in nasty {
        let b = rezip(&template, |name, d| {
            if name != SHEET {
                return d;
            }
            let xml = String::from_utf8(d).expect("utf8");
            xml.replace(
                "</sheetData>",
                &format!(r#"<row r="3">{cell}</row></sheetData>"#),
            )
            .into_bytes()
        });
        exercise(&b);
    }
}

#[test]
fn formula_errors_and_lossy_cells_are_row_errors() {
    let template = resources_template().expect("template");
    let b = rezip(&template, |name, d| {
        if name != SHEET {
            return d;
        }
        let row = r#"<row r="3"><c r="A3" t="inlineStr"><is><t>音柱</t></is></c><c r="B3" t="e"><v>#REF!</v></c><c r="C3" t="inlineStr"><is><t>丙</t></is></c><c r="I3"><v>6.50023610020103E+22</v></c></row>"#;
        String::from_utf8(d)
            .expect("utf8")
            .replace("</sheetData>", &format!("{row}</sheetData>"))
            .into_bytes()
    });
    let out = parse_resources(&b);
    let got: Vec<(u32, &str)> = out
        .errors
        .iter()
        .map(|e| (e.row, e.column.as_str()))
        .collect();
    assert_eq!(
        got,
        [(3, "region_code"), (3, "resource_code")],
        "{:#?}",
        out.errors
    );
    assert!(out.errors[0].message.zh.contains("#REF!"));
    assert!(out.errors[1].message.zh.contains("15 位"));
    assert_eq!(out.valid.len(), 1, "the example row is still fine");
}

/// `text` with the value of every `attr="..."` replaced.
fn set_attr(text: &str, attr: &str, value: &str) -> String {
    let key = format!("{attr}=\"");
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(&key) {
        let after = &rest[i + key.len()..];
        let end = after.find('"').expect("closing quote");
        out.push_str(&rest[..i + key.len()]);
        out.push_str(value);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn edit_part(xlsx: &[u8], part: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    rezip(xlsx, |name, d| {
        if name == part {
            edit(String::from_utf8(d).expect("utf8")).into_bytes()
        } else {
            d
        }
    })
}

/// The file is refused as too large, with a message in both languages naming `limit`; the
/// error report for it still builds.
fn refused_naming(bytes: &[u8], limit: &str) {
    let e = read_rows(bytes, COLUMNS).expect_err("a bomb is refused");
    assert!(matches!(e, SheetError::TooLarge { .. }), "{e:?}");
    let m = e.message();
    assert!(m.zh.contains(limit) && m.en.contains(limit), "{m:?} should name {limit}");
    let out = parse_resources(bytes);
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert!(error_report(&out.errors, Some(bytes)).is_ok());
}

#[test]
fn declared_counts_and_ranges_beyond_the_limits_are_refused_before_reading() {
    let template = resources_template().expect("template");
    // calamine reserves room for every declared shared string at once: 4,294,967,295 of them
    // would abort the process.
    let sst = edit_part(&template, "xl/sharedStrings.xml", |x| set_attr(&set_attr(&x, "uniqueCount", "4294967295"), "count", "4294967295"));
    refused_naming(&sst, "2000000");
    let sst = edit_part(&template, "xl/sharedStrings.xml", |x| set_attr(&x, "uniqueCount", "99999999999999999999999"));
    refused_naming(&sst, "2000000");
    // The whole grid Excel allows.
    let dim = edit_part(&template, SHEET, |x| {
        let at = x.find("<sheetData").expect("sheetData");
        if x.contains("<dimension") { set_attr(&x, "ref", "A1:XFD1048576") } else { format!("{}<dimension ref=\"A1:XFD1048576\"/>{}", &x[..at], &x[at..]) }
    });
    refused_naming(&dim, "200000");
    // A row far down.
    let row = edit_part(&template, SHEET, |x| x.replace("</sheetData>", r#"<row r="1048576"><c r="A1048576"><v>1</v></c></row></sheetData>"#));
    refused_naming(&row, "200000");
}

#[test]
fn a_cell_of_ten_megabytes_is_refused() {
    let template = resources_template().expect("template");
    let big = "长".repeat(10 * 1024 * 1024 / 3);
    let inline = edit_part(&template, SHEET, |x| {
        x.replace("</sheetData>", &format!(r#"<row r="3"><c r="C3" t="inlineStr"><is><t>{big}</t></is></c></row></sheetData>"#))
    });
    refused_naming(&inline, "32767");
    // The same in a shared string, split over rich-text runs.
    let half = "a".repeat(20_000);
    let shared = edit_part(&template, "xl/sharedStrings.xml", |x| x.replacen("<si>", &format!("<si><r><t>{half}</t></r><r><t>{half}</t></r></si><si>"), 1));
    refused_naming(&shared, "32767");
    // Just under the limit is fine.
    let ok = "b".repeat(32_767);
    let fine = edit_part(&template, SHEET, |x| {
        x.replace("</sheetData>", &format!(r#"<row r="3"><c r="C3" t="inlineStr"><is><t>{ok}</t></is></c></row></sheetData>"#))
    });
    assert!(read_rows(&fine, COLUMNS).is_ok());
}

/// Offsets of the central directory headers of a zip.
fn central_headers(zip: &[u8]) -> Vec<usize> {
    zip.windows(4).enumerate().filter(|(_, w)| *w == b"PK\x01\x02").map(|(i, _)| i).collect()
}

#[test]
fn parts_that_unzip_beyond_the_limit_are_refused() {
    use std::io::{Cursor, Write};
    let template = resources_template().expect("template");
    // A part that declares 2 GiB (central directory, uncompressed size at +24).
    let mut declared = rezip(&template, |_, d| d);
    let at = central_headers(&declared)[0] + 24;
    declared[at..at + 4].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
    refused_naming(&declared, "256 MB");

    // A part that really inflates to more than the limit (257 MiB of zeros in 300 KB).
    let mut src = zip::ZipArchive::new(Cursor::new(&template[..])).expect("zip");
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..src.len() {
        out.raw_copy_file(src.by_index_raw(i).expect("entry")).expect("copy");
    }
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).compression_level(Some(1));
    out.start_file("xl/media/image1.png", opts).expect("start");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..257 {
        out.write_all(&zeros).expect("write");
    }
    let mut bomb = out.finish().expect("finish").into_inner();
    assert!(bomb.len() < 4 << 20, "the bomb itself is small: {} bytes", bomb.len());
    refused_naming(&bomb, "256 MB");
    // The same declaring 1 KB: inflating stops where the declared size is passed.
    let last = *central_headers(&bomb).last().expect("central header");
    bomb[last + 24..last + 28].copy_from_slice(&1024u32.to_le_bytes());
    let local = bomb.windows(4).rposition(|w| w == b"PK\x03\x04").expect("local header");
    bomb[local + 22..local + 26].copy_from_slice(&1024u32.to_le_bytes());
    let e = read_rows(&bomb, COLUMNS).expect_err("a lying part is refused");
    assert!(matches!(&e, SheetError::NotXlsx(d) if d.contains("declared")), "{e:?}");
}
