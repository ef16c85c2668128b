//! The alert workflow: compose, edit, submit, approve, send back, cancel and update a message,
//! and what a principal may read of one. Every command asks `cuncun_domain::authz::decide`, writes
//! through the store in one transaction with its audit entry, and records a refusal in the audit
//! log too.

use crate::{App, Error, Result};
use cuncun_domain::authz::{MsgCommand, Principal, decide};
use cuncun_domain::eb::{self, Ebrid, MessageStatus, ResourceKind};
use cuncun_domain::RegionCode;
use cuncun_store::Actor;
use cuncun_store::eb::{DeliveryRow, DeliverySummary, Message, MessageMove, MessageStepRow, NewMessage, Reach};
use serde::Serialize;

/// A message must have at least this long left to be approved (else it would end before most
/// terminals had played it once).
pub const MIN_REMAINING_MS: i64 = 5 * 60_000;

/// What an author writes, as text fields so that errors name the field (page form and API).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ComposeInput {
    /// "emergency" (default) or "routine".
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub event_type: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub text: String,
    /// Region codes separated by commas, spaces or newlines.
    #[serde(default)]
    pub areas: String,
    #[serde(default)]
    pub terminals: String,
    /// Start, Beijing time "YYYY-MM-DDTHH:MM" (a datetime-local field); empty: on approval.
    #[serde(default)]
    pub start: String,
    #[serde(default)]
    pub valid_minutes: String,
    #[serde(default)]
    pub repeat: String,
    /// A JSON boolean, or a form checkbox (present only when ticked: "1", "on", "true").
    #[serde(default, deserialize_with = "checkbox")]
    pub drill: bool,
    /// EBMID of the message this one replaces once approved.
    #[serde(default)]
    pub updates: String,
}

fn checkbox<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Text(String),
    }
    Ok(match <B as serde::Deserialize>::deserialize(d)? {
        B::Bool(b) => b,
        B::Text(t) => matches!(t.trim(), "1" | "on" | "true" | "yes"),
    })
}

impl ComposeInput {
    /// A new warning's defaults for an author in `region`: their whole region, two hours,
    /// three plays, orange rainstorm (the commonest county warning).
    pub fn new_for(region: &RegionCode) -> ComposeInput {
        ComposeInput {
            priority: "emergency".into(),
            event_type: "11B03".into(),
            severity: "2".into(),
            areas: region.short().to_string(),
            valid_minutes: "120".into(),
            repeat: "3".into(),
            ..Default::default()
        }
    }

    /// The input a message was made from: to edit a draft, or (with `updates`) to write its
    /// update. The start is left to approval.
    pub fn of(m: &Message, updates: bool) -> ComposeInput {
        ComposeInput {
            priority: m.priority.clone(),
            event_type: m.event_type.clone(),
            severity: m.severity.to_string(),
            title: m.title.clone(),
            text: m.body.clone(),
            areas: m.areas.iter().map(|a| a.short()).collect::<Vec<_>>().join(","),
            terminals: String::new(),
            start: String::new(),
            valid_minutes: ((m.end_ms - m.start_ms) / 60_000).max(1).to_string(),
            repeat: m.repeat_count.to_string(),
            drill: m.drill,
            updates: if updates { m.ebmid.clone() } else { m.related_ebmid.clone().unwrap_or_default() },
        }
    }
}

/// A workflow action on an existing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Submit,
    Approve,
    SendBack { reason: String },
    Cancel { reason: String },
}

impl Action {
    /// From the page's or API's action name and reason field.
    pub fn parse(name: &str, reason: &str) -> Result<Action> {
        let reason = reason.trim().to_string();
        Ok(match name {
            "submit" => Action::Submit,
            "approve" => Action::Approve,
            "send_back" | "reject" => Action::SendBack { reason },
            "cancel" => Action::Cancel { reason },
            other => return Err(Error::NotFound(format!("action {other:?}: expected submit, approve, send_back or cancel"))),
        })
    }
    fn command(&self) -> MsgCommand {
        match self {
            Action::Submit => MsgCommand::Submit,
            Action::Approve => MsgCommand::Approve,
            Action::SendBack { .. } => MsgCommand::SendBack,
            Action::Cancel { .. } => MsgCommand::Cancel,
        }
    }
}

