//! Interchange with upper and lower platforms in the national EBD format (docs/INTERCHANGE.md).
//!
//! In: an EBDT package arrives on `POST /ebd`; [`Interchange::receive`] checks it (format,
//! signature against the trust list, sender is a configured peer), logs it, acts on it and answers
//! with a signed EBDResponse package. Nothing from a package with a bad or missing signature is
//! acted on (ResultCode 4).
//!
//! Out: every package for a peer goes through a durable outbox (the database) and is retried with
//! backoff until the peer answers; heartbeats (ConnectionCheck) go directly and drive the link
//! state. After the parent link comes up this platform reports itself and its resources (Full),
//! then changes (Incremental) and, for every EBM received from the parent, its broadcast state as
//! local delivery progresses. Local messages whose areas reach a child are sent on to it.

use anyhow::{Context, anyhow};
use cuncun_domain::RegionCode;
use cuncun_domain::authz::{Principal, WorkflowSettings};
use cuncun_domain::eb::{Ebrid, MessageStatus, ResourceKind};
use cuncun_ebd::model::*;
use cuncun_ebd::values::*;
use cuncun_ebd::{Body, Ebd, Limits, Package, Signer, TrustList};
use cuncun_store::eb::{Message, NewMessage, ResourceWithStatus};
use cuncun_store::interchange::EbdInRow;
use cuncun_store::{Store, now_ms};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    Parent,
    Child,
}

#[derive(Debug, Clone)]
pub struct Peer {
    pub role: PeerRole,
    /// The peer platform's resource code.
    pub ebrid: Ebrid,
    /// Where its EBDT packages are posted (its `/ebd` endpoint).
    pub url: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct InterchangeConfig {
    /// This platform's resource code and name.
    pub own: Ebrid,
    pub own_name: String,
    /// Our `/ebd` URL, sent in every header (SRC/URL) and in EBRPSInfo.
    pub own_url: String,
    /// The region this platform serves; EBMs are narrowed to it.
    pub region: RegionCode,
    pub peers: Vec<Peer>,
    /// Severities (1-4) of parent EBMs that go straight to dispatch; others wait for local review.
    pub auto_dispatch: Vec<u8>,
    /// ConnectionCheck period towards the parent.
    pub check_every: Duration,
    /// How often changes and message state are reported.
    pub report_every: Duration,
    pub limits: Limits,
    /// `POST /ebd` bodies read at once; more are answered 503 with Retry-After. With the tar
    /// limit this bounds the memory anonymous senders can take (docs/SECURITY.md).
    pub max_concurrent_uploads: usize,
}

impl InterchangeConfig {
    pub fn new(own: Ebrid, own_url: String, region: RegionCode) -> Self {
        InterchangeConfig {
            own_name: own.to_string(),
            own,
            own_url,
            region,
            peers: Vec::new(),
            auto_dispatch: vec![1],
            check_every: Duration::from_secs(60),
            report_every: Duration::from_secs(30),
            limits: Limits::default(),
            max_concurrent_uploads: 2,
        }
    }
}

/// One of the interchange's background tasks (run by the platform's job supervisor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IxWorker {
    /// Posts the EBD outbox to peers, with retries.
    Sender,
    /// ConnectionCheck to the parent; Full, then Incremental reports.
    Link,
    /// Sends local messages on to children; reports the state of the parent's messages up.
    Forward,
}

/// How a worker says how a round went (see [`Interchange::run`]).
type Report<'a> = &'a (dyn Fn(Result<(), String>) + Send + Sync);

/// Counters since start, for /metrics and the interchange page.
#[derive(Debug, Default)]
pub struct InterchangeStats {
    pub received: AtomicU64,
    pub refused: AtomicU64,
    pub sent: AtomicU64,
    pub send_failures: AtomicU64,
}

pub struct Interchange {
    store: Arc<dyn Store>,
    signer: Arc<dyn Signer>,
    trust: TrustList,
    cfg: InterchangeConfig,
    http: reqwest::Client,
    seq: AtomicU64,
    kick: Notify,
    /// Called when a parent EBM was approved here, so dispatch starts at once.
    on_approved: Box<dyn Fn() + Send + Sync>,
    /// (state, received) last reported upward per parent EBMID, and when.
    reported: Mutex<HashMap<String, ((u8, i64), tokio::time::Instant)>>,
    pub stats: InterchangeStats,
}

/// ms since the epoch -> EBD time (Beijing, whole seconds).
pub fn ebd_time(ms: i64) -> EbdTime {
    EbdTime(cuncun_domain::time::local(ms - ms.rem_euclid(1000)).unwrap_or_default())
}

/// EBD time (Beijing) -> ms since the epoch.
pub fn ms_of(t: &EbdTime) -> i64 {
    cuncun_domain::time::from_local(t.0)
}

/// How a message's workflow state reads as an EBD broadcast state.
fn brd_state(m: &Message, received: i64) -> u8 {
    match m.status {
        MessageStatus::Draft | MessageStatus::Submitted | MessageStatus::Approved => 1,
        MessageStatus::Dispatching => 2,
        MessageStatus::Completed => 3,
        MessageStatus::Expired if received > 0 => 3,
        MessageStatus::Expired => 4,
        MessageStatus::Cancelled => 5,
    }
}

