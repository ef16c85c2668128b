//! The authorization matrix: every kind of principal x every message command x every state
//! (drills included) x inside / above / elsewhere x own / other's, run through the application
//! layer against a real database (SQLite, and PostgreSQL with CUNCUN_TEST_PG_URL), compared
//! with the checked-in grid tests/authz_grid.csv (first matching row wins).

use cuncun_app::messages::{Action, ComposeInput};
use cuncun_app::{App, Error, Principal, Via, WorkflowSettings};
use cuncun_domain::authz::{Grant, MsgCommand, decide};
use cuncun_domain::eb::{Ebrid, MessageStatus, ResourceKind};
use cuncun_domain::model::{NewUser, Region};
use cuncun_domain::{RegionCode, Role};
use cuncun_store::eb::NewMessage;
use cuncun_store::testing::all_backends;
use cuncun_store::{Actor, SqlStore, Store};
use std::collections::HashMap;
use std::sync::Arc;

const GRID: &str = include_str!("authz_grid.csv");
const COUNTY: &str = "500236";
const T1: &str = "500236001";
const T1_VILLAGE: &str = "500236001001";
const T2: &str = "500236100";
const T2_VILLAGE: &str = "500236100201";
const PEER: &str = "35002000000000103010101";
const OTHER_PEER: &str = "35003000000000103010101";

fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

struct Row {
    fields: [Vec<String>; 6],
    expect: String,
    line: usize,
}

fn grid() -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, line) in GRID.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("principal,") {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        assert_eq!(cols.len(), 7, "authz_grid.csv line {}: 7 fields expected: {line}", i + 1);
        let alt = |s: &str| s.split('|').map(String::from).collect::<Vec<_>>();
        assert!(matches!(cols[6], "allow" | "forbid" | "conflict"), "line {}: expect {:?}", i + 1, cols[6]);
        rows.push(Row { fields: [alt(cols[0]), alt(cols[1]), alt(cols[2]), alt(cols[3]), alt(cols[4]), alt(cols[5])], expect: cols[6].into(), line: i + 1 });
    }
    rows
}

fn expected<'a>(rows: &'a [Row], case: &[&str; 6]) -> Option<&'a Row> {
    rows.iter().find(|r| r.fields.iter().zip(case).all(|(alts, v)| alts.iter().any(|a| a == "*" || a == v)))
}

const KINDS: [&str; 9] = ["admin", "broadcaster", "reviewer", "department", "steward", "viewer", "device", "peer", "system"];
const REGIONS: [&str; 3] = ["inside", "above", "elsewhere"];

/// (owner region, areas) of a message in each region case.
fn placement(region: &str) -> (RegionCode, Vec<RegionCode>) {
    match region {
        "inside" => (rc(T1), vec![rc(T1_VILLAGE)]),
        "above" => (rc(COUNTY), vec![rc(T1)]),
        _ => (rc(T2), vec![rc(T2_VILLAGE)]),
    }
}

fn region(code: &str) -> Region {
    let c = rc(code);
    Region { level: c.level(), parent: c.parent(), code: c, name: code.into() }
}

struct World {
    app: App,
    store: Arc<dyn Store>,
    sql: Arc<SqlStore>,
    principals: HashMap<&'static str, Principal>,
    /// A broadcaster of the county: the author of everyone else's messages.
    other_author: i64,
    seq: u32,
    /// Messages per case, reused until a command changes them (the EBMID's daily sequence has
    /// four digits: at most 9,999 messages a day per platform).
    cache: HashMap<String, cuncun_store::eb::Message>,
}

impl World {
    async fn new(url: &str) -> World {
        let sql = Arc::new(SqlStore::connect(url).await.unwrap());
        let store: Arc<dyn Store> = sql.clone();
        let regions: Vec<Region> = ["50", "5002", COUNTY, T1, T1_VILLAGE, T2, T2_VILLAGE].iter().map(|c| region(c)).collect();
        store.import_regions(&regions, COUNTY, &Actor::system()).await.unwrap();
        let app = App::new(store.clone(), WorkflowSettings::default());
        let mut principals = HashMap::new();
        let add = async |name: &str, role: Role, at: &str| {
            let u = store
                .create_user(
                    &NewUser { username: name.into(), display_name: name.into(), role, region_code: rc(at), phone: String::new(), password_hash: "x".into() },
                    &Actor::system(),
                )
                .await
                .unwrap();
            if role == Role::DepartmentSender {
                let g = Grant { event_types: vec!["11B".into()], regions: vec![rc(T1)] };
                store.set_department_grant(u.id, &g, &Actor::system()).await.unwrap();
            }
            u
        };
        for (kind, role) in [
            ("admin", Role::Admin),
            ("broadcaster", Role::Broadcaster),
            ("reviewer", Role::Reviewer),
            ("department", Role::DepartmentSender),
            ("steward", Role::Steward),
            ("viewer", Role::Viewer),
        ] {
            let u = add(kind, role, T1).await;
            principals.insert(kind, app.principal_of(&u, Via::Api).await.unwrap());
        }
        let other_author = add("county_caster", Role::Broadcaster, COUNTY).await.id;
        principals.insert("device", Principal::Device { ebrid: "65002360010010314010101".into(), region: rc(T1_VILLAGE) });
        principals.insert("peer", Principal::Peer { ebrid: PEER.into(), region: rc(T1) });
        principals.insert("system", Principal::System { job: "matrix" });
        World { app, store, sql, principals, other_author, seq: 0, cache: HashMap::new() }
    }

