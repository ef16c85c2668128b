//! The national statistical division codes (统计用区划代码, 2023), five levels, bundled in the binary.
//!
//! Provinces, cities, counties and townships (44k rows) are parsed once into a sorted in-memory
//! index. The 620k villages are never held in memory by this crate: every query streams the xz
//! decoder and skips village lines by their code prefix before parsing them, so a county costs a
//! scan of the compressed file and nothing more.
//!
//! Codes are canonical 12-digit [`RegionCode`]s, so a row whose padded code equals a row of a higher
//! level is the same region and is merged into it: the pseudo-counties 441900 东莞市, 442000 中山市
//! and 460400 儋州市 (cities without counties, whose townships therefore have the city as parent)
//! and the placeholder township 350527000 and village 350527000000 金门县 (the county itself). The
//! files' 2,978 counties, 41,352 townships and 620,573 villages thus become 2,975, 41,351 and 620,572
//! regions. Every other row's declared ancestor columns agree with its code prefix; this is checked
//! while parsing.

use cuncun_domain::model::Region;
use cuncun_domain::{RegionCode, RegionCodeError, RegionLevel};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::OnceLock;
use xz2::read::XzDecoder;

const PROVINCES_CSV: &[u8] = include_bytes!("../../../data/regions/provinces.csv");
const CITIES_CSV: &[u8] = include_bytes!("../../../data/regions/cities.csv");
const AREAS_CSV: &[u8] = include_bytes!("../../../data/regions/areas.csv");
const STREETS_XZ: &[u8] = include_bytes!("../../../data/regions/streets.csv.xz");
const VILLAGES_XZ: &[u8] = include_bytes!("../../../data/regions/villages.csv.xz");

#[derive(Debug, thiserror::Error)]
pub enum RegionsError {
    #[error("unknown region code {0}: not in the bundled 2023 national division data")]
    UnknownCode(String),
    #[error(transparent)]
    BadCode(#[from] RegionCodeError),
    /// The bundled data is corrupt; the message names the file and line.
    #[error("bundled region data is corrupt: {0}")]
    Data(String),
}

/// Look up one code at any level (2/4/6/9/12 digits) and return its Region.
pub fn lookup(code: &str) -> Result<Region, RegionsError> {
    let code = RegionCode::parse(code)?;
    let idx = index()?;
    if code.level() != RegionLevel::Village {
        return idx
            .find(&code)
            .cloned()
            .ok_or_else(|| RegionsError::UnknownCode(code.to_string()));
    }
    match VillageStream::new(idx, code.short())?.next() {
        Some(v) => v,
        None => Err(RegionsError::UnknownCode(code.to_string())),
    }
}

/// The whole subtree of `code` (any level), preceded by its ancestors (province, city, ...),
/// ordered so that every parent comes before its children. Unknown code -> UnknownCode.
///
/// The subtree is in ascending 12-digit code order, which is a depth-first pre-order because a
/// parent's padded code is its children's prefix followed by zeros.
pub fn extract(code: &str) -> Result<Vec<Region>, RegionsError> {
    let code = RegionCode::parse(code)?;
    let idx = index()?;
    let unknown = || RegionsError::UnknownCode(code.to_string());
    if code.level() == RegionLevel::Village {
        let village = VillageStream::new(idx, code.short())?
            .next()
            .ok_or_else(unknown)??;
        let mut out = idx.ancestors(village.parent.as_ref())?;
        out.push(village);
        return Ok(out);
    }
    let root = idx.find(&code).ok_or_else(unknown)?;
    let ancestors = idx.ancestors(root.parent.as_ref())?;
    merge_subtree(idx, Some(&code), ancestors)
}

/// All of China, same ordering as [`extract`].
pub fn extract_all() -> Result<Vec<Region>, RegionsError> {
    merge_subtree(index()?, None, Vec::new())
}

/// Counts per level in a Vec<Region> (helper for tests and CLI output):
/// returns [provinces, cities, counties, townships, villages].
pub fn count_levels(regions: &[Region]) -> [usize; 5] {
    let mut counts = [0; 5];
    for r in regions {
        counts[r.level as usize - 1] += 1;
    }
    counts
}

/// Appends to `out` the index regions and the streamed villages below `root` (all of China when
/// None), merged in code order. Both inputs are sorted, so a linear merge suffices.
fn merge_subtree(
    idx: &'static Index,
    root: Option<&RegionCode>,
    mut out: Vec<Region>,
) -> Result<Vec<Region>, RegionsError> {
    let (upper, prefix) = match root {
        Some(r) => (idx.subtree(r), r.short()),
        None => (&idx.regions[..], ""),
    };
    // About 15 villages per township nationally; avoids most regrowth of a 600k-element Vec.
    let townships = upper
        .iter()
        .filter(|r| r.level == RegionLevel::Township)
        .count();
    out.reserve(upper.len() + townships * 16);
    let mut upper = upper.iter().peekable();
    for village in VillageStream::new(idx, prefix)? {
        let village = village?;
        while let Some(u) = upper.next_if(|u| u.code < village.code) {
            out.push(u.clone());
        }
        out.push(village);
    }
    out.extend(upper.cloned());
    Ok(out)
}

/// One bundled file: its name (for error messages), level and the ancestor-code columns that must
/// be prefixes of each row's code.
struct Source {
    file: &'static str,
    level: RegionLevel,
    ancestor_cols: &'static [&'static str],
}

