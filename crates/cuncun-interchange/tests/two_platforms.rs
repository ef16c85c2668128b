//! Two platforms on loopback, a province and one of its counties, exchanging signed EBDs over
//! HTTP: link and reports up, a province warning down to the county's simulated terminals, its
//! state back up; a tampered or unsigned package refused with ResultCode 4; OMD reports.
#![allow(clippy::unwrap_used)]

use cuncun_domain::RegionCode;
use cuncun_domain::eb::{Ebrid, MessageStatus, ResourceKind};
use cuncun_ebd::model::*;
use cuncun_ebd::values::*;
use cuncun_ebd::{Body, Ebd, Package, SoftwareSigner, TrustList};
use cuncun_interchange::{Interchange, InterchangeConfig, Peer, PeerRole, ebd_time};
use cuncun_store::eb::{NewMessage, NewResource};
use cuncun_store::testing::TestDb;
use cuncun_store::{Actor, Store, now_ms};
use std::sync::Arc;
use std::time::Duration;

fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

struct Platform {
    store: Arc<dyn Store>,
    ix: Arc<Interchange>,
    url: String,
    mqtt: std::net::SocketAddr,
    _eb: Arc<cuncun_eb::EbHandle>,
    _db: TestDb,
}

async fn platform(
    db: TestDb,
    own: Ebrid,
    region: &str,
    signer: SoftwareSigner,
    trust: TrustList,
    peers: Vec<Peer>,
    http: tokio::net::TcpListener,
) -> Platform {
    let store: Arc<dyn Store> = Arc::new(cuncun_store::SqlStore::connect(&db.url).await.unwrap());
    store.import_regions(&cuncun_regions::extract("500236").unwrap(), "500236", &Actor::system()).await.unwrap();
    let url = format!("http://{}/ebd", http.local_addr().unwrap());
    let auth = Arc::new(cuncun_eb::DeviceAuth::new(vec![]));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mqtt = l.local_addr().unwrap();
    let (bus, events) = cuncun_gateway::start_embedded(vec![l], cuncun_gateway::GatewayConfig::default(), auth.clone()).await.unwrap();
    let eb_cfg = cuncun_eb::EbConfig { flush_every: Duration::from_millis(50), ..Default::default() };
    let eb = cuncun_eb::start(store.clone(), bus, events, auth, eb_cfg).await.unwrap();
    let mut cfg = InterchangeConfig::new(own, url.clone(), rc(region));
    cfg.peers = peers;
    cfg.check_every = Duration::from_millis(300);
    cfg.report_every = Duration::from_millis(500);
    // The province's orange warning plays in the county at once (the default is red only).
    cfg.auto_dispatch = vec![1, 2];
    let kick = eb.clone();
    let ix = Interchange::new(store.clone(), Arc::new(signer), trust, cfg, Box::new(move || kick.kick())).unwrap();
    ix.start();
    let app = cuncun_interchange::routes(ix.clone());
    tokio::spawn(async move { axum::serve(http, app).await });
    Platform { store, ix, url, mqtt, _eb: eb, _db: db }
}

async fn eventually<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn inbox_has(store: &dyn Store, ebd_type: &str, code: i64) -> bool {
    store.ebd_inbox_recent(1000).await.unwrap().iter().any(|e| e.ebd_type == ebd_type && e.result_code == code)
}

async fn post(url: &str, tar: Vec<u8>) -> u8 {
    let part = reqwest::multipart::Part::bytes(tar).file_name("EBDT_x.tar");
    let resp = reqwest::Client::new().post(url).multipart(reqwest::multipart::Form::new().part("file", part)).send().await.unwrap();
    assert!(resp.status().is_success());
    let body = resp.bytes().await.unwrap();
    let pkg = Package::from_tar(&body, &Default::default()).unwrap();
    match Ebd::parse(&pkg.ebdb).unwrap().0.body {
        Body::EbdResponse(r) => r.result_code.0,
        other => panic!("expected an EBDResponse, got {}", other.type_name()),
    }
}

