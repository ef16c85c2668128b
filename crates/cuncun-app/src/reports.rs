//! Coverage, indicator targets, the county checklist, transmitter sites and the monthly report
//! (docs/INDICATORS.md).
//!
//! Reading needs a role that reads the service network and the region in the principal's scope;
//! a steward's drill-downs show their own villages' households only, and names and phones are
//! masked for roles that may not see them. Targets and the checklist are changed by
//! administrators; transmitter sites and terminal ↔ hamlet assignments by those who keep the
//! registry (administrators and broadcasters). Every result says whether its reader may edit it,
//! so that pages offer exactly what the commands allow.

use crate::{App, Error, Result, access};
use cuncun_domain::authz::Principal;
use cuncun_domain::indicators::{self, Basis, CheckStatus, Evaluation, Month, NineHaves};
use cuncun_domain::model::{Hamlet, Region};
use cuncun_domain::records::report::*;
use cuncun_domain::records::service::{Ticket, TicketFilter, VisitPlanRow};
use cuncun_domain::service::{TicketStatus, VISITS_PER_YEAR, mask_name, mask_phone, percent};
use cuncun_domain::time::{day_of, day_start, now_ms, week_of};
use cuncun_domain::{RegionCode, RegionLevel, Role};
use cuncun_store::report::{bases, evaluate_all};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most records a drill-down or a per-village list shows.
pub const DRILL_LIMIT: usize = 1000;
/// Special-care and incomplete households read for a drill-down (sorted and filtered here).
const CARE_LIMIT: i64 = 20_000;
/// Tickets read when counting a region's overdue ones per village.
const OVERDUE_LIMIT: i64 = 5000;
/// Problem villages listed on the dashboard.
const PROBLEMS_LIMIT: usize = 200;

/// The region (default: the principal's) and month (default: this Beijing month) of a report.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReportQuery {
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub month: String,
}

/// What a reader of the reports may see of personal records.
struct Reader {
    /// A steward's villages; None for every village of the scope.
    villages: Option<Vec<RegionCode>>,
    unmasked: bool,
}

impl Reader {
    fn sees(&self, village: &RegionCode) -> bool {
        self.villages.as_ref().is_none_or(|vs| vs.contains(village))
    }
    fn mask(&self, name: &mut String, phone: &mut String) {
        if !self.unmasked {
            *name = mask_name(name);
            *phone = mask_phone(phone);
        }
    }
}

/// A region code field.
fn region_field(field: &str, v: &str) -> Result<RegionCode> {
    RegionCode::parse(v).map_err(|e| Error::BadRequest(format!("{field}: {e}")))
}

/// An optional number field ("" is none).
fn number(field: &str, v: &str) -> Result<Option<f64>> {
    match v.trim() {
        "" => Ok(None),
        t => t.parse::<f64>().map(Some).map_err(|_| Error::BadRequest(format!("{field}: {t:?} is not a number"))),
    }
}

/// Keeps the first [`DRILL_LIMIT`] items; true when some were left off (or the source was cut).
fn capped<T>(mut v: Vec<T>, source_cut: bool) -> (Vec<T>, bool) {
    let cut = source_cut || v.len() > DRILL_LIMIT;
    v.truncate(DRILL_LIMIT);
    (v, cut)
}

/// Who keeps the site registry and says which hamlet a terminal serves.
fn registry_editor(p: &Principal) -> bool {
    access::role(p).is_some_and(Role::can_edit_regions)
}

fn ensure_registry_editor(p: &Principal) -> Result<()> {
    if registry_editor(p) { Ok(()) } else { Err(Error::Forbidden("only administrators and broadcasters keep the site registry".into())) }
}

fn is_admin(p: &Principal) -> bool {
    access::role(p) == Some(Role::Admin)
}

/// A village with something to act on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemVillage {
    pub code: String,
    pub name: String,
    /// The online rate of the last 7 days, when under the target.
    pub online_rate: Option<f64>,
    pub overdue: i64,
    /// Hamlets of 20+ households without a terminal.
    pub uncovered_hamlets: i64,
}

