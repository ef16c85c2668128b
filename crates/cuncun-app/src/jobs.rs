//! One supervisor for background work.
//!
//! Every background task of the platform is a named job ([`JobName`]) run by a [`Supervisor`]. A
//! job is a factory closure that makes the job's future from a [`JobCtx`]; the supervisor spawns
//! that future and, when it returns an error or panics, records the error and starts a new one
//! after an exponential backoff with jitter and a cap ([`Backoff`]: 1 s doubling to 60 s, back to
//! 1 s after a minute of health). A job that returns `Ok(())` has finished and is not restarted.
//!
//! Jobs that loop tell the supervisor they are alive with [`JobCtx::success`], and report a
//! failure they retry by themselves (a database error in one round) with [`JobCtx::error`]; both
//! show in [`JobState`], which /readyz and /metrics read (crates/cuncun-web/src/metrics.rs).
//!
//! Shutdown ([`Supervisor::shutdown`]) raises one cancellation signal that every job observes
//! ([`JobCtx::cancelled`]), waits for the jobs up to a timeout and aborts what is still running.
//! Dropping the last handle of a supervisor raises the signal too.

mod tickets;

pub use tickets::{escalation, repair_loop};

use parking_lot::Mutex;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

/// The background jobs of the platform. The names (`as_str`) are stable: they are the `job` label
/// in /metrics and the names in /readyz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobName {
    /// The EB outbox worker: publishes approved messages and cancels (crates/cuncun-eb).
    Dispatch,
    /// Batched writes of terminal reports: status, heartbeats, receipts, logs (crates/cuncun-eb).
    Ingest,
    /// Sends a (re)connecting terminal every still-valid message it missed (crates/cuncun-eb).
    ReconnectCatchup,
    /// Re-sends to targets that have not receipted; closes messages at their end (crates/cuncun-eb).
    Resend,
    /// Escalates repair tickets near their 24-hour deadline ([`escalation`]).
    Escalation,
    /// Opens a repair ticket for a terminal that stayed down ([`repair_loop`]).
    RepairLoop,
    /// Polls the configured CAP feeds (crates/cuncun-web/src/cap_pages.rs, `poll_feeds`).
    CapFeedPoller,
    /// Posts the EBD outbox to peer platforms (crates/cuncun-interchange).
    InterchangeSender,
    /// ConnectionCheck and reports to the parent platform (crates/cuncun-interchange).
    InterchangeLink,
    /// Forwards messages to child platforms, reports message state up (crates/cuncun-interchange).
    InterchangeForward,
}

