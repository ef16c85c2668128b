mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use cuncun_media::{MediaRef, MediaStore, routes, sniff_audio};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// 200 KB of non-repeating bytes behind a WAV header: several body chunks,
/// and any off-by-one in a range shows up as a content mismatch.
fn sample() -> Vec<u8> {
    let mut b = b"RIFF\0\0\0\0WAVEdata".to_vec();
    b.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    b
}

struct Fixture {
    _dir: common::TempDir,
    app: axum::Router,
    media: MediaRef,
    bytes: Vec<u8>,
}

async fn fixture() -> Fixture {
    let dir = common::TempDir::new("http");
    let store = Arc::new(MediaStore::new(dir.path()).expect("store"));
    let bytes = sample();
    let media = store.put(bytes.clone(), "audio/wav").await.expect("put");
    Fixture {
        app: routes(store),
        _dir: dir,
        media,
        bytes,
    }
}

async fn send(
    app: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (Response, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("body")
        .to_vec();
    (Response::from_parts(parts, Body::empty()), bytes)
}

fn h<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn full_get_has_integrity_headers() {
    let f = fixture().await;
    let uri = format!("/media/{}", f.media.sha256);
    let (r, body) = send(&f.app, Method::GET, &uri, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body, f.bytes);
    assert_eq!(h(&r, "content-type"), "audio/wav");
    assert_eq!(h(&r, "content-length"), f.bytes.len().to_string());
    assert_eq!(h(&r, "accept-ranges"), "bytes");
    assert_eq!(h(&r, "x-content-type-options"), "nosniff");

    let digest = Sha256::digest(&body);
    assert_eq!(h(&r, "etag"), format!("\"{}\"", hex::encode(digest)));
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    assert_eq!(h(&r, "repr-digest"), format!("sha-256=:{b64}:"));
    assert_eq!(h(&r, "digest"), format!("SHA-256={b64}"));
}

#[tokio::test]
async fn single_ranges_are_byte_exact() {
    let f = fixture().await;
    let uri = format!("/media/{}", f.media.sha256);
    let n = f.bytes.len();
    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=0-99".into(), 0, 99),
        ("bytes=65530-131080".into(), 65530, 131_080), // spans chunk boundaries
        (format!("bytes={}-", n - 10), n - 10, n - 1),
        ("bytes=150000-".into(), 150_000, n - 1),
        ("bytes=-500".into(), n - 500, n - 1),
        (format!("bytes=-{}", n * 2), 0, n - 1),
        (format!("bytes=100-{}", n * 5), 100, n - 1),
    ];
    for (range, start, end) in cases {
        let (r, body) = send(&f.app, Method::GET, &uri, &[("range", &range)]).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            h(&r, "content-range"),
            format!("bytes {start}-{end}/{n}"),
            "{range}"
        );
        assert_eq!(
            h(&r, "content-length"),
            (end - start + 1).to_string(),
            "{range}"
        );
        assert!(body == f.bytes[start..=end], "{range}: body differs");
        // The digest is of the whole file, also on partial responses.
        assert_eq!(h(&r, "etag"), format!("\"{}\"", f.media.sha256));
        assert!(h(&r, "repr-digest").starts_with("sha-256=:"));
    }
}

#[tokio::test]
async fn unsatisfiable_multi_and_conditional() {
    let f = fixture().await;
    let uri = format!("/media/{}", f.media.sha256);
    let n = f.bytes.len();

    for range in [
        format!("bytes={n}-"),
        format!("bytes={}-{}", n + 5, n + 9),
        "bytes=-0".into(),
    ] {
        let (r, _) = send(&f.app, Method::GET, &uri, &[("range", &range)]).await;
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(h(&r, "content-range"), format!("bytes */{n}"));
    }

    // Several ranges: documented to answer with the whole file.
    let (r, body) = send(&f.app, Method::GET, &uri, &[("range", "bytes=0-9,20-29")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body, f.bytes);

    // Malformed Range is ignored.
    let (r, body) = send(&f.app, Method::GET, &uri, &[("range", "bytes=9-2")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body.len(), n);

    let etag = format!("\"{}\"", f.media.sha256);
    let (r, body) = send(&f.app, Method::GET, &uri, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());

    let (r, _) = send(
        &f.app,
        Method::GET,
        &uri,
        &[("range", "bytes=0-9"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let (r, body) = send(
        &f.app,
        Method::GET,
        &uri,
        &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body.len(), n);
}

#[tokio::test]
async fn head_matches_get_without_body() {
    let f = fixture().await;
    let uri = format!("/media/{}", f.media.sha256);
    let (r, body) = send(&f.app, Method::HEAD, &uri, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(h(&r, "content-length"), f.bytes.len().to_string());
    assert_eq!(h(&r, "etag"), format!("\"{}\"", f.media.sha256));
    assert_eq!(h(&r, "accept-ranges"), "bytes");

    let (r, body) = send(&f.app, Method::HEAD, &uri, &[("range", "bytes=10-19")]).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert!(body.is_empty());
    assert_eq!(h(&r, "content-length"), "10");
    assert_eq!(
        h(&r, "content-range"),
        format!("bytes 10-19/{}", f.bytes.len())
    );
}

#[tokio::test]
async fn bad_ids_and_traversal_are_refused() {
    let f = fixture().await;
    let (r, _) = send(
        &f.app,
        Method::GET,
        &format!("/media/{}", "0".repeat(64)),
        &[],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let upper = format!("/media/{}", f.media.sha256.to_ascii_uppercase());
    let (r, _) = send(&f.app, Method::GET, &upper, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);

    for uri in [
        "/media/..%2F..%2Fetc%2Fpasswd",
        "/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/media/..",
        "/media/tmp",
        "/media/tts-index",
        "/media/abc",
        &format!("/media/{}.wav", f.media.sha256),
        &format!("/media/{}%00", f.media.sha256),
    ] {
        let (r, body) = send(&f.app, Method::GET, uri, &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{uri}");
    }
    for uri in ["/media/../../etc/passwd", "/media/a/b"] {
        let (r, body) = send(&f.app, Method::GET, uri, &[]).await;
        assert!(r.status().is_client_error(), "{uri}: {}", r.status());
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{uri}");
    }
}

#[test]
fn sniff_rejects_a_text_file() {
    let err = sniff_audio("暴雨橙色预警：请立即转移。\nRainstorm warning.\n".as_bytes())
        .expect_err("text is not audio");
    assert!(err.to_string().contains("looks like text"), "{err}");
    assert_eq!(sniff_audio(&sample()).ok(), Some("audio/wav"));
}