/// Everything the message page and `GET /api/v1/eb/messages/{id}` show, already cut to what the
/// principal may see.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub message: Message,
    pub reach: Reach,
    /// The whole delivery for the owning level; the reader's area otherwise.
    pub delivery: DeliverySummary,
    /// Targets without a receipt (the first `limit`), in the reader's area only below the owner.
    pub undelivered: Vec<DeliveryRow>,
    pub steps: Vec<MessageStepRow>,
    /// Actions the principal may take now: submit, approve, send_back, cancel, edit, update.
    pub actions: Vec<&'static str>,
    /// False when the reader sees the message only because it is aimed at their area.
    pub owner_view: bool,
}

fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', ' ', '，', '\n', '\r', '\t']).map(str::trim).filter(|s| !s.is_empty())
}

/// "YYYY-MM-DDTHH:MM" (or with a space, or seconds) in Beijing time, to UTC ms.
fn parse_beijing(s: &str) -> Option<i64> {
    let s = s.trim().replace(' ', "T");
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(&s, f).ok())
        .map(cuncun_domain::time::from_local)
}

/// Whether the principal writes messages at all (the compose button and form); each message is
/// still decided by the workflow's rules.
pub fn may_compose(p: &Principal) -> bool {
    matches!(p.role(), Some(cuncun_domain::Role::Admin | cuncun_domain::Role::Broadcaster | cuncun_domain::Role::DepartmentSender))
}

impl App {
    /// Records a refusal in the audit log (its own short transaction) and passes it on.
    async fn denied<T>(&self, p: &Principal, what: &str, entity_id: &str, e: Error) -> Result<T> {
        if let Error::Forbidden(why) = &e {
            let after = serde_json::json!({ "refused": why }).to_string();
            if let Err(err) = self.store.audit(&Actor(p.actor()), &format!("{what}.denied"), "eb_message", entity_id, "", &after).await {
                tracing::warn!(error = %err, "could not audit a refusal");
            }
        }
        Err(e)
    }

    /// `decide`, with a refusal audited.
    async fn check(&self, p: &Principal, cmd: MsgCommand, m: &Message) -> Result<Option<cuncun_domain::authz::Transition>> {
        match decide(p, cmd, &m.facts(), &self.settings) {
            Ok(t) => Ok(t),
            Err(d) => self.denied(p, &format!("message.{}", cmd.key()), &m.ebmid, d.into()).await,
        }
    }

    async fn load(&self, id: i64) -> Result<Message> {
        self.store.message(id).await?.ok_or_else(|| Error::NotFound(format!("message {id}")))
    }

    /// A message the principal may see (View), or Forbidden.
    pub async fn visible_message(&self, p: &Principal, id: i64) -> Result<Message> {
        let m = self.load(id).await?;
        self.check(p, MsgCommand::View, &m).await?;
        Ok(m)
    }

    /// Recent messages the principal may see, newest first.
    pub async fn messages(&self, p: &Principal, limit: i64) -> Result<Vec<Message>> {
        let all = self.store.messages_recent(limit).await?;
        Ok(all.into_iter().filter(|m| decide(p, MsgCommand::View, &m.facts(), &self.settings).is_ok()).collect())
    }