const PROVINCES: Source = Source {
    file: "provinces.csv",
    level: RegionLevel::Province,
    ancestor_cols: &[],
};
const CITIES: Source = Source {
    file: "cities.csv",
    level: RegionLevel::City,
    ancestor_cols: &["provinceCode"],
};
const AREAS: Source = Source {
    file: "areas.csv",
    level: RegionLevel::County,
    ancestor_cols: &["provinceCode", "cityCode"],
};
const STREETS: Source = Source {
    file: "streets.csv.xz",
    level: RegionLevel::Township,
    ancestor_cols: &["provinceCode", "cityCode", "areaCode"],
};
const VILLAGES: Source = Source {
    file: "villages.csv.xz",
    level: RegionLevel::Village,
    ancestor_cols: &["provinceCode", "cityCode", "areaCode", "streetCode"],
};

/// Digits of an ancestor column's code.
fn col_digits(col: &str) -> usize {
    match col {
        "provinceCode" => 2,
        "cityCode" => 4,
        "areaCode" => 6,
        _ => 9,
    }
}

/// One parsed data row.
struct Row {
    line: usize,
    code: RegionCode,
    name: String,
}

/// A line-oriented reader of one bundled CSV file with the code in the first column.
/// Checks that codes ascend strictly, which lets callers merge and stop early.
struct Table<R> {
    src: &'static Source,
    reader: R,
    line: usize,
    buf: Vec<u8>,
    last_code: Vec<u8>,
    ncols: usize,
    name_col: usize,
    /// (column index, digits) of the declared ancestor codes.
    ancestor_cols: Vec<(usize, usize)>,
    done: bool,
}

impl<R: BufRead> Table<R> {
    fn open(src: &'static Source, reader: R) -> Result<Self, String> {
        let mut t = Table {
            src,
            reader,
            line: 0,
            buf: Vec::with_capacity(256),
            last_code: Vec::new(),
            ncols: 0,
            name_col: 0,
            ancestor_cols: Vec::new(),
            done: false,
        };
        if !t.read_line()? {
            return Err(t.err("empty file"));
        }
        let header = std::str::from_utf8(t.trimmed()).map_err(|_| t.err("header is not UTF-8"))?;
        let header = header.trim_start_matches('\u{feff}');
        let cols: Vec<String> = split_fields(header)
            .map_err(|e| t.err(e))?
            .into_iter()
            .map(|c| c.trim().to_string())
            .collect();
        let col = |name: &str| {
            cols.iter()
                .position(|c| c == name)
                .ok_or_else(|| t.err(&format!("header lacks column {name:?}")))
        };
        if col("code")? != 0 {
            return Err(t.err("the code must be the first column"));
        }
        let name_col = col("name")?;
        let ancestor_cols = src
            .ancestor_cols
            .iter()
            .map(|&c| col(c).map(|i| (i, col_digits(c))))
            .collect::<Result<Vec<_>, _>>()?;
        t.ncols = cols.len();
        t.name_col = name_col;
        t.ancestor_cols = ancestor_cols;
        Ok(t)
    }

