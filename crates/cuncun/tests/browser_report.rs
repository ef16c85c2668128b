//! A county administrator in Chromium opens the dashboard and the monthly report of the demo
//! county (奉节县): indicators with targets, the server-drawn charts, the problem villages, a
//! drill-down to the records behind a figure, and the workbook link.
//!
//! Needs /usr/bin/chromedriver and /usr/bin/chromium; without them the test says so and passes,
//! unless CUNCUN_CI=1, where it fails.
#![allow(clippy::unwrap_used)]

mod browser_harness;

use browser_harness::*;

#[test]
fn dashboard_and_monthly_report_of_the_demo_county() {
    if !tools_present() {
        return;
    }
    let _one_at_a_time = serial();
    let work = TempDir::new("report");
    let demo = start_demo(&work.0, 0);
    let base = demo.url.clone();
    let b = Browser::start(&work.0);
    b.login(&base, "admin", &demo.password);

    // From the home page to the dashboard.
    let link = b.el("#home-dashboard");
    b.click(&link);
    b.wait_for_path("/report/dashboard");
    assert!(b.text_of("#dashboard-title").contains("奉节县"), "{}", b.where_());
    assert_eq!(b.els("svg#chart-online").len(), 1, "{}", b.where_());
    assert_eq!(b.els("svg#chart-tickets rect").len(), 12, "twelve weeks of tickets\n{}", b.where_());
    // The demo's terminals are not connected (no simulator): every village is below the online
    // target or has other problems, so the table is there and names villages of the county.
    let rows = b.els("#problems tbody tr");
    assert!(!rows.is_empty(), "{}", b.where_());
    assert!(b.text(&rows[0]).contains("500236"), "{}", b.text(&rows[0]));
    let households = b.text_of("#dash-data_completeness");
    assert!(households.ends_with('%'), "{households}");

    // The monthly report of this month.
    let monthly = b.el("#nav-monthly");
    b.click(&monthly);
    b.wait_for_path("/report");
    assert!(b.text_of("#report-title").contains("奉节县"), "{}", b.where_());
    let hh: i64 = b.text_of("#cov-households").parse().unwrap();
    assert!(hh > 10_000, "the demo county has tens of thousands of households, got {hh}");
    let closure = b.text_of("#ind-closure_24h .value");
    assert!(closure.ends_with('%'), "the demo loads two months of tickets: {closure}");
    assert_eq!(b.els("#by-region tbody tr").len(), 33, "one row per township\n{}", b.where_());
    assert!(!b.els("svg#chart-online circle").is_empty(), "{}", b.where_());
    let xlsx = b.el("#download-xlsx");
    assert!(b.attr(&xlsx, "href").contains("/report/monthly.xlsx?region=500236"));

    // Drill down from hamlet coverage to the hamlets.
    let drill = b.el("#ind-hamlet_coverage a");
    b.click(&drill);
    b.wait_for_path("/report/drill/hamlet_coverage");
    assert!(!b.els("#drill-records tbody tr").is_empty(), "{}", b.where_());
    assert!(b.text_of("#drill-value").contains('/'), "{}", b.where_());
    // The demo places its terminals in hamlets: most hamlets of 20+ households are served, not all.
    let value = b.text_of("#drill-value");
    let pct: f64 = value.split('%').next().unwrap().trim().parse().unwrap();
    assert!((75.0..97.0).contains(&pct), "hamlet coverage {value}");

    // The transmitter sites of the county (one analogue relay out of service).
    let sites = b.el("#nav-sites");
    b.click(&sites);
    b.wait_for_path("/report/sites");
    let counts = b.text_of("#count-transmitters");
    let (live, all) = counts.split_once(" / ").unwrap();
    let (live, all): (i64, i64) = (live.parse().unwrap(), all.parse().unwrap());
    assert!(all >= 5 && live == all - 1, "{counts}");
    assert_eq!(b.els("#sites tbody tr").len() as i64, all, "{}", b.where_());
    assert!(b.text_of("#sites").contains("奉节县广播电视发射台"), "{}", b.where_());

    // Care visits drill down to the households, those short of two visits first.
    b.goto(&format!("{base}/report/drill/care_visits?region=500236"));
    let rows = b.els("#drill-records tbody tr");
    assert!(!rows.is_empty(), "{}", b.where_());
    assert!(b.text(&rows[0]).contains('否'), "first row is short of the plan: {}", b.text(&rows[0]));
}