    /// Validates an author's input into a message (shared by compose and edit).
    async fn build(&self, p: &Principal, f: &ComposeInput) -> Result<NewMessage> {
        let routine = f.priority.trim() == "routine";
        let severity = if routine {
            0
        } else {
            eb::check_severity(f.severity.trim().parse::<i64>().unwrap_or(-1)).map_err(|e| Error::BadRequest(format!("severity: {e}")))?
        };
        let event_type = eb::check_event_type(&f.event_type).map_err(|e| Error::BadRequest(format!("event_type: {e}")))?;
        let title = f.title.trim();
        if title.is_empty() || title.chars().count() > 200 {
            return Err(Error::BadRequest("title: required, at most 200 characters".into()));
        }
        if f.text.trim().is_empty() || f.text.chars().count() > 5000 {
            return Err(Error::BadRequest("text: required, at most 5000 characters".into()));
        }
        let region = p.region().cloned().ok_or_else(|| Error::Forbidden("this principal may not compose messages".into()))?;
        let mut areas = Vec::new();
        for a in list(&f.areas).take(1000) {
            let code = RegionCode::parse(a).map_err(|e| Error::BadRequest(format!("areas: {e}")))?;
            // An area outside the author's region is refused by the rules (403), not here.
            if region.contains(&code) && self.store.region(&code).await?.is_none() {
                return Err(Error::BadRequest(format!("areas: region {code} is not loaded")));
            }
            areas.push(code);
        }
        let mut terminals = Vec::new();
        for t in list(&f.terminals).take(10_000) {
            let e = Ebrid::parse(t).map_err(|e| Error::BadRequest(format!("terminals: {e}")))?;
            let r = self
                .store
                .resource_by_ebrid(e.as_str())
                .await?
                .ok_or_else(|| Error::BadRequest(format!("terminals: {e} is not registered")))?;
            if !region.contains(&r.region_code) {
                return Err(Error::Forbidden(format!("terminals: {e} is outside your region")));
            }
            terminals.push(e);
        }
        if areas.is_empty() && terminals.is_empty() {
            return Err(Error::BadRequest("areas: name at least one region or terminal".into()));
        }
        let minutes: i64 = f.valid_minutes.trim().parse().map_err(|_| Error::BadRequest("valid_minutes: a whole number".into()))?;
        if !(1..=7 * 24 * 60).contains(&minutes) {
            return Err(Error::BadRequest("valid_minutes: 1 to 10080 (7 days)".into()));
        }
        let repeat: i64 = f.repeat.trim().parse().map_err(|_| Error::BadRequest("repeat: a whole number".into()))?;
        if !(1..=20).contains(&repeat) {
            return Err(Error::BadRequest("repeat: 1 to 20".into()));
        }
        let now = cuncun_store::now_ms();
        let (start_ms, start_on_approval) = match f.start.trim() {
            "" => (now, true),
            s => {
                let t = parse_beijing(s).ok_or_else(|| Error::BadRequest(format!("start: {s:?} is not a time (YYYY-MM-DD HH:MM, Beijing time)")))?;
                (t, false)
            }
        };
        let end_ms = start_ms + minutes * 60_000;
        if !start_on_approval && end_ms <= now + MIN_REMAINING_MS {
            return Err(Error::BadRequest("start: with this validity the message would end before it could be approved; choose a later start or a longer validity".into()));
        }
        let related = match f.updates.trim() {
            "" => None,
            id => {
                let orig = self.store.message_by_ebmid(id).await?.ok_or_else(|| Error::BadRequest(format!("updates: no message {id}")))?;
                // Writing an update needs the right to cancel the original.
                self.check(p, MsgCommand::Update { drill: f.drill }, &orig).await?;
                Some(orig.ebmid)
            }
        };
        let platform_region = self.platform_region.clone().unwrap_or_else(|| region.clone());
        let platform = Ebrid::generate(&platform_region, ResourceKind::Platform, 1).map_err(|e| Error::Internal(e.to_string()))?;
        let (audio_sha256, audio_size) = match &self.media {
            Some(media) => media.speak(&format!("{}。{}", title, f.text.trim())).await.unzip(),
            None => (None, None),
        };
        Ok(NewMessage {
            platform,
            msg_type: "broadcast".into(),
            related_ebmid: related,
            priority: if routine { "routine".into() } else { "emergency".into() },
            drill: f.drill,
            event_type,
            severity,
            title: title.into(),
            body: f.text.trim().into(),
            lang: "zho".into(),
            audio_sha256,
            audio_size,
            areas,
            terminals,
            start_ms,
            end_ms,
            repeat_count: repeat,
            volume: None,
            source: "local".into(),
            owner_region: region,
            author_id: p.user_id(),
            start_on_approval,
            from_peer: None,
        })
    }

    /// Compose: a new draft.
    pub async fn compose(&self, p: &Principal, f: &ComposeInput) -> Result<Message> {
        let nm = match self.build(p, f).await {
            Ok(nm) => nm,
            Err(e) => return self.denied(p, "message.compose", "", e).await,
        };
        if let Err(d) = decide(p, MsgCommand::Compose, &nm.facts(), &self.settings) {
            return self.denied(p, "message.compose", "", d.into()).await;
        }
        Ok(self.store.create_message(&nm, &Actor(p.actor())).await?)
    }

    /// Edit: replace a draft's content (its author, while it is a draft).
    pub async fn edit(&self, p: &Principal, id: i64, f: &ComposeInput) -> Result<Message> {
        let m = self.load(id).await?;
        self.check(p, MsgCommand::Edit, &m).await?;
        let mut nm = self.build(p, f).await?;
        nm.author_id = m.author_id;
        nm.owner_region = m.owner_region.clone();
        if let Err(d) = decide(p, MsgCommand::Edit, &nm.facts(), &self.settings) {
            return self.denied(p, "message.edit", &m.ebmid, d.into()).await;
        }
        Ok(self.store.edit_draft(id, &nm, &Actor(p.actor())).await?)
    }

