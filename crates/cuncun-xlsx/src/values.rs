//! Turning what Excel stored into the text a validator expects: numbers that should be codes,
//! date serials, header labels.

use calamine::{ExcelDateTime, ExcelDateTimeType};

use crate::Message;

/// Excel keeps 15 significant digits of a number; anything at or above 10^15 in a number cell
/// may already have been rounded inside Excel, so it can't be trusted as a code.
const EXACT_LIMIT: f64 = 1e15;

/// Largest date serial Excel accepts (9999-12-31).
const MAX_SERIAL: f64 = 2_958_465.0;

/// Text of a number that should be a code: integral values below 10^15 come back as the digits
/// the user typed (500236100201.0 → "500236100201"); others are an error telling the user to use
/// a text cell.
pub(crate) fn code_from_f64(v: f64) -> Result<String, Message> {
    if !v.is_finite() || v.fract() != 0.0 || v < 0.0 {
        return Err(Message::new(
            format!("代码应为数字串，单元格里是数值 {v}；请把该列设为文本格式后重新输入"),
            format!(
                "a code must be digits, the cell holds the number {v}; format the column as text and retype it"
            ),
        ));
    }
    if v.abs() >= EXACT_LIMIT {
        return Err(Message::new(
            format!(
                "代码被 Excel 存成了数值（{v:e}），超过 15 位的数字已丢失末尾几位；请把该列设为文本格式后重新输入完整代码"
            ),
            format!(
                "the code was stored by Excel as a number ({v:e}) and digits beyond the 15th are lost; format the column as text and retype the full code"
            ),
        ));
    }
    // In range and integral, so the cast is exact.
    Ok(format!("{}", v as i64))
}

/// A code that arrived as text but looks like a float print-out ("500236100201.0",
/// "5.00236100201E11", e.g. from a CSV round trip): recover the digits when that is exact.
/// Plain digit strings and anything else are returned unchanged for the validator to judge.
pub(crate) fn code_from_text(s: &str) -> Result<String, Message> {
    let looks_float = s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_digit());
    match s.parse::<f64>() {
        Ok(v) if looks_float => code_from_f64(v),
        _ => Ok(s.to_string()),
    }
}

/// Shortest text that reads back as the same number (108.4 → "108.4", 3.0 → "3").
pub(crate) fn number_text(v: f64) -> String {
    format!("{v}")
}

/// "YYYY-MM-DD" for a date serial, or None when it is out of Excel's range or names the
/// 1900-02-29 that Excel pretends existed.
pub(crate) fn date_from_serial(v: f64, is_1904: bool) -> Option<String> {
    if !v.is_finite() || !(1.0..=MAX_SERIAL).contains(&v) {
        return None;
    }
    let (y, m, d, ..) =
        ExcelDateTime::new(v, ExcelDateTimeType::DateTime, is_1904).to_ymd_hms_milli();
    valid_ymd(i32::from(y), u32::from(m), u32::from(d))
}

fn valid_ymd(y: i32, m: u32, d: u32) -> Option<String> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    ((1..=days).contains(&d) && (1900..=9999).contains(&y)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

/// Normalises a date typed as text to "YYYY-MM-DD". Accepts 2024-05-20, 2024/5/20, 2024.5.20,
/// 2024年5月20日, 20240520, a trailing time (dropped), and a bare Excel date serial (45432,
/// 1900 date system, as a text cell holding the serial would show it).
pub fn normalise_date(s: &str) -> Result<String, Message> {
    let bad = || {
        Message::new(
            format!("日期「{s}」无法识别，请写成 YYYY-MM-DD，例如 2024-05-20"),
            format!("date {s:?} is not recognised; write it as YYYY-MM-DD, e.g. 2024-05-20"),
        )
    };
    let t = s.trim();
    // Drop a time part: "2024-05-20 00:00:00" or "2024-05-20T08:00".
    let date_part = t.split([' ', 'T']).next().unwrap_or(t);
    if !date_part.is_empty() && date_part.bytes().all(|b| b.is_ascii_digit()) {
        if date_part.len() == 8 {
            let n = |r: std::ops::Range<usize>| date_part[r].parse::<u32>().ok();
            return match (n(0..4), n(4..6), n(6..8)) {
                (Some(y), Some(m), Some(d)) => valid_ymd(y as i32, m, d).ok_or_else(bad),
                _ => Err(bad()),
            };
        }
        if date_part.len() <= 7 {
            let v: f64 = date_part.parse().map_err(|_| bad())?;
            return date_from_serial(v, false).ok_or_else(bad);
        }
        return Err(bad());
    }
    let parts: Vec<&str> = date_part
        .split(['-', '/', '.', '年', '月', '日'])
        .filter(|p| !p.is_empty())
        .collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() > 2 || d.len() > 2 {
        return Err(bad());
    }
    match (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>()) {
        (Ok(y), Ok(m), Ok(d)) => valid_ymd(y, m, d).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// Trims ordinary and full-width whitespace plus the invisible characters that copy-paste from
/// web pages and chat apps leaves behind.
pub(crate) fn clean(s: &str) -> String {
    s.trim_matches(|c: char| {
        c.is_whitespace() || matches!(c, '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{feff}')
    })
    .to_string()
}

/// Header text reduced for matching: no whitespace, ASCII parentheses, no `*` required marks,
/// ASCII lower case.
pub(crate) fn header_norm(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '*' | '＊' | '\u{200b}' | '\u{feff}'))
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Width of text in Excel's character units: CJK and full-width characters take two.
pub(crate) fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| if (c as u32) >= 0x1100 { 2 } else { 1 })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_from_numbers() {
        assert_eq!(
            code_from_f64(500236100201.0).ok().as_deref(),
            Some("500236100201")
        );
        assert_eq!(
            code_from_text("5.00236100201E11").ok().as_deref(),
            Some("500236100201")
        );
        assert_eq!(
            code_from_text("500236100201.0").ok().as_deref(),
            Some("500236100201")
        );
        assert_eq!(code_from_text("5002x6").ok().as_deref(), Some("5002x6"));
        assert!(code_from_f64(6.5e22).is_err());
        assert!(code_from_f64(12.5).is_err());
    }

    #[test]
    fn dates() {
        for ok in [
            "2024-05-20",
            "2024/5/20",
            "2024.5.20",
            "2024年5月20日",
            "20240520",
            "2024-05-20 00:00:00",
            "45432",
        ] {
            assert_eq!(
                normalise_date(ok).ok().as_deref(),
                Some("2024-05-20"),
                "{ok}"
            );
        }
        for bad in ["2024-02-30", "60", "20241320", "May 20", "24-5-20", ""] {
            assert!(normalise_date(bad).is_err(), "{bad}");
        }
        assert_eq!(
            date_from_serial(45432.0, false).as_deref(),
            Some("2024-05-20")
        );
        assert_eq!(
            date_from_serial(43970.0, true).as_deref(),
            Some("2024-05-20")
        );
    }

    #[test]
    fn headers() {
        assert_eq!(
            header_norm(" *区划代码 （Region_Code） "),
            "区划代码(region_code)"
        );
    }
}
