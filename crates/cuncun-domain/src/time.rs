//! Beijing time and its calendar days: the one place that knows the offset.
//!
//! Storage keeps UTC milliseconds since the epoch; screens, reports, per-day counts and message
//! ids use the Beijing calendar (UTC+8 all year, no daylight saving). Everything here is pure:
//! callers pass the time in (`cuncun_store::now_ms()` for now).
//!
//! Day numbers count Beijing days since 1970-01-01 (day 0 began at 1969-12-31T16:00:00Z); they
//! floor, so instants before the epoch fall on negative days.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

/// Beijing's offset from UTC, in milliseconds.
pub const OFFSET_MS: i64 = 8 * 3_600_000;
/// One calendar day, in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// A "YYYY-MM-DD" text that is not a calendar date. Callers say which field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a date (YYYY-MM-DD)")]
pub struct DateError(pub String);

// ---- day numbers ----

/// The Beijing day number of a UTC instant.
/// Now, in UTC epoch milliseconds: the one clock every layer reads.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn day_of(ms: i64) -> i64 {
    (ms + OFFSET_MS).div_euclid(DAY_MS)
}

/// The UTC instant Beijing day `day` begins.
pub fn day_start(day: i64) -> i64 {
    day * DAY_MS - OFFSET_MS
}

/// The UTC instant the Beijing day containing `ms` began (local midnight).
pub fn start_of_day(ms: i64) -> i64 {
    day_start(day_of(ms))
}

/// The Monday of the week of a day number (1970-01-01 was a Thursday).
pub fn week_of(day: i64) -> i64 {
    day - (day + 3).rem_euclid(7)
}

/// SQL for the Beijing day number of an epoch-milliseconds column (integer division on both
/// backends; rows before 1970 must be excluded by the query, since SQL division truncates).
pub fn day_sql(column: &str) -> String {
    format!("({column} + {OFFSET_MS}) / {DAY_MS}")
}

// ---- calendar days ----

/// [start, end) in UTC milliseconds of the Beijing calendar day written "YYYY-MM-DD" (as
/// `chrono`'s `%Y-%m-%d` reads it; not trimmed).
pub fn day_bounds(s: &str) -> Result<(i64, i64), DateError> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| DateError(s.to_string()))?;
    let start = d.and_time(NaiveTime::MIN).and_utc().timestamp_millis() - OFFSET_MS;
    Ok((start, start + DAY_MS))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number (Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) in Beijing of a UTC instant.
pub fn civil_of(ms: i64) -> (i64, i64, i64) {
    civil_from_days(day_of(ms))
}

/// The Beijing calendar year of a UTC instant.
pub fn year_of(ms: i64) -> i64 {
    civil_of(ms).0
}

/// The UTC instant 1 January of a Beijing year begins.
pub fn year_start(year: i64) -> i64 {
    month_start(year, 1)
}

/// The UTC instant the first day of a Beijing month (1-12) begins.
pub fn month_start(year: i64, month: i64) -> i64 {
    day_start(days_from_civil(year, month, 1))
}

/// [start, end) in UTC milliseconds of the Beijing month containing `ms`.
pub fn month_bounds(ms: i64) -> (i64, i64) {
    let (y, m, _) = civil_of(ms);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (month_start(y, m), month_start(ny, nm))
}

// ---- wall clock and text ----

/// The Beijing wall-clock time of a UTC instant; None outside chrono's range.
pub fn local(ms: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_millis(ms.checked_add(OFFSET_MS)?).map(|t| t.naive_utc())
}

/// The UTC instant of a Beijing wall-clock time.
pub fn from_local(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis() - OFFSET_MS
}

fn format(ms: i64, pattern: &str) -> String {
    local(ms).map(|t| t.format(pattern).to_string()).unwrap_or_default()
}

/// "YYYY-MM-DD" in Beijing; "" outside chrono's range.
pub fn format_date(ms: i64) -> String {
    format(ms, "%Y-%m-%d")
}

/// "YYYY-MM-DD HH:MM:SS" in Beijing, as the screens show every time; "" outside chrono's range.
pub fn format_datetime(ms: i64) -> String {
    format(ms, "%Y-%m-%d %H:%M:%S")
}

/// "MM-DD" in Beijing (chart labels); "" outside chrono's range.
pub fn format_month_day(ms: i64) -> String {
    format(ms, "%m-%d")
}

/// Today's Beijing date "YYYY-MM-DD" at `now_ms` (the default of a day picker).
pub fn today(now_ms: i64) -> String {
    format_date(now_ms)
}