    fn err(&self, msg: &str) -> String {
        format!("{} line {}: {msg}", self.src.file, self.line)
    }

    /// Reads the next physical line into `buf`; false at end of file.
    fn read_line(&mut self) -> Result<bool, String> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf).map_err(|e| {
            format!(
                "{} after line {}: read error: {e}",
                self.src.file, self.line
            )
        })?;
        self.line += 1;
        Ok(n > 0)
    }

    fn trimmed(&self) -> &[u8] {
        trim_eol(&self.buf)
    }

    /// The next row whose code starts with `prefix` (at most the code's length). Lines before
    /// the prefix are skipped on their raw bytes; the first line past it ends the scan.
    fn next_matching(&mut self, prefix: &[u8]) -> Result<Option<Row>, String> {
        let digits = self.src.level.digits();
        if prefix.len() > digits {
            return Ok(None);
        }
        while !self.done {
            if !self.read_line()? {
                self.done = true;
                break;
            }
            let line = trim_eol(&self.buf);
            if line.is_empty() {
                continue;
            }
            let code = match line.get(..digits) {
                Some(c) if line.get(digits) == Some(&b',') => c,
                _ => return Err(self.err(&format!("the code must have {digits} digits"))),
            };
            if code <= &self.last_code[..] {
                return Err(self.err("codes are not in ascending order"));
            }
            self.last_code.clear();
            self.last_code.extend_from_slice(code);
            match code[..prefix.len()].cmp(prefix) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return self.parse_row().map(Some),
                std::cmp::Ordering::Greater => self.done = true,
            }
        }
        Ok(None)
    }

    fn parse_row(&self) -> Result<Row, String> {
        let line = std::str::from_utf8(self.trimmed()).map_err(|_| self.err("not UTF-8"))?;
        let fields = split_fields(line).map_err(|e| self.err(e))?;
        if fields.len() != self.ncols {
            return Err(self.err(&format!(
                "{} columns, expected {}",
                fields.len(),
                self.ncols
            )));
        }
        let code_str = &*fields[0];
        let code = RegionCode::parse(code_str).map_err(|e| self.err(&e.to_string()))?;
        // The code was already checked to be exactly `digits` long, so `short()` must be a prefix
        // of it; the declared ancestor columns must be prefixes too.
        for &(i, d) in &self.ancestor_cols {
            let a = fields[i].trim();
            if a.len() != d || !code_str.starts_with(a) {
                return Err(self.err(&format!(
                    "ancestor code {a:?} does not match the code {code_str}"
                )));
            }
        }
        let name = fields[self.name_col].trim();
        if name.is_empty() {
            return Err(self.err("empty name"));
        }
        Ok(Row {
            line: self.line,
            code,
            name: name.to_string(),
        })
    }
}

fn trim_eol(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    line
}

/// Splits one CSV record (RFC 4180 quoting, no embedded line breaks) into its fields.
fn split_fields(line: &str) -> Result<Vec<Cow<'_, str>>, &'static str> {
    let mut out = Vec::with_capacity(6);
    let mut rest = line;
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            // A doubled quote is a literal quote; the field ends at the first single quote.
            let mut owned: Option<String> = None;
            let mut s = quoted;
            loop {
                let i = s.find('"').ok_or("unterminated quoted field")?;
                let after = &s[i + 1..];
                if let Some(next) = after.strip_prefix('"') {
                    owned.get_or_insert_with(String::new).push_str(&s[..=i]);
                    s = next;
                } else {
                    out.push(match owned {
                        Some(mut o) => {
                            o.push_str(&s[..i]);
                            Cow::Owned(o)
                        }
                        None => Cow::Borrowed(&s[..i]),
                    });
                    rest = after;
                    break;
                }
            }
            if rest.is_empty() {
                return Ok(out);
            }
            rest = rest.strip_prefix(',').ok_or("text after a closing quote")?;
        } else if let Some(i) = rest.find(',') {
            out.push(Cow::Borrowed(&rest[..i]));
            rest = &rest[i + 1..];
        } else {
            out.push(Cow::Borrowed(rest));
            return Ok(out);
        }
    }
}

