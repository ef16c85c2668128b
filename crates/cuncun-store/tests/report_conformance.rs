//! Coverage, indicators, targets, the nine-haves checklist, the repair loop and the monthly report,
//! on every backend (SQLite always; PostgreSQL with CUNCUN_TEST_PG_URL), with hand-checked answers.

#![allow(clippy::unwrap_used)]

use cuncun_domain::eb::{Ebrid, ResourceKind};
use cuncun_domain::protocol::Stage;
use cuncun_domain::indicators::{CheckStatus, Month, NineHaves};
use cuncun_domain::model::*;
use cuncun_domain::service::*;
use cuncun_domain::RegionCode;
use cuncun_store::eb::{EbStore, NewMessage, NewResource, ReceiptIn, StatusChange};
use cuncun_store::report::*;
use cuncun_store::service::*;
use cuncun_store::testing::all_backends;
use cuncun_store::*;

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;

fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

fn region(code: &str, name: &str) -> Region {
    let c = rc(code);
    Region { level: c.level(), parent: c.parent(), code: c, name: name.into() }
}

// Two counties of one city: A (仁和区) and B (盐边县).
const CITY: &str = "510400000000";
const A: &str = "510411000000";
const B: &str = "510422000000";
const A1: &str = "510411100201";
const A2: &str = "510411100202";
const B1: &str = "510422100201";

fn op() -> Actor {
    Actor::cli("test")
}

fn hh(village: &str, hamlet: &str, members: i64, modes: &[CoverageMode], hd: bool, fibre: bool) -> HouseholdRecord {
    HouseholdRecord {
        village_code: rc(village),
        hamlet: Some(hamlet.into()),
        head_name: "户主".into(),
        phone: "13912345678".into(),
        address: format!("{hamlet}1号"),
        members,
        reception: Some(modes.to_vec()),
        hd,
        fibre,
        care_elderly: false,
        care_children: false,
        care_disabled: false,
        fee_waiver: FeeWaiver::None,
        fee_waiver_evidence: String::new(),
        fee_waiver_until: String::new(),
    }
}

async fn terminal(s: &SqlStore, village: &str, kind: ResourceKind, name: &str, created_ms: i64) -> (i64, String) {
    let r = s
        .add_resource(
            &NewResource { kind, name: name.into(), ..cuncun_store::testing::loudspeaker(village, "") },
            &op(),
        )
        .await
        .unwrap();
    sqlx::query("UPDATE eb_resource SET created_at_ms = $1 WHERE id = $2")
        .bind(created_ms)
        .bind(r.id)
        .execute(s.pool())
        .await
        .unwrap();
    (r.id, r.ebrid)
}

/// June 2025 (Beijing).
fn june() -> Month {
    Month::parse("2025-06").unwrap()
}

struct Fixture {
    a_loud: String,
    a_blip: String,
}

async fn seed(s: &SqlStore) -> Fixture {
    let regions = vec![
        region("51", "四川省"),
        region(CITY, "攀枝花市"),
        region(A, "仁和区"),
        region("510411100", "大龙潭乡"),
        region(A1, "干坝子村"),
        region(A2, "混撒拉村"),
        region(B, "盐边县"),
        region("510422100", "红格镇"),
        region(B1, "昔格达村"),
    ];
    s.import_regions(&regions, "fixture", &op()).await.unwrap();
    for (v, t) in [(A1, "510411100"), (A2, "510411100"), (B1, "510422100")] {
        s.add_steward(
            &StewardRecord { name: format!("管家{v}"), phone: "13800000001".into(), region_code: rc(t), user_id: None, villages: vec![rc(v)] },
            &op(),
        )
        .await
        .unwrap();
    }
    use CoverageMode::*;
    let rows = vec![
        hh(A1, "王家湾", 3, &[Cable], true, true),
        hh(A1, "王家湾", 2, &[Terrestrial], true, false),
        hh(A1, "石板沟", 4, &[], false, false),
        hh(A2, "李家坝", 5, &[Satellite], false, false),
        hh(A2, "李家坝", 1, &[Cable], false, false),
        hh(B1, "大坪", 4, &[Iptv, FiveG], true, true),
    ];
    s.import_households(&rows, "fixture", &op()).await.unwrap();
    for (v, name, n) in [(A1, "王家湾", 25), (A1, "石板沟", 10), (A2, "李家坝", 30), (B1, "大坪", 40)] {
        s.add_hamlet(&NewHamlet { village_code: rc(v), name: name.into(), households: n, population: n * 3 }, &op()).await.unwrap();
    }
    let long_ago = june().start_ms() - 30 * DAY;
    let (_, a_loud) = terminal(s, A1, ResourceKind::OutdoorLoudspeaker, "干坝子1号大喇叭", long_ago).await;
    let (_, a_blip) = terminal(s, A1, ResourceKind::OutdoorLoudspeaker, "干坝子2号大喇叭", long_ago).await;
    terminal(s, A1, ResourceKind::InHomeReceiver, "干坝子村王家湾1号户内接收终端", long_ago).await;
    terminal(s, A2, ResourceKind::ColumnSpeaker, "混撒拉1号音柱", long_ago).await;
    terminal(s, B1, ResourceKind::OutdoorLoudspeaker, "昔格达1号大喇叭", long_ago).await;
    terminal(s, B1, ResourceKind::OutdoorLoudspeaker, "昔格达2号大喇叭", long_ago).await;
    Fixture { a_loud, a_blip }
}