/// The region dashboard: trends and problem villages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    pub region: Region,
    /// (day start, online, expected) of the last 30 days.
    pub daily_online: Vec<(i64, i64, i64)>,
    /// (Monday's day number, tickets requested that week) of the last 12 weeks.
    pub tickets_per_week: Vec<(i64, i64)>,
    /// This month's indicators.
    pub evaluations: Vec<Evaluation>,
    pub online_target: f64,
    pub problems: Vec<ProblemVillage>,
}

/// The records behind an indicator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum DrillRecords {
    /// Terminals, worst online rate first.
    Online(Vec<TerminalOnline>),
    /// Hamlets of 20+ households.
    Hamlets(Vec<HamletCoverage>),
    /// The month's tickets (cancelled ones left out).
    Tickets(Vec<Ticket>),
    /// Special-care households with this year's visits, those short of the plan first.
    Visits(Vec<VisitPlanRow>),
    Incomplete(Vec<IncompleteHousehold>),
    /// Coverage indicators: every village's counts.
    Villages(Vec<VillageCoverage>),
}

/// An indicator of a region and month, per child region and with its records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drill {
    pub region: RegionCode,
    pub month: Month,
    pub evaluation: Evaluation,
    pub children: Vec<RegionBasis>,
    /// At most [`DRILL_LIMIT`].
    pub records: DrillRecords,
    pub truncated: bool,
    /// Names and phones in the records are masked for the reader's role.
    pub masked: bool,
}

/// A region's indicator targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Targets {
    pub region: RegionCode,
    /// Every indicator (no figures) against the target in force.
    pub evaluations: Vec<Evaluation>,
    /// The region's own targets by indicator id (the others inherit).
    pub own: BTreeMap<String, f64>,
    pub can_edit: bool,
}

/// A county's "nine haves".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checklist {
    pub region: RegionCode,
    pub name: String,
    pub items: Vec<CountyCheck>,
    pub can_edit: bool,
}

/// A checklist item as entered: text fields, so that errors name the field.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CheckInput {
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub item: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub evidence: String,
}

/// The transmitter sites of a region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sites {
    pub region: RegionCode,
    pub counts: SiteCounts,
    pub items: Vec<TransmitterSite>,
    pub can_edit: bool,
}

/// A site with its village's hamlets (to pick the one it stands in).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteDetail {
    pub site: TransmitterSite,
    pub hamlets: Vec<Hamlet>,
    pub can_edit: bool,
}

/// A transmitter site as entered, as text fields (page form and API).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SiteInput {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub village_code: String,
    /// The hamlet's name or id, among the village's; empty for none.
    #[serde(default)]
    pub hamlet: String,
    #[serde(default)]
    pub lon: String,
    #[serde(default)]
    pub lat: String,
    #[serde(default)]
    pub frequencies: String,
    #[serde(default)]
    pub power_w: String,
    /// Non-empty (a ticked box sends "1") when the site is in service.
    #[serde(default)]
    pub in_service: String,
}

/// Hamlet coverage of a region, and in a village its terminals with their hamlets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HamletCoverages {
    pub region: RegionCode,
    pub is_village: bool,
    /// At most [`DRILL_LIMIT`].
    pub hamlets: Vec<HamletCoverage>,
    /// Empty unless the region is a village.
    pub terminals: Vec<TerminalHamlet>,
    pub can_edit: bool,
}

impl App {
    /// The reader's view of personal records, after the role check.
    async fn reader(&self, p: &Principal) -> Result<Reader> {
        // The service network's access rule, read once (crate::service).
        let a = self.service_access(p).await?;
        Ok(Reader { villages: a.steward.map(|s| s.villages), unmasked: a.unmasked })
    }

    /// The reader, region and month of a report request, after the role and scope checks.
    async fn report_scope(&self, p: &Principal, q: &ReportQuery) -> Result<(Reader, RegionCode, Month)> {
        let reader = self.reader(p).await?;
        let scope = match q.region.trim() {
            "" => access::region(p)?.clone(),
            r => region_field("region", r)?,
        };
        access::in_scope(p, &scope)?;
        let month = match q.month.trim() {
            "" => Month::of_ms(now_ms()),
            m => Month::parse(m).map_err(|e| Error::BadRequest(format!("month: {e}")))?,
        };
        Ok((reader, scope, month))
    }

