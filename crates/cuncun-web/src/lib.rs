//! HTTP for cuncun: server-rendered pages (askama, zh-CN first), a JSON API under /api/v1 with an
//! OpenAPI document, and a separate operations listener with /healthz, /readyz and /metrics.
//! Every handler that reads or changes data checks the caller's role and region scope.

pub mod api;
pub mod auth;
pub mod cap_feed;
pub mod cap_pages;
pub mod eb_pages;
pub mod error;
pub mod i18n;
pub mod interchange_pages;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod report_pages;
pub mod service_api;
pub mod service_pages;
pub mod session;

use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use error::AppError;

#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Mark cookies Secure (set when served over HTTPS, directly or behind a proxy).
    pub secure_cookies: bool,
    pub session_ttl: Duration,
    /// Failed logins allowed per username and per client address within `login_window`.
    pub login_per_user: usize,
    pub login_per_client: usize,
    pub login_window: Duration,
    /// Open tickets escalate to the outlet head this long after the request (deadline 24 h).
    pub escalate_after: Duration,
    /// A terminal offline or faulty this long gets a repair ticket for its steward (once per outage).
    pub repair_after: Duration,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            secure_cookies: false,
            session_ttl: Duration::from_secs(12 * 3600),
            login_per_user: 5,
            login_per_client: 30,
            login_window: Duration::from_secs(600),
            escalate_after: Duration::from_secs(20 * 3600),
            repair_after: Duration::from_secs(4 * 3600),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    /// The application layer with its storage; [`AppState::app`] adds this state's settings.
    base: cuncun_app::App,
    pub opts: Arc<WebOptions>,
    pub limiter: Arc<auth::LoginLimiter>,
    pub metrics: Arc<metrics::Metrics>,
    /// The background jobs, shown by /readyz and /metrics (whose registry reads this supervisor:
    /// register jobs on it rather than replacing it). `serve` adds the ticket jobs and stops all.
    pub jobs: Arc<cuncun_app::jobs::Supervisor>,
    /// The emergency broadcast service, when running (pages work without it, read-only).
    pub eb: Option<Arc<cuncun_eb::EbHandle>>,
    /// The region of this platform, for its resource code in message ids.
    pub platform_region: Option<cuncun_domain::RegionCode>,
    /// Audio store and text-to-speech; messages get spoken audio when present.
    pub media: Option<Arc<Media>>,
    /// Files produced for one user to download once (import reports, device secrets), 1 h.
    pub downloads: Arc<Downloads>,
    /// Rate limits of the public repair pages.
    pub public_limiter: Arc<service_pages::PublicLimiter>,
    /// Signs exported CAP alerts when a signing key is configured.
    pub cap_signer: Option<Arc<cuncun_cap::RsaSigner>>,
    /// The EBD interchange with parent and child platforms, when configured.
    pub interchange: Option<Arc<cuncun_interchange::Interchange>>,
    /// Per-platform workflow settings (drills self-approved or not, parent auto-dispatch).
    pub workflow: cuncun_app::WorkflowSettings,
}

/// A short-lived, per-user stash of generated files, so that a page can show a result and offer
/// its file (an error report, a list of new device secrets) without writing it to disk.
#[derive(Default)]
pub struct Downloads(std::sync::Mutex<std::collections::HashMap<String, Download>>);

pub struct Download {
    pub user_id: i64,
    pub created: std::time::Instant,
    pub file_name: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Downloads {
    pub fn put(&self, user_id: i64, file_name: String, content_type: &'static str, bytes: Vec<u8>) -> String {
        let token = auth::random_token();
        if let Ok(mut m) = self.0.lock() {
            m.retain(|_, d| d.created.elapsed() < std::time::Duration::from_secs(3600));
            m.insert(token.clone(), Download { user_id, created: std::time::Instant::now(), file_name, content_type, bytes });
        }
        token
    }
    /// The file, once, and only for the user it was made for.
    pub fn take(&self, user_id: i64, token: &str) -> Option<Download> {
        let mut m = self.0.lock().ok()?;
        match m.get(token) {
            Some(d) if d.user_id == user_id && d.created.elapsed() < std::time::Duration::from_secs(3600) => m.remove(token),
            _ => None,
        }
    }
}

pub struct Media {
    pub cache: cuncun_media::TtsCache,
    pub tts: Arc<dyn cuncun_media::Tts>,
}

impl AppState {
    pub fn new(base: cuncun_app::App, opts: WebOptions) -> Self {
        let limiter = auth::LoginLimiter::new(opts.login_window, opts.login_per_user, opts.login_per_client);
        let jobs = Arc::new(cuncun_app::jobs::Supervisor::default());
        AppState {
            base,
            opts: Arc::new(opts),
            limiter: Arc::new(limiter),
            metrics: Arc::new(metrics::Metrics::with_jobs(jobs.clone())),
            jobs,
            eb: None,
            platform_region: None,
            media: None,
            downloads: Arc::new(Downloads::default()),
            interchange: None,
            public_limiter: Arc::new(service_pages::PublicLimiter::default()),
            cap_signer: None,
            workflow: cuncun_app::WorkflowSettings::default(),
        }
    }