/// Provinces, cities, counties and townships, sorted by code, with parents resolved.
struct Index {
    regions: Vec<Region>,
    /// Rows merged into an existing region with the same 12-digit code, as "file line: code name".
    #[cfg_attr(not(test), allow(dead_code))]
    merged: Vec<String>,
}

fn index() -> Result<&'static Index, RegionsError> {
    static INDEX: OnceLock<Result<Index, String>> = OnceLock::new();
    INDEX
        .get_or_init(build_index)
        .as_ref()
        .map_err(|e| RegionsError::Data(e.clone()))
}

fn build_index() -> Result<Index, String> {
    let mut names: BTreeMap<RegionCode, String> = BTreeMap::new();
    let mut merged = Vec::new();
    let mut add = |src: &'static Source, reader: &mut dyn BufRead| -> Result<(), String> {
        let mut table = Table::open(src, reader)?;
        while let Some(row) = table.next_matching(b"")? {
            if row.code.level() == src.level {
                names.insert(row.code, row.name);
                continue;
            }
            // A padded code of a higher level: the same region, listed again one level down.
            match names.get(&row.code) {
                Some(n) if *n == row.name => merged.push(format!(
                    "{} line {}: {} {}",
                    src.file, row.line, row.code, row.name
                )),
                _ => {
                    return Err(table.err(&format!(
                        "code {} is not a {}-level code",
                        row.code,
                        src.level.key()
                    )));
                }
            }
        }
        Ok(())
    };
    add(&PROVINCES, &mut &PROVINCES_CSV[..])?;
    add(&CITIES, &mut &CITIES_CSV[..])?;
    add(&AREAS, &mut &AREAS_CSV[..])?;
    add(&STREETS, &mut BufReader::new(XzDecoder::new(STREETS_XZ)))?;

    let mut regions = Vec::with_capacity(names.len());
    for (code, name) in &names {
        let parent = nearest_existing_ancestor(code, |a| names.contains_key(a));
        if parent.is_none() && code.level() != RegionLevel::Province {
            return Err(format!("region {code} {name} has no ancestor in the data"));
        }
        regions.push(Region {
            code: code.clone(),
            name: name.clone(),
            level: code.level(),
            parent,
        });
    }
    Ok(Index { regions, merged })
}

/// The closest ancestor of `code` for which `exists` holds (townships of 东莞市 sit directly under
/// the city, for example).
fn nearest_existing_ancestor(
    code: &RegionCode,
    exists: impl Fn(&RegionCode) -> bool,
) -> Option<RegionCode> {
    code.ancestors().into_iter().rev().find(|a| exists(a))
}

impl Index {
    fn find(&self, code: &RegionCode) -> Option<&Region> {
        self.regions
            .binary_search_by(|r| r.code.cmp(code))
            .ok()
            .map(|i| &self.regions[i])
    }

    /// `code` and everything below it, in code order.
    fn subtree(&self, code: &RegionCode) -> &[Region] {
        let (lo, hi) = code.subtree_bounds();
        let start = self
            .regions
            .partition_point(|r| r.code.as_str() < lo.as_str());
        let end = self
            .regions
            .partition_point(|r| r.code.as_str() <= hi.as_str());
        &self.regions[start..end]
    }

    /// The chain province..`parent`, following parent links.
    fn ancestors(&self, parent: Option<&RegionCode>) -> Result<Vec<Region>, RegionsError> {
        let mut out = Vec::new();
        let mut cur = parent;
        while let Some(code) = cur {
            let r = self.find(code).ok_or_else(|| {
                RegionsError::Data(format!("parent {code} is missing from the index"))
            })?;
            out.push(r.clone());
            cur = r.parent.as_ref();
        }
        out.reverse();
        Ok(out)
    }
}

/// Villages whose code starts with a prefix, streamed from the xz file in code order.
struct VillageStream {
    idx: &'static Index,
    table: Table<BufReader<XzDecoder<&'static [u8]>>>,
    prefix: Vec<u8>,
    /// Parent of the previous village, keyed by its 9-digit township prefix: villages of one
    /// township are consecutive, so this saves a lookup per village.
    last_parent: Option<(String, Option<RegionCode>)>,
}

