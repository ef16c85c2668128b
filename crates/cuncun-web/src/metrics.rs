//! Prometheus metrics for the operations listener.

use crate::AppState;
use axum::extract::{MatchedPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use cuncun_app::jobs::{JobStatus, Supervisor};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobStateLabels {
    pub job: String,
    pub state: String,
}

/// The background jobs' state, read from the supervisor at every scrape.
#[derive(Debug)]
struct JobsCollector(Arc<Supervisor>);

impl Collector for JobsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = Family::<JobStateLabels, Gauge>::default();
        let restarts = Family::<JobLabels, Counter>::default();
        let success = Family::<JobLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for j in self.0.snapshot() {
            let job = j.name.as_str().to_string();
            for s in JobStatus::ALL {
                state.get_or_create(&JobStateLabels { job: job.clone(), state: s.as_str().into() }).set(i64::from(j.status == s));
            }
            restarts.get_or_create(&JobLabels { job: job.clone() }).inc_by(j.restarts);
            success.get_or_create(&JobLabels { job }).set(j.last_success_ms.map_or(0.0, |ms| ms as f64 / 1000.0));
        }
        let help = "Background job state (1 for the job's current state: running, backing_off, stopped, failed)";
        state.encode(encoder.encode_descriptor("job_state", help, None, state.metric_type())?)?;
        let help = "Times a background job was restarted after an error or a panic";
        restarts.encode(encoder.encode_descriptor("job_restarts", help, None, restarts.metric_type())?)?;
        let help = "When a background job last reported a successful round (Unix seconds; 0: never)";
        success.encode(encoder.encode_descriptor("job_last_success_timestamp_seconds", help, None, success.metric_type())?)
    }
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_seconds: Histogram,
    pub logins: Family<LoginLabels, Counter>,
}

impl Metrics {
    /// The metrics, with the state of `jobs`' background jobs.
    pub fn with_jobs(jobs: Arc<Supervisor>) -> Self {
        let mut m = Metrics::new();
        m.registry.register_collector(Box::new(JobsCollector(jobs)));
        m
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cuncun");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_seconds =
            Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5].into_iter());
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route and status", http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency", http_seconds.clone());
        registry.register("logins", "Login attempts by outcome", logins.clone());
        Metrics { registry, http_requests, http_seconds, logins }
    }
    pub fn login(&self, outcome: &str) {
        self.logins.get_or_create(&LoginLabels { outcome: outcome.into() }).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

pub async fn track(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let start = std::time::Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let res = next.run(req).await;
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels { method, route, status: res.status().as_u16() })
        .inc();
    state.metrics.http_seconds.observe(start.elapsed().as_secs_f64());
    res
}

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &state.metrics.registry) {
        Ok(()) => {
            if let Some(eb) = &state.eb {
                // Counters kept by the gateway and the broadcast service, inserted before "# EOF".
                let g = eb.bus.stats();
                let s = &eb.stats;
                let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                let mut extra = String::new();
                for (name, kind, help, v) in [
                    ("cuncun_terminals_connected", "gauge", "Terminals connected to the gateway now", g.connected),
                    ("cuncun_terminal_connects", "counter", "Successful terminal CONNECTs", g.connects_total),
                    ("cuncun_terminal_refused_auth", "counter", "CONNECTs refused for bad credentials", g.refused_auth),
                    ("cuncun_terminal_refused_capacity", "counter", "CONNECTs refused at max_connections", g.refused_capacity),
                    ("cuncun_terminal_malformed_packets", "counter", "Connections closed for malformed packets", g.malformed),
                    ("cuncun_terminal_acl_denied", "counter", "Subscriptions and publishes refused by the ACL", g.acl_denied),
                    ("cuncun_eb_reports", "counter", "Reports received from terminals", ld(&s.reports)),
                    ("cuncun_eb_reports_malformed", "counter", "Terminal reports dropped as malformed", ld(&s.malformed)),
                    ("cuncun_eb_receipts", "counter", "Receipts received", ld(&s.receipts)),
                    ("cuncun_eb_heartbeats", "counter", "Heartbeats received", ld(&s.heartbeats)),
                    ("cuncun_eb_dispatched", "counter", "Messages dispatched", ld(&s.dispatched)),
                    ("cuncun_eb_resends", "counter", "Targeted re-sends", ld(&s.resends)),
                    ("cuncun_eb_flushes", "counter", "Batched writes of terminal reports", ld(&s.flushes)),
                ] {
                    let sample = if kind == "counter" { format!("{name}_total") } else { name.to_string() };
                    extra.push_str(&format!("# HELP {name} {help}.\n# TYPE {name} {kind}\n{sample} {v}\n"));
                }
                match out.rfind("# EOF") {
                    Some(i) => out.insert_str(i, &extra),
                    None => out.push_str(&extra),
                }
            }
            (
            StatusCode::OK,
            [("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            out,
        )
            .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// 200 when the database answers and every registered critical job (dispatch, ingest) is running;
/// 503 otherwise, naming what is wrong. The body (JSON) has every job's state either way.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    let database = match state.app().ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            problems.push("database unavailable".to_string());
            "unavailable"
        }
    };
    for j in state.jobs.critical_not_running() {
        let why = j.last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default();
        problems.push(format!("critical job {} is {}{why}", j.name, j.status));
    }
    let ready = problems.is_empty();
    if !ready {
        tracing::warn!(problems = %problems.join("; "), "not ready");
    }
    let body = serde_json::json!({
        "ready": ready,
        "database": database,
        "problems": problems,
        "jobs": state.jobs.snapshot(),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}