    /// The monthly report of a region.
    pub async fn monthly_report(&self, p: &Principal, q: &ReportQuery) -> Result<MonthlyReport> {
        let (_, scope, month) = self.report_scope(p, q).await?;
        Ok(cuncun_store::report::monthly_report(self.store.as_ref(), &scope, month, now_ms()).await?)
    }

    /// The dashboard of a region: online rate of the last 30 days, tickets of the last 12 weeks,
    /// this month's indicators and the villages to act on.
    pub async fn dashboard(&self, p: &Principal, q: &ReportQuery) -> Result<Dashboard> {
        let (_, scope, _) = self.report_scope(p, q).await?;
        let now = now_ms();
        let region = self.store.region(&scope).await?.ok_or_else(|| Error::NotFound(format!("region {scope}")))?;
        let today = day_of(now);
        let online = self.store.online_summary(&scope, day_start(today - 29), day_start(today + 1), now, 12, false).await?;
        let first_week = week_of(today) - 11 * 7;
        let per_day = self.store.tickets_per_day(&scope, day_start(first_week), day_start(today + 1)).await?;
        let mut weeks: BTreeMap<i64, i64> = (0..12).map(|i| (first_week + 7 * i, 0)).collect();
        for (d, n) in per_day {
            *weeks.entry(week_of(d)).or_insert(0) += n;
        }
        let (basis, _, _) = bases(self.store.as_ref(), &scope, Month::of_ms(now), now).await?;
        let evaluations = evaluate_all(self.store.as_ref(), &scope, &basis).await?;
        let online_target = evaluations.iter().find(|e| e.def.id == "online_rate").map(|e| e.target).unwrap_or(90.0);
        let problems = self.problem_villages(&scope, online_target, now).await?;
        Ok(Dashboard { region, daily_online: online.days, tickets_per_week: weeks.into_iter().collect(), evaluations, online_target, problems })
    }