impl VillageStream {
    fn new(idx: &'static Index, prefix: &str) -> Result<Self, RegionsError> {
        let reader = BufReader::with_capacity(1 << 16, XzDecoder::new(VILLAGES_XZ));
        Ok(VillageStream {
            idx,
            table: Table::open(&VILLAGES, reader).map_err(RegionsError::Data)?,
            prefix: prefix.as_bytes().to_vec(),
            last_parent: None,
        })
    }

    fn next_village(&mut self) -> Result<Option<Region>, String> {
        while let Some(row) = self.table.next_matching(&self.prefix)? {
            if row.code.level() != RegionLevel::Village {
                // 350527000000 金门县: a placeholder row repeating a higher-level region.
                match self.idx.find(&row.code) {
                    Some(r) if r.name == row.name => continue,
                    _ => {
                        return Err(self
                            .table
                            .err(&format!("code {} is not a village-level code", row.code)));
                    }
                }
            }
            let township = &row.code.as_str()[..9];
            let parent = match &self.last_parent {
                Some((key, p)) if key == township => p.clone(),
                _ => {
                    let p = nearest_existing_ancestor(&row.code, |a| self.idx.find(a).is_some());
                    self.last_parent = Some((township.to_string(), p.clone()));
                    p
                }
            };
            if parent.is_none() {
                return Err(self
                    .table
                    .err(&format!("village {} has no ancestor in the data", row.code)));
            }
            let level = row.code.level();
            return Ok(Some(Region {
                code: row.code,
                name: row.name,
                level,
                parent,
            }));
        }
        Ok(None)
    }
}

impl Iterator for VillageStream {
    type Item = Result<Region, RegionsError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_village().map_err(RegionsError::Data).transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_csv_fields() {
        let f = split_fields(r#"110101001001,"多福巷社区居委会",110101001,11"#).unwrap();
        assert_eq!(f, ["110101001001", "多福巷社区居委会", "110101001", "11"]);
        let f = split_fields(r#"1,"a ""b"", c",,"""""#).unwrap();
        assert_eq!(f, ["1", r#"a "b", c"#, "", "\""]);
        assert_eq!(split_fields("a,").unwrap(), ["a", ""]);
        assert!(split_fields(r#"1,"abc"#).is_err());
        assert!(split_fields(r#"1,"abc"x,2"#).is_err());
    }

    #[test]
    fn raw_row_counts_and_merged_rows() {
        let idx = index().unwrap();
        // The files hold 31/342/2978/41352 rows; the duplicate padded codes are merged.
        let counts = count_levels(&idx.regions);
        assert_eq!(counts, [31, 342, 2975, 41351, 0]);
        assert_eq!(
            idx.merged,
            [
                "areas.csv line 1941: 4419 东莞市",
                "areas.csv line 1942: 4420 中山市",
                "areas.csv line 2078: 4604 儋州市",
                "streets.csv.xz line 15128: 350527 金门县",
            ]
        );
    }

    #[test]
    fn table_rejects_corrupt_lines() {
        let bad = |body: &str| -> String {
            let data = format!("code,name,provinceCode\n{body}\n");
            let mut t = Table::open(&CITIES, data.as_bytes()).unwrap();
            loop {
                match t.next_matching(b"") {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("no error for {body:?}"),
                    Err(e) => return e,
                }
            }
        };
        assert_eq!(
            bad("1101,\"x\",12"),
            "cities.csv line 2: ancestor code \"12\" does not match the code 1101"
        );
        assert_eq!(
            bad("1101,\"x\",11\n1101,\"y\",11"),
            "cities.csv line 3: codes are not in ascending order"
        );
        assert_eq!(
            bad("110,\"x\",11"),
            "cities.csv line 2: the code must have 4 digits"
        );
        assert_eq!(
            bad("1101,\"x\""),
            "cities.csv line 2: 2 columns, expected 3"
        );
        assert_eq!(bad("1101,\"\",11"), "cities.csv line 2: empty name");
        assert!(Table::open(&CITIES, &b"name,code,provinceCode\n"[..]).is_err());
        assert!(Table::open(&CITIES, &b"code,name\n"[..]).is_err());
    }
}