fn state_item(r: &ResourceWithStatus, now: EbdTime) -> Option<ResStateItem> {
    let code = match r.online {
        _ if r.resource.retired_at_ms.is_some() => 2,
        None | Some(false) => 2,
        Some(true) if r.state == "fault" || !r.faults.is_empty() => 3,
        Some(true) if r.state == "playing" => 5,
        Some(true) => 1,
    };
    Some(ResStateItem {
        rpt_time: now,
        ebrid: Ebrid::parse(&r.resource.ebrid).ok()?,
        state_code: ResState(code),
        state_desc: (!r.faults.is_empty()).then(|| r.faults.clone()),
    })
}

fn op(r: &ResourceWithStatus) -> DataOp {
    if r.resource.retired_at_ms.is_some() { DataOp::Delete } else { DataOp::Sync }
}

fn coord(v: Option<f64>) -> Option<String> {
    v.map(|x| format!("{x:.6}"))
}

fn is_terminal(k: ResourceKind) -> bool {
    !matches!(k, ResourceKind::Platform | ResourceKind::FrontEnd | ResourceKind::Adapter)
}

/// Whether two region codes overlap (one contains the other).
fn overlaps(a: &RegionCode, b: &RegionCode) -> bool {
    a.contains(b) || b.contains(a)
}