    /// A draft's audio replaced by a recording (bytes already checked and stored by the media
    /// store; see [`crate::Media`]).
    pub async fn set_audio(&self, p: &Principal, id: i64, bytes: Vec<u8>) -> Result<Message> {
        let m = self.load(id).await?;
        self.check(p, MsgCommand::Edit, &m).await?;
        let media = self.media.as_ref().ok_or_else(|| Error::BadRequest("audio storage is not configured".into()))?;
        let (sha, size) = media.store_audio(bytes).await?;
        Ok(self.store.set_message_audio(id, &sha, size, &Actor(p.actor())).await?)
    }

    /// Submit, approve, send back or cancel. An approved update cancels its original in the same
    /// transaction; approval fixes the validity (from now, when it starts on approval).
    pub async fn act(&self, p: &Principal, id: i64, action: Action) -> Result<Message> {
        let m = self.load(id).await?;
        let Some(t) = self.check(p, action.command(), &m).await? else {
            return Err(Error::Internal("the workflow made no step".into()));
        };
        let mut mv = MessageMove::new(m.id, t);
        match &action {
            Action::SendBack { reason } | Action::Cancel { reason } => {
                if reason.is_empty() {
                    return Err(Error::BadRequest("reason: say why (the author sees it)".into()));
                }
                if reason.chars().count() > 500 {
                    return Err(Error::BadRequest("reason: at most 500 characters".into()));
                }
                mv.reason = reason.clone();
            }
            Action::Submit => {}
            Action::Approve => {
                let now = cuncun_store::now_ms();
                mv.approver_id = p.user_id();
                mv.validity = Some(if m.start_on_approval {
                    (now, now + (m.end_ms - m.start_ms).max(60_000))
                } else {
                    if m.end_ms - now < MIN_REMAINING_MS {
                        return Err(Error::Conflict(format!(
                            "message {} ends {} minute(s) from now: send it back so that its author sets a new start or validity",
                            m.ebmid,
                            ((m.end_ms - now) / 60_000).max(0)
                        )));
                    }
                    (m.start_ms, m.end_ms)
                });
            }
        }
        let mut moves = vec![mv];
        if action == Action::Approve {
            if let Some(orig) = match &m.related_ebmid {
                Some(e) => self.store.message_by_ebmid(e).await?,
                None => None,
            } {
                if !orig.status.is_final() {
                    // The approver needs the right to cancel the original too.
                    if let Some(ts) = self.check(p, MsgCommand::Supersede { drill: m.drill }, &orig).await? {
                        let mut mv = MessageMove::new(orig.id, ts);
                        mv.reason = format!("replaced by {}", m.ebmid);
                        moves.push(mv);
                    }
                }
            }
        }
        let mut out = self.store.transition_messages(&moves, &Actor(p.actor())).await?;
        self.wake();
        if out.is_empty() {
            return Err(Error::Internal("no message written".into()));
        }
        Ok(out.swap_remove(0))
    }