impl JobName {
    pub const ALL: [JobName; 10] = [
        JobName::Dispatch,
        JobName::Ingest,
        JobName::ReconnectCatchup,
        JobName::Resend,
        JobName::Escalation,
        JobName::RepairLoop,
        JobName::CapFeedPoller,
        JobName::InterchangeSender,
        JobName::InterchangeLink,
        JobName::InterchangeForward,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::Dispatch => "dispatch",
            JobName::Ingest => "ingest",
            JobName::ReconnectCatchup => "reconnect_catchup",
            JobName::Resend => "resend",
            JobName::Escalation => "escalation",
            JobName::RepairLoop => "repair_loop",
            JobName::CapFeedPoller => "cap_feed_poller",
            JobName::InterchangeSender => "interchange_sender",
            JobName::InterchangeLink => "interchange_link",
            JobName::InterchangeForward => "interchange_forward",
        }
    }

    /// Without this job warnings do not reach terminals: /readyz answers 503 while it is
    /// registered and not running.
    pub fn is_critical(self) -> bool {
        matches!(self, JobName::Dispatch | JobName::Ingest)
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Its future is running.
    Running,
    /// It failed (error or panic) and waits to be started again.
    BackingOff,
    /// It finished (returned `Ok`), or was stopped at shutdown.
    Stopped,
    /// It failed and will not be started again (it failed during shutdown, or gave up after
    /// [`Backoff::give_up_after`] failures in a row).
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [JobStatus::Running, JobStatus::BackingOff, JobStatus::Stopped, JobStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::BackingOff => "backing_off",
            JobStatus::Stopped => "stopped",
            JobStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the supervisor knows of one job. Times are UTC epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobState {
    pub name: JobName,
    pub critical: bool,
    pub status: JobStatus,
    /// Times the job was started again after a failure.
    pub restarts: u64,
    /// Failures since the job last ran for [`Backoff::healthy_after`].
    pub consecutive_failures: u32,
    /// The last failure: an error the job returned or reported, or its panic.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    pub last_start_ms: Option<i64>,
    /// The last time the job said a round of its work succeeded.
    pub last_success_ms: Option<i64>,
    /// While backing off: the wait chosen and when the job starts again.
    pub backoff_ms: Option<u64>,
    pub next_start_ms: Option<i64>,
}

impl JobState {
    fn new(name: JobName) -> Self {
        JobState {
            name,
            critical: name.is_critical(),
            status: JobStatus::Running,
            restarts: 0,
            consecutive_failures: 0,
            last_error: None,
            last_error_ms: None,
            last_start_ms: None,
            last_success_ms: None,
            backoff_ms: None,
            next_start_ms: None,
        }
    }
}

/// The restart policy: the n-th failure in a row waits `initial * 2^(n-1)`, at most `max`, less a
/// random part of up to `jitter` of it (so that jobs failing together do not restart together).
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// A run at least this long counts as healthy: the next failure waits `initial` again.
    pub healthy_after: Duration,
    /// Fraction (0 to 0.5) of the wait that may be taken off at random.
    pub jitter: f64,
    /// Stop restarting after this many failures in a row (`None`: never give up).
    pub give_up_after: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
            jitter: 0.2,
            give_up_after: None,
        }
    }
}

impl Backoff {
    /// The wait before restarting after `failures` failures in a row (1 = the first), with `unit`
    /// a random number in [0, 1).
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let base = self.initial.saturating_mul(1u32 << doublings).min(self.max);
        let jitter = self.jitter.clamp(0.0, 0.5) * unit.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter)
    }
}

/// A random number in [0, 1) from the standard library's randomly seeded hasher.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Why a job could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpawnError {
    #[error("job {0} is already registered")]
    AlreadyRegistered(JobName),
    #[error("job {0} not started: the supervisor is shutting down")]
    ShuttingDown(JobName),
}

/// The handle a job's future gets: the cancellation signal, and where it reports progress.
#[derive(Clone)]
pub struct JobCtx {
    slot: Arc<Slot>,
    cancel: watch::Receiver<bool>,
}

impl JobCtx {
    pub fn name(&self) -> JobName {
        self.slot.name
    }

    /// Whether shutdown has begun.
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Resolves once shutdown has begun (at once if it has). A job returns `Ok(())` soon after.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.cancel.clone();
        async move {
            // An error means the supervisor is gone: that is a shutdown too.
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// A round of the job's work succeeded.
    pub fn success(&self) {
        self.slot.update(|s| s.last_success_ms = Some(now_ms()));
    }

    /// A round failed and the job will try again by itself: shown as its last error, no restart.
    pub fn error(&self, e: impl fmt::Display) {
        let text = e.to_string();
        self.slot.update(|s| {
            s.last_error = Some(text);
            s.last_error_ms = Some(now_ms());
        });
    }

    /// [`success`](Self::success) or [`error`](Self::error): what workers in crates that do not
    /// know this type are given, as `&|r| ctx.report(r)`.
    pub fn report(&self, r: Result<(), String>) {
        match r {
            Ok(()) => self.success(),
            Err(e) => self.error(e),
        }
    }
}

/// Runs `round` every `period` (the first at once) until shutdown: a round that fails is logged and
/// shown as the job's last error, and tried again at the next tick. A round in progress when
/// shutdown begins is dropped (a transaction in it rolls back).
pub async fn every<F, Fut>(ctx: &JobCtx, period: Duration, mut round: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = ctx.cancelled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tick.tick() => {}
        }
        let r = tokio::select! {
            _ = &mut stop => return Ok(()),
            r = round() => r,
        };
        match r {
            Ok(()) => ctx.success(),
            Err(e) => {
                tracing::warn!(job = %ctx.name(), error = %format!("{e:#}"), "job round failed; retried at the next tick");
                ctx.error(format!("{e:#}"));
            }
        }
    }
}