impl Interchange {
    pub fn new(
        store: Arc<dyn Store>,
        signer: Arc<dyn Signer>,
        trust: TrustList,
        cfg: InterchangeConfig,
        on_approved: Box<dyn Fn() + Send + Sync>,
    ) -> anyhow::Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("HTTP client for the interchange")?;
        Ok(Arc::new(Interchange {
            store,
            signer,
            trust,
            cfg,
            http,
            seq: AtomicU64::new(0),
            kick: Notify::new(),
            on_approved,
            reported: Mutex::new(HashMap::new()),
            stats: InterchangeStats::default(),
        }))
    }

    pub fn config(&self) -> &InterchangeConfig {
        &self.cfg
    }

    fn peer(&self, ebrid: &Ebrid) -> Option<&Peer> {
        self.cfg.peers.iter().find(|p| &p.ebrid == ebrid)
    }

    fn parent(&self) -> Option<&Peer> {
        self.cfg.peers.iter().find(|p| p.role == PeerRole::Parent)
    }

    /// A new EBDID: type prefix, our code, a 16-digit sequence unique across restarts.
    fn next_ebdid(&self, prefix: u8) -> Ebdid {
        let n = self.seq.fetch_add(1, Ordering::Relaxed) % 1000;
        Ebdid::generate(prefix, &self.cfg.own, (now_ms() as u64 % 10_000_000_000_000) * 1000 + n)
    }

    fn build(&self, dest: Option<&Ebrid>, body: Body, related: Option<Ebdid>) -> anyhow::Result<(Ebd, Vec<u8>)> {
        let now = ebd_time(now_ms());
        let mut ebd = Ebd::new(self.next_ebdid(1), self.cfg.own.clone(), dest.cloned(), now, body);
        ebd.header.src.url = Some(self.cfg.own_url.clone());
        ebd.header.related_ebd = related.map(|ebdid| RelatedEbd { ebdid });
        let tar = Package::build(&ebd, Some(&*self.signer), vec![], now)
            .map_err(|e| anyhow!("signing: {e}"))?
            .to_tar()
            .map_err(|e| anyhow!("packing: {e}"))?;
        Ok((ebd, tar))
    }

    /// Queues a package for a peer; the sender works it off.
    pub async fn send_to(&self, peer: &Ebrid, body: Body) -> anyhow::Result<Ebdid> {
        let t = body.type_name();
        let (ebd, tar) = self.build(Some(peer), body, None)?;
        self.store.enqueue_ebd(peer.as_str(), ebd.header.ebdid.as_str(), t, &tar, now_ms()).await?;
        self.kick.notify_one();
        Ok(ebd.header.ebdid)
    }

    // ----- receiving -----

    /// Handles one received package; returns the EBDResponse tar and its ResultCode.
    pub async fn receive(&self, bytes: &[u8]) -> (Vec<u8>, u8) {
        let opts = cuncun_ebd::CheckOptions { verifier: Some(&self.trust), limits: self.cfg.limits };
        let report = cuncun_ebd::check_bytes("request", bytes, &opts);
        let mut code = report.result_code();
        let mut desc = report.errors.first().map(|e| format!("{}: {}", e.location, e.message));
        if let Some(s) = report.signature.as_ref().filter(|s| s.result_code().is_some()) {
            desc = Some(format!("signature: {s}"));
        }
        if report.container == cuncun_ebd::check::Container::Xml && report.ebd.as_ref().is_some_and(|e| e.needs_signature()) {
            // A bare document cannot carry a signature: only heartbeats may come that way.
            code = 4;
            desc = Some("not an EBDT package: an unsigned document is refused".into());
        }
        let sender = report.ebd.as_ref().map(|e| e.header.src.ebrid.clone());
        if code == 1
            && let Some(ebd) = &report.ebd
        {
            match self.peer(&ebd.header.src.ebrid) {
                None => {
                    code = 5;
                    desc = Some(format!("{} is not a configured peer of this platform", ebd.header.src.ebrid));
                }
                Some(peer) => {
                    if let Err(e) = self.act(peer.clone(), ebd).await {
                        tracing::warn!(error = %e, ebd = %ebd.header.ebdid, "acting on a received EBD failed");
                        code = 5;
                        desc = Some(e.to_string());
                    }
                }
            }
        }
        if code == 1 {
            self.stats.received.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(code, desc = desc.as_deref().unwrap_or(""), sender = ?sender.as_ref().map(|s| s.to_string()), "EBD refused");
        }
        let received = report.ebdid.clone();
        let _ = self
            .store
            .record_ebd_in(&EbdInRow {
                ebdid: received.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                ebd_type: report.ebd.as_ref().map(|e| e.ebd_type().to_string()).unwrap_or_default(),
                src_ebrid: sender.as_ref().map(|s| s.to_string()).unwrap_or_default(),
                received_ms: now_ms(),
                result_code: code as i64,
                result_desc: desc.clone().unwrap_or_default(),
            })
            .await;
        let body = Body::EbdResponse(EbdResponse { result_code: ResultCode(code), result_desc: desc });
        match self.build(sender.as_ref(), body, received) {
            Ok((_, tar)) => (tar, code),
            Err(e) => {
                tracing::error!(error = %e, "cannot build an EBDResponse");
                (Vec::new(), code)
            }
        }
    }

    async fn act(&self, peer: Peer, ebd: &Ebd) -> anyhow::Result<()> {
        let now = now_ms();
        // Anything valid from a peer shows its link works.
        self.store.set_peer_link(peer.ebrid.as_str(), true, now, None).await?;
        match (&ebd.body, peer.role) {
            (Body::ConnectionCheck(_), _) | (Body::EbdResponse(_), _) => Ok(()),
            (Body::Ebm(ebm), PeerRole::Parent) => self.receive_ebm(&peer, ebm).await,
            (Body::OmdRequest(r), PeerRole::Parent) => {
                let since = match r.params.rpt_type {
                    RptType::Full => None,
                    RptType::Incremental => r.params.rpt_start_time.as_ref().map(ms_of),
                };
                let body = self.report(r.omd_type, since, Some(&r.params)).await?;
                self.send_to(&peer.ebrid, body).await?;
                Ok(())
            }
            (Body::EbmStateRequest(r), PeerRole::Parent) => {
                let rec = self.store.received_ebms().await?;
                let e = rec.iter().find(|e| e.ebmid == r.ebm.ebmid.as_str()).ok_or_else(|| anyhow!("unknown EBMID {}", r.ebm.ebmid))?;
                let m = self.store.message(e.message_id).await?.ok_or_else(|| anyhow!("message vanished"))?;
                let body = self.state_of(&e.ebmid, &m).await?.0;
                self.send_to(&peer.ebrid, body).await?;
                Ok(())
            }
            (Body::EbmStateResponse(s), PeerRole::Child) => {
                let rate = s.coverage.as_ref().map(|c| c.coverage_rate.as_str());
                self.store.set_forwarded_state(s.ebm.ebmid.as_str(), peer.ebrid.as_str(), s.brd_state_code.0 as i64, rate, now).await?;
                Ok(())
            }
            // Reports from a child are logged in the inbox (what they say is theirs to keep).
            (
                Body::EbrpsInfo(_)
                | Body::EbrstInfo(_)
                | Body::EbrasInfo(_)
                | Body::EbrbsInfo(_)
                | Body::EbrdtInfo(_)
                | Body::EbrpsState(_)
                | Body::EbrasState(_)
                | Body::EbrbsState(_)
                | Body::EbrdtState(_)
                | Body::EbmBrdLog(_),
                PeerRole::Child,
            ) => Ok(()),
            (b, role) => Err(anyhow!("a {} is not expected from a {:?} platform", b.type_name(), role)),
        }
    }

    async fn receive_ebm(&self, peer: &Peer, ebm: &Ebm) -> anyhow::Result<()> {
        let info = &ebm.msg_basic_info;
        let principal = Principal::Peer { ebrid: peer.ebrid.to_string(), region: peer.ebrid.region().unwrap_or_else(|| self.cfg.region.clone()) };
        let settings = WorkflowSettings { auto_dispatch: self.cfg.auto_dispatch.clone(), ..WorkflowSettings::default() };
        let app = cuncun_app::App::new(self.store.clone(), settings);
        if info.msg_type.0 == 2 {
            // Cancel: refers to the message it cancels.
            let target = ebm.related_info.as_ref().map(|r| r.ebmid.as_str()).unwrap_or(ebm.ebmid.as_str());
            let rec = self.store.received_ebms().await?;
            let e = rec.iter().find(|e| e.ebmid == target).ok_or_else(|| anyhow!("cancel of unknown EBMID {target}"))?;
            let m = self.store.message(e.message_id).await?.ok_or_else(|| anyhow!("message vanished"))?;
            if !m.status.is_final() {
                // A parent may cancel only what it sent: the application layer decides.
                let reason = format!("cancelled by the parent platform ({})", ebm.ebmid);
                app.act(&principal, m.id, cuncun_app::messages::Action::Cancel { reason }).await?;
                (self.on_approved)();
            }
            return Ok(());
        }
        // Only what lies in this platform's region is ours: an area above it means all of it.
        let mine = &self.cfg.region;
        let mut areas: Vec<RegionCode> = Vec::new();
        for a in &ebm.msg_content.area_code.0 {
            if a.contains(mine) {
                areas = vec![mine.clone()];
                break;
            }
            if mine.contains(a) {
                areas.push(a.clone());
            }
        }
        anyhow::ensure!(!areas.is_empty(), "none of the EBM's areas lies in this platform's region {}", mine.as_str());
        let severity = info.severity.0.clamp(1, 4);
        // An EBM related to one received before updates it: it replaces our copy of it.
        let related_ebmid = match &ebm.related_info {
            Some(r) => {
                let rec = self.store.received_ebms().await?;
                let e = rec.iter().find(|e| e.ebmid == r.ebmid.as_str()).ok_or_else(|| anyhow!("update of unknown EBMID {}", r.ebmid.as_str()))?;
                Some(self.store.message(e.message_id).await?.ok_or_else(|| anyhow!("message vanished"))?.ebmid)
            }
            None => None,
        };
        let nm = NewMessage {
            platform: self.cfg.own.clone(),
            msg_type: "broadcast".into(),
            related_ebmid,
            priority: "emergency".into(),
            drill: (3..=5).contains(&info.msg_type.0),
            event_type: info.event_type.0.clone(),
            severity,
            title: ebm.msg_content.msg_title.clone(),
            body: ebm.msg_content.msg_desc.clone(),
            lang: ebm.msg_content.language_code.0.clone(),
            audio_sha256: None,
            audio_size: None,
            areas,
            terminals: vec![],
            start_ms: ms_of(&info.start_time),
            end_ms: ms_of(&info.end_time),
            repeat_count: 1,
            volume: None,
            source: format!("parent:{}", peer.ebrid),
            owner_region: mine.clone(),
            author_id: None,
            start_on_approval: false,
            from_peer: Some(peer.ebrid.to_string()),
        };
        let (m, new) = app.receive(&principal, ebm.ebmid.as_str(), &nm).await?;
        let approve = m.status == MessageStatus::Approved;
        tracing::info!(ebmid = %ebm.ebmid, local = %m.ebmid, new, approve, "EBM from the parent platform");
        if new && approve {
            (self.on_approved)();
        }
        Ok(())
    }

    // ----- reports -----

    /// One report body (Full when `since` is None, else what changed since then).
    pub async fn report(&self, t: OmdType, since: Option<i64>, params: Option<&OmdParams>) -> anyhow::Result<Body> {
        let now = ebd_time(now_ms());
        let params = Some(ReportParams {
            rpt_start_time: params.and_then(|p| p.rpt_start_time),
            rpt_end_time: params.and_then(|p| p.rpt_end_time),
            rpt_type: Some(if since.is_some() { RptType::Incremental } else { RptType::Full }),
        });
        let scope = &self.cfg.region;
        let parent = self.parent().map(|p| ResRef { ebrid: p.ebrid.clone() });
        let own_ref = Some(ResRef { ebrid: self.cfg.own.clone() });
        let info = || self.store.resources_for_report(scope, since);
        let states = || self.store.states_for_report(scope, since);
        let of = |rs: Vec<ResourceWithStatus>, f: &dyn Fn(ResourceKind) -> bool| -> Vec<ResourceWithStatus> {
            rs.into_iter().filter(|r| f(r.resource.kind)).collect()
        };
        Ok(match t {
            OmdType::EbrpsInfo => Body::EbrpsInfo(EbrpsInfo {
                params,
                items: vec![Ebrps {
                    rpt_time: now,
                    rpt_type: DataOp::Sync,
                    related_ebrps: parent,
                    ebrid: self.cfg.own.clone(),
                    ebr_name: self.cfg.own_name.clone(),
                    address: None,
                    contact: None,
                    phone_number: None,
                    longitude: None,
                    latitude: None,
                    url: Some(self.cfg.own_url.clone()),
                }],
            }),
            OmdType::EbrstInfo => Body::EbrstInfo(EbrstInfo {
                params,
                items: of(info().await?, &|k| k == ResourceKind::FrontEnd)
                    .iter()
                    .filter_map(|r| {
                        Some(Ebrst {
                            rpt_time: now,
                            rpt_type: op(r),
                            related_ebrps: own_ref.clone(),
                            ebrid: Ebrid::parse(&r.resource.ebrid).ok()?,
                            ebr_name: r.resource.name.clone(),
                            address: None,
                            contact: None,
                            phone_number: None,
                            longitude: coord(r.resource.lon),
                            latitude: coord(r.resource.lat),
                        })
                    })
                    .collect(),
            }),
            OmdType::EbrasInfo => Body::EbrasInfo(EbrasInfo {
                params,
                items: of(info().await?, &|k| k == ResourceKind::Adapter)
                    .iter()
                    .filter_map(|r| {
                        Some(Ebras {
                            rpt_time: now,
                            rpt_type: op(r),
                            related_ebrps: own_ref.clone(),
                            related_ebrst: None,
                            ebrid: Ebrid::parse(&r.resource.ebrid).ok()?,
                            ebr_name: r.resource.name.clone(),
                            longitude: coord(r.resource.lon),
                            latitude: coord(r.resource.lat),
                            url: None,
                        })
                    })
                    .collect(),
            }),
            // No broadcast systems (transmitters) are modelled as resources yet.
            OmdType::EbrbsInfo => Body::EbrbsInfo(EbrbsInfo { params, items: vec![] }),
            OmdType::EbrdtInfo => Body::EbrdtInfo(EbrdtInfo {
                params,
                items: of(info().await?, &is_terminal)
                    .iter()
                    .filter_map(|r| {
                        Some(Ebrdt {
                            rpt_time: now,
                            rpt_type: op(r),
                            related_ebrps: own_ref.clone(),
                            ebrid: Ebrid::parse(&r.resource.ebrid).ok()?,
                            ebr_name: r.resource.name.clone(),
                            longitude: coord(r.resource.lon),
                            latitude: coord(r.resource.lat),
                        })
                    })
                    .collect(),
            }),
            OmdType::EbrpsState => Body::EbrpsState(EbrpsState {
                params,
                items: vec![ResStateItem { rpt_time: now, ebrid: self.cfg.own.clone(), state_code: ResState(1), state_desc: None }],
            }),
            OmdType::EbrasState => Body::EbrasState(EbrasState {
                params,
                items: of(states().await?, &|k| k == ResourceKind::Adapter).iter().filter_map(|r| state_item(r, now)).collect(),
            }),
            OmdType::EbrbsState => Body::EbrbsState(EbrbsState { params, items: vec![] }),
            OmdType::EbrdtState => Body::EbrdtState(EbrdtState {
                params,
                items: of(states().await?, &is_terminal).iter().filter_map(|r| state_item(r, now)).collect(),
            }),
            OmdType::EbmBrdLog => {
                let mut items = Vec::new();
                for e in self.store.received_ebms().await? {
                    let Some(m) = self.store.message(e.message_id).await? else { continue };
                    if since.is_some_and(|t| m.created_at_ms < t && m.completed_at_ms.is_none_or(|c| c < t)) {
                        continue;
                    }
                    if let Body::EbmStateResponse(s) = self.state_of(&e.ebmid, &m).await?.0 {
                        items.push(EbmBrdItem {
                            ebm: BrdLogEbm { ebmid: s.ebm.ebmid, msg_basic_info: None, msg_content: None },
                            unit_info: None,
                            brd_state_code: s.brd_state_code,
                            brd_state_desc: s.brd_state_desc,
                            coverage: s.coverage,
                            res_brd_info: s.res_brd_info,
                        });
                    }
                }
                Body::EbmBrdLog(EbmBrdLog { params, items })
            }
        })
    }

    /// The EBMStateResponse for a parent's message (its EBMID) and the local message it became;
    /// with the (state, received) it reports.
    async fn state_of(&self, ebmid: &str, m: &Message) -> anyhow::Result<(Body, (u8, i64))> {
        let s = self.store.delivery_summary(m.id).await?;
        let state = brd_state(m, s.received);
        let rate = if s.targets > 0 { s.received as f64 / s.targets as f64 } else { 0.0 };
        let now = ebd_time(now_ms());
        let rows = self.store.deliveries(m.id, false, 100_000).await?;
        let items = rows
            .iter()
            .filter_map(|d| {
                let code = match d.stage {
                    0 => 1,
                    1 | 2 => 2,
                    3 => 3,
                    _ => 4,
                };
                Some(ResBrdItem {
                    ebrid: Ebrid::parse(&d.ebrid).ok()?,
                    brd_state_code: BrdState(code),
                    brd_state_desc: d.failed_reason.clone(),
                    start_time: d.started_ms.map(ebd_time),
                    end_time: d.finished_ms.map(ebd_time),
                })
            })
            .collect();
        let body = Body::EbmStateResponse(EbmStateResponse {
            rpt_time: now,
            ebm: EbmRef { ebmid: Ebmid::parse(ebmid).map_err(|e| anyhow!("EBMID {ebmid}: {e}"))? },
            brd_state_code: BrdState(state),
            brd_state_desc: Some(format!("local message {}: {}", m.ebmid, m.status.key())),
            coverage: Some(Coverage {
                coverage_rate: format!("{rate:.4}"),
                area_code: Some(AreaCodes(m.areas.clone())),
                res_brd_stat: Some(format!("{}/{}", s.received, s.targets)),
            }),
            res_brd_info: Some(ResBrdInfo { items }),
        });
        Ok((body, (state, s.received)))
    }

    /// The EBM for a local message, as sent to a child.
    fn ebm_of(&self, m: &Message) -> anyhow::Result<Ebm> {
        let bad = |what: &str, e: String| anyhow!("message {}: {what}: {e}", m.ebmid);
        Ok(Ebm {
            ebm_version: "1".into(),
            ebmid: Ebmid::parse(&m.ebmid).map_err(|e| bad("EBMID", e))?,
            related_info: match &m.related_ebmid {
                Some(r) => Some(EbmRef { ebmid: Ebmid::parse(r).map_err(|e| bad("related EBMID", e))? }),
                None => None,
            },
            msg_basic_info: MsgBasicInfo {
                msg_type: MsgType(if m.msg_type == "cancel" { 2 } else if m.drill { 3 } else { 1 }),
                sender_name: self.cfg.own_name.clone(),
                sender_code: self.cfg.own.clone(),
                send_time: ebd_time(now_ms()),
                event_type: EventType(m.event_type.clone()),
                severity: Severity(m.severity),
                start_time: ebd_time(m.start_ms),
                end_time: ebd_time(m.end_ms),
            },
            msg_content: MsgContent {
                language_code: LangCode(m.lang.clone()),
                msg_title: m.title.clone(),
                msg_desc: m.body.clone(),
                area_code: AreaCodes(m.areas.clone()),
                program_num: None,
                auxiliary: vec![],
            },
            dispatch: vec![],
        })
    }

    // ----- the workers -----

    /// Starts the workers without a supervisor (tests): nothing restarts them. The platform runs
    /// them as jobs instead (`interchange_sender`, `interchange_link`, `interchange_forward`).
    pub fn start(self: &Arc<Self>) {
        for w in self.workers() {
            let ix = self.clone();
            tokio::spawn(async move { ix.run(w, std::future::pending(), &|_| {}).await });
        }
    }

    /// The workers this configuration needs: the parent link only when there is a parent.
    pub fn workers(&self) -> Vec<IxWorker> {
        let mut v = vec![IxWorker::Sender, IxWorker::Link, IxWorker::Forward];
        if self.parent().is_none() {
            v.retain(|w| *w != IxWorker::Link);
        }
        v
    }

    /// Runs one worker until `stop` resolves, reporting each round to `report` (`Ok` after a
    /// successful one, `Err` with what failed; the worker retries by itself). A round in progress
    /// at `stop` is dropped: what it was sending stays in the outbox.
    pub async fn run(
        &self,
        worker: IxWorker,
        stop: impl std::future::Future<Output = ()> + Send,
        report: &(dyn Fn(Result<(), String>) + Send + Sync),
    ) {
        tokio::select! {
            _ = stop => {}
            _ = async {
                match worker {
                    IxWorker::Sender => self.sender(report).await,
                    IxWorker::Link => self.link_and_reports(report).await,
                    IxWorker::Forward => self.forward_and_state(report).await,
                }
            } => {}
        }
    }

    /// Posts one package; the peer's ResultCode from its (signature-checked) EBDResponse.
    async fn post(&self, url: &str, name: &str, tar: Vec<u8>) -> anyhow::Result<u8> {
        let part = reqwest::multipart::Part::bytes(tar).file_name(name.to_string()).mime_str("application/x-tar")?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let resp = self.http.post(url).multipart(form).send().await.with_context(|| format!("posting to {url}"))?;
        let status = resp.status();
        let body = resp.bytes().await?;
        anyhow::ensure!(status.is_success(), "{url} answered HTTP {status}");
        let opts = cuncun_ebd::CheckOptions { verifier: Some(&self.trust), limits: self.cfg.limits };
        let r = cuncun_ebd::check_bytes("response", &body, &opts);
        anyhow::ensure!(r.is_valid(), "the answer from {url} is not a valid signed EBDResponse: {}", r.render().trim());
        match r.ebd.map(|e| e.body) {
            Some(Body::EbdResponse(x)) => Ok(x.result_code.0),
            _ => Err(anyhow!("the answer from {url} is not an EBDResponse")),
        }
    }

    async fn sender(&self, report: Report<'_>) {
        loop {
            match self.store.due_ebds(now_ms(), 50).await {
                Ok(items) => {
                    // Peers that do not answer are the link's business (retried per package).
                    report(Ok(()));
                    for it in items {
                        let Some(peer) = Ebrid::parse(&it.peer).ok().and_then(|e| self.peer(&e).cloned()) else {
                            let _ = self.store.ebd_retry(it.id, "peer no longer configured", now_ms() + 3_600_000).await;
                            continue;
                        };
                        let name = format!("EBDT_{}.tar", it.ebdid);
                        match self.post(&peer.url, &name, it.package).await {
                            Ok(code) => {
                                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                                if code != 1 {
                                    tracing::warn!(peer = %peer.name, ebdid = %it.ebdid, code, "peer refused a package");
                                }
                                let _ = self.store.ebd_done(it.id, code as i64, now_ms()).await;
                            }
                            Err(e) => {
                                self.stats.send_failures.fetch_add(1, Ordering::Relaxed);
                                let backoff = (1_000i64 << it.attempts.min(8)).min(300_000);
                                tracing::warn!(peer = %peer.name, ebdid = %it.ebdid, error = %e, "sending failed; will retry");
                                let _ = self.store.ebd_retry(it.id, &e.to_string(), now_ms() + backoff).await;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading the EBD outbox failed");
                    report(Err(format!("reading the EBD outbox: {e}")));
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), self.kick.notified()).await;
        }
    }

    /// Heartbeats to the parent; on (re)connection a Full report, then Incremental ones.
    async fn link_and_reports(&self, report: Report<'_>) {
        let Some(parent) = self.parent().cloned() else { return };
        let mut last_report = Duration::ZERO;
        let mut tick = tokio::time::interval(self.cfg.check_every.min(self.cfg.report_every));
        let started = tokio::time::Instant::now();
        let mut last_check: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            let now = now_ms();
            if last_check.is_none_or(|t| t.elapsed() >= self.cfg.check_every) {
                last_check = Some(tokio::time::Instant::now());
                let body = Body::ConnectionCheck(ConnectionCheck { rpt_time: ebd_time(now) });
                let r = match self.build(Some(&parent.ebrid), body, None) {
                    Ok((ebd, tar)) => self.post(&parent.url, &format!("EBDT_{}.tar", ebd.header.ebdid), tar).await,
                    Err(e) => Err(e),
                };
                let up = matches!(r, Ok(1));
                let err = match &r {
                    Ok(c) if *c != 1 => Some(format!("ResultCode {c}")),
                    Err(e) => Some(e.to_string()),
                    _ => None,
                };
                let changed = self.store.set_peer_link(parent.ebrid.as_str(), up, now, err.as_deref()).await.unwrap_or(false);
                report(match &err {
                    None => Ok(()),
                    Some(e) => Err(format!("ConnectionCheck to the parent: {e}")),
                });
                if up && changed {
                    tracing::info!(parent = %parent.name, "parent link up: reporting in full");
                    if let Err(e) = self.push_reports(&parent, None).await {
                        tracing::warn!(error = %e, "full report to the parent failed");
                        report(Err(format!("full report to the parent: {e}")));
                    }
                    let _ = self.store.set_peer_reported(parent.ebrid.as_str(), now).await;
                    last_report = started.elapsed();
                    continue;
                }
                if !up && changed {
                    tracing::warn!(parent = %parent.name, error = err.as_deref().unwrap_or(""), "parent link down");
                }
            }
            if started.elapsed() - last_report >= self.cfg.report_every {
                last_report = started.elapsed();
                let since = self
                    .store
                    .peer_states()
                    .await
                    .ok()
                    .and_then(|ps| ps.into_iter().find(|p| p.peer == parent.ebrid.as_str()))
                    .and_then(|p| p.last_report_ms);
                if let Some(since) = since {
                    match self.push_reports(&parent, Some(since)).await {
                        Ok(()) => {
                            let _ = self.store.set_peer_reported(parent.ebrid.as_str(), now).await;
                            report(Ok(()));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "incremental report to the parent failed");
                            report(Err(format!("incremental report to the parent: {e}")));
                        }
                    }
                }
            }
        }
    }

    /// Info and State reports to the parent; an Incremental one only where something changed.
    async fn push_reports(&self, parent: &Peer, since: Option<i64>) -> anyhow::Result<()> {
        let kinds = [OmdType::EbrpsInfo, OmdType::EbrstInfo, OmdType::EbrasInfo, OmdType::EbrdtInfo, OmdType::EbrpsState, OmdType::EbrdtState];
        for t in kinds {
            if since.is_some() && matches!(t, OmdType::EbrpsInfo | OmdType::EbrpsState) {
                continue;
            }
            let body = self.report(t, since, None).await?;
            if since.is_some() && report_is_empty(&body) {
                continue;
            }
            self.send_to(&parent.ebrid, body).await?;
        }
        Ok(())
    }

    /// Sends local messages on to the children they reach, and the state of the parent's messages
    /// up as local delivery progresses.
    async fn forward_and_state(&self, report: Report<'_>) {
        let mut tick = tokio::time::interval(Duration::from_millis(1000).min(self.cfg.report_every));
        loop {
            tick.tick().await;
            let mut round = Ok(());
            if let Err(e) = self.forward_once().await {
                tracing::warn!(error = %e, "forwarding to children failed");
                round = Err(format!("forwarding to children: {e}"));
            }
            if let Err(e) = self.state_once().await {
                tracing::warn!(error = %e, "reporting message state failed");
                round = Err(format!("reporting message state: {e}"));
            }
            report(round);
        }
    }

    async fn forward_once(&self) -> anyhow::Result<()> {
        let children: Vec<&Peer> = self.cfg.peers.iter().filter(|p| p.role == PeerRole::Child).collect();
        if children.is_empty() {
            return Ok(());
        }
        for m in self.store.active_messages().await? {
            if !matches!(m.status, MessageStatus::Approved | MessageStatus::Dispatching) {
                continue;
            }
            for c in &children {
                let Some(region) = c.ebrid.region() else { continue };
                if !m.areas.iter().any(|a| overlaps(a, &region)) {
                    continue;
                }
                if self.store.forwarded(m.id).await?.iter().any(|f| f.peer == c.ebrid.as_str()) {
                    continue;
                }
                let ebm = self.ebm_of(&m)?;
                let (ebd, tar) = self.build(Some(&c.ebrid), Body::Ebm(ebm), None)?;
                if self.store.mark_forwarded(m.id, c.ebrid.as_str(), ebd.header.ebdid.as_str()).await? {
                    self.store.enqueue_ebd(c.ebrid.as_str(), ebd.header.ebdid.as_str(), "EBM", &tar, now_ms()).await?;
                    self.kick.notify_one();
                    tracing::info!(child = %c.name, ebmid = %m.ebmid, "message sent on to a child platform");
                }
            }
        }
        Ok(())
    }

    async fn state_once(&self) -> anyhow::Result<()> {
        let Some(parent) = self.parent().cloned() else { return Ok(()) };
        for e in self.store.received_ebms().await? {
            if e.last_state >= 3 {
                continue; // final state already reported
            }
            let Some(m) = self.store.message(e.message_id).await? else { continue };
            // The cheap summary decides; the per-terminal list is read only when a report is due:
            // on a change, at most once per report_every while broadcasting, at once at the end.
            let received = self.store.delivery_summary(m.id).await?.received;
            let seen = (brd_state(&m, received), received);
            let due = match self.reported.lock().get(&e.ebmid) {
                None => true,
                Some((last, _)) if *last == seen => false,
                Some((_, at)) => seen.0 >= 3 || at.elapsed() >= self.cfg.report_every,
            };
            if !due {
                continue;
            }
            let (body, now_state) = self.state_of(&e.ebmid, &m).await?;
            self.send_to(&parent.ebrid, body).await?;
            if now_state.0 >= 3 {
                // The broadcast is over: its log entry goes up too.
                let log = self.report(OmdType::EbmBrdLog, Some(m.created_at_ms), None).await?;
                self.send_to(&parent.ebrid, log).await?;
            }
            self.store.set_received_state(&e.ebmid, now_state.0 as i64, now_ms()).await?;
            self.reported.lock().insert(e.ebmid.clone(), (now_state, tokio::time::Instant::now()));
        }
        Ok(())
    }
}

