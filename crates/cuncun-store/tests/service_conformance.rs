//! The service network's storage, run against every backend (SQLite always; PostgreSQL with
//! CUNCUN_TEST_PG_URL): registry, ticket lifecycle, deduplication, escalation, visits, indicators.

use cuncun_domain::model::*;
use cuncun_domain::service::*;
use cuncun_domain::{RegionCode, Role};
use cuncun_store::service::*;
use cuncun_store::report::ReportStore;
use cuncun_store::testing::all_backends;
use cuncun_store::*;

fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

fn region(code: &str, name: &str) -> Region {
    let c = rc(code);
    Region { level: c.level(), parent: c.parent(), code: c, name: name.into() }
}

const V1: &str = "500236100201";
const V2: &str = "500236100202";
const V3: &str = "500236001001";

async fn seed(s: &SqlStore) -> (Steward, Steward) {
    let regions = vec![
        region("50", "重庆市"),
        region("5002", "县"),
        region("500236", "奉节县"),
        region("500236001", "永安街道"),
        region(V3, "桂井社区"),
        region("500236100", "白帝镇"),
        region(V1, "白帝村"),
        region(V2, "八阵村"),
    ];
    s.import_regions(&regions, "fixture", &Actor::cli("test")).await.unwrap();
    let a = s
        .add_steward(
            &StewardRecord { name: "李文华".into(), phone: "13800000001".into(), region_code: rc("500236100"), user_id: None, villages: vec![rc(V1), rc(V2)] },
            &Actor::cli("test"),
        )
        .await
        .unwrap();
    let b = s
        .add_steward(
            &StewardRecord { name: "张强".into(), phone: "13800000002".into(), region_code: rc("500236001"), user_id: None, villages: vec![rc(V3)] },
            &Actor::cli("test"),
        )
        .await
        .unwrap();
    (a, b)
}

fn household(village: &str, name: &str, care: bool) -> HouseholdRecord {
    HouseholdRecord {
        village_code: rc(village),
        hamlet: Some("上院子".into()),
        head_name: name.into(),
        phone: "13912345678".into(),
        address: format!("{name}家"),
        members: 3,
        reception: Some(vec![CoverageMode::Satellite]),
        hd: true,
        fibre: false,
        care_elderly: care,
        care_children: false,
        care_disabled: false,
        fee_waiver: FeeWaiver::None,
        fee_waiver_evidence: String::new(),
        fee_waiver_until: String::new(),
    }
}

fn repair(village: &str, at: Option<i64>) -> NewTicket {
    NewTicket {
        kind: TicketKind::Repair,
        source: TicketSource::Public,
        category: TicketCategory::Satellite,
        village_code: rc(village),
        household_id: None,
        reporter_name: "王大爷".into(),
        reporter_phone: "13911112222".into(),
        address: "上院子 3 号".into(),
        description: "卫星电视没有信号".into(),
        terminal_ebrid: None,
        dedupe_key: None,
        confirm_token_hash: None,
        requested_at_ms: at,
    }
}