    /// The application layer over this state: every command goes through it.
    pub fn app(&self) -> cuncun_app::App {
        let mut app = self.base.clone();
        app.settings = self.workflow.clone();
        app.platform_region = self.platform_region.clone();
        app.media = self.media.clone().map(|m| Arc::new(WebMedia(m)) as Arc<dyn cuncun_app::Media>);
        app.waker = self.eb.clone().map(|eb| Arc::new(move || eb.kick()) as Arc<dyn Fn() + Send + Sync>);
        app
    }
}

/// Text-to-speech and recordings for the application layer.
struct WebMedia(Arc<Media>);

#[async_trait::async_trait]
impl cuncun_app::Media for WebMedia {
    async fn speak(&self, text: &str) -> Option<(String, i64)> {
        match self.0.cache.render(&*self.0.tts, text, cuncun_media::Lang::Zh, &cuncun_media::VoiceOpts::default()).await {
            Ok(r) => Some((r.sha256, r.size as i64)),
            Err(e) => {
                tracing::warn!(error = %e, "text-to-speech failed; sending text only");
                None
            }
        }
    }
    async fn store_audio(&self, bytes: Vec<u8>) -> cuncun_app::Result<(String, i64)> {
        if bytes.len() > cuncun_media::MAX_UPLOAD_BYTES {
            return Err(cuncun_app::Error::BadRequest(format!("audio: larger than {} MiB", cuncun_media::MAX_UPLOAD_BYTES >> 20)));
        }
        let kind = cuncun_media::sniff_audio(&bytes).map_err(|e| cuncun_app::Error::BadRequest(format!("audio: {e}")))?;
        let r = self.0.cache.store().put(bytes, kind).await.map_err(|e| cuncun_app::Error::Internal(e.to_string()))?;
        Ok((r.sha256, r.size as i64))
    }
}

/// The application: pages, API, OpenAPI and static assets.
pub fn router(state: AppState) -> Router {
    let media = state.media.as_ref().map(|m| cuncun_media::routes(m.cache.store().clone()));
    // Peers post EBDT packages here; they are authenticated by signature, not by a session.
    let ebd = state.interchange.clone().map(cuncun_interchange::routes);
    let app = Router::new()
        .merge(pages::routes())
        .merge(eb_pages::routes())
        .merge(service_pages::routes())
        .merge(interchange_pages::routes())
        .merge(report_pages::routes())
        .merge(cap_pages::routes())
        .nest("/api/v1", api::routes().merge(service_api::routes()).merge(cap_pages::api_routes()))
        .route("/openapi.json", axum::routing::get(api::openapi))
        // Declared so that the layers below (the error page among them) wrap it too.
        .fallback(|| async { AppError::NotFound("no such page".into()) })
        .layer(axum::middleware::from_fn(limits::bounds))
        .layer(axum::middleware::from_fn_with_state(state.clone(), error::html_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(axum::middleware::from_fn(security_headers))
        // `limits::bounds` bounds every body itself; axum's own 2 MiB default would cut uploads.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state);
    // Audio for terminals: public by content hash, outside the session-checked routes.
    let app = match media {
        Some(m) => app.merge(m),
        None => app,
    };
    match ebd {
        Some(r) => app.merge(r),
        None => app,
    }
}

/// Health, readiness and Prometheus metrics, for a separate (internal) listener.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(metrics::readyz))
        .route("/metrics", axum::routing::get(metrics::render))
        .with_state(state)
}

async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert("x-content-type-options", axum::http::HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", axum::http::HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", axum::http::HeaderValue::from_static("same-origin"));
    h.insert(
        "content-security-policy",
        axum::http::HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    res
}

/// Binds a listener, naming the setting when the address is taken or invalid.
pub async fn bind(setting: &str, addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|e| anyhow::anyhow!("{setting} = {addr:?} is not a valid address (expected e.g. 127.0.0.1:8080): {e}"))?;
    tokio::net::TcpListener::bind(parsed).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("{setting} = {addr}: the port is already in use by another program; stop it or choose another port")
        } else {
            anyhow::anyhow!("{setting} = {addr}: cannot listen: {e}")
        }
    })
}

/// Serves the app and the ops router until `shutdown` resolves, with the ticket jobs (escalation,
/// repair loop) added to `state.jobs`; then stops every job of `state.jobs`.
pub async fn serve(
    state: AppState,
    app: tokio::net::TcpListener,
    ops: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    start_ticket_jobs(&state)?;
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut rx1 = tx.subscribe();
    let mut rx2 = tx.subscribe();
    let app_srv = axum::serve(app, router(state.clone()).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = rx1.recv().await;
        });
    let state_jobs = state.jobs.clone();
    let ops_srv = axum::serve(ops, ops_router(state)).with_graceful_shutdown(async move {
        let _ = rx2.recv().await;
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let (a, b) = tokio::join!(app_srv.into_future(), ops_srv.into_future());
    let aborted = state_jobs.shutdown(Duration::from_secs(10)).await;
    if !aborted.is_empty() {
        tracing::warn!(jobs = ?aborted, "background jobs aborted at shutdown");
    }
    a?;
    b?;
    Ok(())
}

/// The service network's jobs: ticket escalation and the repair loop, each once a minute.
fn start_ticket_jobs(state: &AppState) -> anyhow::Result<()> {
    state.app().start_ticket_jobs(&state.jobs, state.opts.escalate_after, state.opts.repair_after)
}