fn report_is_empty(b: &Body) -> bool {
    match b {
        Body::EbrstInfo(r) => r.items.is_empty(),
        Body::EbrasInfo(r) => r.items.is_empty(),
        Body::EbrdtInfo(r) => r.items.is_empty(),
        Body::EbrdtState(r) => r.items.is_empty(),
        Body::EbrasState(r) => r.items.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_beijing_time() {
        let ms = 1_763_800_000_000; // whole second
        let t = ebd_time(ms);
        assert_eq!(ms_of(&t), ms);
        assert_eq!(ebd_time(ms + 999), t, "sub-second parts are dropped");
        // 00:00 UTC is 08:00 in Beijing.
        assert_eq!(ebd_time(0).to_string(), "1970-01-01 08:00:00");
    }
}

/// Multipart framing around a package in a `POST /ebd` form.
const FORM_OVERHEAD: u64 = 64 * 1024;
/// How long a peer may pause mid-upload before its upload slot is given back.
const UPLOAD_IDLE: Duration = Duration::from_secs(30);
/// What a peer turned away for lack of a slot is told to wait (seconds).
const RETRY_AFTER_S: u64 = 5;

/// The receiving endpoint's state: the interchange and its upload slots.
#[derive(Clone)]
struct Intake {
    ix: Arc<Interchange>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl InterchangeConfig {
    /// The largest `POST /ebd` body: a package at the tar limit plus its multipart framing.
    pub fn max_body_bytes(&self) -> u64 {
        self.limits.max_tar_bytes.saturating_add(FORM_OVERHEAD)
    }
}

/// Why an upload was not read to the end.
enum Cut {
    TooLarge,
    Stalled,
    Broken(String),
}

/// Appends a chunk unless the body would pass `limit` (bytes are counted, never buffered twice).
fn append(buf: &mut Vec<u8>, chunk: &[u8], limit: u64) -> Result<(), Cut> {
    if (buf.len() + chunk.len()) as u64 > limit {
        return Err(Cut::TooLarge);
    }
    buf.extend_from_slice(chunk);
    Ok(())
}

/// An error in the platform's JSON shape (docs/SECURITY.md), for what is not an EBDResponse.
fn refusal(status: axum::http::StatusCode, code: &str, message: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /ebd`: the receiving endpoint peers post EBDT packages to (multipart with the tar as a
/// file part, as deployed platforms send, or the bare tar as the body). Peers are authenticated
/// by their packages' signatures, not by sessions; the answer is always an EBDResponse package.
///
/// Anyone can reach it, so the body is bounded before it is read: a Content-Length above
/// [`InterchangeConfig::max_body_bytes`] is refused with 413 at once, a chunked body is cut off
/// there, and at most `max_concurrent_uploads` bodies are read at a time (others get 503 with
/// Retry-After). Each body is held once, in one buffer.
pub fn routes(ix: Arc<Interchange>) -> axum::Router {
    use axum::extract::DefaultBodyLimit;
    let slots = Arc::new(tokio::sync::Semaphore::new(ix.cfg.max_concurrent_uploads.max(1)));
    let limit = usize::try_from(ix.cfg.max_body_bytes()).unwrap_or(usize::MAX);
    axum::Router::new()
        .route("/ebd", axum::routing::post(receive).fallback(|| async {
            refusal(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "POST an EBDT package to /ebd".into())
        }))
        // The multipart reader stops here too.
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Intake { ix, slots })
}

async fn receive(axum::extract::State(intake): axum::extract::State<Intake>, req: axum::extract::Request) -> axum::response::Response {
    use axum::extract::{FromRequest, Multipart};
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    let ix = &intake.ix;
    let limit = ix.cfg.max_body_bytes();
    let too_large = || {
        ix.stats.refused.fetch_add(1, Ordering::Relaxed);
        refusal(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("an EBDT package here is at most {limit} bytes (with its multipart framing)"))
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large();
    }
    let Ok(_slot) = intake.slots.clone().try_acquire_owned() else {
        let mut res = refusal(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many packages are being received; try again shortly".into());
        res.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from(RETRY_AFTER_S));
        return res;
    };
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    // Sized from the declared length (already bounded); pages are only touched as bytes arrive.
    let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let read: Result<(), Cut> = async {
        if multipart {
            let mut mp = Multipart::from_request(req, &()).await.map_err(|e| Cut::Broken(format!("not a multipart upload: {}", e.body_text())))?;
            let cut = |e: axum::extract::multipart::MultipartError| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => Cut::TooLarge,
                _ => Cut::Broken(format!("reading the upload: {}", e.body_text())),
            };
            // The first part is the package, whatever its field name (as deployed peers send).
            let Some(mut field) = tokio::time::timeout(UPLOAD_IDLE, mp.next_field()).await.map_err(|_| Cut::Stalled)?.map_err(cut)? else {
                return Ok(());
            };
            while let Some(c) = tokio::time::timeout(UPLOAD_IDLE, field.chunk()).await.map_err(|_| Cut::Stalled)?.map_err(cut)? {
                append(&mut buf, &c, limit)?;
            }
            Ok(())
        } else {
            let mut body = req.into_body();
            loop {
                match tokio::time::timeout(UPLOAD_IDLE, body.frame()).await.map_err(|_| Cut::Stalled)? {
                    Some(Ok(f)) => {
                        if let Some(c) = f.data_ref() {
                            append(&mut buf, c, limit)?;
                        }
                    }
                    Some(Err(e)) => return Err(Cut::Broken(format!("reading the body: {e}"))),
                    None => return Ok(()),
                }
            }
        }
    }
    .await;
    match read {
        Ok(()) => {}
        Err(Cut::TooLarge) => return too_large(),
        Err(Cut::Stalled) => {
            return refusal(StatusCode::REQUEST_TIMEOUT, "timeout", format!("the upload paused for more than {} s", UPLOAD_IDLE.as_secs()));
        }
        Err(Cut::Broken(m)) => return refusal(StatusCode::BAD_REQUEST, "bad_request", m),
    }
    let (tar, code) = ix.receive(&buf).await;
    drop(buf);
    if tar.is_empty() {
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("ResultCode {code}; no response package could be built"));
    }
    ([(header::CONTENT_TYPE, "application/x-tar")], tar).into_response()
}