async fn scenario(db_p: TestDb, db_c: TestDb) {
    let p_id = Ebrid::generate(&rc("50"), ResourceKind::Platform, 1).unwrap();
    let c_id = Ebrid::generate(&rc("500236"), ResourceKind::Platform, 1).unwrap();
    let p_key = SoftwareSigner::generate(p_id.clone()).unwrap();
    // The county's key twice: once for the county, once to forge its packages below.
    let c_key = SoftwareSigner::from_seed(7, c_id.clone()).unwrap();
    let mut p_trust = TrustList::default();
    p_trust.add(c_key.certificate().clone()).unwrap();
    let mut c_trust = TrustList::default();
    c_trust.add(p_key.certificate().clone()).unwrap();
    let p_http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c_http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (p_url, c_url) = (format!("http://{}/ebd", p_http.local_addr().unwrap()), format!("http://{}/ebd", c_http.local_addr().unwrap()));
    // The county's terminals, registered before it starts.
    let county_peer = Peer { role: PeerRole::Child, ebrid: c_id.clone(), url: c_url, name: "奉节县".into() };
    let parent_peer = Peer { role: PeerRole::Parent, ebrid: p_id.clone(), url: p_url, name: "重庆市".into() };
    let province = platform(db_p, p_id.clone(), "50", p_key, p_trust, vec![county_peer], p_http).await;
    let county = platform(db_c, c_id.clone(), "500236", SoftwareSigner::from_seed(7, c_id.clone()).unwrap(), c_trust, vec![parent_peer], c_http).await;

    let all: Vec<RegionCode> = cuncun_regions::extract("500236")
        .unwrap()
        .into_iter()
        .filter(|r| r.level == cuncun_domain::RegionLevel::Village)
        .map(|r| r.code)
        .collect();
    let villages = [all[0].clone(), all[1].clone(), all[all.len() - 1].clone()];
    let mut creds = Vec::new();
    for (i, v) in villages.iter().enumerate() {
        let secret = cuncun_eb::new_secret();
        let r = county
            .store
            .add_resource(
                &NewResource {
                    kind: ResourceKind::OutdoorLoudspeaker,
                    region_code: v.clone(),
                    name: format!("喇叭 {i}"),
                    vendor: String::new(),
                    model: String::new(),
                    lon: Some(109.46),
                    lat: Some(31.02),
                    install_date: String::new(),
                    ebrid: None,
                    secret_hash: cuncun_eb::hash_secret(&secret),
                },
                &Actor::system(),
            )
            .await
            .unwrap();
        creds.push((r.ebrid, secret));
    }
    county._eb.auth.replace(county.store.device_credentials().await.unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sim_cfg = cuncun_sim::SimConfig { start_delay: (Duration::ZERO, Duration::ZERO), ..Default::default() };
    let sim = tokio::spawn(cuncun_sim::run_with_control(
        sim_cfg,
        creds.clone(),
        county.mqtt,
        async move {
            let _ = stop_rx.await;
        },
        cuncun_sim::SimControl::new(),
    ));

    // 1. The link comes up both ways and the county reports itself in full.
    eventually("the county's parent link", 20, async || {
        let s = county.store.peer_states().await.unwrap();
        s.iter().any(|p| p.peer == p_id.as_str() && p.link == "up").then_some(())
    })
    .await;
    eventually("the county's Full reports at the province", 20, async || {
        (inbox_has(&*province.store, "EBRPSInfo", 1).await && inbox_has(&*province.store, "EBRDTInfo", 1).await).then_some(())
    })
    .await;

    // 2. A province warning for the county reaches every county terminal, and its state comes back.
    let now = now_ms();
    let m = province.store.create_message(&province_warning(&p_id, now, "暴雨橙色预警", None), &Actor::system()).await.unwrap();
    cuncun_store::testing::submit_and_approve(&*province.store, &m, &Actor::system()).await.unwrap();
    let local = eventually("the county to take the EBM in", 20, async || {
        let r = county.store.received_ebms().await.unwrap();
        r.into_iter().find(|e| e.ebmid == m.ebmid)
    })
    .await;
    let lm = county.store.message(local.message_id).await.unwrap().unwrap();
    assert_eq!(lm.areas, vec![rc("500236")]);
    assert_eq!(lm.severity, 2);
    assert_eq!(lm.title, "暴雨橙色预警");
    eventually("every county terminal to receive it", 30, async || {
        (county.store.delivery_summary(lm.id).await.unwrap().received == 3).then_some(())
    })
    .await;
    let f = eventually("the county's state report at the province", 30, async || {
        let f = province.store.forwarded(m.id).await.unwrap();
        f.into_iter().find(|f| f.coverage_rate.as_deref() == Some("1.0000"))
    })
    .await;
    assert_eq!(f.peer, c_id.as_str());
    assert!(matches!(f.brd_state, Some(2) | Some(3)), "broadcasting or succeeded, got {:?}", f.brd_state);
    assert!(inbox_has(&*province.store, "EBMStateResponse", 1).await);

    // 2b. The province's update of that warning replaces it in the county: the update plays at
    // once and the county's copy of the original is cancelled in the same transaction.
    let u = province
        .store
        .create_message(&province_warning(&p_id, now, "暴雨橙色预警（更新）", Some(m.ebmid.clone())), &Actor::system())
        .await
        .unwrap();
    cuncun_store::testing::submit_and_approve(&*province.store, &u, &Actor::system()).await.unwrap();
    let local_u = eventually("the county to take the update in", 20, async || {
        let r = county.store.received_ebms().await.unwrap();
        r.into_iter().find(|e| e.ebmid == u.ebmid)
    })
    .await;
    let lu = county.store.message(local_u.message_id).await.unwrap().unwrap();
    assert_eq!(lu.related_ebmid.as_deref(), Some(lm.ebmid.as_str()), "the county's update names its own copy of the original");
    assert!(matches!(lu.status, MessageStatus::Approved | MessageStatus::Dispatching | MessageStatus::Completed), "{:?}", lu.status);
    assert_eq!(county.store.message(lm.id).await.unwrap().unwrap().status, MessageStatus::Cancelled, "the original is replaced");

    // 3. A tampered package is refused with ResultCode 4 and nothing in it is acted on.
    let before = province.store.messages_recent(100).await.unwrap().len();
    let evil = Body::Ebm(Ebm {
        ebm_version: "1".into(),
        ebmid: Ebmid::parse(&lm.ebmid).unwrap(),
        related_info: None,
        msg_basic_info: MsgBasicInfo {
            msg_type: MsgType(1),
            sender_name: "奉节县".into(),
            sender_code: c_id.clone(),
            send_time: ebd_time(now_ms()),
            event_type: EventType("11B03".into()),
            severity: Severity(1),
            start_time: ebd_time(now_ms()),
            end_time: ebd_time(now_ms() + 60_000),
        },
        msg_content: MsgContent {
            language_code: LangCode("zho".into()),
            msg_title: "真实标题".into(),
            msg_desc: "x".into(),
            area_code: AreaCodes(vec![rc("500236")]),
            program_num: None,
            auxiliary: vec![],
        },
        dispatch: vec![],
    });
    let ebd = Ebd::new(Ebdid::generate(1, &c_id, 42), c_id.clone(), Some(p_id.clone()), ebd_time(now_ms()), evil);
    let mut pkg = Package::build(&ebd, Some(&c_key), vec![], ebd_time(now_ms())).unwrap();
    let good = pkg.to_tar().unwrap();
    let pos = pkg.ebdb.windows("真实".len()).position(|w| w == "真实".as_bytes()).unwrap();
    pkg.ebdb[pos..pos + "真实".len()].copy_from_slice("虚假".as_bytes());
    assert_eq!(post(&province.url, pkg.to_tar().unwrap()).await, 4, "tampered EBDB");
    pkg.ebds = None;
    assert_eq!(post(&province.url, pkg.to_tar().unwrap()).await, 4, "no signature");
    assert!(inbox_has(&*province.store, "EBM", 4).await);
    assert_eq!(province.store.messages_recent(100).await.unwrap().len(), before, "nothing from them became a message");
    // The same package untampered is valid but an EBM from a child is not acted on either.
    assert_eq!(post(&province.url, good).await, 5);

    // 4. OMDRequest: Full lists every terminal; Incremental only what changed since.
    let since = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let changed = county.store.resource_by_ebrid(&creds[1].0).await.unwrap().unwrap();
    county.store.update_resource(changed.id, &cuncun_store::eb::ResourcePatch { name: Some("改名的喇叭".into()), ..Default::default() }, &Actor::system()).await.unwrap();
    let gone = county.store.resource_by_ebrid(&creds[2].0).await.unwrap().unwrap();
    county.store.retire_resource(gone.id, &Actor::system()).await.unwrap();
    let full = county.ix.report(OmdType::EbrdtInfo, None, None).await.unwrap();
    let Body::EbrdtInfo(full) = full else { panic!("EBRDTInfo expected") };
    assert_eq!(full.items.len(), 2, "Full: the terminals in service");
    let inc = county.ix.report(OmdType::EbrdtInfo, Some(since), None).await.unwrap();
    let Body::EbrdtInfo(inc) = inc else { panic!("EBRDTInfo expected") };
    let mut got: Vec<(String, DataOp)> = inc.items.iter().map(|i| (i.ebr_name.clone(), i.rpt_type)).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, vec![("喇叭 2".to_string(), DataOp::Delete), ("改名的喇叭".to_string(), DataOp::Sync)]);
    // And over the wire: the province asks, the county answers with a report of its own.
    let asked = now_ms();
    province
        .ix
        .send_to(
            &c_id,
            Body::OmdRequest(OmdRequest {
                omd_type: OmdType::EbrdtState,
                params: OmdParams { rpt_start_time: Some(ebd_time(since)), rpt_end_time: None, rpt_type: RptType::Incremental },
            }),
        )
        .await
        .unwrap();
    eventually("the county's answer to the OMDRequest", 20, async || {
        let rows = province.store.ebd_inbox_recent(1000).await.unwrap();
        rows.into_iter().find(|e| e.ebd_type == "EBRDTState" && e.result_code == 1 && e.received_ms >= asked)
    })
    .await;
    let _ = stop_tx.send(());
    let report = sim.await.unwrap();
    assert_eq!(report.plays_received, 6, "each terminal played the warning and then its update, once each");
}

#[tokio::test]
async fn province_and_county_exchange_signed_ebds() {
    scenario(cuncun_store::testing::sqlite().await, cuncun_store::testing::sqlite().await).await;
    if let (Some(a), Some(b)) = (cuncun_store::testing::postgres().await, cuncun_store::testing::postgres().await) {
        scenario(a, b).await;
    }
}

/// An orange rainstorm warning of the province for the county (an update when `updates` is set).
fn province_warning(platform: &Ebrid, now: i64, title: &str, updates: Option<String>) -> NewMessage {
    NewMessage {
        platform: platform.clone(),
        msg_type: "broadcast".into(),
        related_ebmid: updates,
        priority: "emergency".into(),
        drill: false,
        event_type: "11B03".into(),
        severity: 2,
        title: title.into(),
        body: "奉节县未来6小时有暴雨，请注意防范。".into(),
        lang: "zho".into(),
        audio_sha256: None,
        audio_size: None,
        areas: vec![rc("500236")],
        terminals: vec![],
        start_ms: now,
        end_ms: now + 600_000,
        repeat_count: 1,
        volume: None,
        source: "local".into(),
        owner_region: rc("50"),
        author_id: Some(1),
        start_on_approval: false,
        from_peer: None,
    }
}