    fn new_message(&self, p: &Principal, drill: bool, region: &str, own: bool) -> NewMessage {
        let (owner, areas) = placement(region);
        let now = cuncun_store::now_ms();
        NewMessage {
            platform: Ebrid::generate(&rc(COUNTY), ResourceKind::Platform, 1).unwrap(),
            msg_type: "broadcast".into(),
            related_ebmid: None,
            priority: "emergency".into(),
            drill,
            event_type: "11B03".into(),
            severity: 2,
            title: "暴雨预警".into(),
            body: "矩阵测试".into(),
            lang: "zho".into(),
            audio_sha256: None,
            audio_size: None,
            areas,
            terminals: vec![],
            start_ms: now,
            end_ms: now + 2 * 3_600_000,
            repeat_count: 1,
            volume: None,
            source: "local".into(),
            owner_region: owner,
            author_id: Some(if own { p.user_id().unwrap_or(self.other_author) } else { self.other_author }),
            start_on_approval: false,
            from_peer: matches!(p, Principal::Peer { .. }).then(|| if own { PEER } else { OTHER_PEER }.to_string()),
        }
    }

    /// A message in the given state (written, then put into the state directly: the matrix
    /// tests the rules, not how the message got there).
    async fn message(&self, p: &Principal, status: MessageStatus, drill: bool, region: &str, own: bool) -> cuncun_store::eb::Message {
        let m = self.store.create_message(&self.new_message(p, drill, region, own), &Actor::system()).await.unwrap();
        sqlx_status(&self.sql, m.id, status).await;
        self.store.message(m.id).await.unwrap().unwrap()
    }

    fn input(&self, region: &str, drill: bool, updates: &str) -> ComposeInput {
        let (_, areas) = placement(region);
        ComposeInput {
            priority: "emergency".into(),
            event_type: "11B03".into(),
            severity: "2".into(),
            title: "暴雨预警".into(),
            text: "矩阵测试".into(),
            areas: areas.iter().map(|a| a.short()).collect::<Vec<_>>().join(","),
            valid_minutes: "60".into(),
            repeat: "1".into(),
            drill,
            updates: updates.into(),
            ..Default::default()
        }
    }

    fn ebmid(&mut self) -> String {
        self.seq += 1;
        format!("{PEER}20261202{:04}", self.seq)
    }
}

async fn sqlx_status(s: &SqlStore, id: i64, status: MessageStatus) {
    let (sql, _) = (format!("UPDATE eb_message SET status = '{}' WHERE id = $1", status.key()), ());
    cuncun_store::testing::exec(s, &sql, id).await;
}

fn outcome<T>(r: Result<T, Error>, case: &str) -> &'static str {
    match r {
        Ok(_) => "allow",
        Err(Error::Forbidden(_)) => "forbid",
        Err(Error::Conflict(_)) => "conflict",
        Err(e) => panic!("{case}: unexpected error {e:?}"),
    }
}

