//! The service network: households, stewards, outlets, repair tickets and care visits.
//!
//! Who may do what: `can_read_service` to read, `can_operate_service` (the desk) to change, a
//! steward only in their villages and only the field work on tickets given to them; names and
//! phones are masked unless `sees_personal_data` (all in `cuncun_domain::service`). Commands
//! return records already cut and masked for the principal, so pages and API render them as they
//! are. Residents without an account act on the public pages through the two resident commands:
//! a village's repair form, and the confirmation link of their ticket.

use crate::{App, Error, Result, access};
use cuncun_domain::authz::Principal;
use cuncun_domain::model::{OutletKind, Region};
use cuncun_domain::records::Actor;
use cuncun_domain::records::service::*;
use cuncun_domain::service::*;
use cuncun_domain::{RegionCode, RegionLevel, Role, time};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// Largest photo accepted from a steward's phone.
pub const MAX_PHOTO: usize = 6 * 1024 * 1024;

/// What the principal may see and do in the service network.
#[derive(Debug, Clone)]
pub struct ServiceAccess {
    /// The principal's steward record (steward role only).
    pub steward: Option<Steward>,
    pub operator: bool,
    pub unmasked: bool,
}

impl ServiceAccess {
    /// A steward sees tickets of their villages and those assigned to them.
    pub fn sees_ticket(&self, t: &Ticket) -> bool {
        match &self.steward {
            Some(s) => s.villages.contains(&t.village_code) || t.steward_id == Some(s.id),
            None => true,
        }
    }
    pub fn sees_village(&self, v: &RegionCode) -> bool {
        self.steward.as_ref().is_none_or(|s| s.villages.contains(v))
    }
    pub fn name(&self, s: &str) -> String {
        if self.unmasked { s.to_string() } else { mask_name(s) }
    }
    pub fn phone(&self, s: &str) -> String {
        if self.unmasked { s.to_string() } else { mask_phone(s) }
    }
    /// Who may apply `action`: the desk for everything; the assigned steward for the field work.
    pub fn may(&self, t: &Ticket, action: &TicketAction) -> bool {
        if self.operator {
            return true;
        }
        self.assigned(t) && matches!(action, TicketAction::Accept | TicketAction::OnSite | TicketAction::Resolve { .. })
    }
    /// The ticket is given to the principal (a steward).
    pub fn assigned(&self, t: &Ticket) -> bool {
        self.steward.as_ref().is_some_and(|s| t.steward_id == Some(s.id))
    }
    fn mask_ticket(&self, mut t: Ticket) -> Ticket {
        t.reporter_name = self.name(&t.reporter_name);
        t.reporter_phone = self.phone(&t.reporter_phone);
        t
    }
    fn mask_household(&self, mut h: Household) -> Household {
        h.rec.head_name = self.name(&h.rec.head_name);
        h.rec.phone = self.phone(&h.rec.phone);
        h
    }
}

/// A ticket as listed: reporter masked for the principal, with its steward's name.
#[derive(Debug, Clone)]
pub struct TicketRow {
    pub ticket: Ticket,
    /// "" when none is assigned.
    pub steward: String,
}

#[derive(Debug, Clone)]
pub struct TicketList {
    pub rows: Vec<TicketRow>,
    pub operator: bool,
    pub masked: bool,
}

/// One ticket with its history, for the ticket page and `GET /service/tickets/{id}`.
#[derive(Debug, Clone)]
pub struct TicketDetail {
    pub row: TicketRow,
    pub village: String,
    pub events: Vec<TicketEvent>,
    pub photos: Vec<i64>,
    /// Stewards the desk may assign it to (empty for others).
    pub stewards: Vec<Steward>,
    pub operator: bool,
    /// The ticket is given to the principal.
    pub mine: bool,
}

/// The steward's phone view: their open tickets (most urgent first) and, for desk users heading
/// an outlet, open tickets escalated to them.
#[derive(Debug, Clone)]
pub struct MyTickets {
    pub rows: Vec<TicketRow>,
    pub escalated: Vec<TicketRow>,
    pub steward: Option<Steward>,
}

/// A ticket list request (page query string and API query).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct TicketQuery {
    /// Statuses separated by commas; "open" for every open one.
    pub status: String,
    pub category: String,
    pub kind: String,
    pub overdue: String,
    /// Default: the principal's region.
    pub region: String,
    /// Beijing dates YYYY-MM-DD; `to` is exclusive.
    pub from: String,
    pub to: String,
    pub page: Option<i64>,
}

/// What the desk records for a phone call or a walk-in (form and API).
#[derive(Debug, Deserialize)]
pub struct IntakeInput {
    pub village_code: String,
    #[serde(default)]
    pub kind: String,
    /// phone (default) or walk_in.
    #[serde(default)]
    pub source: String,
    pub category: String,
    #[serde(default)]
    pub reporter_name: String,
    #[serde(default)]
    pub reporter_phone: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub description: String,
}

/// What a resident writes on their village's repair page.
#[derive(Debug, Deserialize)]
pub struct FaultReport {
    pub category: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: String,
}