struct Slot {
    name: JobName,
    state: Mutex<JobState>,
    /// The job's current future, to abort it when it does not stop in time.
    current: Mutex<Option<AbortHandle>>,
    /// The task that runs and restarts the job.
    monitor: Mutex<Option<JoinHandle<()>>>,
}

impl Slot {
    fn update(&self, f: impl FnOnce(&mut JobState)) {
        f(&mut self.state.lock());
    }
}

struct Inner {
    policy: Backoff,
    cancel: watch::Sender<bool>,
    jobs: Mutex<Vec<Arc<Slot>>>,
}

/// Owns the named background jobs: runs them, restarts them when they fail, keeps their state and
/// stops them on shutdown. See the module documentation.
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new(Backoff::default())
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor").field("jobs", &self.snapshot()).finish()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.inner.cancel.send_replace(true);
    }
}

impl Supervisor {
    pub fn new(policy: Backoff) -> Self {
        let (cancel, _) = watch::channel(false);
        Supervisor { inner: Arc::new(Inner { policy, cancel, jobs: Mutex::new(Vec::new()) }) }
    }

    /// Registers a job and starts it at once (inside a tokio runtime). `factory` makes a new future
    /// for every start; state that must outlive a restart belongs in what it captures.
    pub fn spawn<F, Fut>(&self, name: JobName, factory: F) -> Result<(), SpawnError>
    where
        F: Fn(JobCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let mut jobs = self.inner.jobs.lock();
        if *self.inner.cancel.borrow() {
            return Err(SpawnError::ShuttingDown(name));
        }
        if jobs.iter().any(|s| s.name == name) {
            return Err(SpawnError::AlreadyRegistered(name));
        }
        let slot = Arc::new(Slot {
            name,
            state: Mutex::new(JobState::new(name)),
            current: Mutex::new(None),
            monitor: Mutex::new(None),
        });
        jobs.push(slot.clone());
        let monitor = tokio::spawn(run_job(self.inner.clone(), slot.clone(), Arc::new(factory)));
        *slot.monitor.lock() = Some(monitor);
        Ok(())
    }

    /// Every registered job's state, in the order they were registered.
    pub fn snapshot(&self) -> Vec<JobState> {
        self.inner.jobs.lock().iter().map(|s| s.state.lock().clone()).collect()
    }

    /// One job's state, if registered.
    pub fn state(&self, name: JobName) -> Option<JobState> {
        self.inner.jobs.lock().iter().find(|s| s.name == name).map(|s| s.state.lock().clone())
    }

    /// Registered critical jobs that are not running: while there is one, the platform is not ready.
    pub fn critical_not_running(&self) -> Vec<JobState> {
        self.snapshot().into_iter().filter(|j| j.critical && j.status != JobStatus::Running).collect()
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.inner.cancel.borrow()
    }

    /// Raises the cancellation signal, waits up to `timeout` for every job to return, then aborts
    /// those still running. Returns the jobs that had to be aborted. No job is started after.
    pub async fn shutdown(&self, timeout: Duration) -> Vec<JobName> {
        self.inner.cancel.send_replace(true);
        let deadline = Instant::now() + timeout;
        let slots: Vec<Arc<Slot>> = self.inner.jobs.lock().clone();
        let mut aborted = Vec::new();
        for slot in slots {
            let Some(mut monitor) = slot.monitor.lock().take() else { continue };
            if tokio::time::timeout_at(deadline, &mut monitor).await.is_ok() {
                continue;
            }
            tracing::warn!(job = %slot.name, "job did not stop within {timeout:?} of shutdown; aborted");
            if let Some(h) = slot.current.lock().take() {
                h.abort();
            }
            // The monitor sees the abort and records the job as stopped.
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut monitor).await;
            monitor.abort();
            slot.update(|s| {
                s.status = JobStatus::Stopped;
                s.last_error = Some(format!("did not stop within {timeout:?} of shutdown; aborted"));
                s.last_error_ms = Some(now_ms());
            });
            aborted.push(slot.name);
        }
        aborted
    }
}