fn pure(r: Result<Option<cuncun_domain::authz::Transition>, cuncun_domain::authz::Denied>) -> &'static str {
    match r {
        Ok(_) => "allow",
        Err(cuncun_domain::authz::Denied::Forbidden(_)) => "forbid",
        Err(cuncun_domain::authz::Denied::Conflict(_)) => "conflict",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_principal_command_state_region_and_owner_matches_the_grid() {
    let rows = grid();
    for c in MsgCommand::ALL {
        assert!(rows.iter().any(|r| r.fields[1].iter().any(|x| x == c.key())), "command {} has no row in authz_grid.csv", c.key());
    }
    let statuses: Vec<&str> = MessageStatus::ALL.iter().map(|s| s.key()).collect();
    for db in all_backends().await {
        let mut w = World::new(&db.url).await;
        let mut failures = Vec::new();
        let mut cases = 0;
        for kind in KINDS {
            let p = w.principals[kind].clone();
            for cmd in MsgCommand::ALL {
                let states: Vec<&str> = if cmd.creates() { vec!["new"] } else { statuses.clone() };
                for status in states {
                    for drill in [false, true] {
                        for region in REGIONS {
                            for own in [true, false] {
                                let case = [kind, cmd.key(), status, if drill { "drill" } else { "real" }, region, if own { "own" } else { "other" }];
                                let label = case.join(",");
                                let Some(row) = expected(&rows, &case) else {
                                    failures.push(format!("{label}: no row of authz_grid.csv matches"));
                                    continue;
                                };
                                cases += 1;
                                let got = run(&mut w, &p, cmd, status, drill, region, own, &label).await;
                                if got != row.expect {
                                    failures.push(format!("{label}: got {got}, grid line {} says {}", row.line, row.expect));
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{} of {cases} cases differ from the grid on {:?}:\n{}", failures.len(), w.store.backend(), failures.join("\n"));
        eprintln!("authz matrix: {cases} cases match the grid on {:?}", w.store.backend());
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(w: &mut World, p: &Principal, cmd: MsgCommand, status: &str, drill: bool, region: &str, own: bool, label: &str) -> &'static str {
    if cmd == MsgCommand::Compose {
        // Composing "above" means aiming at the whole county from a township.
        let mut input = w.input(region, drill, "");
        if region == "above" {
            input.areas = COUNTY.into();
        }
        return outcome(w.app.compose(p, &input).await, label);
    }
    if cmd == MsgCommand::Receive {
        let nm = w.new_message(p, drill, region, own);
        let id = w.ebmid();
        return outcome(w.app.receive(p, &id, &nm).await, label);
    }
    let status = MessageStatus::parse(status).unwrap();
    let key = format!("{}/{}/{drill}/{region}/{own}", p.kind(), status.key());
    let m = match w.cache.get(&key) {
        Some(m) => m.clone(),
        None => w.message(p, status, drill, region, own).await,
    };
    let got = run_on(w, p, cmd, &m, region, label).await;
    // A message the command changed is not reused.
    if got == "allow" && matches!(cmd, MsgCommand::Edit | MsgCommand::Submit | MsgCommand::Approve | MsgCommand::SendBack | MsgCommand::Cancel) {
        w.cache.remove(&key);
    } else {
        w.cache.insert(key, m);
    }
    got
}

async fn run_on(w: &mut World, p: &Principal, cmd: MsgCommand, m: &cuncun_store::eb::Message, region: &str, label: &str) -> &'static str {
    let drill = m.drill;
    match cmd {
        MsgCommand::Edit => outcome(w.app.edit(p, m.id, &w.input(region, drill, "")).await, label),
        MsgCommand::Submit => outcome(w.app.act(p, m.id, Action::Submit).await, label),
        MsgCommand::Approve => outcome(w.app.act(p, m.id, Action::Approve).await, label),
        MsgCommand::SendBack => outcome(w.app.act(p, m.id, Action::SendBack { reason: "matrix".into() }).await, label),
        MsgCommand::Cancel => outcome(w.app.act(p, m.id, Action::Cancel { reason: "matrix".into() }).await, label),
        // A parent platform updates through the interchange (an EBM related to its original).
        MsgCommand::Update { drill: d } if matches!(p, Principal::Peer { .. }) => {
            let mut nm = w.new_message(p, d, region, true);
            nm.related_ebmid = Some(m.ebmid.clone());
            let id = w.ebmid();
            outcome(w.app.receive(p, &id, &nm).await, label)
        }
        MsgCommand::Update { drill: d } => {
            let input = w.input(region, d, &m.ebmid);
            outcome(w.app.compose(p, &input).await, label)
        }
        MsgCommand::View => outcome(w.app.visible_message(p, m.id).await, label),
        MsgCommand::ExportCap => outcome(w.app.exportable_message(p, m.id).await, label),
        // Taken inside approval and by the dispatcher: the rule on the stored row.
        MsgCommand::Supersede { .. } | MsgCommand::Dispatch | MsgCommand::Finish { .. } => {
            pure(decide(p, cmd, &m.facts(), &WorkflowSettings::default()))
        }
        MsgCommand::Compose | MsgCommand::Receive => unreachable!(),
    }
}
