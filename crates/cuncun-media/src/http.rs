//! `GET`/`HEAD /media/{sha256}`.
//!
//! Access model: media is public by hash. Terminals fetch without a session,
//! so the 256-bit SHA-256 in the URL is the capability: whoever knows it may
//! fetch the file, and it cannot be guessed or enumerated (there is no
//! listing). Hand out media URLs only to those who may hear the message.
//!
//! Integrity: `ETag: "<sha256 hex>"`, `Repr-Digest: sha-256=:<base64>:`
//! (RFC 9530) and `Digest: SHA-256=<base64>` (RFC 3230) all carry the hash of
//! the whole file, also on 206 responses; the terminal checks the bytes it
//! assembled against it.
//!
//! Ranges: one range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) gets 206 with
//! `Content-Range`; an unsatisfiable one gets 416 with `Content-Range:
//! bytes */size`. A request with several ranges gets the whole file (200):
//! terminals resume with one range, and multipart bodies are not worth their
//! complexity here. A malformed or non-`bytes` Range header is ignored (200),
//! as RFC 9110 allows. `If-Range` with a different validator also yields 200.

use std::io;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{MediaError, MediaRef, MediaStore};

/// Read size per body chunk; small enough to keep memory flat per download.
const CHUNK: usize = 64 * 1024;

/// An inclusive byte range within a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive, as in `Content-Range`.
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a satisfiable range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole file with 200.
    Full,
    Partial(ByteRange),
    /// Send 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Parses a `Range` header value against a file of `size` bytes, with the
/// policy described in the module docs.
pub fn parse_range(value: Option<&str>, size: u64) -> RangeRequest {
    let Some(value) = value else {
        return RangeRequest::Full;
    };
    let Some((unit, set)) = value.split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [spec] = specs.as_slice() else {
        // Zero (malformed) or several ranges: whole file.
        return RangeRequest::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last n bytes.
        let Some(n) = parse_pos(last) else {
            return RangeRequest::Full;
        };
        if n == 0 || size == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial(ByteRange {
            start: size.saturating_sub(n),
            end: size - 1,
        });
    }
    let Some(start) = parse_pos(first) else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match parse_pos(last) {
            Some(end) if end >= start => end,
            _ => return RangeRequest::Full,
        }
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial(ByteRange {
        start,
        end: end.min(size - 1),
    })
}

/// Digits only; values beyond u64 saturate (they are past any file's end).
fn parse_pos(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

/// Router serving the store's files at `/media/{sha256}` (GET and HEAD).
pub fn routes(store: Arc<MediaStore>) -> Router {
    Router::new()
        .route("/media/{sha256}", get(serve))
        .with_state(store)
}

fn plain(status: StatusCode, msg: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

async fn serve(
    State(store): State<Arc<MediaStore>>,
    Path(sha256): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let opened = match store.open(&sha256).await {
        Ok(Some(f)) => f,
        Ok(None) => return plain(StatusCode::NOT_FOUND, "media not found\n"),
        Err(MediaError::InvalidHash(_)) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "invalid media id: expected 64 hexadecimal characters (a SHA-256)\n",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "opening media failed");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "media unavailable\n");
        }
    };
    let media = &opened.media;
    let etag = format!("\"{}\"", media.sha256);
    let mut base = HeaderMap::new();
    if let Err(e) = common_headers(&mut base, media, &etag) {
        tracing::error!(error = %e, sha256 = media.sha256, "bad stored media metadata");
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "media unavailable\n");
    }

    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        let hit = inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag);
        if hit {
            return (StatusCode::NOT_MODIFIED, base).into_response();
        }
    }

    let size = media.size;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // If-Range with a validator other than our (strong) ETag means the client's
    // partial copy is of something else: send everything.
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let request = if if_range_ok {
        parse_range(range_header, size)
    } else {
        RangeRequest::Full
    };

    let (status, range) = match request {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        RangeRequest::Unsatisfiable => {
            base.insert(header::CONTENT_RANGE, hv(&format!("bytes */{size}")));
            base.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                base,
                "range not satisfiable\n",
            )
                .into_response();
        }
    };
    let (start, len) = match range {
        Some(r) => {
            base.insert(
                header::CONTENT_RANGE,
                hv(&format!("bytes {}-{}/{size}", r.start, r.end)),
            );
            (r.start, r.len())
        }
        None => (0, size),
    };
    base.insert(header::CONTENT_LENGTH, HeaderValue::from(len));

    if method == Method::HEAD {
        return (status, base, Body::empty()).into_response();
    }
    let mut file = opened.file;
    if start > 0
        && let Err(e) = file.seek(io::SeekFrom::Start(start)).await
    {
        tracing::error!(error = %e, sha256 = media.sha256, "seeking media failed");
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "media unavailable\n");
    }
    (status, base, Body::from_stream(file_stream(file, len))).into_response()
}

fn hv(s: &str) -> HeaderValue {
    // Only called with ASCII we formatted ourselves.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn common_headers(h: &mut HeaderMap, media: &MediaRef, etag: &str) -> Result<(), String> {
    let raw = hex::decode(&media.sha256).map_err(|e| e.to_string())?;
    let b64 = B64.encode(raw);
    let value = |s: &str| HeaderValue::from_str(s).map_err(|e| e.to_string());
    h.insert(header::CONTENT_TYPE, value(&media.content_type)?);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(etag)?);
    h.insert("repr-digest", value(&format!("sha-256=:{b64}:"))?);
    h.insert("digest", value(&format!("SHA-256={b64}"))?);
    // Content-addressed: the bytes behind a URL never change.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(())
}

/// Streams `len` bytes from the file's current position in [`CHUNK`]s.
fn file_stream(
    file: tokio::fs::File,
    len: u64,
) -> impl Stream<Item = io::Result<Vec<u8>>> + Send + 'static {
    futures::stream::try_unfold((file, len), |(mut file, remaining)| async move {
        if remaining == 0 {
            return Ok(None);
        }
        let want = usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK);
        let mut buf = vec![0u8; want];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            // Content-Length was promised; end the connection with an error
            // rather than a silently short body.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "media file shrank while being served",
            ));
        }
        buf.truncate(n);
        Ok(Some((buf, (file, remaining - n as u64))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str, size: u64) -> RangeRequest {
        parse_range(Some(v), size)
    }

    fn part(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start, end })
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), RangeRequest::Full);
        assert_eq!(p("bytes=0-0", 10), part(0, 0));
        assert_eq!(p("bytes=2-5", 10), part(2, 5));
        assert_eq!(p("bytes=2-", 10), part(2, 9));
        assert_eq!(p("bytes=2-100", 10), part(2, 9));
        assert_eq!(p("bytes=-3", 10), part(7, 9));
        assert_eq!(p("bytes=-30", 10), part(0, 9));
        assert_eq!(p("Bytes = 1-2 ", 10), part(1, 2));
        assert_eq!(
            p("bytes=99999999999999999999999-", 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(p("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=5-2", 10), RangeRequest::Full);
        assert_eq!(p("bytes=0-1,3-4", 10), RangeRequest::Full);
        assert_eq!(p("items=0-1", 10), RangeRequest::Full);
        assert_eq!(p("bytes=a-b", 10), RangeRequest::Full);
        assert_eq!(p("bytes=+1-2", 10), RangeRequest::Full);
        assert_eq!(p("bytes=", 10), RangeRequest::Full);
        assert_eq!(p("bytes=-", 10), RangeRequest::Full);
    }
}