/// The published service information of a village, for its public repair page.
#[derive(Debug, Clone)]
pub struct PublicVillage {
    pub village: Region,
    pub township: String,
    /// The village's stewards: (name, phone).
    pub stewards: Vec<(String, String)>,
    pub outlet: Option<Outlet>,
}

/// A ticket as its reporter sees it through the confirmation link.
#[derive(Debug, Clone)]
pub struct ResidentTicket {
    pub ticket: Ticket,
    pub steward: String,
}

/// Special-care households and their visits in a year, for the visits page.
#[derive(Debug, Clone)]
pub struct VisitPlan {
    pub year: i64,
    pub rows: Vec<VisitDue>,
}

#[derive(Debug, Clone)]
pub struct VisitDue {
    /// Masked for the principal.
    pub household: Household,
    pub done: i64,
    pub left: i64,
}

#[derive(Debug, Clone)]
pub struct OutletList {
    /// Each outlet with its "nine ones" checklist (township outlets only).
    pub rows: Vec<(Outlet, Vec<OutletCheck>)>,
    pub operator: bool,
}

/// The desk's edit of an outlet's published information.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct OutletInput {
    pub hotline: String,
    pub service_scope: String,
    pub process: String,
    /// A user id, "" for none.
    pub head_user_id: String,
}

#[derive(Debug, Clone)]
pub struct HouseholdList {
    /// Masked for the principal.
    pub rows: Vec<Household>,
    pub operator: bool,
    pub masked: bool,
}

#[derive(Debug, Clone)]
pub struct StewardList {
    /// Each steward with the username of their account ("" for none).
    pub rows: Vec<(Steward, String)>,
    pub operator: bool,
}

/// An indicator request (page query string and API query).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct PeriodQuery {
    pub region: String,
    pub from: String,
    pub to: String,
}

/// The scope, period and year of an indicator request; default: this month of the principal's
/// region.
#[derive(Debug, Clone)]
pub struct Period {
    pub scope: RegionCode,
    pub from_ms: i64,
    pub to_ms: i64,
    pub year: i64,
    pub from: String,
    pub to: String,
}

/// Indicators of a scope and of each of its child regions.
#[derive(Debug, Clone)]
pub struct ServiceIndicators {
    pub scope_name: String,
    pub total: Indicators,
    /// (code, name, indicators) of each child region.
    pub children: Vec<(RegionCode, String, Indicators)>,
}

/// A steward row read from an import sheet.
#[derive(Debug, Clone)]
pub struct StewardImport {
    pub name: String,
    pub phone: String,
    pub township: RegionCode,
    pub villages: Vec<RegionCode>,
    /// The account to link, "" for none.
    pub username: String,
}

/// A problem with one row of an import, found against the registry and the principal's scope.
#[derive(Debug, Clone)]
pub struct RowProblem {
    pub row: u32,
    pub column: &'static str,
    pub zh: String,
    pub en: String,
}

/// What an import command did: the rows it refused and how many it imported.
#[derive(Debug, Clone, Default)]
pub struct ImportChecked {
    pub problems: Vec<RowProblem>,
    pub imported: usize,
}

/// The action named in a path or API body, with its text fields.
pub fn ticket_action(action: &str, steward_id: &str, note: &str, rating: &str) -> Result<TicketAction> {
    Ok(match action {
        "assign" => TicketAction::Assign {
            steward_id: steward_id.trim().parse().map_err(|_| Error::BadRequest(format!("steward_id: {steward_id:?} is not a steward id")))?,
        },
        "accept" => TicketAction::Accept,
        "on_site" => TicketAction::OnSite,
        "resolve" => TicketAction::Resolve { note: note.into() },
        "confirm" => TicketAction::Confirm { rating: rating_of(rating)? },
        "reopen" => TicketAction::Reopen { reason: note.into() },
        "cancel" => TicketAction::Cancel { reason: note.into() },
        other => return Err(Error::NotFound(format!("no ticket action {other:?}"))),
    })
}

fn rating_of(rating: &str) -> Result<u8> {
    rating.trim().parse().map_err(|_| Error::BadRequest(format!("rating: {rating:?} is not 1-5")))
}

/// JPEG, PNG or WebP by their first bytes.
pub fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if b.len() > 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Beijing date YYYY-MM-DD -> UTC ms of its start.
pub fn day_start(s: &str, field: &str) -> Result<Option<i64>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let (start, _) = time::day_bounds(s).map_err(|e| Error::BadRequest(format!("{field}: {e}")))?;
    Ok(Some(start))
}

/// A region field: the principal's region when empty.
fn scope_of(p: &Principal, region: &str) -> Result<RegionCode> {
    if region.trim().is_empty() {
        Ok(access::region(p)?.clone())
    } else {
        RegionCode::parse(region).map_err(|e| Error::BadRequest(format!("region: {e}")))
    }
}

const OPEN: [TicketStatus; 4] = [TicketStatus::New, TicketStatus::Assigned, TicketStatus::OnSite, TicketStatus::Reopened];

