//! Terminals and front-ends (emergency broadcast resources): register, import, re-key, retire,
//! their status and history, and a day's online rate.

use crate::access;
use crate::{App, Error, Result};
use cuncun_domain::authz::Principal;
use cuncun_domain::online::Interval;
use cuncun_domain::records::eb::{BroadcastLogRow, NewResource, Resource, ResourceWithStatus};
use cuncun_domain::records::report::ONLINE_GRACE_MS;
use cuncun_domain::RegionCode;
use cuncun_domain::eb::ResourceKind;
use serde::Serialize;

/// Device secrets and the terminal service's credential cache. The service's crate makes secrets
/// and hashes them (it checks them when a device connects); its cache must learn every change,
/// so the commands that change a credential tell it once the store has written the change.
pub trait DeviceKeys: Send + Sync {
    /// A new secret and its hash as the store keeps it.
    fn new_secret(&self) -> (String, String);
    /// `Some((hash, region))` for a device registered or re-keyed, `None` for one retired.
    fn changed(&self, ebrid: &str, cred: Option<(&str, &str)>);
}

/// A device to register, as the page's form and the API give it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct DeviceInput {
    pub kind: String,
    pub region_code: String,
    pub name: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub install_date: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
}

/// A device with its secret, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct Keyed {
    pub resource: Resource,
    pub secret: String,
}

/// The device list of the principal's region with its online counts.
#[derive(Debug, Clone, Default)]
pub struct TerminalList {
    pub rows: Vec<ResourceWithStatus>,
    pub online: usize,
    pub offline: usize,
    pub never: usize,
}

/// One device's page.
#[derive(Debug, Clone)]
pub struct TerminalView {
    pub status: ResourceWithStatus,
    /// (connected, disconnected) ms, newest first.
    pub connections: Vec<Interval>,
    pub logs: Vec<BroadcastLogRow>,
}

/// A problem with one row of an import, in both languages; `column` is the sheet's column key.
#[derive(Debug, Clone)]
pub struct RowProblem {
    pub row: u32,
    pub column: &'static str,
    pub zh: String,
    pub en: String,
}

/// A device an import wrote.
#[derive(Debug, Clone)]
pub struct Imported {
    pub ebrid: String,
    pub name: String,
    pub region_code: RegionCode,
    pub secret: String,
}

/// What an import found and did.
#[derive(Debug, Clone, Default)]
pub struct DeviceImport {
    /// Problems the command found (the sheet's own come from its parser).
    pub problems: Vec<RowProblem>,
    /// The devices written with their one-time secrets; empty when nothing was imported.
    pub created: Vec<Imported>,
}

/// A region's (or a device's) online rate of the day.
#[derive(Debug, Clone)]
pub struct RegionRate {
    pub code: String,
    pub name: String,
    pub terminals: usize,
    /// Percent; None when nothing was expected online.
    pub rate: Option<f64>,
}

/// The online rate of a Beijing calendar day in the principal's region (docs/INDICATORS.md).
#[derive(Debug, Clone)]
pub struct OnlineDay {
    pub day: String,
    pub overall: Option<f64>,
    pub terminals: usize,
    /// Per child region.
    pub children: Vec<RegionRate>,
    /// Devices below 90 %, worst first (at most 200).
    pub worst: Vec<RegionRate>,
}

/// Registering, re-keying and retiring devices is for those who edit the network.
pub fn may_edit_terminals(p: &Principal) -> bool {
    p.role().is_some_and(|r| r.can_edit_regions())
}

fn editor(p: &Principal, what: &str) -> Result<()> {
    if may_edit_terminals(p) { Ok(()) } else { Err(Error::Forbidden(format!("your role may not {what}"))) }
}

/// Offline for more than an hour, or reporting faults.
fn is_problem(r: &ResourceWithStatus, now: i64) -> bool {
    !r.faults.is_empty() || r.state == "fault" || (r.online == Some(false) && r.last_seen_ms.is_some_and(|t| now - t > 3_600_000))
}

impl App {
    /// Devices of the principal's region with their status, a page of them.
    pub async fn terminals(&self, p: &Principal, limit: i64, offset: i64) -> Result<Vec<ResourceWithStatus>> {
        Ok(self.store.resources_in(access::region(p)?, &[], false, limit, offset).await?)
    }

    /// Every device of the principal's region (or only those with a problem), with the counts.
    pub async fn terminal_list(&self, p: &Principal, problems_only: bool) -> Result<TerminalList> {
        let mut rows = self.terminals(p, 1_000_000, 0).await?;
        if problems_only {
            let now = cuncun_domain::time::now_ms();
            rows.retain(|r| is_problem(r, now));
        }
        let count = |online: Option<bool>| rows.iter().filter(|r| r.online == online).count();
        let (online, offline, never) = (count(Some(true)), count(Some(false)), count(None));
        Ok(TerminalList { rows, online, offline, never })
    }