    /// Villages under the online target over the last 7 days, with overdue tickets, or with an
    /// uncovered hamlet of 20+ households; worst first.
    async fn problem_villages(&self, scope: &RegionCode, online_target: f64, now: i64) -> Result<Vec<ProblemVillage>> {
        let today = day_of(now);
        let online = self.store.online_summary(scope, day_start(today - 6), day_start(today + 1), now, 12, false).await?;
        let mut by: BTreeMap<String, ProblemVillage> = BTreeMap::new();
        fn slot<'a>(by: &'a mut BTreeMap<String, ProblemVillage>, code: &str) -> &'a mut ProblemVillage {
            by.entry(code.to_string()).or_insert_with(|| ProblemVillage { code: code.to_string(), name: String::new(), online_rate: None, overdue: 0, uncovered_hamlets: 0 })
        }
        for (code, (on, exp)) in &online.by_group {
            if let Some(rate) = percent(*on, *exp)
                && rate < online_target
            {
                slot(&mut by, code).online_rate = Some(rate);
            }
        }
        let mut f = TicketFilter::scope(scope);
        f.overdue = true;
        f.now_ms = now;
        for t in self.store.tickets(&f, OVERDUE_LIMIT, 0).await? {
            slot(&mut by, t.village_code.as_str()).overdue += 1;
        }
        for h in self.store.hamlet_coverage(scope).await? {
            if h.households >= indicators::HAMLET_MIN_HOUSEHOLDS && h.terminals == 0 {
                slot(&mut by, h.village_code.as_str()).uncovered_hamlets += 1;
            }
        }
        let mut v: Vec<ProblemVillage> = by.into_values().collect();
        v.sort_by(|a, b| {
            (b.overdue, b.uncovered_hamlets, -(a.online_rate.unwrap_or(100.0) * 100.0) as i64)
                .cmp(&(a.overdue, a.uncovered_hamlets, -(b.online_rate.unwrap_or(100.0) * 100.0) as i64))
                .then_with(|| a.code.cmp(&b.code))
        });
        v.truncate(PROBLEMS_LIMIT);
        for p in &mut v {
            if let Ok(code) = RegionCode::parse(&p.code) {
                p.name = self.store.region(&code).await?.map(|r| r.name).unwrap_or_default();
            }
        }
        Ok(v)
    }

    /// An indicator (by id) of a region and month, with the records behind it.
    pub async fn drill(&self, p: &Principal, indicator: &str, q: &ReportQuery) -> Result<Drill> {
        let (reader, scope, month) = self.report_scope(p, q).await?;
        let def = indicators::find(indicator).ok_or_else(|| Error::NotFound(format!("indicator {indicator:?}")))?;
        let now = now_ms();
        let (basis, children, _) = bases(self.store.as_ref(), &scope, month, now).await?;
        let evaluation = evaluate_all(self.store.as_ref(), &scope, &basis)
            .await?
            .into_iter()
            .find(|e| e.def.id == def.id)
            .ok_or_else(|| Error::NotFound(indicator.to_string()))?;
        let mut masked = false;
        let (records, truncated) = match def.id {
            "online_rate" => {
                let mut t = self.store.online_summary(&scope, month.start_ms(), month.end_ms(), now, 12, true).await?.terminals;
                t.sort_by_key(|t| if t.expected_ms > 0 { t.online_ms * 10_000 / t.expected_ms } else { i64::MAX });
                let (t, cut) = capped(t, false);
                (DrillRecords::Online(t), cut)
            }
            "hamlet_coverage" => {
                let hs = self.store.hamlet_coverage(&scope).await?.into_iter().filter(|h| h.households >= indicators::HAMLET_MIN_HOUSEHOLDS).collect();
                let (hs, cut) = capped(hs, false);
                (DrillRecords::Hamlets(hs), cut)
            }
            "closure" | "closure_24h" | "complaint" | "satisfaction" => {
                let mut f = TicketFilter::scope(&scope);
                f.from_ms = Some(month.start_ms());
                f.to_ms = Some(month.end_ms());
                f.now_ms = now;
                let ts = self.store.tickets(&f, DRILL_LIMIT as i64 + 1, 0).await?.into_iter().filter(|t| t.status != TicketStatus::Cancelled).collect();
                let (ts, cut) = capped(ts, false);
                (DrillRecords::Tickets(ts), cut)
            }
            "care_visits" => {
                masked = !reader.unmasked;
                let mut plan: Vec<VisitPlanRow> = self.store.visit_plan(&scope, month.year, CARE_LIMIT, 0).await?.into_iter().filter(|p| reader.sees(&p.household.rec.village_code)).collect();
                let source_cut = plan.len() as i64 >= CARE_LIMIT;
                plan.sort_by_key(|p| (p.done.min(VISITS_PER_YEAR), p.household.rec.village_code.clone(), p.household.id));
                let (mut plan, cut) = capped(plan, source_cut);
                for p in &mut plan {
                    let h = &mut p.household.rec;
                    reader.mask(&mut h.head_name, &mut h.phone);
                }
                (DrillRecords::Visits(plan), cut)
            }
            "data_completeness" => {
                masked = !reader.unmasked;
                let rows = self.store.incomplete_households(&scope, CARE_LIMIT).await?;
                let source_cut = rows.len() as i64 >= CARE_LIMIT;
                let (mut rows, cut) = capped(rows.into_iter().filter(|h| reader.sees(&h.village_code)).collect(), source_cut);
                for h in &mut rows {
                    reader.mask(&mut h.head_name, &mut h.phone);
                }
                (DrillRecords::Incomplete(rows), cut)
            }
            _ => {
                let (vs, cut) = capped(self.store.village_coverage(&scope).await?, false);
                (DrillRecords::Villages(vs), cut)
            }
        };
        Ok(Drill { region: scope, month, evaluation, children, records, truncated, masked })
    }

    /// A region's targets: those in force, and its own.
    pub async fn targets(&self, p: &Principal, q: &ReportQuery) -> Result<Targets> {
        let (_, scope, _) = self.report_scope(p, q).await?;
        let evaluations = evaluate_all(self.store.as_ref(), &scope, &Basis::default()).await?;
        let own = self.store.targets_for(&scope).await?.into_iter().filter(|t| t.region_code == scope).map(|t| (t.indicator, t.target)).collect();
        Ok(Targets { region: scope, evaluations, own, can_edit: is_admin(p) })
    }

    /// Sets a region's target of an indicator ("" clears it, "95%" is 95); administrators, within
    /// their region. Audited. Returns the region.
    pub async fn set_target(&self, p: &Principal, region: &str, indicator: &str, target: &str) -> Result<RegionCode> {
        access::admin(p)?;
        let scope = region_field("region", region)?;
        access::in_scope(p, &scope)?;
        let value = match target.trim() {
            "" => None,
            t => Some(t.trim_end_matches('%').parse::<f64>().map_err(|_| Error::BadRequest(format!("target: {t:?} is not a number")))?),
        };
        self.store.set_target(&scope, indicator, value, &access::actor(p)).await?;
        Ok(scope)
    }

    /// A region's "nine haves" checklist.
    pub async fn checklist(&self, p: &Principal, q: &ReportQuery) -> Result<Checklist> {
        let (_, scope, _) = self.report_scope(p, q).await?;
        let name = self.store.region(&scope).await?.map(|r| r.name).unwrap_or_default();
        let items = self.store.county_checklist(&scope).await?;
        Ok(Checklist { region: scope, name, items, can_edit: is_admin(p) })
    }

    /// Sets a checklist item's status and evidence; a file, when given, replaces the stored one.
    /// Administrators, within their region. Audited. Returns the region.
    pub async fn set_county_check(&self, p: &Principal, input: &CheckInput, file: Option<EvidenceFile>) -> Result<RegionCode> {
        access::admin(p)?;
        let scope = region_field("region", &input.region)?;
        access::in_scope(p, &scope)?;
        let item = NineHaves::parse(&input.item).ok_or_else(|| Error::BadRequest(format!("item: {:?} is not one of the nine haves", input.item)))?;
        let status = CheckStatus::parse(&input.status).ok_or_else(|| Error::BadRequest(format!("status: {:?} must be missing, partial or done", input.status)))?;
        self.store.set_county_check(&scope, item, status, &input.evidence, file.as_ref(), &access::actor(p)).await?;
        Ok(scope)
    }

    /// The evidence file of a checklist item.
    pub async fn county_check_file(&self, p: &Principal, q: &ReportQuery, item: &str) -> Result<EvidenceFile> {
        let (_, scope, _) = self.report_scope(p, q).await?;
        let item = NineHaves::parse(item).ok_or_else(|| Error::NotFound(format!("checklist item {item:?}")))?;
        self.store.county_check_file(&scope, item).await?.ok_or_else(|| Error::NotFound(format!("no file for {} of {scope}", item.key())))
    }

    /// The transmitter sites of a region with its site and front-end counts.
    pub async fn transmitter_sites(&self, p: &Principal, q: &ReportQuery) -> Result<Sites> {
        let (_, scope, _) = self.report_scope(p, q).await?;
        let items = self.store.transmitter_sites(&scope).await?;
        let counts = self.store.sites_grouped(&scope, scope.level().digits()).await?.into_values().fold(SiteCounts::default(), |mut a, x| {
            a.add(&x);
            a
        });
        Ok(Sites { region: scope, counts, items, can_edit: registry_editor(p) })
    }

    /// Coverage and sites per village (at most [`DRILL_LIMIT`], true when some were left off);
    /// none above a county (a city has thousands of villages: open a county).
    pub async fn village_coverage(&self, p: &Principal, q: &ReportQuery) -> Result<(Vec<VillageCoverage>, bool)> {
        let (_, scope, _) = self.report_scope(p, q).await?;
        if scope.level() < RegionLevel::County {
            return Ok((Vec::new(), false));
        }
        Ok(capped(self.store.village_coverage(&scope).await?, false))
    }

    /// A site the principal may see (its village in the principal's region).
    pub async fn transmitter_site(&self, p: &Principal, id: i64) -> Result<TransmitterSite> {
        self.reader(p).await?;
        let site = self.store.transmitter_site(id).await?.ok_or_else(|| Error::NotFound(format!("transmitter site {id}")))?;
        access::in_scope(p, &site.site.village_code)?;
        Ok(site)
    }

    /// A site with its village's hamlets.
    pub async fn transmitter_site_detail(&self, p: &Principal, id: i64) -> Result<SiteDetail> {
        let site = self.transmitter_site(p, id).await?;
        let hamlets = self.store.hamlets(&site.site.village_code).await?;
        Ok(SiteDetail { site, hamlets, can_edit: registry_editor(p) })
    }

    /// The input as a site, after the role and scope checks; the hamlet is named (or given by
    /// id) among the village's hamlets.
    async fn site_of_input(&self, p: &Principal, f: &SiteInput) -> Result<NewTransmitterSite> {
        self.reader(p).await?;
        ensure_registry_editor(p)?;
        let village_code = region_field("village_code", f.village_code.trim())?;
        access::in_scope(p, &village_code)?;
        if village_code.level() != RegionLevel::Village {
            return Err(Error::BadRequest(format!("village_code: {} is not an administrative village (12 digits, level 5)", village_code.short())));
        }
        let kind = TransmitterKind::parse(&f.kind).ok_or_else(|| Error::BadRequest(format!("kind: {:?} must be one of tv, fm, dtmb, mw, relay", f.kind)))?;
        let hamlet_id = match f.hamlet.trim() {
            "" => None,
            h => Some(
                self.store
                    .hamlets(&village_code)
                    .await?
                    .iter()
                    .find(|x| x.name == h || x.id.to_string() == h)
                    .map(|x| x.id)
                    .ok_or_else(|| Error::BadRequest(format!("hamlet: village {} has no hamlet {h:?}", village_code.short())))?,
            ),
        };
        Ok(NewTransmitterSite {
            name: f.name.trim().to_string(),
            kind,
            village_code,
            hamlet_id,
            lon: number("lon", &f.lon)?,
            lat: number("lat", &f.lat)?,
            frequencies: f.frequencies.trim().to_string(),
            power_w: number("power_w", &f.power_w)?,
            in_service: !f.in_service.is_empty(),
        })
    }

    /// Registers a transmitter site. Audited.
    pub async fn add_transmitter_site(&self, p: &Principal, f: &SiteInput) -> Result<TransmitterSite> {
        let site = self.site_of_input(p, f).await?;
        Ok(self.store.add_transmitter_site(&site, &access::actor(p)).await?)
    }

    /// Replaces a site's record; the site and its new village must both lie in the principal's
    /// region. Audited.
    pub async fn update_transmitter_site(&self, p: &Principal, id: i64, f: &SiteInput) -> Result<TransmitterSite> {
        self.transmitter_site(p, id).await?;
        let site = self.site_of_input(p, f).await?;
        Ok(self.store.update_transmitter_site(id, &site, &access::actor(p)).await?)
    }

    /// Hamlet coverage of a region; in a village, also its terminals and their hamlets.
    pub async fn hamlet_coverage(&self, p: &Principal, q: &ReportQuery) -> Result<HamletCoverages> {
        let (_, scope, _) = self.report_scope(p, q).await?;
        let is_village = scope.level() == RegionLevel::Village;
        let (hamlets, _) = capped(self.store.hamlet_coverage(&scope).await?, false);
        let terminals = if is_village { self.store.terminal_hamlets(&scope, DRILL_LIMIT as i64).await? } else { Vec::new() };
        Ok(HamletCoverages { region: scope, is_village, hamlets, terminals, can_edit: registry_editor(p) })
    }

    /// Says which hamlet (by id; "" clears) a terminal serves. Those who keep the registry,
    /// within their region. Audited. Returns the terminal's region.
    pub async fn assign_terminal_hamlet(&self, p: &Principal, resource_id: i64, hamlet_id: &str) -> Result<RegionCode> {
        self.reader(p).await?;
        ensure_registry_editor(p)?;
        let r = self.store.resource(resource_id).await?.ok_or_else(|| Error::NotFound(format!("terminal {resource_id}")))?;
        access::in_scope(p, &r.region_code)?;
        let hamlet = match hamlet_id.trim() {
            "" => None,
            h => Some(h.parse::<i64>().map_err(|_| Error::BadRequest(format!("hamlet_id: {h:?} is not a hamlet id")))?),
        };
        self.store.set_terminal_hamlet(r.id, hamlet, &access::actor(p)).await?;
        Ok(r.region_code)
    }
}