fn new_ticket_from(village: &str, kind: &str, source: TicketSource, category: &str, name: &str, phone: &str, address: &str, description: &str) -> Result<NewTicket> {
    Ok(NewTicket {
        kind: if kind.trim().is_empty() { TicketKind::Repair } else { TicketKind::parse(kind).ok_or_else(|| Error::BadRequest(format!("kind: {kind:?} is not repair or complaint")))? },
        source,
        category: TicketCategory::parse(category).ok_or_else(|| Error::BadRequest(format!("category: {category:?} is not a category")))?,
        village_code: RegionCode::parse(village).map_err(|e| Error::BadRequest(format!("village_code: {e}")))?,
        household_id: None,
        reporter_name: name.trim().into(),
        reporter_phone: normalise_phone(phone).unwrap_or_else(|| phone.trim().to_string()),
        address: address.trim().into(),
        description: description.trim().into(),
        terminal_ebrid: None,
        dedupe_key: None,
        confirm_token_hash: None,
        requested_at_ms: None,
    })
}

impl IntakeInput {
    fn to_new_ticket(&self) -> Result<NewTicket> {
        let source = match self.source.as_str() {
            "walk_in" => TicketSource::WalkIn,
            "phone" | "" => TicketSource::Phone,
            other => return Err(Error::BadRequest(format!("source: {other:?} must be phone or walk_in"))),
        };
        new_ticket_from(&self.village_code, &self.kind, source, &self.category, &self.reporter_name, &self.reporter_phone, &self.address, &self.description)
    }
}

fn require_desk(p: &Principal, what: &str) -> Result<()> {
    if p.role().is_some_and(can_operate_service) { Ok(()) } else { Err(Error::Forbidden(what.into())) }
}

impl App {
    /// What the principal may see and do in the service network; refuses roles without access
    /// and steward accounts not linked to a steward record.
    pub async fn service_access(&self, p: &Principal) -> Result<ServiceAccess> {
        let role = p.role().filter(|r| can_read_service(*r)).ok_or_else(|| Error::Forbidden("your role has no access to the service network".into()))?;
        let steward = match (role, p.user_id()) {
            (Role::Steward, Some(id)) => Some(
                self.store
                    .steward_of_user(id)
                    .await?
                    .ok_or_else(|| Error::Forbidden("your account is not linked to a steward record; ask an administrator".into()))?,
            ),
            _ => None,
        };
        Ok(ServiceAccess { steward, operator: can_operate_service(role), unmasked: sees_personal_data(role) })
    }

    /// A ticket the principal may see: in their region and, for a steward, in their villages.
    async fn visible_ticket(&self, p: &Principal, a: &ServiceAccess, id: i64) -> Result<Ticket> {
        let t = self.store.ticket(id).await?.ok_or_else(|| Error::NotFound(format!("ticket {id}")))?;
        access::in_scope(p, &t.village_code)?;
        if !a.sees_ticket(&t) {
            return Err(Error::Forbidden(format!("ticket {id} is not in your villages")));
        }
        Ok(t)
    }

    /// Masks tickets and names their stewards (each steward read once).
    async fn ticket_rows(&self, a: &ServiceAccess, tickets: Vec<Ticket>) -> Result<Vec<TicketRow>> {
        let mut names: HashMap<i64, String> = HashMap::new();
        let mut out = Vec::with_capacity(tickets.len());
        for t in tickets {
            let steward = match t.steward_id {
                Some(id) => match names.get(&id) {
                    Some(n) => n.clone(),
                    None => {
                        let n = self.store.steward(id).await?.map(|s| s.name).unwrap_or_default();
                        names.insert(id, n.clone());
                        n
                    }
                },
                None => String::new(),
            };
            out.push(TicketRow { ticket: a.mask_ticket(t), steward });
        }
        Ok(out)
    }