    /// Every device of the principal's region for a workbook. Audited.
    pub async fn export_terminals(&self, p: &Principal) -> Result<Vec<ResourceWithStatus>> {
        let rows = self.terminals(p, 1_000_000, 0).await?;
        let after = format!("{{\"rows\":{}}}", rows.len());
        self.store.audit(&access::actor(p), "resource.export", "eb_resource", access::region(p)?.short(), "", &after).await?;
        Ok(rows)
    }

    /// A device inside the principal's region.
    async fn scoped_resource(&self, p: &Principal, id: i64) -> Result<Resource> {
        let r = self.store.resource(id).await?.ok_or_else(|| Error::NotFound(format!("resource {id}")))?;
        access::in_scope(p, &r.region_code)?;
        Ok(r)
    }

    /// A device's status, connections and broadcasts (the latest 100 of each).
    pub async fn terminal(&self, p: &Principal, id: i64) -> Result<TerminalView> {
        let res = self.scoped_resource(p, id).await?;
        let status = self
            .store
            .resources_in(&res.region_code, &[res.kind], true, 100_000, 0)
            .await?
            .into_iter()
            .find(|x| x.resource.id == id)
            .ok_or_else(|| Error::NotFound(format!("resource {id}")))?;
        let connections = self.store.connections(id, 100).await?;
        let logs = self.store.broadcast_logs(id, 100).await?;
        Ok(TerminalView { status, connections, logs })
    }

    /// Registers a device; returns it with its one-time secret.
    pub async fn register_device(&self, p: &Principal, d: &DeviceInput, keys: &dyn DeviceKeys) -> Result<Keyed> {
        editor(p, "register devices")?;
        let kind = ResourceKind::parse(&d.kind).ok_or_else(|| Error::BadRequest(format!("kind {:?} is not a resource kind", d.kind)))?;
        let region = RegionCode::parse(&d.region_code).map_err(|e| Error::BadRequest(format!("region_code: {e}")))?;
        access::in_scope(p, &region)?;
        self.store.region(&region).await?.ok_or_else(|| Error::BadRequest(format!("region {region} is not loaded")))?;
        if d.name.trim().is_empty() {
            return Err(Error::BadRequest("name: required".into()));
        }
        if d.lon.is_some_and(|v| !(-180.0..=180.0).contains(&v)) || d.lat.is_some_and(|v| !(-90.0..=90.0).contains(&v)) {
            return Err(Error::BadRequest("lon/lat out of range".into()));
        }
        let (secret, secret_hash) = keys.new_secret();
        let nr = NewResource {
            kind,
            region_code: region,
            name: d.name.clone(),
            vendor: d.vendor.clone(),
            model: d.model.clone(),
            lon: d.lon,
            lat: d.lat,
            install_date: d.install_date.clone(),
            ebrid: None,
            secret_hash,
        };
        let resource = self.store.add_resource(&nr, &access::actor(p)).await?;
        keys.changed(&resource.ebrid, Some((&nr.secret_hash, resource.region_code.as_str())));
        Ok(Keyed { resource, secret })
    }

    /// A device the principal may change.
    async fn editable_resource(&self, p: &Principal, id: i64) -> Result<Resource> {
        editor(p, "change devices")?;
        self.scoped_resource(p, id).await
    }

    /// Retires a device: it can no longer connect (its connection is closed at once).
    pub async fn retire_device(&self, p: &Principal, id: i64, keys: &dyn DeviceKeys) -> Result<Resource> {
        let r = self.editable_resource(p, id).await?;
        let out = self.store.retire_resource(id, &access::actor(p)).await?;
        keys.changed(&r.ebrid, None);
        Ok(out)
    }

    /// Gives a device a new secret (the old one stops working at once); returns it, shown once.
    pub async fn reset_device_secret(&self, p: &Principal, id: i64, keys: &dyn DeviceKeys) -> Result<Keyed> {
        let resource = self.editable_resource(p, id).await?;
        let (secret, hash) = keys.new_secret();
        self.store.set_secret_hashes(&[(resource.ebrid.clone(), hash.clone())], &access::actor(p)).await?;
        keys.changed(&resource.ebrid, Some((&hash, resource.region_code.as_str())));
        Ok(Keyed { resource, secret })
    }