/// A broadcast aimed at `areas`, approved (targets fixed) and dated `approved_ms`.
async fn approved_message(s: &SqlStore, owner: &str, areas: &[&str], priority: &str, approved_ms: i64) -> cuncun_store::eb::Message {
    let m = s
        .create_message(
            &NewMessage {
                platform: Ebrid::generate(&rc(owner), ResourceKind::Platform, 1).unwrap(),
                priority: priority.into(),
                body: "预计未来6小时有暴雨".into(),
                start_ms: 0,
                end_ms: approved_ms + DAY,
                ..cuncun_store::testing::warning(areas, owner, 0)
            },
            &op(),
        )
        .await
        .unwrap();
    let m = cuncun_store::testing::submit_and_approve(s, &m, &op()).await.unwrap();
    sqlx::query("UPDATE eb_message SET approved_at_ms = $1 WHERE id = $2").bind(approved_ms).bind(m.id).execute(s.pool()).await.unwrap();
    m
}

/// Per priority, the sums of two regions' terminal deliveries.
fn sum_deliveries(a: &BroadcastCounts, b: &BroadcastCounts) -> Vec<(String, bool, i64, i64, i64)> {
    let mut by: std::collections::BTreeMap<(String, bool), (i64, i64, i64)> = Default::default();
    for (p, d, t, r, pl) in a.deliveries.iter().chain(&b.deliveries) {
        let e = by.entry((p.clone(), *d)).or_default();
        e.0 += t;
        e.1 += r;
        e.2 += pl;
    }
    by.into_iter().map(|((p, d), (t, r, pl))| (p, d, t, r, pl)).collect()
}

fn site(village: &str, name: &str, kind: TransmitterKind) -> NewTransmitterSite {
    NewTransmitterSite {
        name: name.into(),
        kind,
        village_code: rc(village),
        hamlet_id: None,
        lon: Some(101.7),
        lat: Some(26.5),
        frequencies: "FM 97.5 MHz".into(),
        power_w: Some(300.0),
        in_service: true,
    }
}