#[tokio::test]
async fn lifecycle_is_audited_and_assigned_to_the_village_steward() {
    for db in all_backends().await {
        let s = &db.store;
        let (a, b) = seed(s).await;
        let op = Actor::cli("operator");
        let t = s.create_ticket(&repair(V1, None), &op).await.unwrap().ticket;
        assert_eq!(t.status, TicketStatus::Assigned, "{:?}", s.backend());
        assert_eq!(t.steward_id, Some(a.id), "the village's steward by default");
        assert_eq!(t.deadline_ms, t.created_at_ms + SLA_MS);
        let now = t.created_at_ms;
        let st = Actor("user:9:liwh".into());
        // A transition the state machine refuses leaves the ticket as it was.
        let err = s.transition_ticket(t.id, &TicketAction::Confirm { rating: 5 }, &st, now).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(ref m) if m.contains("assigned")), "{err}");
        s.transition_ticket(t.id, &TicketAction::Accept, &st, now + 60_000).await.unwrap();
        s.transition_ticket(t.id, &TicketAction::OnSite, &st, now + 3_600_000).await.unwrap();
        let took = 5 * HOUR_MS + 12 * 60_000;
        let r = s.transition_ticket(t.id, &TicketAction::Resolve { note: "重新对星".into() }, &st, now + took).await.unwrap();
        assert_eq!(r.sla(now + 100 * HOUR_MS, DEFAULT_ESCALATE_AFTER_MS), Sla::Met { took_ms: took });
        let reopened = s.transition_ticket(t.id, &TicketAction::Reopen { reason: "又没信号了".into() }, &op, now + took + 1).await.unwrap();
        assert_eq!((reopened.status, reopened.resolved_at_ms, reopened.reopen_count), (TicketStatus::Reopened, None, 1));
        s.transition_ticket(t.id, &TicketAction::Assign { steward_id: b.id }, &op, now + took + 2).await.unwrap();
        s.transition_ticket(t.id, &TicketAction::Resolve { note: "换高频头".into() }, &st, now + 6 * HOUR_MS).await.unwrap();
        let bad = s.transition_ticket(t.id, &TicketAction::Confirm { rating: 0 }, &op, now + 7 * HOUR_MS).await.unwrap_err();
        assert!(bad.to_string().contains("rating must be 1 to 5"), "{bad}");
        let done = s.transition_ticket(t.id, &TicketAction::Confirm { rating: 5 }, &Actor::system(), now + 7 * HOUR_MS).await.unwrap();
        assert_eq!((done.status, done.rating, done.steward_id), (TicketStatus::Confirmed, Some(5), Some(b.id)));
        let events = s.ticket_events(t.id).await.unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["create", "accept", "on_site", "resolve", "reopen", "assign", "resolve", "confirm"]);
        assert_eq!(events[1].actor, "user:9:liwh");
        let audit = s.audit_recent(50).await.unwrap();
        let tickets: Vec<&str> = audit.iter().filter(|e| e.entity == "ticket").map(|e| e.action.as_str()).collect();
        assert_eq!(tickets.len(), 8, "every transition is audited: {tickets:?}");
        assert!(tickets.contains(&"ticket.reopen"));
        let (_, faults) = verify_audit(s).await.unwrap();
        assert!(faults.is_empty());
        // A village without a steward leaves the ticket new.
        s.import_regions(&[region("500236100203", "新村")], "fixture", &op).await.unwrap();
        let n = s.create_ticket(&repair("500236100203", None), &op).await.unwrap().ticket;
        assert_eq!((n.status, n.steward_id), (TicketStatus::New, None));
        let e = s.transition_ticket(n.id, &TicketAction::OnSite, &op, now).await.unwrap_err();
        assert!(e.to_string().contains("cannot be on_site"), "{e}");
    }
}

#[tokio::test]
async fn terminal_tickets_are_deduplicated_while_open() {
    for db in all_backends().await {
        let s = &db.store;
        seed(s).await;
        let mut t = repair(V2, None);
        t.source = TicketSource::Terminal;
        t.category = TicketCategory::EbTerminal;
        t.terminal_ebrid = Some("EB0001".into());
        t.dedupe_key = Some("terminal:EB0001".into());
        let first = s.create_ticket(&t, &Actor::system()).await.unwrap();
        let again = s.create_ticket(&t, &Actor::system()).await.unwrap();
        assert!(first.created && !again.created);
        assert_eq!(first.ticket.id, again.ticket.id);
        let now = first.ticket.created_at_ms;
        s.transition_ticket(first.ticket.id, &TicketAction::Resolve { note: "换电源".into() }, &Actor::system(), now + 1000).await.unwrap();
        let third = s.create_ticket(&t, &Actor::system()).await.unwrap();
        assert!(third.created, "a resolved ticket no longer blocks a new one");
        assert_ne!(third.ticket.id, first.ticket.id);
    }
}

