//! `POST /ebd` is open to anyone: bodies are bounded before they are read, at most a few are read
//! at once, and every refusal is JSON in the platform's error shape. Each test here is an
//! exploit that once took the process's memory (issue 14): exploit in, refusal out, still alive.
#![allow(clippy::unwrap_used)]

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use cuncun_domain::RegionCode;
use cuncun_domain::eb::{Ebrid, ResourceKind};
use cuncun_ebd::{SoftwareSigner, TrustList};
use cuncun_interchange::{Interchange, InterchangeConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tower::ServiceExt;

const MIB: usize = 1 << 20;

async fn intake(max_tar: u64, db: &cuncun_store::testing::TestDb) -> (axum::Router, InterchangeConfig) {
    let store = Arc::new(cuncun_store::SqlStore::connect(&db.url).await.unwrap());
    let region = RegionCode::parse("500236").unwrap();
    let own = Ebrid::generate(&region, ResourceKind::Platform, 1).unwrap();
    let mut cfg = InterchangeConfig::new(own.clone(), "http://127.0.0.1:1/ebd".into(), region);
    cfg.limits.max_tar_bytes = max_tar;
    let signer = SoftwareSigner::from_seed(3, own).unwrap();
    let ix = Interchange::new(store, Arc::new(signer), TrustList::default(), cfg.clone(), Box::new(|| {})).unwrap();
    (cuncun_interchange::routes(ix), cfg)
}

/// A body of `total` zero bytes in 64 KiB chunks that counts what the server pulled from it; with
/// `stall`, it stops after the first chunk and never ends (a slow or stuck sender).
fn counted(total: usize, stall: bool, pulled: Arc<AtomicUsize>) -> Body {
    let chunk = 64 * 1024;
    let stream = zeros(total, chunk, stall, pulled);
    Body::from_stream(stream)
}

fn zeros(total: usize, chunk: usize, stall: bool, pulled: Arc<AtomicUsize>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(0usize, move |sent| {
        let pulled = pulled.clone();
        async move {
            if sent >= total {
                return None;
            }
            if stall && sent > 0 {
                std::future::pending::<()>().await;
            }
            let n = chunk.min(total - sent);
            pulled.fetch_add(n, Ordering::SeqCst);
            Some((Ok(Bytes::from(vec![0u8; n])), sent + n))
        }
    })
}

async fn json_error(res: axum::response::Response) -> (StatusCode, serde_json::Value, Option<String>) {
    let status = res.status();
    let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null), retry)
}

fn post(len: Option<usize>, content_type: &str, body: Body) -> Request<Body> {
    let mut r = Request::post("/ebd").header("content-type", content_type);
    if let Some(n) = len {
        r = r.header("content-length", n);
    }
    r.body(body).unwrap()
}

#[tokio::test]
async fn an_oversized_declared_body_is_refused_before_a_byte_is_read() {
    let db = cuncun_store::testing::sqlite().await;
    // The default limits: a 300 MiB package is over the 256 MiB tar limit.
    let (app, cfg) = intake(cuncun_ebd::Limits::default().max_tar_bytes, &db).await;
    assert_eq!(cfg.max_body_bytes(), (256 << 20) + (64 << 10));
    let pulled = Arc::new(AtomicUsize::new(0));
    let res = app.clone().oneshot(post(Some(300 * MIB), "application/x-tar", counted(300 * MIB, false, pulled.clone()))).await.unwrap();
    let (status, body, _) = json_error(res).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&cfg.max_body_bytes().to_string()), "{body}");
    assert_eq!(pulled.load(Ordering::SeqCst), 0, "nothing of the body was read");
    // Still answering: garbage of a sane size gets an EBDResponse package.
    let res = app.oneshot(post(Some(10), "application/x-tar", Body::from(vec![1u8; 10]))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-tar");
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit_raw_and_multipart() {
    let db = cuncun_store::testing::sqlite().await;
    let (app, cfg) = intake(MIB as u64, &db).await;
    let limit = cfg.max_body_bytes() as usize;
    // No Content-Length: the sender would go on for 64 MiB.
    let pulled = Arc::new(AtomicUsize::new(0));
    let res = app.clone().oneshot(post(None, "application/x-tar", counted(64 * MIB, false, pulled.clone()))).await.unwrap();
    let (status, body, _) = json_error(res).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(pulled.load(Ordering::SeqCst) <= limit + 64 * 1024, "read {} of a {limit}-byte limit", pulled.load(Ordering::SeqCst));
    // The same as a multipart file part.
    let head = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"EBDT_x.tar\"\r\n\r\n".to_vec();
    let pulled = Arc::new(AtomicUsize::new(0));
    let stream = futures::StreamExt::chain(
        futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(head))]),
        zeros(64 * MIB, 64 * 1024, false, pulled.clone()),
    );
    let res = app.oneshot(post(None, "multipart/form-data; boundary=XyZ", Body::from_stream(stream))).await.unwrap();
    let (status, body, _) = json_error(res).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(pulled.load(Ordering::SeqCst) <= limit + 64 * 1024, "read {} of a {limit}-byte limit", pulled.load(Ordering::SeqCst));
}

