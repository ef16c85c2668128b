//! Background jobs on the operations listener: /readyz is 503 naming a critical job that is not
//! running, 200 with every job's state otherwise; /metrics has each job's state and restarts.

use crate::harness::{apps, client};
use cuncun_app::jobs::JobName;
use cuncun_store::Store;
use cuncun_web::{AppState, WebOptions};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

async fn readyz(ops: &str) -> (u16, Value) {
    let r = client().get(format!("{ops}/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn job<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["jobs"].as_array().unwrap().iter().find(|j| j["name"] == name).unwrap_or_else(|| panic!("no job {name} in {body}"))
}

async fn eventually(what: &str, state: &AppState, f: impl Fn(&AppState) -> bool) {
    for _ in 0..200 {
        if f(state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}: {:?}", state.jobs.snapshot());
}

#[tokio::test]
async fn readyz_is_503_while_a_critical_job_is_not_running_and_200_when_all_run() {
    let db = cuncun_store::testing::sqlite().await;
    let store: Arc<dyn Store> = Arc::new(cuncun_store::SqlStore::connect(&db.url).await.unwrap());
    let state = AppState::new(cuncun_app::App::new(store, Default::default()), WebOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, cuncun_web::ops_router(state.clone())).into_future());

    // Healthy: both critical jobs run; a failing job that is not critical does not matter.
    state
        .jobs
        .spawn(JobName::Dispatch, |ctx| async move {
            ctx.success();
            ctx.cancelled().await;
            Ok(())
        })
        .unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let (starts, r) = (Arc::new(AtomicUsize::new(0)), release.clone());
    let s = starts.clone();
    state
        .jobs
        .spawn(JobName::Ingest, move |ctx| {
            let (first, r) = (s.fetch_add(1, Ordering::SeqCst) == 0, r.clone());
            async move {
                if first {
                    tokio::select! {
                        _ = r.notified() => anyhow::bail!("the terminal bus closed its stream of device reports"),
                        _ = ctx.cancelled() => return Ok(()),
                    }
                }
                Ok(()) // the second run finishes at once: stopped
            }
        })
        .unwrap();
    state.jobs.spawn(JobName::CapFeedPoller, |_| async { anyhow::bail!("feed unreachable") }).unwrap();
    eventually("the dispatch job's first success", &state, |s| s.jobs.state(JobName::Dispatch).unwrap().last_success_ms.is_some()).await;
    let (code, body) = readyz(&ops).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["database"], "ok");
    assert_eq!(job(&body, "dispatch")["status"], "running");
    assert!(job(&body, "dispatch")["last_success_ms"].as_i64().is_some(), "{body}");
    assert_eq!(job(&body, "ingest")["status"], "running");
    assert_eq!(job(&body, "cap_feed_poller")["critical"], false);
    assert_eq!(job(&body, "cap_feed_poller")["last_error"], "feed unreachable");

    // The ingest job fails: backing off, not running, so not ready; the body says why.
    release.notify_one();
    eventually("ingest backing off", &state, |s| s.jobs.state(JobName::Ingest).unwrap().last_error.is_some()).await;
    let (code, body) = readyz(&ops).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["ready"], false);
    let problems = body["problems"].to_string();
    assert!(problems.contains("critical job ingest is backing_off (last error: the terminal bus closed"), "{body}");
    assert_eq!(job(&body, "dispatch")["status"], "running", "every job is listed: {body}");

    // Restarted after its backoff (1 s), it finishes at once: stopped, still not ready.
    eventually("ingest stopped", &state, |s| s.jobs.state(JobName::Ingest).unwrap().status == cuncun_app::jobs::JobStatus::Stopped).await;
    let (code, body) = readyz(&ops).await;
    assert_eq!(code, 503, "{body}");
    assert!(body["problems"].to_string().contains("critical job ingest is stopped"), "{body}");
    assert_eq!(job(&body, "ingest")["restarts"], 1);

    let m = client().get(format!("{ops}/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "cuncun_job_state{job=\"ingest\",state=\"stopped\"} 1",
        "cuncun_job_state{job=\"ingest\",state=\"running\"} 0",
        "cuncun_job_state{job=\"dispatch\",state=\"running\"} 1",
        "cuncun_job_restarts_total{job=\"ingest\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }
    let success = m.lines().find(|l| l.starts_with("cuncun_job_last_success_timestamp_seconds{job=\"dispatch\"}")).unwrap();
    let secs: f64 = success.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs > 1.7e9, "{success}");
    assert!(state.jobs.shutdown(Duration::from_secs(5)).await.is_empty());
}

#[tokio::test]
async fn a_served_platform_is_ready_and_shows_its_ticket_jobs() {
    for app in apps().await {
        let (code, body) = readyz(&app.ops).await;
        assert_eq!(code, 200, "{body}");
        for name in ["escalation", "repair_loop"] {
            assert_eq!(job(&body, name)["status"], "running", "{body}");
            assert_eq!(job(&body, name)["critical"], false);
        }
    }
}