#[tokio::test]
async fn escalation_near_deadline_goes_to_the_outlet_head_and_overdue_is_listed() {
    for db in all_backends().await {
        let s = &db.store;
        seed(s).await;
        let head = s
            .create_user(
                &NewUser { username: "head".into(), display_name: "站长".into(), role: Role::Broadcaster, region_code: rc("500236100"), phone: String::new(), password_hash: "x".into() },
                &Actor::cli("test"),
            )
            .await
            .unwrap();
        s.insert_registry(
            &RegistryBatch {
                outlets: vec![NewOutlet { kind: OutletKind::Township, region_code: rc("500236100"), name: "白帝镇服务站".into(), address: "镇上".into(), phone: "023-1".into(), hotline: "96100".into() }],
                ..Default::default()
            },
            &Actor::cli("test"),
        )
        .await
        .unwrap();
        let outlet = s.outlets_in(&rc("500236100")).await.unwrap().remove(0);
        s.update_outlet(outlet.id, &OutletPatch { head_user_id: Some(Some(head.id)), service_scope: Some("白帝镇全镇".into()), ..Default::default() }, &Actor::cli("test"))
            .await
            .unwrap();
        let now = now_ms();
        let old = s.create_ticket(&repair(V1, Some(now - 21 * HOUR_MS)), &Actor::system()).await.unwrap().ticket;
        let fresh = s.create_ticket(&repair(V1, Some(now - HOUR_MS)), &Actor::system()).await.unwrap().ticket;
        let late = s.create_ticket(&repair(V3, Some(now - 30 * HOUR_MS)), &Actor::system()).await.unwrap().ticket;
        assert_eq!(old.sla(now, DEFAULT_ESCALATE_AFTER_MS), Sla::Near { remaining_ms: 3 * HOUR_MS });
        let esc = s.escalate_due(now, DEFAULT_ESCALATE_AFTER_MS).await.unwrap();
        let ids: Vec<i64> = esc.iter().map(|t| t.id).collect();
        assert_eq!(ids, [late.id, old.id], "{:?}", s.backend());
        assert_eq!(esc[1].escalated_to, Some(head.id), "the township outlet's head");
        assert_eq!(esc[0].escalated_to, None, "no head for that township or county");
        assert!(s.escalate_due(now, DEFAULT_ESCALATE_AFTER_MS).await.unwrap().is_empty(), "escalates once");
        let mut f = TicketFilter::scope(&rc("500236"));
        f.overdue = true;
        f.now_ms = now;
        let overdue: Vec<i64> = s.tickets(&f, 50, 0).await.unwrap().iter().map(|t| t.id).collect();
        assert_eq!(overdue, [late.id]);
        // Filters: region subtree, status, period.
        let mut f = TicketFilter::scope(&rc("500236100"));
        assert_eq!(s.tickets(&f, 50, 0).await.unwrap().len(), 2);
        f.from_ms = Some(now - 2 * HOUR_MS);
        let only: Vec<i64> = s.tickets(&f, 50, 0).await.unwrap().iter().map(|t| t.id).collect();
        assert_eq!(only, [fresh.id]);
        let mut f = TicketFilter::scope(&rc("500236"));
        f.statuses = vec![TicketStatus::Resolved];
        assert!(s.tickets(&f, 50, 0).await.unwrap().is_empty());
        let mut f = TicketFilter::scope(&rc("500236"));
        f.category = Some(TicketCategory::Cable);
        assert!(s.tickets(&f, 50, 0).await.unwrap().is_empty());
        let list = s.checklist_done_count(outlet.id).await;
        assert_eq!(list, 0);
        assert!(s.set_outlet_check(outlet.id, NineOnes::Sign, true, " ", &Actor::cli("t")).await.is_err(), "done needs evidence");
        s.set_outlet_check(outlet.id, NineOnes::Sign, true, "照片 2026-06-01", &Actor::cli("t")).await.unwrap();
        assert_eq!(s.checklist_done_count(outlet.id).await, 1);
    }
}

