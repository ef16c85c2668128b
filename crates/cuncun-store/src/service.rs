//! Storage of the service network: the household registry with its service fields, stewards and
//! their villages, outlets with published information and the "nine ones" checklist, repair
//! tickets (lifecycle, events, photos, escalation), special-care visits and the indicator counts.

use crate::{Actor, Result};
use async_trait::async_trait;
use cuncun_domain::RegionCode;
use cuncun_domain::service::*;

pub use cuncun_domain::service::HouseholdRecord;
pub use cuncun_domain::records::service::*;

#[async_trait]
pub trait ServiceStore {
    // Households
    async fn add_household(&self, h: &HouseholdRecord, actor: &Actor) -> Result<Household>;
    async fn update_household(&self, id: i64, h: &HouseholdRecord, actor: &Actor) -> Result<Household>;
    async fn household(&self, id: i64) -> Result<Option<Household>>;
    async fn households_in(&self, scope: &RegionCode, q: &HouseholdQuery, limit: i64, offset: i64) -> Result<Vec<Household>>;
    /// (village code, head name, address) of every household in the scope, for duplicate checks.
    async fn household_keys(&self, scope: &RegionCode) -> Result<Vec<(String, String, String)>>;
    /// Inserts all rows in one transaction (all or nothing); one audit entry summarises it.
    async fn import_households(&self, rows: &[HouseholdRecord], source: &str, actor: &Actor) -> Result<u64>;

    // Stewards
    async fn add_steward(&self, s: &StewardRecord, actor: &Actor) -> Result<Steward>;
    /// Inserts all rows in one transaction (all or nothing).
    async fn import_stewards(&self, rows: &[StewardRecord], source: &str, actor: &Actor) -> Result<u64>;
    async fn set_steward_user(&self, steward_id: i64, user_id: Option<i64>, actor: &Actor) -> Result<Steward>;
    async fn steward(&self, id: i64) -> Result<Option<Steward>>;
    async fn steward_of_user(&self, user_id: i64) -> Result<Option<Steward>>;
    /// Stewards whose township lies in the scope.
    async fn stewards_in(&self, scope: &RegionCode) -> Result<Vec<Steward>>;
    /// The village's default steward (the first one registered for it).
    async fn village_steward(&self, village: &RegionCode) -> Result<Option<Steward>>;

    // Outlets
    async fn outlets_in(&self, scope: &RegionCode) -> Result<Vec<Outlet>>;
    async fn outlet(&self, id: i64) -> Result<Option<Outlet>>;
    async fn update_outlet(&self, id: i64, p: &OutletPatch, actor: &Actor) -> Result<Outlet>;
    async fn outlet_checklist(&self, outlet_id: i64) -> Result<Vec<OutletCheck>>;
    async fn set_outlet_check(&self, outlet_id: i64, item: NineOnes, done: bool, evidence: &str, actor: &Actor) -> Result<()>;

    // Tickets
    /// Creates a ticket, assigned to the village's steward when there is one. With a dedupe key
    /// that an open ticket already has, returns that ticket unchanged (`created` false).
    async fn create_ticket(&self, t: &NewTicket, actor: &Actor) -> Result<TicketCreated>;
    /// Inserts tickets as they stand, in bulk and one transaction; one audit entry summarises it.
    async fn import_tickets(&self, rows: &[HistoricTicket], source: &str, actor: &Actor) -> Result<u64>;
    async fn ticket(&self, id: i64) -> Result<Option<Ticket>>;
    async fn ticket_by_confirm_token(&self, token_hash: &str) -> Result<Option<Ticket>>;
    /// Newest first.
    async fn tickets(&self, f: &TicketFilter, limit: i64, offset: i64) -> Result<Vec<Ticket>>;
    /// Applies `action` (state machine in the domain); the change, an event and an audit entry
    /// are written in one transaction.
    async fn transition_ticket(&self, id: i64, action: &TicketAction, actor: &Actor, now_ms: i64) -> Result<Ticket>;
    async fn ticket_events(&self, id: i64) -> Result<Vec<TicketEvent>>;
    async fn add_ticket_photo(&self, ticket_id: i64, content_type: &str, bytes: &[u8], actor: &Actor) -> Result<i64>;
    /// (ticket id, content type, bytes).
    async fn ticket_photo(&self, photo_id: i64) -> Result<Option<(i64, String, Vec<u8>)>>;
    async fn ticket_photo_ids(&self, ticket_id: i64) -> Result<Vec<i64>>;
    /// Marks open tickets requested at least `escalate_after_ms` ago and not yet escalated as
    /// escalated to the head of the village's township outlet (else the county centre's head).
    async fn escalate_due(&self, now_ms: i64, escalate_after_ms: i64) -> Result<Vec<Ticket>>;

    // Special-care visits
    async fn record_visit(&self, household_id: i64, steward_id: Option<i64>, visited_at_ms: i64, note: &str, actor: &Actor) -> Result<CareVisit>;
    async fn visits_of(&self, household_id: i64) -> Result<Vec<CareVisit>>;
    /// Special-care households of the scope with the visits done in `year` (Beijing calendar).
    async fn visit_plan(&self, scope: &RegionCode, year: i64, limit: i64, offset: i64) -> Result<Vec<VisitPlanRow>>;

    // Indicators
    /// Counts for the scope as one row, or per child region when `by_child`; tickets requested
    /// in [from_ms, to_ms), visits of `year`.
    async fn service_counts(&self, scope: &RegionCode, from_ms: i64, to_ms: i64, year: i64, by_child: bool) -> Result<Vec<RegionIndicatorCounts>>;
}