    /// The filter of a list request, checked against the principal's scope.
    fn ticket_filter(&self, p: &Principal, a: &ServiceAccess, q: &TicketQuery) -> Result<TicketFilter> {
        let scope = scope_of(p, &q.region)?;
        access::in_scope(p, &scope)?;
        let mut f = TicketFilter::scope(&scope);
        for s in q.status.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if s == "open" {
                f.statuses.extend(OPEN);
            } else {
                f.statuses.push(TicketStatus::parse(s).ok_or_else(|| Error::BadRequest(format!("status: {s:?} is not a ticket status")))?);
            }
        }
        if !q.category.trim().is_empty() {
            f.category = Some(TicketCategory::parse(&q.category).ok_or_else(|| Error::BadRequest(format!("category: {:?} is not a category", q.category)))?);
        }
        if !q.kind.trim().is_empty() {
            f.kind = Some(TicketKind::parse(&q.kind).ok_or_else(|| Error::BadRequest(format!("kind: {:?} is not repair or complaint", q.kind)))?);
        }
        f.overdue = matches!(q.overdue.as_str(), "1" | "true" | "on");
        f.from_ms = day_start(&q.from, "from")?;
        f.to_ms = day_start(&q.to, "to")?;
        if let Some(s) = &a.steward {
            f.villages = Some(s.villages.iter().filter(|v| scope.contains(v)).cloned().collect());
        }
        Ok(f)
    }

    /// Tickets matching the query that the principal may see, newest first.
    pub async fn tickets(&self, p: &Principal, q: &TicketQuery, limit: i64, offset: i64) -> Result<TicketList> {
        let a = self.service_access(p).await?;
        let f = self.ticket_filter(p, &a, q)?;
        let rows = self.store.tickets(&f, limit, offset).await?;
        Ok(TicketList { rows: self.ticket_rows(&a, rows).await?, operator: a.operator, masked: !a.unmasked })
    }

    /// One ticket with its history and photos; for the desk, the stewards it may go to.
    pub async fn ticket(&self, p: &Principal, id: i64) -> Result<TicketDetail> {
        let a = self.service_access(p).await?;
        let t = self.visible_ticket(p, &a, id).await?;
        let village = self.store.region(&t.village_code).await?.map(|r| r.name).unwrap_or_default();
        let events = self.store.ticket_events(id).await?;
        let photos = self.store.ticket_photo_ids(id).await?;
        let stewards = if a.operator {
            let township = t.village_code.parent().unwrap_or_else(|| t.village_code.clone());
            let mut s = self.store.stewards_in(&township).await?;
            s.retain(|s| access::sees(p, &s.region_code));
            s
        } else {
            Vec::new()
        };
        let mine = a.assigned(&t);
        let row = self.ticket_rows(&a, vec![t]).await?.remove(0);
        Ok(TicketDetail { row, village, events, photos, stewards, operator: a.operator, mine })
    }

    /// Applies an action to a ticket (the desk: any; the assigned steward: accept, on site,
    /// resolve); returns the ticket afterwards.
    pub async fn act_on_ticket(&self, p: &Principal, id: i64, action: &TicketAction) -> Result<Ticket> {
        let a = self.service_access(p).await?;
        let t = self.visible_ticket(p, &a, id).await?;
        if !a.may(&t, action) {
            return Err(Error::Forbidden(format!("your role may not {} this ticket", action.key())));
        }
        if let TicketAction::Assign { steward_id } = action {
            let s = self.store.steward(*steward_id).await?.ok_or_else(|| Error::BadRequest(format!("steward {steward_id} does not exist")))?;
            access::in_scope(p, &s.region_code)?;
        }
        Ok(self.store.transition_ticket(id, action, &access::actor(p), time::now_ms()).await?)
    }

    /// Refuses unless the principal may register tickets (for the intake form).
    pub async fn ticket_intake(&self, p: &Principal) -> Result<()> {
        if !self.service_access(p).await?.operator {
            return Err(Error::Forbidden("only the service desk may register tickets".into()));
        }
        Ok(())
    }

    /// Registers a ticket for the desk (phone or walk-in) inside its region, optionally for a
    /// registered household of the same village.
    pub async fn register_ticket(&self, p: &Principal, input: &IntakeInput, household_id: Option<i64>) -> Result<TicketCreated> {
        let mut t = input.to_new_ticket()?;
        require_desk(p, "only the service desk may register tickets")?;
        access::in_scope(p, &t.village_code)?;
        if let Some(h) = household_id {
            let hh = self.store.household(h).await?.ok_or_else(|| Error::BadRequest(format!("household_id: household {h} does not exist")))?;
            if hh.rec.village_code != t.village_code {
                return Err(Error::BadRequest(format!("household_id: household {h} is not in village {}", t.village_code)));
            }
            t.household_id = Some(h);
        }
        self.validate_new_ticket(&t).await?;
        Ok(self.store.create_ticket(&t, &access::actor(p)).await?)
    }

    async fn validate_new_ticket(&self, t: &NewTicket) -> Result<()> {
        if t.village_code.level() != RegionLevel::Village {
            return Err(Error::BadRequest("village_code: give the 12-digit code of a village".into()));
        }
        self.store.region(&t.village_code).await?.ok_or_else(|| Error::BadRequest(format!("village_code: region {} is not loaded", t.village_code)))?;
        if t.description.trim().is_empty() || t.description.chars().count() > 1000 {
            return Err(Error::BadRequest("description: say what is wrong (1-1000 characters)".into()));
        }
        if t.source != TicketSource::Terminal && normalise_phone(&t.reporter_phone).is_none() {
            return Err(Error::BadRequest(format!("reporter_phone: {:?} is not a mobile (11 digits) or landline number with area code", t.reporter_phone)));
        }
        if t.reporter_name.chars().count() > 50 || t.address.chars().count() > 200 {
            return Err(Error::BadRequest("reporter_name or address is too long".into()));
        }
        Ok(())
    }

    /// Stores a photo of a ticket, for the assigned steward or the desk; returns its id.
    pub async fn add_ticket_photo(&self, p: &Principal, id: i64, bytes: &[u8]) -> Result<i64> {
        let a = self.service_access(p).await?;
        let t = self.visible_ticket(p, &a, id).await?;
        if !a.may(&t, &TicketAction::OnSite) && !a.operator {
            return Err(Error::Forbidden("only the assigned steward or the desk may add photos".into()));
        }
        if bytes.is_empty() || bytes.len() > MAX_PHOTO {
            return Err(Error::BadRequest(format!("photo: must be 1 byte to {} MB", MAX_PHOTO / 1024 / 1024)));
        }
        let ct = sniff_image(bytes).ok_or_else(|| Error::BadRequest("photo: not a JPEG, PNG or WebP image".into()))?;
        Ok(self.store.add_ticket_photo(id, ct, bytes, &access::actor(p)).await?)
    }

    /// A photo of a ticket the principal may see: (content type, bytes).
    pub async fn ticket_photo(&self, p: &Principal, photo_id: i64) -> Result<(String, Vec<u8>)> {
        let (ticket_id, ct, bytes) = self.store.ticket_photo(photo_id).await?.ok_or_else(|| Error::NotFound(format!("photo {photo_id}")))?;
        let a = self.service_access(p).await?;
        self.visible_ticket(p, &a, ticket_id).await?;
        Ok((ct, bytes))
    }

    /// The steward's open tickets, and open tickets escalated to the principal (desk users).
    pub async fn my_tickets(&self, p: &Principal) -> Result<MyTickets> {
        let a = self.service_access(p).await?;
        let mut f = TicketFilter::scope(access::region(p)?);
        f.statuses = OPEN.to_vec();
        let rows = match &a.steward {
            Some(s) => {
                f.steward_id = Some(s.id);
                self.store.tickets(&f, 200, 0).await?
            }
            None => Vec::new(),
        };
        // For desk users: open tickets escalated to them (they head an outlet).
        let escalated = if a.operator {
            let mut all = self.store.tickets(&f, 500, 0).await?;
            all.retain(|t| t.escalated_to.is_some() && t.escalated_to == p.user_id());
            all
        } else {
            Vec::new()
        };
        let mut rows = self.ticket_rows(&a, rows).await?;
        // Most urgent first.
        rows.sort_by_key(|r| r.ticket.deadline_ms);
        let escalated = self.ticket_rows(&a, escalated).await?;
        Ok(MyTickets { rows, escalated, steward: a.steward })
    }

    /// Special-care households due for visits in `year` (default: this year): a steward's
    /// villages, or the principal's region.
    pub async fn visit_plan(&self, p: &Principal, year: Option<i64>) -> Result<VisitPlan> {
        let a = self.service_access(p).await?;
        let year = year.unwrap_or_else(|| time::year_of(time::now_ms()));
        let scopes: Vec<RegionCode> = match &a.steward {
            Some(s) => s.villages.clone(),
            None => vec![access::region(p)?.clone()],
        };
        let mut rows = Vec::new();
        for scope in scopes {
            for r in self.store.visit_plan(&scope, year, 500, 0).await? {
                rows.push(VisitDue { left: (VISITS_PER_YEAR - r.done).max(0), household: a.mask_household(r.household), done: r.done });
            }
        }
        Ok(VisitPlan { year, rows })
    }

    /// Records a visit to a household, by its steward or the desk.
    pub async fn record_visit(&self, p: &Principal, household_id: i64, note: &str) -> Result<CareVisit> {
        let a = self.service_access(p).await?;
        let h = self.store.household(household_id).await?.ok_or_else(|| Error::NotFound(format!("household {household_id}")))?;
        access::in_scope(p, &h.rec.village_code)?;
        if !(a.operator || a.steward.as_ref().is_some_and(|s| s.villages.contains(&h.rec.village_code))) {
            return Err(Error::Forbidden("only the household's steward or the desk may record visits".into()));
        }
        if note.trim().is_empty() {
            return Err(Error::BadRequest("note: say what was done on the visit".into()));
        }
        let sid = a.steward.as_ref().map(|s| s.id);
        Ok(self.store.record_visit(household_id, sid, time::now_ms(), note, &access::actor(p)).await?)
    }

    /// The outlets of the principal's region, township outlets with their checklist.
    pub async fn outlets(&self, p: &Principal) -> Result<OutletList> {
        let a = self.service_access(p).await?;
        let mut rows = Vec::new();
        for o in self.store.outlets_in(access::region(p)?).await? {
            let checks = if o.kind == OutletKind::Township { self.store.outlet_checklist(o.id).await? } else { Vec::new() };
            rows.push((o, checks));
        }
        Ok(OutletList { rows, operator: a.operator })
    }

    async fn editable_outlet(&self, p: &Principal, id: i64) -> Result<Outlet> {
        require_desk(p, "only the service desk may edit outlets")?;
        let o = self.store.outlet(id).await?.ok_or_else(|| Error::NotFound(format!("outlet {id}")))?;
        access::in_scope(p, &o.region_code)?;
        Ok(o)
    }

    /// The desk changes an outlet's published information and its head (a user in its region).
    pub async fn update_outlet(&self, p: &Principal, id: i64, f: &OutletInput) -> Result<Outlet> {
        self.editable_outlet(p, id).await?;
        let head = match f.head_user_id.trim() {
            "" => None,
            s => {
                let uid: i64 = s.parse().map_err(|_| Error::BadRequest(format!("head_user_id: {s:?} is not a user id")))?;
                let u = self.store.user(uid).await?.ok_or_else(|| Error::BadRequest(format!("head_user_id: user {uid} does not exist")))?;
                access::in_scope(p, &u.region_code)?;
                Some(uid)
            }
        };
        let patch = OutletPatch {
            hotline: Some(f.hotline.clone()),
            service_scope: Some(f.service_scope.clone()),
            process: Some(f.process.clone()),
            head_user_id: Some(head),
            ..Default::default()
        };
        Ok(self.store.update_outlet(id, &patch, &access::actor(p)).await?)
    }

    /// The desk ticks (or unticks) an item of a township outlet's "nine ones", with evidence.
    pub async fn set_outlet_check(&self, p: &Principal, id: i64, item: &str, done: bool, evidence: &str) -> Result<()> {
        self.editable_outlet(p, id).await?;
        let item = NineOnes::parse(item).ok_or_else(|| Error::BadRequest(format!("item: {item:?} is not a checklist item")))?;
        Ok(self.store.set_outlet_check(id, item, done, evidence, &access::actor(p)).await?)
    }

    /// The scope and period of an indicator request, inside the principal's region.
    pub fn service_period(&self, p: &Principal, q: &PeriodQuery) -> Result<Period> {
        let scope = scope_of(p, &q.region)?;
        access::in_scope(p, &scope)?;
        let (first, next) = time::month_bounds(time::now_ms());
        let from = if q.from.trim().is_empty() { time::format_date(first) } else { q.from.trim().to_string() };
        let to = if q.to.trim().is_empty() { time::format_date(next) } else { q.to.trim().to_string() };
        let from_ms = day_start(&from, "from")?.unwrap_or(0);
        let to_ms = day_start(&to, "to")?.unwrap_or(0);
        if to_ms <= from_ms {
            return Err(Error::BadRequest("to: must be after from".into()));
        }
        Ok(Period { scope, from_ms, to_ms, year: time::year_of(from_ms), from, to })
    }

    /// Indicators of the period's scope and of each child region.
    pub async fn service_indicators(&self, p: &Principal, period: &Period) -> Result<ServiceIndicators> {
        self.service_access(p).await?;
        access::in_scope(p, &period.scope)?;
        let scope_name = self.store.region(&period.scope).await?.map(|r| r.name).unwrap_or_default();
        let (from, to, year) = (period.from_ms, period.to_ms, period.year);
        if period.scope.level() == RegionLevel::Village {
            let whole = self.store.service_counts(&period.scope, from, to, year, false).await?;
            let total = Indicators::from_counts(whole.into_iter().next().map(|r| r.counts).unwrap_or_default());
            return Ok(ServiceIndicators { scope_name, total, children: Vec::new() });
        }
        // A region's counts are the sums of its children's (every count is additive), so one read serves both.
        let mut sum = IndicatorCounts::default();
        let mut children = Vec::new();
        for r in self.store.service_counts(&period.scope, from, to, year, true).await? {
            sum.add(&r.counts);
            let name = self.store.region(&r.region_code).await?.map(|x| x.name).unwrap_or_default();
            children.push((r.region_code, name, Indicators::from_counts(r.counts)));
        }
        Ok(ServiceIndicators { scope_name, total: Indicators::from_counts(sum), children })
    }

    /// Households in `scope` (default: the principal's region) that the principal may see (a
    /// steward: their villages), masked as the role requires.
    pub async fn households(&self, p: &Principal, scope: Option<&RegionCode>, q: &HouseholdQuery, limit: i64, offset: i64) -> Result<HouseholdList> {
        let a = self.service_access(p).await?;
        let scope = match scope {
            Some(s) => s,
            None => access::region(p)?,
        };
        access::in_scope(p, scope)?;
        let rows = match &a.steward {
            Some(s) => {
                let mut all = Vec::new();
                for v in s.villages.iter().filter(|v| access::sees(p, v) && scope.contains(v)) {
                    all.extend(self.store.households_in(v, q, limit + offset, 0).await?);
                }
                all.into_iter().skip(offset as usize).take(limit as usize).collect()
            }
            None => self.store.households_in(scope, q, limit, offset).await?,
        };
        let rows = rows.into_iter().map(|h| a.mask_household(h)).collect();
        Ok(HouseholdList { rows, operator: a.operator, masked: !a.unmasked })
    }

    /// Every household in the principal's reach, masked as the role requires, written by
    /// `write` (the delivery's file format); the export is audited with its scope and row count.
    pub async fn export_households<F>(&self, p: &Principal, write: F) -> Result<Vec<u8>>
    where
        F: FnOnce(&[Household]) -> Result<Vec<u8>>,
    {
        let list = self.households(p, None, &HouseholdQuery::default(), 1_000_000, 0).await?;
        let bytes = write(&list.rows)?;
        let after = serde_json::json!({ "rows": list.rows.len(), "masked": list.masked }).to_string();
        self.store.audit(&access::actor(p), "household.export", "household", access::region(p)?.short(), "", &after).await?;
        Ok(bytes)
    }

    /// The stewards of the principal's region with their accounts' usernames.
    pub async fn stewards(&self, p: &Principal) -> Result<StewardList> {
        let a = self.service_access(p).await?;
        let mut rows = Vec::new();
        for s in self.store.stewards_in(access::region(p)?).await? {
            let user = match s.user_id {
                Some(u) => self.store.user(u).await?.map(|u| u.username).unwrap_or_default(),
                None => String::new(),
            };
            rows.push((s, user));
        }
        Ok(StewardList { rows, operator: a.operator })
    }

    /// The stewards of the principal's region written by `write`; audited with the row count. A
    /// steward's name and phone are published to the villages: not masked.
    pub async fn export_stewards<F>(&self, p: &Principal, write: F) -> Result<Vec<u8>>
    where
        F: FnOnce(Vec<(Steward, String)>) -> Result<Vec<u8>>,
    {
        let rows = self.stewards(p).await?.rows;
        let n = rows.len();
        let bytes = write(rows)?;
        let after = serde_json::json!({ "rows": n }).to_string();
        self.store.audit(&access::actor(p), "steward.export", "steward", access::region(p)?.short(), "", &after).await?;
        Ok(bytes)
    }

    /// Region checks shared by both imports: inside the principal's scope and loaded.
    async fn region_problem(&self, p: &Principal, code: &RegionCode, known: &mut HashMap<String, bool>) -> Result<Option<(String, String)>> {
        if !access::sees(p, code) {
            return Ok(Some((format!("区划 {code} 不在您的管辖范围内"), format!("region {code} is outside your region"))));
        }
        let exists = match known.get(code.as_str()) {
            Some(e) => *e,
            None => {
                let e = self.store.region(code).await?.is_some();
                known.insert(code.as_str().to_string(), e);
                e
            }
        };
        Ok((!exists).then(|| (format!("区划 {code} 尚未导入"), format!("region {code} is not loaded"))))
    }

    /// Checks parsed household rows (regions, scope, duplicates against the registry), then
    /// imports them in one transaction: all of them when neither the file (`file_clean`) nor any
    /// row has a problem, else only the good rows when `valid_rows_only`, else nothing.
    pub async fn import_households(&self, p: &Principal, rows: Vec<(u32, HouseholdRecord)>, file_clean: bool, valid_rows_only: bool) -> Result<ImportChecked> {
        require_desk(p, "only the service desk may import the registry")?;
        let existing: HashSet<(String, String, String)> = self.store.household_keys(access::region(p)?).await?.into_iter().collect();
        let mut known = HashMap::new();
        let mut out = ImportChecked::default();
        let mut good = Vec::new();
        for (row, h) in rows {
            let problem = if let Some(m) = self.region_problem(p, &h.village_code, &mut known).await? {
                Some(("village_code", m))
            } else if existing.contains(&(h.village_code.as_str().to_string(), h.head_name.trim().to_string(), h.address.trim().to_string())) {
                Some(("head_name", ("已登记(同村、同户主、同住址)".to_string(), "already registered (same village, head and address)".to_string())))
            } else {
                None
            };
            match problem {
                Some((column, (zh, en))) => out.problems.push(RowProblem { row, column, zh, en }),
                None => good.push(h),
            }
        }
        if ((file_clean && out.problems.is_empty()) || valid_rows_only) && !good.is_empty() {
            out.imported = self.store.import_households(&good, "xlsx", &access::actor(p)).await? as usize;
        }
        Ok(out)
    }

    /// Checks parsed steward rows (regions, scope, duplicates, linked accounts: stewards of the
    /// principal's region) and imports them as [`App::import_households`] does.
    pub async fn import_stewards(&self, p: &Principal, rows: Vec<(u32, StewardImport)>, file_clean: bool, valid_rows_only: bool) -> Result<ImportChecked> {
        require_desk(p, "only the service desk may import the registry")?;
        let existing: HashSet<(String, String)> = self.store.stewards_in(access::region(p)?).await?.into_iter().map(|s| (s.name, s.phone)).collect();
        let mut known = HashMap::new();
        let mut out = ImportChecked::default();
        let mut good = Vec::new();
        for (row, s) in rows {
            let mut found = Vec::new();
            if let Some(m) = self.region_problem(p, &s.township, &mut known).await? {
                found.push(("township_code", m));
            }
            for v in &s.villages {
                if let Some(m) = self.region_problem(p, v, &mut known).await? {
                    found.push(("villages", m));
                }
            }
            if existing.contains(&(s.name.clone(), s.phone.clone())) {
                found.push(("name", ("已登记(同姓名同手机)".to_string(), "already registered (same name and phone)".to_string())));
            }
            let mut user_id = None;
            if !s.username.is_empty() {
                match self.store.user_credentials(&s.username).await? {
                    Some((u, _)) if u.role == Role::Steward && access::sees(p, &u.region_code) => user_id = Some(u.id),
                    Some(_) => found.push(("username", (format!("账号 {} 不是本辖区的管家账号", s.username), format!("account {} is not a steward account in your region", s.username)))),
                    None => found.push(("username", (format!("账号 {} 不存在", s.username), format!("account {} does not exist", s.username)))),
                }
            }
            if found.is_empty() {
                good.push(StewardRecord { name: s.name, phone: s.phone, region_code: s.township, user_id, villages: s.villages });
            }
            out.problems.extend(found.into_iter().map(|(column, (zh, en))| RowProblem { row, column, zh, en }));
        }
        if ((file_clean && out.problems.is_empty()) || valid_rows_only) && !good.is_empty() {
            out.imported = self.store.import_stewards(&good, "xlsx", &access::actor(p)).await? as usize;
        }
        Ok(out)
    }

    /// The desk links a steward to a user account in its region (or unlinks with "").
    pub async fn link_steward_user(&self, p: &Principal, steward_id: i64, username: &str) -> Result<Steward> {
        require_desk(p, "only the service desk may import the registry")?;
        let s = self.store.steward(steward_id).await?.ok_or_else(|| Error::NotFound(format!("steward {steward_id}")))?;
        access::in_scope(p, &s.region_code)?;
        let user = match username.trim() {
            "" => None,
            name => {
                let (u, _) = self.store.user_credentials(name).await?.ok_or_else(|| Error::BadRequest(format!("username: {name:?} does not exist")))?;
                access::in_scope(p, &u.region_code)?;
                Some(u.id)
            }
        };
        Ok(self.store.set_steward_user(steward_id, user, &access::actor(p)).await?)
    }

    // ---- residents on the public pages (no account) ----

    /// A loaded village by its code, as a public repair page names it; NotFound otherwise.
    pub async fn repair_village(&self, code: &str) -> Result<Region> {
        let rc = RegionCode::parse(code).map_err(|_| Error::NotFound(format!("village {code}")))?;
        if rc.level() != RegionLevel::Village {
            return Err(Error::NotFound(format!("village {code}")));
        }
        self.store.region(&rc).await?.ok_or_else(|| Error::NotFound(format!("village {code}")))
    }

    /// What the village's repair page publishes: its stewards (name and phone) and the township
    /// outlet (the county's when the township has none).
    pub async fn public_village(&self, code: &str) -> Result<PublicVillage> {
        let village = self.repair_village(code).await?;
        let township_code = village.code.parent().unwrap_or_else(|| village.code.clone());
        let township = self.store.region(&township_code).await?.map(|r| r.name).unwrap_or_default();
        let stewards = self.store.stewards_in(&township_code).await?.into_iter().filter(|s| s.villages.contains(&village.code)).map(|s| (s.name, s.phone)).collect();
        let outlets = self.store.outlets_in(&township_code).await?;
        let outlet = outlets.iter().find(|o| o.region_code == township_code).or(outlets.first()).cloned();
        let outlet = match outlet {
            Some(o) => Some(o),
            None => {
                let county = township_code.parent().unwrap_or_else(|| township_code.clone());
                self.store.outlets_in(&county).await?.into_iter().find(|o| o.kind == OutletKind::County)
            }
        };
        Ok(PublicVillage { village, township, stewards, outlet })
    }

    /// A resident reports a fault on their village's repair page, from `client` (an address,
    /// audited as "public:<client>"). `confirm_token_hash` is the hash of the link the resident
    /// keeps to follow and confirm the repair.
    pub async fn report_fault(&self, village: &str, client: &str, f: &FaultReport, confirm_token_hash: String) -> Result<TicketCreated> {
        let mut t = new_ticket_from(village, "repair", TicketSource::Public, &f.category, &f.name, &f.phone, &f.address, &f.description)?;
        t.confirm_token_hash = Some(confirm_token_hash);
        self.validate_new_ticket(&t).await?;
        Ok(self.store.create_ticket(&t, &Actor(format!("public:{client}"))).await?)
    }

    /// The ticket a confirmation link stands for (by the hash of its token).
    pub async fn resident_ticket(&self, token_hash: &str) -> Result<ResidentTicket> {
        let ticket = self.linked_ticket(token_hash).await?;
        let steward = match ticket.steward_id {
            Some(id) => self.store.steward(id).await?.map(|s| s.name).unwrap_or_default(),
            None => String::new(),
        };
        Ok(ResidentTicket { ticket, steward })
    }

    async fn linked_ticket(&self, token_hash: &str) -> Result<Ticket> {
        self.store.ticket_by_confirm_token(token_hash).await?.ok_or_else(|| Error::NotFound("this confirmation link is not valid".into()))
    }

    /// The holder of a ticket's confirmation link answers: "confirm" with a rating of 1-5, or
    /// "reopen" (not fixed) with an optional reason. Nothing else; audited as
    /// "resident:ticket:<id>".
    pub async fn resident_answer(&self, token_hash: &str, action: &str, rating: &str, reason: &str) -> Result<Ticket> {
        let t = self.linked_ticket(token_hash).await?;
        let action = match action {
            "confirm" => TicketAction::Confirm { rating: rating_of(rating)? },
            "reopen" => TicketAction::Reopen { reason: if reason.trim().is_empty() { "居民反馈未修好 / resident says not fixed".into() } else { reason.to_string() } },
            other => return Err(Error::BadRequest(format!("action: {other:?} must be confirm or reopen"))),
        };
        Ok(self.store.transition_ticket(t.id, &action, &Actor(format!("resident:ticket:{}", t.id)), time::now_ms()).await?)
    }
}