trait ChecklistCount {
    async fn checklist_done_count(&self, outlet: i64) -> usize;
}
impl ChecklistCount for SqlStore {
    async fn checklist_done_count(&self, outlet: i64) -> usize {
        let l = self.outlet_checklist(outlet).await.unwrap();
        assert_eq!(l.len(), 9);
        l.iter().filter(|c| c.done).count()
    }
}

#[tokio::test]
async fn baoshan_arithmetic_and_the_other_indicators() {
    for db in all_backends().await {
        let s = &db.store;
        seed(s).await;
        let t0 = cuncun_domain::time::year_start(2026) + 160 * 24 * HOUR_MS; // June 2026
        let a = Actor::system();
        // 114 tickets in the month; 110 resolved within 24 hours, 2 late, 2 still open.
        for i in 0..114 {
            let at = t0 + i * 3 * HOUR_MS;
            let mut t = repair(if i % 2 == 0 { V1 } else { V3 }, Some(at));
            if i < 2 {
                t.kind = TicketKind::Complaint;
            }
            let id = s.create_ticket(&t, &a).await.unwrap().ticket.id;
            let took = match i {
                0..110 => Some(2 * HOUR_MS),
                110..112 => Some(30 * HOUR_MS),
                _ => None,
            };
            if let Some(took) = took {
                s.transition_ticket(id, &TicketAction::Resolve { note: "修好".into() }, &a, at + took).await.unwrap();
                if i < 10 {
                    let rating = if i < 9 { 5 } else { 3 };
                    s.transition_ticket(id, &TicketAction::Confirm { rating }, &a, at + took + 1).await.unwrap();
                }
            }
        }
        // A cancelled ticket does not count.
        let c = s.create_ticket(&repair(V1, Some(t0)), &a).await.unwrap().ticket;
        s.transition_ticket(c.id, &TicketAction::Cancel { reason: "重复".into() }, &a, t0).await.unwrap();
        // Households: 4, one incomplete (no hamlet), two special-care.
        let mut hs = vec![household(V1, "甲", true), household(V1, "乙", true), household(V3, "丙", false), household(V3, "丁", false)];
        hs[3].hamlet = None;
        s.import_households(&hs, "test", &a).await.unwrap();
        let care = s.households_in(&rc(V1), &HouseholdQuery { care_only: true, ..Default::default() }, 10, 0).await.unwrap();
        assert_eq!(care.len(), 2);
        // Three visits to one, none to the other: 2 of 4 planned count.
        for d in 0..3 {
            s.record_visit(care[0].id, None, t0 + d * 24 * HOUR_MS, "上门检查", &a).await.unwrap();
        }
        let not_care = s.households_in(&rc(V3), &HouseholdQuery::default(), 10, 0).await.unwrap();
        assert!(s.record_visit(not_care[0].id, None, t0, "x", &a).await.is_err());
        let month_end = t0 + 30 * 24 * HOUR_MS;
        let rows = s.service_counts(&rc("500236"), t0, month_end, 2026, false).await.unwrap();
        assert_eq!(rows.len(), 1);
        let i = Indicators::from_counts(rows[0].counts.clone());
        assert_eq!((i.counts.tickets, i.counts.closed, i.counts.closed_24h), (114, 112, 110), "{:?}", s.backend());
        assert_eq!(show_percent(i.closure_24h_rate), "96.49%");
        assert_eq!(i.closure_rate, Some(98.25));
        assert_eq!(i.avg_close_ms, Some((110 * 2 + 2 * 30) * HOUR_MS / 112));
        assert_eq!(i.complaint_rate, Some(50.0), "2 complaints over 4 households");
        assert_eq!(i.satisfaction_rate, Some(90.0), "9 of 10 rated 4-5");
        assert_eq!(i.visit_completion, Some(50.0));
        assert_eq!(i.data_completeness, Some(75.0));
        let by = s.service_counts(&rc("500236"), t0, month_end, 2026, true).await.unwrap();
        let codes: Vec<&str> = by.iter().map(|r| r.region_code.short()).collect();
        assert_eq!(codes, ["500236001", "500236100"]);
        assert_eq!(by.iter().map(|r| r.counts.tickets).sum::<i64>(), 114, "children sum to the parent");
        assert_eq!(by[1].counts.tickets, 57);
        let plan = s.visit_plan(&rc("500236"), 2026, 10, 0).await.unwrap();
        assert_eq!(plan.iter().map(|p| p.done).collect::<Vec<_>>(), [3, 0]);
        // The period bounds are half-open.
        let none = s.service_counts(&rc("500236"), month_end + 365 * 24 * HOUR_MS, month_end + 366 * 24 * HOUR_MS, 2027, false).await.unwrap();
        assert_eq!(none[0].counts.tickets, 0);
    }
}

