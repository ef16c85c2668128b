//! Bounds on what an uploaded workbook unpacks to, checked before calamine reads it. calamine
//! trusts the counts a file declares (it reserves room for `<sst uniqueCount>` strings at once),
//! so a few hundred bytes declaring four billion shared strings abort the process on
//! allocation, which no `catch_unwind` can catch. Here every part is inflated once through a
//! counting reader and its XML streamed (quick-xml, nothing kept): the declared and the real
//! sizes, counts, sheet ranges and cell lengths are held to the limits below.

use std::io::{self, BufReader, Cursor, Read};

use quick_xml::events::{BytesStart, Event};

use crate::SheetError;

/// What all parts of a workbook may unzip to together (a 100,000-row list is well under this).
pub const MAX_UNZIPPED_BYTES: u64 = 256 * 1024 * 1024;
/// Parts in the zip (a workbook has a few dozen).
pub const MAX_PARTS: usize = 10_000;
/// Shared strings a workbook may declare or hold.
pub const MAX_SHARED_STRINGS: u64 = 2_000_000;
/// Rows and columns a sheet may declare (`<dimension ref>`) or use: room for
/// [`crate::MAX_DATA_ROWS`] data rows and any of our sheets' columns, far from Excel's
/// 1,048,576 x 16,384.
pub const MAX_SHEET_ROWS: u64 = 200_000;
pub const MAX_SHEET_COLUMNS: u64 = 1_024;
/// Characters in one cell: Excel's own limit.
pub const MAX_CELL_CHARS: usize = 32_767;

fn too_large(zh: String, en: String) -> SheetError {
    SheetError::TooLarge { zh, en }
}

fn unzipped_too_large() -> SheetError {
    too_large(
        format!("解压后超过 {} MB", MAX_UNZIPPED_BYTES >> 20),
        format!("it unzips to more than {} MB", MAX_UNZIPPED_BYTES >> 20),
    )
}

/// Checks the package; `Ok` means calamine may read it without unbounded allocations.
pub(crate) fn check(bytes: &[u8]) -> Result<(), SheetError> {
    let not_xlsx = |e: &dyn std::fmt::Display| SheetError::NotXlsx(e.to_string());
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| not_xlsx(&e))?;
    if zip.len() > MAX_PARTS {
        return Err(too_large(
            format!("压缩包内有 {} 个文件，上限 {MAX_PARTS} 个", zip.len()),
            format!("the package holds {} parts, the limit is {MAX_PARTS}", zip.len()),
        ));
    }
    // The declared sizes first: refusing on them costs nothing.
    let mut declared = 0u64;
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(|e| not_xlsx(&e))?;
        declared = declared.saturating_add(f.size());
    }
    if declared > MAX_UNZIPPED_BYTES {
        return Err(unzipped_too_large());
    }
    // Then what the parts really inflate to, which the sizes above need not tell.
    let mut budget = MAX_UNZIPPED_BYTES;
    for i in 0..zip.len() {
        let f = zip.by_index(i).map_err(|e| not_xlsx(&e))?;
        let name = f.name().map_err(|e| not_xlsx(&e))?.into_owned();
        let mut part = Budgeted { inner: f, left: budget, over: false };
        let scanned = if name.ends_with(".xml") { scan_xml(&name, &mut part) } else { Ok(()) };
        // What the XML scan did not read (it stops early on broken XML) still counts.
        let drained = io::copy(&mut part, &mut io::sink());
        if part.over {
            return Err(unzipped_too_large());
        }
        scanned?;
        drained.map_err(|e| not_xlsx(&e))?;
        budget = part.left;
    }
    Ok(())
}