    /// Imports devices a sheet gave (its valid rows, by row number; their `secret_hash` is
    /// ignored, each device gets a new secret). Checks scope, regions and existing codes, then
    /// writes all rows in one transaction, or nothing when any row is bad (`sheet_errors`: the
    /// sheet's parser found some) unless `valid_rows_only` was chosen explicitly.
    pub async fn import_devices(
        &self,
        p: &Principal,
        rows: &[(u32, NewResource)],
        sheet_errors: bool,
        valid_rows_only: bool,
        keys: &dyn DeviceKeys,
    ) -> Result<DeviceImport> {
        editor(p, "register devices")?;
        let mut out = DeviceImport::default();
        let problem = |row: u32, column, zh, en| RowProblem { row, column, zh, en };
        for (row, r) in rows {
            let code = &r.region_code;
            if !access::sees(p, code) {
                out.problems.push(problem(*row, "region_code", format!("区划 {code} 不在您的管辖范围内"), format!("region {code} is outside your region")));
            } else if self.store.region(code).await?.is_none() {
                out.problems.push(problem(*row, "region_code", format!("区划 {code} 尚未导入"), format!("region {code} is not loaded")));
            }
            if let Some(e) = &r.ebrid {
                if self.store.resource_by_ebrid(e.as_str()).await?.is_some() {
                    out.problems.push(problem(*row, "resource_code", format!("资源编码 {e} 已登记"), format!("resource code {e} is already registered")));
                }
            }
        }
        if (sheet_errors || !out.problems.is_empty()) && !valid_rows_only {
            return Ok(out);
        }
        let mut secrets = Vec::new();
        let good: Vec<NewResource> = rows
            .iter()
            .filter(|(row, _)| !out.problems.iter().any(|x| x.row == *row))
            .map(|(_, r)| {
                let (secret, secret_hash) = keys.new_secret();
                secrets.push(secret);
                NewResource { secret_hash, ..r.clone() }
            })
            .collect();
        if good.is_empty() {
            return Ok(out);
        }
        let codes = self.store.insert_resources(&good, &access::actor(p)).await?;
        for ((r, secret), ebrid) in good.iter().zip(secrets).zip(codes) {
            keys.changed(&ebrid, Some((&r.secret_hash, r.region_code.as_str())));
            out.created.push(Imported { ebrid, name: r.name.clone(), region_code: r.region_code.clone(), secret });
        }
        Ok(out)
    }

    /// The online rate of a Beijing calendar day "YYYY-MM-DD" (default today) in the principal's
    /// region: overall, per child region, and the devices below 90 %.
    pub async fn online_day(&self, p: &Principal, day: Option<&str>) -> Result<OnlineDay> {
        let scope = access::region(p)?;
        let now = cuncun_domain::time::now_ms();
        let day = day.filter(|d| !d.is_empty()).map(str::to_string).unwrap_or_else(|| cuncun_domain::time::today(now));
        let (start, end) = cuncun_domain::time::day_bounds(&day).map_err(|_| Error::BadRequest(format!("day {day:?}: expected YYYY-MM-DD")))?;
        let history = self.store.online_history(scope, start, end).await?;
        let children = self.store.children(scope).await?;
        let mut per_child: Vec<(i64, i64, usize)> = vec![(0, 0, 0); children.len()];
        let (mut on_all, mut exp_all) = (0i64, 0i64);
        let mut worst = Vec::new();
        for h in &history {
            let (on, exp) = cuncun_domain::online::terminal_day(&h.intervals, h.created_ms, h.retired_ms, start, end, now, ONLINE_GRACE_MS);
            on_all += on;
            exp_all += exp;
            if let Some(i) = children.iter().position(|ch| h.region_code.starts_with(ch.region.code.short())) {
                per_child[i].0 += on;
                per_child[i].1 += exp;
                per_child[i].2 += 1;
            }
            let rate = cuncun_domain::online::rate(on, exp);
            if rate.is_some_and(|r| r < 90.0) {
                worst.push(RegionRate { code: h.ebrid.clone(), name: h.name.clone(), terminals: 1, rate });
            }
        }
        worst.sort_by(|a, b| a.rate.unwrap_or(0.0).total_cmp(&b.rate.unwrap_or(0.0)));
        worst.truncate(200);
        let children = children
            .iter()
            .zip(per_child)
            .map(|(ch, (on, exp, n))| RegionRate {
                code: ch.region.code.short().to_string(),
                name: ch.region.name.clone(),
                terminals: n,
                rate: cuncun_domain::online::rate(on, exp),
            })
            .collect();
        Ok(OnlineDay { day, overall: cuncun_domain::online::rate(on_all, exp_all), terminals: history.len(), children, worst })
    }
}