    /// A parent platform's message arrives: it becomes a local message once per EBMID, submitted,
    /// or approved at once when the platform dispatches its severity automatically. Returns the
    /// message and whether it is new.
    pub async fn receive(&self, p: &Principal, ebmid: &str, nm: &NewMessage) -> Result<(Message, bool)> {
        let Principal::Peer { ebrid, .. } = p else {
            return self.denied(p, "message.receive", ebmid, Error::Forbidden("only a parent platform sends messages through the interchange".into())).await;
        };
        let arrive = match decide(p, MsgCommand::Receive, &nm.facts(), &self.settings) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(Error::Internal("receive made no step".into())),
            Err(d) => return self.denied(p, "message.receive", ebmid, d.into()).await,
        };
        // A parent's update replaces what it updates: when it plays at once, the original is
        // cancelled in the same transaction; otherwise when a local reviewer approves it.
        let mut also = Vec::new();
        if let Some(rel) = &nm.related_ebmid {
            let orig = self.store.message_by_ebmid(rel).await?.ok_or_else(|| Error::BadRequest(format!("related: no message {rel}")))?;
            let t = self.check(p, MsgCommand::Update { drill: nm.drill }, &orig).await?;
            if let (Some(t), MessageStatus::Approved) = (t, arrive.to()) {
                let mut mv = MessageMove::new(orig.id, t);
                mv.reason = format!("replaced by the parent platform's {ebmid}");
                also.push(mv);
            }
        }
        let (m, new) = self.store.receive_ebm(ebmid, ebrid, nm, arrive, &also, &Actor(p.actor())).await?;
        if new {
            self.wake();
        }
        Ok((m, new))
    }

    /// The actions the principal may take on `m` now (the buttons the page shows).
    pub fn actions(&self, p: &Principal, m: &Message) -> Vec<&'static str> {
        let f = m.facts();
        let mut v: Vec<&'static str> = [
            (MsgCommand::Edit, "edit"),
            (MsgCommand::Submit, "submit"),
            (MsgCommand::Approve, "approve"),
            (MsgCommand::SendBack, "send_back"),
            (MsgCommand::Cancel, "cancel"),
        ]
        .into_iter()
        .filter(|(c, _)| decide(p, *c, &f, &self.settings).is_ok())
        .map(|(_, k)| k)
        .collect();
        if matches!(m.status, MessageStatus::Approved | MessageStatus::Dispatching)
            && decide(p, MsgCommand::Update { drill: m.drill }, &f, &self.settings).is_ok()
        {
            v.push("update");
        }
        v
    }

    /// The message page: the message with what the principal may see of its delivery.
    pub async fn message_view(&self, p: &Principal, id: i64, limit: i64) -> Result<MessageView> {
        let m = self.visible_message(p, id).await?;
        let owner_view = decide(p, MsgCommand::ExportCap, &m.facts(), &self.settings).is_ok();
        let reach = self.store.reach(&m.areas, &[]).await?;
        let (delivery, undelivered) = if owner_view {
            (self.store.delivery_summary(m.id).await?, self.store.deliveries(m.id, true, limit).await?)
        } else {
            self.area_delivery(p, m.id, limit).await?
        };
        let steps = self.store.message_steps(m.id).await?;
        let actions = self.actions(p, &m);
        Ok(MessageView { message: m, reach, delivery, undelivered, steps, actions, owner_view })
    }

    /// Delivery cut to the reader's region (someone who sees a higher level's message because it
    /// is aimed at their area).
    async fn area_delivery(&self, p: &Principal, id: i64, limit: i64) -> Result<(DeliverySummary, Vec<DeliveryRow>)> {
        let Some(region) = p.region() else { return Ok(Default::default()) };
        let all = self.store.deliveries(id, false, 1_000_000).await?;
        let mine: Vec<DeliveryRow> =
            all.into_iter().filter(|d| RegionCode::parse(&d.region_code).is_ok_and(|c| region.contains(&c))).collect();
        let mut s = DeliverySummary { targets: mine.len() as i64, ..Default::default() };
        for d in &mine {
            match d.stage {
                0 => {
                    s.pending += 1;
                    if !d.online {
                        s.pending_offline += 1;
                    }
                }
                4 => s.failed += 1,
                _ => {}
            }
            s.received += (d.received_ms.is_some()) as i64;
            s.started += (d.started_ms.is_some()) as i64;
            s.finished += (d.finished_ms.is_some()) as i64;
        }
        let undelivered = mine.into_iter().filter(|d| d.stage == 0).take(limit.max(0) as usize).collect();
        Ok((s, undelivered))
    }

    /// The live counters of a message the principal may see (the SSE stream of its page).
    pub async fn delivery(&self, p: &Principal, m: &Message) -> Result<DeliverySummary> {
        if decide(p, MsgCommand::ExportCap, &m.facts(), &self.settings).is_ok() {
            Ok(self.store.delivery_summary(m.id).await?)
        } else {
            Ok(self.area_delivery(p, m.id, 0).await?.0)
        }
    }

    /// Targets not yet received, as the undelivered export shows them (cut to the reader's area
    /// below the owning level). Audited.
    pub async fn undelivered(&self, p: &Principal, id: i64, limit: i64) -> Result<(Message, Vec<DeliveryRow>)> {
        let m = self.visible_message(p, id).await?;
        let rows = if decide(p, MsgCommand::ExportCap, &m.facts(), &self.settings).is_ok() {
            self.store.deliveries(m.id, true, limit).await?
        } else {
            self.area_delivery(p, m.id, limit).await?.1
        };
        self.store.audit(&Actor(p.actor()), "message.export_undelivered", "eb_message", &m.ebmid, "", "").await?;
        Ok((m, rows))
    }

    /// What a reader of a message may export as CAP (its owning level only).
    pub async fn exportable_message(&self, p: &Principal, id: i64) -> Result<Message> {
        let m = self.visible_message(p, id).await?;
        self.check(p, MsgCommand::ExportCap, &m).await?;
        Ok(m)
    }
}
