//! The daily online rate, by one method (docs/INDICATORS.md):
//!
//! A terminal's online time in a day is the length of the union of its connection intervals
//! clipped to the day (Beijing calendar day, 86,400 s) and to "now" for today; gaps between
//! connections shorter than the grace period count as online (a reconnect is not an outage).
//! The denominator is the part of the day during which the terminal was registered and not
//! retired. A region's rate is the sum of its terminals' online seconds over the sum of their
//! denominators (terminal-seconds), so every terminal weighs by the time it was expected online.

/// One connection: [from, to) in UTC ms; `to` None while still connected.
pub type Interval = (i64, Option<i64>);

/// Online and expected milliseconds of one terminal within [day_start, day_end).
pub fn terminal_day(
    intervals: &[Interval],
    registered_ms: i64,
    retired_ms: Option<i64>,
    day_start: i64,
    day_end: i64,
    now: i64,
    grace_ms: i64,
) -> (i64, i64) {
    let end = day_end.min(now);
    let exp_from = day_start.max(registered_ms);
    let exp_to = retired_ms.map_or(end, |r| r.min(end));
    if exp_to <= exp_from {
        return (0, 0);
    }
    let mut iv: Vec<(i64, i64)> = intervals
        .iter()
        .map(|(f, t)| ((*f).max(exp_from), t.unwrap_or(now).min(exp_to)))
        .filter(|(f, t)| t > f)
        .collect();
    iv.sort_unstable();
    let mut online = 0;
    let mut cur: Option<(i64, i64)> = None;
    for (f, t) in iv {
        cur = match cur {
            // Overlapping, touching, or separated by less than the grace period: one span.
            Some((cf, ct)) if f <= ct + grace_ms => Some((cf, ct.max(t))),
            Some((cf, ct)) => {
                online += ct - cf;
                Some((f, t))
            }
            None => Some((f, t)),
        };
    }
    if let Some((cf, ct)) = cur {
        online += ct - cf;
    }
    (online.min(exp_to - exp_from), exp_to - exp_from)
}

/// Rate in percent with two decimals, or None when nothing was expected.
pub fn rate(online_ms: i64, expected_ms: i64) -> Option<f64> {
    if expected_ms <= 0 {
        return None;
    }
    Some((online_ms as f64 * 10_000.0 / expected_ms as f64).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    const H: i64 = 3_600_000;
    const DAY: i64 = 24 * H;

    #[test]
    fn a_day_with_known_gaps() {
        // Online 00:00-06:00, a 30 s blip, 06:00:30-12:00, offline 12:00-15:00, online 15:00-end.
        let iv = [(0, Some(6 * H)), (6 * H + 30_000, Some(12 * H)), (15 * H, None)];
        let (on, exp) = terminal_day(&iv, -DAY, None, 0, DAY, 2 * DAY, 60_000);
        assert_eq!(exp, DAY);
        assert_eq!(on, 21 * H, "the 30 s blip is within the 60 s grace; the 3 h outage is not");
        assert_eq!(rate(on, exp), Some(87.5));
        let (strict, _) = terminal_day(&iv, -DAY, None, 0, DAY, 2 * DAY, 0);
        assert_eq!(strict, 21 * H - 30_000);
    }

    #[test]
    fn registration_retirement_and_today() {
        // Registered at 12:00 and online since: 100 %.
        assert_eq!(terminal_day(&[(12 * H, None)], 12 * H, None, 0, DAY, 2 * DAY, 0), (12 * H, 12 * H));
        // Retired at 06:00 after being online all morning.
        assert_eq!(terminal_day(&[(0, None)], -DAY, Some(6 * H), 0, DAY, 2 * DAY, 0), (6 * H, 6 * H));
        // Today, at 10:00, online since 08:00: 8 of 10 hours.
        assert_eq!(terminal_day(&[(2 * H, None)], -DAY, None, 0, DAY, 10 * H, 0), (8 * H, 10 * H));
        // Overlapping intervals (a duplicate connection) are not counted twice.
        assert_eq!(terminal_day(&[(0, Some(10 * H)), (5 * H, Some(12 * H))], -DAY, None, 0, DAY, 2 * DAY, 0).0, 12 * H);
        assert_eq!(rate(0, 0), None);
    }
}
