//! The service network's two repair-ticket jobs. Both only need the store.

use super::{JobCtx, every};
use cuncun_store::{Store, now_ms};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

impl crate::App {
    /// Starts the service network's jobs on `jobs`, each once a minute: escalation of tickets
    /// `escalate_after` old, and repair tickets for terminals down `repair_after`.
    pub fn start_ticket_jobs(&self, jobs: &super::Supervisor, escalate_after: Duration, repair_after: Duration) -> anyhow::Result<()> {
        let minute = Duration::from_secs(60);
        let store = self.store.clone();
        jobs.spawn(super::JobName::Escalation, move |ctx| escalation(ctx, store.clone(), escalate_after, minute))?;
        let store = self.store.clone();
        jobs.spawn(super::JobName::RepairLoop, move |ctx| repair_loop(ctx, store.clone(), repair_after, minute))?;
        Ok(())
    }
}

/// Every `period` (the platform: a minute), escalates open tickets to the outlet head once they
/// are `after` old (the deadline is 24 hours; `WebOptions::escalate_after`, 20 hours by default).
pub async fn escalation(ctx: JobCtx, store: Arc<dyn Store>, after: Duration, period: Duration) -> anyhow::Result<()> {
    let (store, after_ms) = (&*store, after.as_millis() as i64);
    counted(&ctx, period, "escalated tickets near their deadline", move |now| async move {
        Ok(store.escalate_due(now, after_ms).await?.len())
    })
    .await
}

/// Every `period` (the platform: a minute), terminals offline or faulty for longer than `after`
/// get a repair ticket for their village's steward, once per outage (cuncun_store::report).
pub async fn repair_loop(ctx: JobCtx, store: Arc<dyn Store>, after: Duration, period: Duration) -> anyhow::Result<()> {
    let (store, after_ms) = (&*store, after.as_millis() as i64);
    counted(&ctx, period, "opened repair tickets for terminals that stayed down", move |now| async move {
        Ok(store.open_outage_tickets(now, after_ms).await?.len())
    })
    .await
}

/// [`every`] round given the time; logs `done` when a round changed tickets.
async fn counted<F, Fut>(ctx: &JobCtx, period: Duration, done: &'static str, mut round: F) -> anyhow::Result<()>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    every(ctx, period, move || {
        let n = round(now_ms());
        async move {
            let n = n.await?;
            if n > 0 {
                tracing::info!(tickets = n, "{done}");
            }
            Ok(())
        }
    })
    .await
}