/// A reader that fails once more than `left` bytes came through.
struct Budgeted<R> {
    inner: R,
    left: u64,
    over: bool,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the budget is enough to know it is exceeded.
        let max = buf.len().min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n as u64 > self.left {
            self.over = true;
            return Err(io::Error::other("unzipped size over the limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Streams one XML part, holding declared counts, sheet ranges and cell text to the limits.
fn scan_xml(part: &str, r: impl Read) -> Result<(), SheetError> {
    let mut xml = quick_xml::Reader::from_reader(BufReader::new(r));
    let mut buf = Vec::new();
    // Characters of the cell or shared string being read, and whether we are in its text.
    let (mut chars, mut in_text) = (0usize, false);
    let mut strings = 0u64;
    loop {
        buf.clear();
        let ev = match xml.read_event_into(&mut buf) {
            Ok(ev) => ev,
            // Broken XML is calamine's to report (as before); only the limits matter here.
            Err(_) => return Ok(()),
        };
        let opening = matches!(ev, Event::Start(_));
        match ev {
            Event::Start(e) | Event::Empty(e) => match e.local_name().into_inner() {
                "sst" => {
                    for a in ["uniqueCount", "count"] {
                        if let Some(n) = number_attr(&e, a)
                            && n > MAX_SHARED_STRINGS
                        {
                            return Err(too_many_strings(n));
                        }
                    }
                }
                "si" => {
                    strings += 1;
                    if strings > MAX_SHARED_STRINGS {
                        return Err(too_many_strings(strings));
                    }
                    chars = 0;
                }
                "c" => {
                    chars = 0;
                    if let Some(r) = text_attr(&e, "r") {
                        check_range(part, &r)?;
                    }
                }
                "row" => {
                    if let Some(n) = number_attr(&e, "r")
                        && n > MAX_SHEET_ROWS
                    {
                        return Err(range_too_large(part, &format!("row {n}")));
                    }
                }
                "dimension" => {
                    if let Some(r) = text_attr(&e, "ref") {
                        check_range(part, &r)?;
                    }
                }
                // Only an opening tag has text after it (`<t/>` is empty).
                "t" | "v" => in_text = opening,
                _ => {}
            },
            Event::End(e) if matches!(e.local_name().into_inner(), "t" | "v") => in_text = false,
            Event::Text(t) if in_text => chars += t.chars().count(),
            Event::CData(t) if in_text => chars += t.chars().count(),
            Event::GeneralRef(_) if in_text => chars += 1,
            Event::Eof => return Ok(()),
            _ => {}
        }
        if chars > MAX_CELL_CHARS {
            return Err(too_large(
                format!("{part} 中有单元格超过 {MAX_CELL_CHARS} 个字符"),
                format!("a cell in {part} holds more than {MAX_CELL_CHARS} characters"),
            ));
        }
    }
}

fn too_many_strings(n: u64) -> SheetError {
    too_large(
        format!("共享字符串 {n} 个，上限 {MAX_SHARED_STRINGS} 个"),
        format!("{n} shared strings, the limit is {MAX_SHARED_STRINGS}"),
    )
}

fn range_too_large(part: &str, what: &str) -> SheetError {
    too_large(
        format!("{part} 的 {what} 超出 {MAX_SHEET_ROWS} 行、{MAX_SHEET_COLUMNS} 列的范围"),
        format!("{what} in {part} is beyond {MAX_SHEET_ROWS} rows and {MAX_SHEET_COLUMNS} columns"),
    )
}

fn text_attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    let a = e.try_get_attribute(name).ok()??;
    Some(a.value.into_owned())
}

/// A whole-number attribute; an unreadable one is left for calamine to judge.
fn number_attr(e: &BytesStart<'_>, name: &str) -> Option<u64> {
    let v = text_attr(e, name)?;
    let digits: String = v.trim().chars().take_while(char::is_ascii_digit).collect();
    // More digits than a u64 holds is over any limit.
    if digits.len() > 19 {
        return Some(u64::MAX);
    }
    digits.parse().ok()
}

/// `A1` or `A1:XFD1048576`: every corner within the sheet limits.
fn check_range(part: &str, range: &str) -> Result<(), SheetError> {
    for corner in range.split(':') {
        let letters: String = corner.chars().take_while(char::is_ascii_alphabetic).collect();
        let digits = &corner[letters.len()..];
        // Columns: A = 1 .. Z = 26, AA = 27; saturating, so a long run of letters is just huge.
        let col = letters
            .bytes()
            .fold(0u64, |acc, b| acc.saturating_mul(26).saturating_add(u64::from(b.to_ascii_uppercase() - b'A' + 1)));
        let row = if digits.len() > 19 { u64::MAX } else { digits.parse::<u64>().unwrap_or(0) };
        if col > MAX_SHEET_COLUMNS || row > MAX_SHEET_ROWS {
            return Err(range_too_large(part, &range.chars().take(40).collect::<String>()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert!(check_range("s", "A1:T100001").is_ok());
        assert!(check_range("s", "AMJ200000").is_ok());
        assert!(check_range("s", "AMK1").is_err(), "column 1025");
        assert!(check_range("s", "A1:XFD1048576").is_err());
        assert!(check_range("s", "A200001").is_err());
        assert!(check_range("s", "A99999999999999999999999").is_err());
        assert!(check_range("s", &"Z".repeat(40)).is_err());
    }
}