#[tokio::test]
async fn coverage_per_village_and_county_hand_checked() {
    for db in all_backends().await {
        let s = &db.store;
        seed(s).await;
        let c = s.coverage_grouped(&rc(A), 6).await.unwrap().remove("510411").unwrap();
        // A1: 3 households, 9 people (one receives nothing); A2: 2 households, 6 people.
        assert_eq!((c.villages, c.households, c.population), (2, 5, 15), "{:?}", s.backend());
        assert_eq!(c.by_mode, [2, 1, 1, 0, 0]);
        assert_eq!((c.receiving, c.receiving_population), (4, 11));
        // Everyone in A1 lives in a village with terminals, so radio reaches the 4 without TV.
        assert_eq!(c.radio_population, 15);
        assert_eq!((c.fibre, c.cable_fibre, c.hd), (1, 1, 2));
        assert_eq!((c.cable_villages, c.villages_two_terminals), (2, 1));
        // 王家湾 (25) has the in-home receiver named after it; 李家坝 (30) nothing yet; 石板沟 is small.
        assert_eq!((c.big_hamlets, c.big_hamlets_covered), (2, 1));
        assert_eq!(c.terminals, 4);
        let basis = cuncun_domain::indicators::Basis { coverage: c, ..Default::default() };
        assert_eq!(basis.value("tv_population"), Some(73.33));
        assert_eq!(basis.value("fibre"), Some(50.0));
        assert_eq!(basis.value("hd"), Some(50.0));
        assert_eq!(basis.value("digital"), Some(80.0));
        assert_eq!(basis.value("hamlet_coverage"), Some(50.0));
        assert_eq!(basis.value("village_two_terminals"), Some(50.0));

        // Assigning A2's column speaker to 李家坝 covers it; the change is audited.
        let hamlets = s.hamlet_coverage(&rc(A)).await.unwrap();
        let ljb = hamlets.iter().find(|h| h.name == "李家坝").unwrap();
        assert_eq!(ljb.terminals, 0);
        let speaker = s.resources_in(&rc(A2), &[], false, 10, 0).await.unwrap();
        let speaker = speaker.first().unwrap();
        s.set_terminal_hamlet(speaker.resource.id, Some(ljb.id), &op()).await.unwrap();
        let wjw = hamlets.iter().find(|h| h.name == "王家湾").unwrap();
        let err = s.set_terminal_hamlet(speaker.resource.id, Some(wjw.id), &op()).await.unwrap_err();
        assert!(err.to_string().contains("lies in village"), "{err}");
        let c = s.coverage_grouped(&rc(A), 6).await.unwrap().remove("510411").unwrap();
        assert_eq!(c.big_hamlets_covered, 2);
        assert!(s.audit_recent(5).await.unwrap().iter().any(|e| e.action == "terminal.hamlet"));

        let villages = s.village_coverage(&rc(A)).await.unwrap();
        assert_eq!(villages.iter().map(|v| (v.name.as_str(), v.counts.households)).collect::<Vec<_>>(), vec![("干坝子村", 3), ("混撒拉村", 2)]);

        // In bulk (the demo's path): all or nothing, one audit entry.
        let a1 = s.terminal_hamlets(&rc(A1), 10).await.unwrap();
        let loud = a1.iter().find(|t| t.name == "干坝子1号大喇叭").unwrap();
        let err = s.assign_terminal_hamlets(&[(loud.id, wjw.id), (speaker.resource.id, wjw.id)], "t", &op()).await.unwrap_err();
        assert!(err.to_string().contains("does not lie in the village"), "{err}");
        assert_eq!(s.terminal_hamlets(&rc(A1), 10).await.unwrap().iter().find(|t| t.id == loud.id).unwrap().hamlet_id, None, "rolled back");
        let sbg = hamlets.iter().find(|h| h.name == "石板沟").unwrap();
        assert_eq!(s.assign_terminal_hamlets(&[(loud.id, sbg.id)], "t", &op()).await.unwrap(), 1);
        let h = s.hamlet_coverage(&rc(A1)).await.unwrap();
        assert_eq!(h.iter().find(|h| h.name == "石板沟").unwrap().terminals, 1);
        assert!(s.audit_recent(1).await.unwrap()[0].action == "terminal.hamlet.import");
    }
}

#[tokio::test]
async fn an_online_day_with_known_gaps() {
    for db in all_backends().await {
        let s = &db.store;
        let f = seed(s).await;
        let d0 = june().start_ms() + 9 * DAY; // 10 June, 00:00 Beijing
        // Worked example of docs/INDICATORS.md: 00:00-06:00, a 30 s drop, 06:00:30-12:00,
        // down 12:00-15:00, then up to the end of the day: 21 of 24 h. The other loudspeaker is
        // up all day; the receiver and the other village's terminals never connect.
        for (from, to) in [(0, 6 * H), (6 * H + 30_000, 12 * H), (15 * H, 24 * H)] {
            s.apply_status(&[
                StatusChange::Online { ebrid: f.a_blip.clone(), at_ms: d0 + from },
                StatusChange::Offline { ebrid: f.a_blip.clone(), at_ms: d0 + to },
            ])
            .await
            .unwrap();
        }
        s.apply_status(&[StatusChange::Online { ebrid: f.a_loud.clone(), at_ms: d0 - H }, StatusChange::Offline { ebrid: f.a_loud.clone(), at_ms: d0 + DAY + H }])
            .await
            .unwrap();
        let o = s.online_summary(&rc(A1), d0, d0 + DAY, d0 + 10 * DAY, 12, true).await.unwrap();
        assert_eq!(o.days.len(), 1);
        // 21 h + 24 h online of 3 × 24 h expected (the receiver was expected too).
        assert_eq!((o.online_ms, o.expected_ms), (45 * H, 72 * H), "{:?}", s.backend());
        assert_eq!(cuncun_domain::online::rate(o.online_ms, o.expected_ms), Some(62.5));
        let blip = o.terminals.iter().find(|t| t.ebrid == f.a_blip).unwrap();
        assert_eq!((blip.online_ms, blip.expected_ms), (21 * H, 24 * H));
        // The month: only the 10th and 11th (1 h) have online time.
        let m = s.online_summary(&rc(A), june().start_ms(), june().end_ms(), june().end_ms() + DAY, 6, false).await.unwrap();
        assert_eq!(m.days.len(), 30);
        assert_eq!(m.days[9].1, 45 * H);
        assert_eq!(m.days[10].1, H);
        assert_eq!(m.expected_ms, 4 * 30 * DAY);
    }
}