#[tokio::test]
async fn uploads_beyond_the_cap_wait_outside_with_retry_after() {
    let db = cuncun_store::testing::sqlite().await;
    let (app, cfg) = intake(8 * MIB as u64, &db).await;
    assert_eq!(cfg.max_concurrent_uploads, 2);
    // Two senders that start and then stall hold both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let pulled = Arc::new(AtomicUsize::new(0));
        let app = app.clone();
        let p = pulled.clone();
        held.push(tokio::spawn(async move { app.oneshot(post(Some(4 * MIB), "application/x-tar", counted(4 * MIB, true, p))).await }));
        while pulled.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    }
    let pulled = Arc::new(AtomicUsize::new(0));
    let res = app.clone().oneshot(post(Some(MIB), "application/x-tar", counted(MIB, false, pulled.clone()))).await.unwrap();
    let (status, body, retry) = json_error(res).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "busy");
    assert_eq!(retry.as_deref(), Some("5"));
    assert_eq!(pulled.load(Ordering::SeqCst), 0, "a refused upload is not read");
    // A sender that gives up frees its slot.
    held.pop().unwrap().abort();
    tokio::task::yield_now().await;
    let res = app.oneshot(post(Some(10), "application/x-tar", Body::from(vec![1u8; 10]))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Peak resident memory of this process since `reset_peak` (Linux).
fn peak_rss_mib() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() / 1024
}

fn rss_mib() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() / 1024
}

/// Ten senders at once over real HTTP, each with a body just under the package limit: two are
/// read (and refused as no package), eight are turned away, and the process's peak memory grows
/// by at most the two bodies. `CUNCUN_INTAKE_MIB=256` runs it at the default limit (the figure in
/// docs/SECURITY.md); the default run uses 24 MiB to stay quick.
#[tokio::test]
async fn ten_concurrent_large_uploads_stay_within_the_memory_ceiling() {
    let mib: usize = std::env::var("CUNCUN_INTAKE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    let db = cuncun_store::testing::sqlite().await;
    let (app, cfg) = intake((mib * MIB) as u64, &db).await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    // Forget what setting up took, where the kernel allows it (clear_refs 5 resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = rss_mib();
    let body_len = mib * MIB - MIB; // under the limit: only the cap stops these
    let mut senders = Vec::new();
    for _ in 0..10 {
        senders.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut r, mut w) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
            // The answer may come (503) before the body is sent: read it as it comes.
            let reader = tokio::spawn(async move {
                let (mut answer, mut buf) = (Vec::new(), [0u8; 4096]);
                while let Ok(n @ 1..) = r.read(&mut buf).await {
                    answer.extend_from_slice(&buf[..n]);
                }
                String::from_utf8_lossy(&answer[..answer.len().min(12)]).to_string()
            });
            let head = format!("POST /ebd HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n");
            w.write_all(head.as_bytes()).await.unwrap();
            let zeros = vec![0u8; 256 * 1024];
            let mut sent = 0;
            while sent < body_len {
                let n = zeros.len().min(body_len - sent);
                if w.write_all(&zeros[..n]).await.is_err() {
                    break; // answered and closed before the body was sent
                }
                sent += n;
            }
            reader.await.unwrap()
        }));
    }
    let mut statuses = Vec::new();
    for s in senders {
        statuses.push(s.await.unwrap());
    }
    let busy = statuses.iter().filter(|s| s.contains(" 503")).count();
    let read = statuses.iter().filter(|s| s.contains(" 200")).count();
    assert_eq!(busy + read, 10, "{statuses:?}");
    assert!(read >= cfg.max_concurrent_uploads && busy >= 1, "{statuses:?}");
    let grew = peak_rss_mib().saturating_sub(before);
    let ceiling = cfg.max_concurrent_uploads * mib + 48;
    eprintln!("ten {body_len}-byte uploads: {read} read, {busy} turned away; peak memory grew {grew} MiB (ceiling {ceiling} MiB)");
    assert!(grew <= ceiling, "peak memory grew {grew} MiB, more than {ceiling} MiB");
    // Still alive.
    let res = small_post(addr).await;
    assert!(res.contains(" 200"), "{res}");
}

/// A small POST over a fresh connection: the first line of the answer.
async fn small_post(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /ebd HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc").await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..answer.len().min(12)]).to_string()
}