#[tokio::test]
async fn households_stewards_and_photos() {
    for db in all_backends().await {
        let s = &db.store;
        let (a, _) = seed(s).await;
        let op = Actor::cli("test");
        let mut h = household(V1, "李四", false);
        h.fee_waiver = FeeWaiver::MinimumLiving;
        assert!(s.add_household(&h, &op).await.unwrap_err().to_string().contains("evidence"));
        h.fee_waiver_evidence = "低保证 500236-2026-017".into();
        h.fee_waiver_until = "2026-12-31".into();
        h.reception = Some(vec![]);
        let hh = s.add_household(&h, &op).await.unwrap();
        assert_eq!(hh.rec.reception, Some(vec![]), "explicitly none");
        assert_eq!(s.household(hh.id).await.unwrap().unwrap().rec.fee_waiver, FeeWaiver::MinimumLiving);
        h.reception = Some(vec![CoverageMode::Iptv, CoverageMode::FiveG]);
        let up = s.update_household(hh.id, &h, &op).await.unwrap();
        assert_eq!(up.rec.reception, Some(vec![CoverageMode::Iptv, CoverageMode::FiveG]));
        let keys = s.household_keys(&rc("500236100")).await.unwrap();
        assert_eq!(keys, [(V1.to_string(), "李四".to_string(), "李四家".to_string())]);
        // An import with an unknown village imports nothing.
        let bad = vec![household(V1, "甲", false), household("500236100299", "乙", false)];
        assert!(s.import_households(&bad, "bad.xlsx", &op).await.is_err());
        assert_eq!(s.households_in(&rc("500236"), &HouseholdQuery::default(), 100, 0).await.unwrap().len(), 1);
        // Stewards and their accounts.
        let u = s
            .create_user(&NewUser { username: "liwh".into(), display_name: "李文华".into(), role: Role::Steward, region_code: rc("500236100"), phone: String::new(), password_hash: "x".into() }, &op)
            .await
            .unwrap();
        let v = s
            .create_user(&NewUser { username: "viewer".into(), display_name: "看".into(), role: Role::Viewer, region_code: rc("500236"), phone: String::new(), password_hash: "x".into() }, &op)
            .await
            .unwrap();
        assert!(s.set_steward_user(a.id, Some(v.id), &op).await.unwrap_err().to_string().contains("steward role"));
        s.set_steward_user(a.id, Some(u.id), &op).await.unwrap();
        let me = s.steward_of_user(u.id).await.unwrap().unwrap();
        assert_eq!(me.villages, [rc(V1), rc(V2)]);
        assert_eq!(s.village_steward(&rc(V2)).await.unwrap().unwrap().id, a.id);
        assert_eq!(s.stewards_in(&rc("500236100")).await.unwrap().len(), 1);
        let imported = s
            .import_stewards(
                &[
                    StewardRecord { name: "新管家".into(), phone: "13700000000".into(), region_code: rc("500236100"), user_id: None, villages: vec![rc(V2)] },
                    StewardRecord { name: "坏".into(), phone: "1".into(), region_code: rc("500236100"), user_id: None, villages: vec![rc("500236100299")] },
                ],
                "st.xlsx",
                &op,
            )
            .await;
        assert!(imported.is_err());
        assert_eq!(s.stewards_in(&rc("500236")).await.unwrap().len(), 2, "nothing half-imported");
        // Photos.
        let t = s.create_ticket(&repair(V1, None), &op).await.unwrap().ticket;
        let pid = s.add_ticket_photo(t.id, "image/png", &[0x89, b'P', b'N', b'G', 1, 2, 3], &op).await.unwrap();
        let (tid, ct, bytes) = s.ticket_photo(pid).await.unwrap().unwrap();
        assert_eq!((tid, ct.as_str(), bytes.len()), (t.id, "image/png", 7));
        assert_eq!(s.ticket_photo_ids(t.id).await.unwrap(), [pid]);
        let mut nt = repair(V1, None);
        nt.confirm_token_hash = Some("abc".into());
        let c = s.create_ticket(&nt, &op).await.unwrap().ticket;
        assert_eq!(s.ticket_by_confirm_token("abc").await.unwrap().unwrap().id, c.id);
        assert!(s.ticket_by_confirm_token("abd").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn historic_tickets_load_in_bulk() {
    for db in all_backends().await {
        let s = &db.store;
        let (a, _) = seed(s).await;
        let t0 = cuncun_domain::time::year_start(2026);
        let rows: Vec<HistoricTicket> = (0..300)
            .map(|i| HistoricTicket {
                t: repair(V1, Some(t0 + i * HOUR_MS)),
                status: match i % 3 {
                    0 => TicketStatus::Confirmed,
                    1 => TicketStatus::Resolved,
                    _ => TicketStatus::Assigned,
                },
                steward_id: Some(a.id),
                resolved_at_ms: (i % 3 != 2).then_some(t0 + i * HOUR_MS + 2 * HOUR_MS),
                rating: (i % 3 == 0).then_some(5),
            })
            .collect();
        assert_eq!(s.import_tickets(&rows, "test", &Actor::cli("t")).await.unwrap(), 300);
        let c = &s.service_counts(&rc("500236"), t0, t0 + 400 * HOUR_MS, 2026, false).await.unwrap()[0].counts;
        assert_eq!((c.tickets, c.closed, c.closed_24h, c.rated, c.satisfied), (300, 200, 200, 100, 100), "{:?}", s.backend());
        let mut f = TicketFilter::scope(&rc(V1));
        f.statuses = vec![TicketStatus::Assigned];
        f.steward_id = Some(a.id);
        assert_eq!(s.tickets(&f, 1000, 0).await.unwrap().len(), 100);
    }
}

/// The indicators read running counts kept by triggers (migration 0007). After a random history of
/// requests, resolutions, ratings, reopenings, cancellations, household edits and visits, they
/// must equal what the records themselves give, for any region and any period, whole days or not.
#[tokio::test]
async fn kept_counts_equal_the_records_after_any_history() {
    for db in all_backends().await {
        let s = &db.store;
        let (st, _) = seed(s).await;
        let op = Actor::cli("test");
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let villages = [V1, V2, V3];
        let t0 = cuncun_domain::time::year_start(2026) + 40 * 24 * HOUR_MS;
        // Households, some edited afterwards (moved, a field cleared, care flags changed).
        let hs: Vec<HouseholdRecord> = (0..40)
            .map(|i| {
                let mut h = household(villages[next(3) as usize], &format!("户{i}"), next(3) == 0);
                if next(5) == 0 {
                    h.phone = String::new();
                }
                h
            })
            .collect();
        s.import_households(&hs, "test", &op).await.unwrap();
        let all = s.households_in(&rc("500236"), &HouseholdQuery::default(), 1000, 0).await.unwrap();
        for h in all.iter().take(12) {
            let mut r = h.rec.clone();
            match next(5) {
                0 => r.village_code = rc(villages[next(3) as usize]),
                1 => r.address = String::new(),
                2 => r.care_disabled = !r.care_disabled,
                3 => {
                    r.reception = Some(vec![CoverageMode::Cable, CoverageMode::FiveG]);
                    r.fibre = true;
                    r.members = 5;
                }
                _ => {
                    r.reception = if next(2) == 0 { None } else { Some(vec![]) };
                    r.hd = false;
                }
            }
            s.update_household(h.id, &r, &op).await.unwrap();
        }
        // Visits: up to three to a special-care household.
        let care = s.households_in(&rc("500236"), &HouseholdQuery { care_only: true, ..Default::default() }, 1000, 0).await.unwrap();
        for h in &care {
            for d in 0..next(4) as i64 {
                s.record_visit(h.id, None, t0 + d * 24 * HOUR_MS, "上门", &op).await.unwrap();
            }
        }
        // A bulk load of visits (one statement, counts added at its end on SQLite).
        let loaded = s
            .bulk_insert_sql(
                "care_visit",
                &format!(
                    "INSERT INTO care_visit (household_id, village_code, year, visited_at_ms, note, recorded_by) \
                     SELECT id, village_code, 2026, {t0}, '批量', 'test' FROM household WHERE care_elderly = 1"
                ),
            )
            .await
            .unwrap();
        assert!(loaded > 0);
        // Historic tickets in bulk, some of them moved on afterwards.
        let historic: Vec<HistoricTicket> = (0..60)
            .map(|i| {
                let at = t0 + next(40 * 24 * 60) as i64 * 60_000;
                let resolved = next(3) != 0;
                HistoricTicket {
                    t: repair(villages[next(3) as usize], Some(at)),
                    status: if resolved { TicketStatus::Resolved } else { TicketStatus::Assigned },
                    steward_id: Some(st.id),
                    resolved_at_ms: resolved.then_some(at + (1 + next(40) as i64) * HOUR_MS),
                    rating: (resolved && i % 2 == 0).then_some(1 + next(5) as i64),
                }
            })
            .collect();
        s.import_tickets(&historic, "test", &op).await.unwrap();
        let mut f = TicketFilter::scope(&rc("500236"));
        f.statuses = vec![TicketStatus::Assigned];
        for t in s.tickets(&f, 1000, 0).await.unwrap().iter().take(10) {
            s.transition_ticket(t.id, &TicketAction::Resolve { note: "补修".into() }, &op, t.created_at_ms + 3 * HOUR_MS).await.unwrap();
        }
        // Tickets across 40 days at any minute, each taken some way along its lifecycle.
        for _ in 0..150 {
            let at = t0 + next(40 * 24 * 60) as i64 * 60_000;
            let mut t = repair(villages[next(3) as usize], Some(at));
            if next(6) == 0 {
                t.kind = TicketKind::Complaint;
            }
            let id = s.create_ticket(&t, &op).await.unwrap().ticket.id;
            let done = at + (1 + next(40) as i64) * HOUR_MS;
            let steps: Vec<TicketAction> = match next(6) {
                0 => vec![],
                1 => vec![TicketAction::Cancel { reason: "重复".into() }],
                2 => vec![TicketAction::Resolve { note: "好".into() }],
                3 => vec![TicketAction::Resolve { note: "好".into() }, TicketAction::Confirm { rating: 1 + next(5) as u8 }],
                4 => vec![TicketAction::Resolve { note: "好".into() }, TicketAction::Reopen { reason: "又坏".into() }],
                _ => vec![
                    TicketAction::Resolve { note: "好".into() },
                    TicketAction::Reopen { reason: "又坏".into() },
                    TicketAction::Resolve { note: "好".into() },
                    TicketAction::Confirm { rating: 1 + next(5) as u8 },
                ],
            };
            for (k, step) in steps.iter().enumerate() {
                s.transition_ticket(id, step, &op, done + k as i64 * HOUR_MS).await.unwrap();
            }
        }
        // What the records give.
        let households = s.households_in(&rc("500236"), &HouseholdQuery::default(), 1000, 0).await.unwrap();
        let mut visits = std::collections::HashMap::new();
        for h in &households {
            let n = s.visits_of(h.id).await.unwrap().iter().filter(|v| v.year == 2026).count() as i64;
            visits.insert(h.id, n.min(VISITS_PER_YEAR));
        }
        let (households, visits) = (&households, &visits);
        let expected = |scope: &RegionCode, from: i64, to: i64| {
            let scope = scope.clone();
            async move {
            let mut f = TicketFilter::scope(&scope);
            f.from_ms = Some(from);
            f.to_ms = Some(to);
            let mut c = IndicatorCounts::default();
            for t in s.tickets(&f, 10_000, 0).await.unwrap().iter().filter(|t| t.status != TicketStatus::Cancelled) {
                c.tickets += 1;
                if let Some(r) = t.resolved_at_ms {
                    c.closed += 1;
                    c.closed_24h += (r - t.created_at_ms <= SLA_MS) as i64;
                    c.close_ms_sum += r - t.created_at_ms;
                }
                c.complaints += (t.kind == TicketKind::Complaint) as i64;
                c.rated += t.rating.is_some() as i64;
                c.satisfied += (t.rating.unwrap_or(0) >= 4) as i64;
            }
            for h in households.iter().filter(|h| scope.contains(&h.rec.village_code)) {
                let r = &h.rec;
                c.households += 1;
                let complete = !r.head_name.is_empty() && !r.phone.is_empty() && !r.address.is_empty() && r.hamlet.as_deref().is_some_and(|x| !x.is_empty()) && r.reception.is_some();
                c.complete_households += complete as i64;
                let care = r.care_elderly || r.care_children || r.care_disabled;
                c.care_households += care as i64;
                c.visits_done += visits[&h.id];
            }
            c
            }
        };
        for (scope, from, to) in [
            ("500236", t0, t0 + 40 * 24 * HOUR_MS),
            ("500236", t0 - 24 * HOUR_MS, t0 + 20 * 24 * HOUR_MS),
            ("500236", t0 + 7 * HOUR_MS + 123_456, t0 + 13 * 24 * HOUR_MS + 5 * HOUR_MS),
            ("500236", t0 + 3 * HOUR_MS, t0 + 9 * HOUR_MS),
            ("500236100", t0 + 11 * HOUR_MS, t0 + 39 * 24 * HOUR_MS + 1),
            (V3, t0 + 24 * HOUR_MS, t0 + 30 * 24 * HOUR_MS + 17 * 60_000),
        ] {
            let scope = rc(scope);
            let got = s.service_counts(&scope, from, to, 2026, false).await.unwrap();
            let want = expected(&scope, from, to).await;
            assert_eq!(got.len(), 1, "{:?} {scope}", s.backend());
            assert_eq!(got[0].counts, want, "{:?} {scope} [{from}, {to})", s.backend());
            // Each child region equals its own records too.
            for r in s.service_counts(&scope, from, to, 2026, true).await.unwrap() {
                assert_eq!(r.counts, expected(&r.region_code, from, to).await, "{:?} child {}", s.backend(), r.region_code);
            }
        }
        // Household coverage comes from the same running counts.
        let cov = s.coverage_grouped(&rc("500236"), 6).await.unwrap();
        let c = &cov["500236"];
        let receiving: Vec<&Household> = households.iter().filter(|h| h.rec.reception.as_ref().is_some_and(|m| !m.is_empty())).collect();
        assert_eq!((c.households, c.population), (households.len() as i64, households.iter().map(|h| h.rec.members).sum::<i64>()), "{:?}", s.backend());
        for (i, mode) in CoverageMode::ALL.iter().enumerate() {
            let n = households.iter().filter(|h| h.rec.reception.as_ref().is_some_and(|m| m.contains(mode))).count() as i64;
            assert_eq!(c.by_mode[i], n, "{:?} {mode:?}", s.backend());
        }
        assert_eq!(c.receiving, receiving.len() as i64);
        assert_eq!(c.receiving_population, receiving.iter().map(|h| h.rec.members).sum::<i64>());
        assert_eq!(c.fibre, households.iter().filter(|h| h.rec.fibre).count() as i64);
        assert_eq!(c.hd, receiving.iter().filter(|h| h.rec.hd).count() as i64);
        // Visits are kept as recorded: the counts rely on it.
        assert!(sqlx::query("DELETE FROM care_visit").execute(s.pool()).await.is_err(), "{:?}", s.backend());
    }
}