/// 114 tickets in county B in June: 110 resolved within 24 h, 4 after 30 h (Baoshan: 96.49%).
async fn baoshan_tickets(s: &SqlStore) {
    let t0 = june().start_ms() + 2 * DAY;
    for i in 0..114 {
        let at = t0 + i * 5 * H;
        let t = s
            .create_ticket(
                &NewTicket {
                    kind: if i < 2 { TicketKind::Complaint } else { TicketKind::Repair },
                    source: TicketSource::Phone,
                    category: TicketCategory::Satellite,
                    village_code: rc(B1),
                    household_id: None,
                    reporter_name: "王大爷".into(),
                    reporter_phone: "13912345678".into(),
                    address: "大坪1号".into(),
                    description: "没有信号".into(),
                    terminal_ebrid: None,
                    dedupe_key: None,
                    confirm_token_hash: None,
                    requested_at_ms: Some(at),
                },
                &op(),
            )
            .await
            .unwrap()
            .ticket;
        let took = if i < 110 { 2 * H } else { 30 * H };
        s.transition_ticket(t.id, &TicketAction::Resolve { note: "已修复".into() }, &op(), at + took).await.unwrap();
    }
}

#[tokio::test]
async fn monthly_report_baoshan_and_city_equals_sum_of_counties() {
    for db in all_backends().await {
        let s = &db.store;
        let f = seed(s).await;
        baoshan_tickets(s).await;
        // County A: 3 tickets, one resolved in 3 h; terminals online part of the month.
        for i in 0..3 {
            let t = s
                .create_ticket(
                    &NewTicket {
                        kind: TicketKind::Repair,
                        source: TicketSource::Public,
                        category: TicketCategory::Cable,
                        village_code: rc(A2),
                        household_id: None,
                        reporter_name: "李".into(),
                        reporter_phone: "13912345678".into(),
                        address: "李家坝".into(),
                        description: "花屏".into(),
                        terminal_ebrid: None,
                        dedupe_key: None,
                        confirm_token_hash: None,
                        requested_at_ms: Some(june().start_ms() + (20 + i) * DAY),
                    },
                    &op(),
                )
                .await
                .unwrap()
                .ticket;
            if i == 0 {
                s.transition_ticket(t.id, &TicketAction::Resolve { note: "ok".into() }, &op(), june().start_ms() + 20 * DAY + 3 * H).await.unwrap();
            }
        }
        let d0 = june().start_ms() + 4 * DAY;
        s.apply_status(&[StatusChange::Online { ebrid: f.a_loud.clone(), at_ms: d0 }, StatusChange::Offline { ebrid: f.a_loud.clone(), at_ms: d0 + 10 * DAY }])
            .await
            .unwrap();
        let now = june().end_ms() + 5 * DAY;
        // Broadcasts: one warning for both counties (played by A's first loudspeaker), one
        // routine item for A1, one of May (not counted); sites: two in A (one out of service), one in B.
        let both = approved_message(s, CITY, &[A, B], "emergency", june().start_ms() + 3 * DAY).await;
        s.apply_receipts(&[ReceiptIn { ebrid: f.a_loud.clone(), ebmid: both.ebmid.clone(), stage: Stage::Started, ts: 1, reason: None }]).await.unwrap();
        approved_message(s, A, &[A1], "routine", june().start_ms() + 5 * DAY).await;
        approved_message(s, CITY, &[CITY], "emergency", june().start_ms() - DAY).await;
        // A drill for A1: counted apart from real warnings, in messages and in deliveries.
        let drill = approved_message(s, A, &[A1], "emergency", june().start_ms() + 6 * DAY).await;
        sqlx::query("UPDATE eb_message SET drill = 1 WHERE id = $1").bind(drill.id).execute(s.pool()).await.unwrap();
        s.add_transmitter_site(&site(A1, "干坝子调频转播台", TransmitterKind::Relay), &op()).await.unwrap();
        s.add_transmitter_site(&NewTransmitterSite { in_service: false, ..site(A2, "混撒拉电视差转台", TransmitterKind::Tv) }, &op()).await.unwrap();
        s.add_transmitter_site(&site(B1, "昔格达地面数字电视发射台", TransmitterKind::Dtmb), &op()).await.unwrap();

        let b = monthly_report(s, &rc(B), june(), now).await.unwrap();
        let e = b.evaluation("closure_24h").unwrap();
        assert_eq!((e.numerator, e.denominator, e.value), (110, 114, Some(96.49)), "{:?}", s.backend());
        assert_eq!(b.evaluation("closure").unwrap().value, Some(100.0));
        // 2 complaints over 1 household.
        assert_eq!(b.evaluation("complaint").unwrap().met, Some(false));
        assert_eq!(b.tickets_per_week.iter().map(|w| w.1).sum::<i64>(), 114);

        let a = monthly_report(s, &rc(A), june(), now).await.unwrap();
        let city = monthly_report(s, &rc(CITY), june(), now).await.unwrap();
        assert_eq!(a.evaluation("online_rate").unwrap().value, Some(8.33), "10 days of 30 for one of 4 terminals");
        // Additive figures of the city are the sums of its counties'.
        let mut sum = a.basis.clone();
        sum.add(&b.basis);
        assert_eq!(city.basis, sum);
        let mut sites = a.sites;
        sites.add(&b.sites);
        assert_eq!(city.sites, sites);
        assert_eq!((city.sites.transmitters, city.sites.transmitters_in_service), (3, 2));
        // Terminal deliveries and plays are additive; messages are counted where they were aimed.
        assert_eq!(city.broadcasts.deliveries, sum_deliveries(&a.broadcasts, &b.broadcasts));
        let row = |p: &str, d, t, r, pl| (p.to_string(), d, t, r, pl);
        assert_eq!(a.broadcasts.deliveries, vec![row("emergency", false, 4, 1, 1), row("emergency", true, 3, 0, 0), row("routine", false, 3, 0, 0)]);
        assert_eq!(b.broadcasts.deliveries, vec![row("emergency", false, 2, 0, 0)]);
        assert!(a.broadcasts.messages.contains(&("emergency".to_string(), true, 1)), "{:?}", a.broadcasts.messages);
        assert!(!b.broadcasts.messages.iter().any(|m| m.1), "the drill was for A only");
        assert_eq!(city.children.len(), 2);
        assert_eq!(city.children[0].basis, a.basis);
        assert_eq!(city.children[1].basis, b.basis);
        for (i, w) in city.tickets_per_week.iter().enumerate() {
            assert_eq!(w.1, a.tickets_per_week[i].1 + b.tickets_per_week[i].1);
        }
        for (i, d) in city.daily_online.iter().enumerate() {
            assert_eq!((d.1, d.2), (a.daily_online[i].1 + b.daily_online[i].1, a.daily_online[i].2 + b.daily_online[i].2));
        }
        assert_eq!(city.terminals.total, a.terminals.total + b.terminals.total);
        // Rates are those of the union of records: 111 of 117 tickets closed within 24 h.
        let e = city.evaluation("closure_24h").unwrap();
        assert_eq!((e.numerator, e.denominator, e.value), (111, 117, Some(94.87)));
        assert_eq!(city.evaluation("digital").unwrap().value, Some(83.33), "5 of 6 households");
    }
}