/// The text of a panic's payload.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => match p.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "(a panic without a message)".into(),
        },
    }
}

/// Runs one job: starts its future, and on an error or a panic waits out the backoff and starts
/// it again, until it finishes or shutdown begins.
async fn run_job<F, Fut>(inner: Arc<Inner>, slot: Arc<Slot>, factory: Arc<F>)
where
    F: Fn(JobCtx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut cancel = inner.cancel.subscribe();
    let mut failures: u32 = 0;
    loop {
        if *cancel.borrow() {
            slot.update(|s| s.status = JobStatus::Stopped);
            return;
        }
        slot.update(|s| {
            s.status = JobStatus::Running;
            s.last_start_ms = Some(now_ms());
            s.backoff_ms = None;
            s.next_start_ms = None;
        });
        let started = Instant::now();
        let ctx = JobCtx { slot: slot.clone(), cancel: cancel.clone() };
        let f = factory.clone();
        // The factory is called inside the task, so that a panic there is caught like any other.
        let task = tokio::spawn(async move { f(ctx).await });
        *slot.current.lock() = Some(task.abort_handle());
        let outcome = task.await;
        *slot.current.lock() = None;
        let shutting_down = *cancel.borrow();
        let error = match outcome {
            Ok(Ok(())) => {
                if !shutting_down {
                    tracing::info!(job = %slot.name, "job finished");
                }
                slot.update(|s| s.status = JobStatus::Stopped);
                return;
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
            Err(_) => {
                slot.update(|s| s.status = JobStatus::Stopped);
                return;
            }
        };
        if started.elapsed() >= inner.policy.healthy_after {
            failures = 0;
        }
        failures = failures.saturating_add(1);
        let give_up = shutting_down || inner.policy.give_up_after.is_some_and(|n| failures >= n);
        let delay = inner.policy.delay(failures, random_unit());
        if give_up {
            tracing::error!(job = %slot.name, error = %error, failures, "job failed; not restarted");
        } else {
            tracing::error!(job = %slot.name, error = %error, failures, "job failed; restarting in {delay:?}");
        }
        slot.update(|s| {
            s.last_error = Some(error);
            s.last_error_ms = Some(now_ms());
            s.consecutive_failures = failures;
            if give_up {
                s.status = JobStatus::Failed;
            } else {
                s.status = JobStatus::BackingOff;
                s.backoff_ms = Some(delay.as_millis() as u64);
                s.next_start_ms = Some(now_ms() + delay.as_millis() as i64);
            }
        });
        if give_up {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.wait_for(|c| *c) => {
                slot.update(|s| {
                    s.status = JobStatus::Stopped;
                    s.backoff_ms = None;
                    s.next_start_ms = None;
                });
                return;
            }
        }
        slot.update(|s| s.restarts += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_to_the_cap_and_jitter_only_shortens() {
        let b = Backoff::default();
        let secs = |n| b.delay(n, 0.0).as_secs();
        assert_eq!([secs(1), secs(2), secs(3), secs(4), secs(7), secs(8), secs(100)], [1, 2, 4, 8, 60, 60, 60]);
        let j = b.delay(3, 0.999);
        assert!(j < Duration::from_secs(4) && j >= Duration::from_millis(3_200), "{j:?}");
        assert!(b.delay(2, 0.999) > b.delay(1, 0.0), "a doubled wait stays longer whatever the jitter");
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn names_are_stable_and_only_dispatch_and_ingest_are_critical() {
        let names: Vec<&str> = JobName::ALL.iter().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "dispatch",
                "ingest",
                "reconnect_catchup",
                "resend",
                "escalation",
                "repair_loop",
                "cap_feed_poller",
                "interchange_sender",
                "interchange_link",
                "interchange_forward"
            ]
        );
        for n in JobName::ALL {
            assert_eq!(serde_json::to_value(n).ok(), Some(serde_json::Value::from(n.as_str())));
        }
        let critical: Vec<JobName> = JobName::ALL.into_iter().filter(|n| n.is_critical()).collect();
        assert_eq!(critical, [JobName::Dispatch, JobName::Ingest]);
    }
}
