//! The supervisor: failed and panicking jobs are restarted with growing delays and their state is
//! visible; shutdown stops every job; the ticket jobs run against a real store.
#![allow(clippy::unwrap_used)]

use cuncun_app::jobs::{Backoff, JobName, JobState, JobStatus, SpawnError, Supervisor};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

fn policy() -> Backoff {
    Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        healthy_after: Duration::from_secs(30),
        jitter: 0.2,
        give_up_after: None,
    }
}

type Starts = Arc<parking_lot::Mutex<Vec<Instant>>>;

async fn until(what: &str, jobs: &Supervisor, f: impl Fn(&[JobState]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !f(&jobs.snapshot()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:#?}", jobs.snapshot());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn gaps(starts: &Starts) -> Vec<Duration> {
    let s = starts.lock();
    s.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn failing_and_panicking_jobs_restart_with_growing_delays_and_show_their_error() {
    let jobs = Supervisor::new(policy());
    let (panics, errs): (Starts, Starts) = Default::default();
    let p = panics.clone();
    jobs.spawn(JobName::Dispatch, move |_ctx| {
        p.lock().push(Instant::now());
        async move { panic!("boom in dispatch") }
    })
    .unwrap();
    let e = errs.clone();
    jobs.spawn(JobName::Ingest, move |_ctx| {
        e.lock().push(Instant::now());
        async move { Err(anyhow::anyhow!("database gone")) }
    })
    .unwrap();
    until("five starts each", &jobs, |s| s.iter().all(|j| j.restarts >= 4)).await;

    for starts in [&panics, &errs] {
        let g = gaps(starts);
        assert!(g.len() >= 4, "{g:?}");
        // 100 ms doubling (less up to 20 % jitter), capped at 2 s.
        for w in g.windows(2).take(4) {
            assert!(w[1] > w[0], "each wait is longer than the last: {g:?}");
        }
        assert!(g[0] >= Duration::from_millis(80) && g[0] <= Duration::from_millis(101), "{g:?}");
        assert!(g.iter().all(|d| *d <= Duration::from_millis(2_001)), "capped: {g:?}");
    }
    let d = jobs.state(JobName::Dispatch).unwrap();
    assert!(d.critical && d.restarts >= 4 && d.consecutive_failures >= 5, "{d:?}");
    assert_eq!(d.last_error.as_deref(), Some("panicked: boom in dispatch"));
    assert!(matches!(d.status, JobStatus::BackingOff | JobStatus::Running), "{d:?}");
    let i = jobs.state(JobName::Ingest).unwrap();
    assert_eq!(i.last_error.as_deref(), Some("database gone"));
    assert!(i.last_error_ms.is_some() && i.last_start_ms.is_some() && i.last_success_ms.is_none());
    // Both are failing, so neither critical job counts as running.
    until("both backing off", &jobs, |s| s.iter().all(|j| j.status == JobStatus::BackingOff)).await;
    let b = jobs.state(JobName::Ingest).unwrap();
    assert!(b.backoff_ms.is_some() && b.next_start_ms.is_some(), "{b:?}");
    assert_eq!(jobs.critical_not_running().len(), 2);

    assert!(jobs.shutdown(Duration::from_secs(5)).await.is_empty());
    assert!(jobs.snapshot().iter().all(|j| j.status == JobStatus::Stopped), "{:#?}", jobs.snapshot());
}

#[tokio::test(start_paused = true)]
async fn a_job_that_recovers_runs_and_reports_success_and_a_healthy_run_resets_the_backoff() {
    let jobs = Supervisor::new(policy());
    let starts: Starts = Default::default();
    let s = starts.clone();
    jobs.spawn(JobName::Resend, move |ctx| {
        let n = {
            let mut s = s.lock();
            s.push(Instant::now());
            s.len()
        };
        async move {
            match n {
                1..=3 => anyhow::bail!("failure {n}"),
                // Healthy for longer than `healthy_after`, reporting rounds, then a failure.
                4 => {
                    for _ in 0..40 {
                        ctx.success();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    anyhow::bail!("failure after a healthy run")
                }
                _ => {
                    ctx.success();
                    ctx.error("a round failed; retried by the job itself");
                    ctx.cancelled().await;
                    Ok(())
                }
            }
        }
    })
    .unwrap();
    until("the fifth start", &jobs, |s| s[0].restarts == 4 && s[0].status == JobStatus::Running).await;
    let g = gaps(&starts);
    // Waits after failures 1, 2, 3: growing; after the healthy run: back to the first wait.
    assert!(g[1] > g[0] && g[2] > g[1], "{g:?}");
    let after_healthy = g[3] - Duration::from_secs(40);
    assert!(after_healthy <= Duration::from_millis(101), "{g:?}");
    let st = jobs.state(JobName::Resend).unwrap();
    assert_eq!(st.consecutive_failures, 1, "{st:?}");
    assert!(st.last_success_ms.is_some(), "{st:?}");
    until("the reported error", &jobs, |s| s[0].last_error.as_deref() == Some("a round failed; retried by the job itself")).await;
    assert_eq!(jobs.state(JobName::Resend).unwrap().status, JobStatus::Running, "a reported error does not restart");
    assert!(jobs.critical_not_running().is_empty());
    assert!(jobs.shutdown(Duration::from_secs(5)).await.is_empty());
    assert_eq!(jobs.state(JobName::Resend).unwrap().status, JobStatus::Stopped);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_every_job_and_aborts_one_that_does_not_listen() {
    let jobs = Supervisor::new(Backoff { initial: Duration::from_secs(3600), ..policy() });
    // Waits for the signal.
    jobs.spawn(JobName::Dispatch, |ctx| async move {
        ctx.success();
        ctx.cancelled().await;
        Ok(())
    })
    .unwrap();
    // A periodic job.
    jobs.spawn(JobName::Escalation, |ctx| async move {
        cuncun_app::jobs::every(&ctx, Duration::from_millis(50), || async { Ok(()) }).await
    })
    .unwrap();
    // Backing off for an hour.
    jobs.spawn(JobName::Resend, |_| async { anyhow::bail!("always fails") }).unwrap();
    // Never looks at the signal.
    jobs.spawn(JobName::InterchangeSender, |_| async {
        std::future::pending::<()>().await;
        Ok(())
    })
    .unwrap();
    // Finished at once: stopped, and not restarted.
    jobs.spawn(JobName::InterchangeLink, |_| async { Ok(()) }).unwrap();
    assert_eq!(jobs.spawn(JobName::Dispatch, |_| async { Ok(()) }), Err(SpawnError::AlreadyRegistered(JobName::Dispatch)));

    until("everything started", &jobs, |s| {
        s.iter().find(|j| j.name == JobName::Escalation).is_some_and(|j| j.last_success_ms.is_some())
            && s.iter().find(|j| j.name == JobName::Resend).is_some_and(|j| j.status == JobStatus::BackingOff)
            && s.iter().find(|j| j.name == JobName::InterchangeLink).is_some_and(|j| j.status == JobStatus::Stopped)
    })
    .await;
    let names: Vec<JobName> = jobs.snapshot().iter().map(|j| j.name).collect();
    assert_eq!(
        names,
        [JobName::Dispatch, JobName::Escalation, JobName::Resend, JobName::InterchangeSender, JobName::InterchangeLink]
    );

    let t = Instant::now();
    let aborted = jobs.shutdown(Duration::from_secs(2)).await;
    assert_eq!(aborted, [JobName::InterchangeSender]);
    assert!(t.elapsed() < Duration::from_secs(4), "waited for the timeout, not for the hour of backoff");
    for j in jobs.snapshot() {
        assert_eq!(j.status, JobStatus::Stopped, "{j:?}");
        assert_eq!(j.restarts, 0, "{j:?}");
    }
    assert!(jobs.state(JobName::InterchangeSender).unwrap().last_error.unwrap().contains("aborted"));
    assert!(jobs.is_shutting_down());
    assert_eq!(jobs.spawn(JobName::Ingest, |_| async { Ok(()) }), Err(SpawnError::ShuttingDown(JobName::Ingest)));
}

#[tokio::test(start_paused = true)]
async fn a_job_that_fails_during_shutdown_is_failed_not_restarted() {
    let jobs = Supervisor::new(Backoff { give_up_after: Some(2), ..policy() });
    jobs.spawn(JobName::Ingest, |ctx| async move {
        ctx.cancelled().await;
        anyhow::bail!("could not write the last batch")
    })
    .unwrap();
    jobs.spawn(JobName::Resend, |_| async { anyhow::bail!("broken") }).unwrap();
    until("the second gives up", &jobs, |s| s[1].status == JobStatus::Failed).await;
    assert_eq!(jobs.state(JobName::Resend).unwrap().restarts, 1, "gave up after two failures in a row");
    assert!(jobs.shutdown(Duration::from_secs(1)).await.is_empty());
    let i = jobs.state(JobName::Ingest).unwrap();
    assert_eq!((i.status, i.last_error.as_deref()), (JobStatus::Failed, Some("could not write the last batch")));
}

#[tokio::test]
async fn the_ticket_jobs_run_rounds_against_the_store() {
    let db = cuncun_store::testing::sqlite().await;
    let store: Arc<dyn cuncun_store::Store> = Arc::new(cuncun_store::SqlStore::connect(&db.url).await.unwrap());
    let jobs = Supervisor::default();
    let s = store.clone();
    jobs.spawn(JobName::Escalation, move |ctx| {
        cuncun_app::jobs::escalation(ctx, s.clone(), Duration::from_secs(20 * 3600), Duration::from_secs(60))
    })
    .unwrap();
    let s = store.clone();
    jobs.spawn(JobName::RepairLoop, move |ctx| {
        cuncun_app::jobs::repair_loop(ctx, s.clone(), Duration::from_secs(4 * 3600), Duration::from_secs(60))
    })
    .unwrap();
    until("a successful round of each", &jobs, |s| s.iter().all(|j| j.last_success_ms.is_some())).await;
    assert!(jobs.snapshot().iter().all(|j| j.status == JobStatus::Running && j.last_error.is_none()));
    assert!(jobs.shutdown(Duration::from_secs(5)).await.is_empty());
}