#[tokio::test]
async fn targets_inherit_and_are_audited() {
    for db in all_backends().await {
        let s = &db.store;
        seed(s).await;
        s.set_target(&rc("51"), "hd", Some(60.0), &op()).await.unwrap();
        s.set_target(&rc(A), "hd", Some(100.0), &op()).await.unwrap();
        let b = cuncun_domain::indicators::Basis::default();
        let ea = evaluate_all(s, &rc(A1), &b).await.unwrap();
        let hd = ea.iter().find(|e| e.def.id == "hd").unwrap();
        assert_eq!((hd.target, hd.target_from.as_str()), (100.0, A));
        let eb = evaluate_all(s, &rc(B), &b).await.unwrap();
        let hd = eb.iter().find(|e| e.def.id == "hd").unwrap();
        assert_eq!((hd.target, hd.target_from.as_str()), (60.0, "510000000000"));
        s.set_target(&rc(A), "hd", None, &op()).await.unwrap();
        let ea = evaluate_all(s, &rc(A), &b).await.unwrap();
        assert_eq!(ea.iter().find(|e| e.def.id == "hd").unwrap().target, 60.0);
        let online = ea.iter().find(|e| e.def.id == "online_rate").unwrap();
        assert_eq!((online.target, online.target_from.as_str()), (90.0, ""));
        assert!(s.set_target(&rc(A), "hd", Some(120.0), &op()).await.unwrap_err().to_string().contains("0 to 100"));
        assert!(s.set_target(&rc(A), "bogus", Some(1.0), &op()).await.is_err());
        let audit = s.audit_recent(10).await.unwrap();
        assert_eq!(audit.iter().filter(|e| e.action == "target.set").count(), 3);
        assert!(verify_audit(s).await.unwrap().1.is_empty());
    }
}