/// "YYYYMMDD" in Beijing: the date inside a message id (EBMID) and the key of its daily sequence.
pub fn ebmid_date(ms: i64) -> String {
    let (y, m, d) = civil_of(ms);
    format!("{y:04}{m:02}{d:02}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// 2026-06-01 16:00:00 UTC = 2026-06-02 00:00 in Beijing.
    const JUNE_2_BJ: i64 = 1_780_329_600_000;

    #[test]
    fn days_turn_at_16_00_utc() {
        assert_eq!(day_of(JUNE_2_BJ) - day_of(JUNE_2_BJ - 1), 1);
        assert_eq!(start_of_day(JUNE_2_BJ), JUNE_2_BJ);
        assert_eq!(start_of_day(JUNE_2_BJ - 1), JUNE_2_BJ - DAY_MS);
        assert_eq!(start_of_day(JUNE_2_BJ + DAY_MS - 1), JUNE_2_BJ);
        assert_eq!(day_start(day_of(JUNE_2_BJ)), JUNE_2_BJ);
        assert_eq!(format_date(JUNE_2_BJ - 1), "2026-06-01");
        assert_eq!(format_date(JUNE_2_BJ), "2026-06-02");
        assert_eq!(format_datetime(JUNE_2_BJ - 1_000), "2026-06-01 23:59:59");
        assert_eq!(format_month_day(JUNE_2_BJ), "06-02");
        assert_eq!(ebmid_date(JUNE_2_BJ - 1_000), "20260601");
        assert_eq!(ebmid_date(JUNE_2_BJ), "20260602");
        assert_eq!(today(JUNE_2_BJ + 3_600_000), "2026-06-02");
        assert_eq!(day_bounds("2026-06-02"), Ok((JUNE_2_BJ, JUNE_2_BJ + DAY_MS)));
        // 00:00 UTC is 08:00 in Beijing, the same day.
        assert_eq!(format_datetime(0), "1970-01-01 08:00:00");
        assert_eq!(ebmid_date(0), "19700101");
    }

    #[test]
    fn negative_times_floor() {
        // 1969-12-31T16:00:00Z is midnight of 1970-01-01 in Beijing: day 0 starts there.
        assert_eq!(day_start(0), -OFFSET_MS);
        assert_eq!(day_of(-OFFSET_MS), 0);
        assert_eq!(day_of(-OFFSET_MS - 1), -1);
        assert_eq!(start_of_day(-OFFSET_MS - 1), -OFFSET_MS - DAY_MS);
        assert_eq!(format_date(-OFFSET_MS - 1), "1969-12-31");
        assert_eq!(ebmid_date(-OFFSET_MS - 1), "19691231");
        assert_eq!(year_of(-OFFSET_MS - 1), 1969);
        assert_eq!(year_start(1970), -OFFSET_MS);
        assert_eq!(year_start(1969), -OFFSET_MS - 365 * DAY_MS);
        assert_eq!(week_of(-1), -3, "1969-12-31 was a Wednesday; its Monday is 12-29, day -3");
        assert_eq!(week_of(0), -3);
        assert_eq!(week_of(4), 4, "1970-01-05 was a Monday");
        assert_eq!(day_bounds("1969-12-31").map(|b| b.0), Ok(-OFFSET_MS - DAY_MS));
    }

    #[test]
    fn leap_years_and_month_ends() {
        // 2024 is a leap year, 2100 is not, 2000 is.
        for (y, feb) in [(2024, 29), (2025, 28), (2100, 28), (2000, 29)] {
            let (s, e) = month_bounds(month_start(y, 2) + 5 * DAY_MS);
            assert_eq!((e - s) / DAY_MS, feb, "{y}");
            assert_eq!(format_date(e - 1), format!("{y}-02-{feb}"));
            assert_eq!(format_date(e), format!("{y}-03-01"));
        }
        assert_eq!(day_bounds("2024-02-29").map(|b| b.0), Ok(month_start(2024, 3) - DAY_MS));
        assert!(day_bounds("2025-02-29").is_err());
        assert_eq!(day_bounds("2026-13-01"), Err(DateError("2026-13-01".into())));
        assert!(day_bounds(" 2026-01-01x").is_err());
        // The year turns at 2025-12-31T16:00:00Z; December's end is January's start.
        let new_year = 1_767_196_800_000;
        assert_eq!(year_start(2026), new_year);
        assert_eq!((year_of(new_year - 1), year_of(new_year)), (2025, 2026));
        assert_eq!(month_bounds(new_year - 1), (month_start(2025, 12), new_year));
        assert_eq!(month_bounds(new_year), (new_year, month_start(2026, 2)));
        assert_eq!(civil_of(new_year - 1), (2025, 12, 31));
        // 2024-02-01 00:00 Beijing = 2024-01-31T16:00:00Z.
        assert_eq!(month_start(2024, 2), 1_706_716_800_000);
        assert_eq!((year_start(2025) - year_start(2024)) / DAY_MS, 366);
    }

    #[test]
    fn calendar_agrees_with_chrono() {
        // Every day from 1900 to 2200, both ways.
        let mut d = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(2200, 1, 1).unwrap();
        while d < end {
            let ms = from_local(d.and_time(NaiveTime::MIN));
            let day = day_of(ms);
            assert_eq!(day_start(day), ms);
            let text = d.format("%Y-%m-%d").to_string();
            assert_eq!(format_date(ms), text);
            assert_eq!(day_bounds(&text), Ok((ms, ms + DAY_MS)));
            use chrono::Datelike;
            let ymd = (i64::from(d.year()), i64::from(d.month()), i64::from(d.day()));
            assert_eq!(civil_from_days(day), ymd);
            assert_eq!(days_from_civil(ymd.0, ymd.1, ymd.2), day);
            d = d.succ_opt().unwrap();
        }
    }

    #[test]
    fn out_of_range_formats_as_empty() {
        assert_eq!(format_date(i64::MAX), "");
        assert_eq!(format_datetime(i64::MIN), "");
        assert!(local(i64::MAX - 1).is_none());
    }

    #[test]
    fn sql_day_number() {
        assert_eq!(day_sql("created_at_ms"), "(created_at_ms + 28800000) / 86400000");
    }
}