#[tokio::test]
async fn nine_haves_need_evidence() {
    for db in all_backends().await {
        let s = &db.store;
        seed(s).await;
        let list = s.county_checklist(&rc(A)).await.unwrap();
        assert_eq!(list.len(), 9);
        assert!(list.iter().all(|c| c.status == CheckStatus::Missing));
        let err = s.set_county_check(&rc(A), NineHaves::Funds, CheckStatus::Done, " ", None, &op()).await.unwrap_err();
        assert!(err.to_string().contains("funds: evidence"), "{err}");
        let file = EvidenceFile { name: "预算批复.pdf".into(), content_type: "application/pdf".into(), bytes: b"%PDF-1.4 x".to_vec() };
        s.set_county_check(&rc(A), NineHaves::Funds, CheckStatus::Done, "县财政2025年预算", Some(&file), &op()).await.unwrap();
        // A later edit without a file keeps the file.
        s.set_county_check(&rc(A), NineHaves::Funds, CheckStatus::Done, "县财政2025年预算（已拨付）", None, &op()).await.unwrap();
        let list = s.county_checklist(&rc(A)).await.unwrap();
        let funds = list.iter().find(|c| c.item == NineHaves::Funds).unwrap();
        assert_eq!((funds.status, funds.file_name.as_deref()), (CheckStatus::Done, Some("预算批复.pdf")));
        assert_eq!(funds.evidence, "县财政2025年预算（已拨付）");
        assert_eq!(s.county_check_file(&rc(A), NineHaves::Funds).await.unwrap().unwrap().bytes, file.bytes);
        assert!(s.county_check_file(&rc(B), NineHaves::Funds).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn an_outage_opens_one_ticket_for_the_steward() {
    for db in all_backends().await {
        let s = &db.store;
        let f = seed(s).await;
        let t0 = 1_750_000_000_000;
        s.apply_status(&[StatusChange::Online { ebrid: f.a_loud.clone(), at_ms: t0 }, StatusChange::Offline { ebrid: f.a_loud.clone(), at_ms: t0 + H }])
            .await
            .unwrap();
        // Down 3 h of the 4 allowed: nothing yet.
        assert!(s.open_outage_tickets(t0 + 4 * H, 4 * H).await.unwrap().is_empty());
        let opened = s.open_outage_tickets(t0 + 6 * H, 4 * H).await.unwrap();
        assert_eq!(opened.len(), 1, "{:?}", s.backend());
        assert!(opened[0].created);
        let t = s.ticket(opened[0].ticket_id).await.unwrap().unwrap();
        assert_eq!((t.source, t.status, t.village_code.as_str()), (TicketSource::Terminal, TicketStatus::Assigned, A1));
        let steward = s.village_steward(&rc(A1)).await.unwrap().unwrap();
        assert_eq!(t.steward_id, Some(steward.id));
        assert_eq!(t.terminal_ebrid.as_deref(), Some(f.a_loud.as_str()));
        // Still down an hour later: no second ticket, even after the steward closes this one.
        assert!(s.open_outage_tickets(t0 + 7 * H, 4 * H).await.unwrap().is_empty());
        s.transition_ticket(t.id, &TicketAction::Resolve { note: "终端已恢复".into() }, &op(), t0 + 8 * H).await.unwrap();
        assert!(s.open_outage_tickets(t0 + 9 * H, 4 * H).await.unwrap().is_empty());
        // Back, then down again: a new outage, a new ticket.
        s.apply_status(&[StatusChange::Online { ebrid: f.a_loud.clone(), at_ms: t0 + 10 * H }, StatusChange::Offline { ebrid: f.a_loud.clone(), at_ms: t0 + 11 * H }])
            .await
            .unwrap();
        let again = s.open_outage_tickets(t0 + 16 * H, 4 * H).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_ne!(again[0].ticket_id, t.id);
        // A fault on a connected terminal: first seen now, a ticket once it lasts.
        s.apply_status(&[StatusChange::Online { ebrid: f.a_blip.clone(), at_ms: t0 }]).await.unwrap();
        sqlx::query("UPDATE terminal_status SET faults = 'amplifier' WHERE resource_id = (SELECT id FROM eb_resource WHERE ebrid = $1)")
            .bind(f.a_blip.as_str())
            .execute(s.pool())
            .await
            .unwrap();
        assert!(s.open_outage_tickets(t0 + 17 * H, 4 * H).await.unwrap().is_empty());
        let fault = s.open_outage_tickets(t0 + 22 * H, 4 * H).await.unwrap();
        assert_eq!(fault.iter().map(|o| (o.ebrid.as_str(), o.kind.as_str())).collect::<Vec<_>>(), vec![(f.a_blip.as_str(), "fault")]);
        assert!(s.open_outage_tickets(t0 + 30 * H, 4 * H).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_message_for_two_counties_counts_once_in_the_city_and_once_in_each() {
    for db in all_backends().await {
        let s = &db.store;
        seed(s).await;
        let at = june().start_ms() + 3 * DAY;
        approved_message(s, CITY, &[A, B], "emergency", at).await;
        approved_message(s, A, &["510411100"], "routine", at).await;
        let now = june().end_ms() + DAY;
        let msgs = |r: &MonthlyReport| r.broadcasts.messages.clone();
        let city = monthly_report(s, &rc(CITY), june(), now).await.unwrap();
        let a = monthly_report(s, &rc(A), june(), now).await.unwrap();
        let b = monthly_report(s, &rc(B), june(), now).await.unwrap();
        let e = |n| ("emergency".to_string(), false, n);
        let r = |n| ("routine".to_string(), false, n);
        assert_eq!(msgs(&city), vec![e(1), r(1)], "{:?}: distinct messages, not 1 + 1", s.backend());
        assert_eq!(msgs(&a), vec![e(1), r(1)]);
        assert_eq!(msgs(&b), vec![e(1)]);
        // A village inside a targeted township, and the province above the city, see it too.
        let v = monthly_report(s, &rc(A1), june(), now).await.unwrap();
        assert_eq!(msgs(&v), vec![e(1), r(1)]);
        assert_eq!(msgs(&monthly_report(s, &rc("51"), june(), now).await.unwrap()), vec![e(1), r(1)]);
        // Deliveries: A's 4 and B's 2 terminals for the warning; the township's 4 for the routine item.
        assert_eq!(city.broadcasts.deliveries, vec![("emergency".to_string(), false, 6, 0, 0), ("routine".to_string(), false, 4, 0, 0)]);
        assert_eq!(city.broadcasts.deliveries, sum_deliveries(&a.broadcasts, &b.broadcasts));
    }
}

#[tokio::test]
async fn transmitter_sites_are_registered_checked_audited_and_counted() {
    for db in all_backends().await {
        let s = &db.store;
        seed(s).await;
        let hamlets = s.hamlet_coverage(&rc(A)).await.unwrap();
        let wjw = hamlets.iter().find(|h| h.name == "王家湾").unwrap();
        let ljb = hamlets.iter().find(|h| h.name == "李家坝").unwrap();
        let fm = s.add_transmitter_site(&NewTransmitterSite { hamlet_id: Some(wjw.id), ..site(A1, "干坝子调频发射台", TransmitterKind::Fm) }, &op()).await.unwrap();
        assert_eq!((fm.hamlet.as_deref(), fm.site.kind, fm.site.power_w), (Some("王家湾"), TransmitterKind::Fm, Some(300.0)), "{:?}", s.backend());
        // Bad input is refused with the field named.
        for (bad, field) in [
            (NewTransmitterSite { hamlet_id: Some(ljb.id), ..site(A1, "X", TransmitterKind::Fm) }, "lies in village"),
            (site(A1, " ", TransmitterKind::Fm), "name"),
            (site("510411100", "镇上", TransmitterKind::Fm), "village_code"),
            (NewTransmitterSite { frequencies: "".into(), ..site(A1, "Y", TransmitterKind::Fm) }, "frequencies"),
            (NewTransmitterSite { lat: None, ..site(A1, "Z", TransmitterKind::Fm) }, "location"),
            (NewTransmitterSite { power_w: Some(-5.0), ..site(A1, "W", TransmitterKind::Fm) }, "power_w"),
        ] {
            let err = s.add_transmitter_site(&bad, &op()).await.unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
        let dup = s.add_transmitter_site(&site(A1, "干坝子调频发射台", TransmitterKind::Tv), &op()).await.unwrap_err();
        assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
        s.add_transmitter_site(&site(A2, "混撒拉差转台", TransmitterKind::Relay), &op()).await.unwrap();
        // Taken out of service: still registered, no longer counted in service.
        let mut off = fm.site.clone();
        off.in_service = false;
        off.frequencies = "FM 97.5 MHz, FM 101.2 MHz".into();
        let off = s.update_transmitter_site(fm.id, &off, &op()).await.unwrap();
        assert!(!off.site.in_service);
        let log = s.audit_recent(10).await.unwrap();
        let upd = log.iter().find(|e| e.action == "transmitter.update").unwrap();
        assert!(upd.before.contains(r#""in_service":true"#) && upd.after.contains(r#""in_service":false"#), "{upd:?}");
        assert!(log.iter().any(|e| e.action == "transmitter.add"));
        assert_eq!(s.transmitter_sites(&rc(A)).await.unwrap().len(), 2);
        assert!(s.transmitter_sites(&rc(B)).await.unwrap().is_empty());
        // Front-ends count from the resource registry (retired ones do not).
        terminal(s, A1, ResourceKind::FrontEnd, "干坝子村广播室", 0).await;
        let (old, _) = terminal(s, A2, ResourceKind::FrontEnd, "混撒拉村旧广播室", 0).await;
        sqlx::query("UPDATE eb_resource SET retired_at_ms = 1 WHERE id = $1").bind(old).execute(s.pool()).await.unwrap();
        let g = s.sites_grouped(&rc(CITY), 6).await.unwrap();
        let a = g.get("510411").unwrap();
        assert_eq!((a.transmitters, a.transmitters_in_service, a.front_ends), (2, 1, 1));
        assert!(!g.contains_key("510422"));
        let villages = s.village_coverage(&rc(A)).await.unwrap();
        assert_eq!(villages.iter().map(|v| (v.sites.transmitters, v.sites.front_ends)).collect::<Vec<_>>(), vec![(1, 1), (1, 0)]);
        // Per hamlet: only sites in service.
        s.update_transmitter_site(fm.id, &NewTransmitterSite { in_service: true, ..off.site.clone() }, &op()).await.unwrap();
        let h = s.hamlet_coverage(&rc(A1)).await.unwrap();
        assert_eq!(h.iter().map(|h| (h.name.as_str(), h.transmitters)).collect::<Vec<_>>(), vec![("王家湾", 1), ("石板沟", 0)]);
    }
}

#[tokio::test]
async fn incomplete_households_name_their_missing_fields_and_agree_with_the_indicator() {
    for db in all_backends().await {
        let s = &db.store;
        seed(s).await;
        let mut no_phone = hh(A1, "王家湾", 2, &[CoverageMode::Cable], false, false);
        no_phone.phone = String::new();
        let mut bare = hh(A2, "李家坝", 2, &[], false, false);
        bare.hamlet = None;
        bare.address = String::new();
        bare.reception = None;
        s.import_households(&[no_phone, bare], "t", &op()).await.unwrap();
        let rows = s.incomplete_households(&rc(A), 100).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.missing.clone()).collect::<Vec<_>>(), vec![vec!["phone"], vec!["address", "hamlet", "reception"]], "{:?}", s.backend());
        // The same households the indicator counts as incomplete.
        for scope in [A, CITY] {
            let c = s.service_counts(&rc(scope), 0, 1, 2025, false).await.unwrap().remove(0).counts;
            let n = s.incomplete_households(&rc(scope), 1000).await.unwrap().len() as i64;
            assert_eq!(n, c.households - c.complete_households, "{scope}");
        }
        assert!(s.incomplete_households(&rc(B), 100).await.unwrap().is_empty());
    }
}
