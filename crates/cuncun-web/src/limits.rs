//! Request bodies are bounded before they are read, and every error leaves in one shape.
//!
//! Every route takes at most [`DEFAULT_BODY_BYTES`] (forms and JSON) except the uploads declared
//! in [`UPLOADS`], one limit per route. A request whose Content-Length says more is refused with
//! 413 before a byte of its body is read; a chunked body is cut off at the limit (the extractor
//! then answers 413). docs/SECURITY.md and the OpenAPI (`x-max-body-bytes`) state the same
//! figures; the tests in tests/api/hardening.rs hold the three together.
//!
//! Error responses no handler of ours made (axum's rejections of a query string, a form or JSON
//! body, an unknown method, an unknown path) are turned into [`AppError`]s here, so the API
//! answers `{"error":{"code","message"}}` and pages get the HTML error page.

use crate::AppError;
use crate::error::ErrorMark;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Forms and JSON bodies: far above any form of the console, far below anything that hurts.
pub const DEFAULT_BODY_BYTES: usize = 64 * 1024;

/// Multipart framing and a form's other fields (CSRF token, mode) around an uploaded file.
const FORM_OVERHEAD: usize = 64 * 1024;

/// A route that takes more than the default.
#[derive(Debug, Clone, Copy)]
pub struct Upload {
    pub method: &'static str,
    /// The route as routed (axum's matched path, with the /api/v1 prefix).
    pub path: &'static str,
    pub bytes: usize,
    pub what: &'static str,
}

const fn up(method: &'static str, path: &'static str, bytes: usize, what: &'static str) -> Upload {
    Upload { method, path, bytes, what }
}

const AUDIO: usize = cuncun_media::MAX_UPLOAD_BYTES;
const XLSX: usize = cuncun_xlsx::MAX_INPUT_BYTES;
const PHOTO: usize = cuncun_app::service::MAX_PHOTO;
const CAP: usize = cuncun_app::cap::MAX_CAP_BYTES;
const EVIDENCE: usize = crate::report_pages::MAX_EVIDENCE;

/// The upload routes and what each takes: the file's own limit (checked again by the command
/// that reads it), plus the form's framing for multipart pages.
pub const UPLOADS: &[Upload] = &[
    up("PUT", "/api/v1/eb/messages/{id}/audio", AUDIO, "message audio (WAV, MP3, Ogg)"),
    up("POST", "/eb/messages/{id}/audio", AUDIO + FORM_OVERHEAD, "message audio, page form"),
    up("POST", "/api/v1/eb/terminals/import", XLSX, "terminal import (.xlsx)"),
    up("POST", "/eb/terminals/import", XLSX + FORM_OVERHEAD, "terminal import, page form"),
    up("POST", "/api/v1/service/households/import", XLSX, "household import (.xlsx)"),
    up("POST", "/service/households/import", XLSX + FORM_OVERHEAD, "household import, page form"),
    up("POST", "/api/v1/service/stewards/import", XLSX, "steward import (.xlsx)"),
    up("POST", "/service/stewards/import", XLSX + FORM_OVERHEAD, "steward import, page form"),
    up("POST", "/service/tickets/{id}/photo", PHOTO + FORM_OVERHEAD, "ticket photo, page form"),
    up("POST", "/report/checklist", EVIDENCE + FORM_OVERHEAD, "checklist evidence, page form"),
    up("POST", "/api/v1/cap", CAP, "CAP alert (XML)"),
    up("POST", "/eb/cap", CAP + FORM_OVERHEAD, "CAP alert, page form"),
];

/// The largest body `method path` (a matched path) accepts.
pub fn body_limit(method: &Method, path: Option<&str>) -> usize {
    path.and_then(|p| UPLOADS.iter().find(|u| u.path == p && u.method == method.as_str()))
        .map_or(DEFAULT_BODY_BYTES, |u| u.bytes)
}

/// "64 KiB", "50 MiB", "50 MiB 64 KiB": how a limit is shown in messages and docs.
pub fn show_bytes(n: usize) -> String {
    let (mib, kib) = (n >> 20, (n % (1 << 20)).div_ceil(1024));
    match (mib, kib) {
        (0, k) => format!("{k} KiB"),
        (m, 0) => format!("{m} MiB"),
        (m, k) => format!("{m} MiB {k} KiB"),
    }
}

/// The middleware (innermost, so that [`crate::error::html_errors`] sees its marks): bounds the
/// body, runs the route, and puts any unmarked error response into our shape.
pub async fn bounds(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let method = req.method().clone();
    let limit = body_limit(&method, route.as_deref());
    let too_large = || {
        let what = route.as_deref().map(|r| format!(" for {method} {r}")).unwrap_or_default();
        AppError::PayloadTooLarge(format!("the request body is larger than the {} allowed{what}", show_bytes(limit)))
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large().into_response();
    }
    // A chunked (or understated) body stops at the limit: the extractor reading it fails with 413.
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, limit)));
    let res = next.run(req).await;
    if res.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        // Whoever noticed (an extractor, a multipart reader), the answer names the limit.
        return too_large().into_response();
    }
    if res.status().as_u16() < 400 || res.extensions().get::<ErrorMark>().is_some() {
        return res;
    }
    let typed = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if typed.starts_with("application/json") || typed.starts_with("text/html") {
        // A handler's own answer (an import's 422 with its row errors, a login page).
        return res;
    }
    let (parts, body) = res.into_parts();
    // Rejection texts are a line; anything longer is not one and is not shown.
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let err = match parts.status.as_u16() {
        405 => {
            let allow = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("");
            AppError::MethodNotAllowed(format!("{method} is not served here; allowed: {allow}"))
        }
        _ => AppError::rejected(parts.status, &text),
    };
    let mut out = err.into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_declared_once_and_above_the_default() {
        for (i, u) in UPLOADS.iter().enumerate() {
            assert!(u.bytes > DEFAULT_BODY_BYTES, "{} {}", u.method, u.path);
            assert!(!UPLOADS[..i].iter().any(|o| o.method == u.method && o.path == u.path), "{} {} declared twice", u.method, u.path);
        }
        assert_eq!(body_limit(&Method::POST, Some("/login")), DEFAULT_BODY_BYTES);
        assert_eq!(body_limit(&Method::GET, Some("/eb/cap")), DEFAULT_BODY_BYTES, "the limit is per method too");
        assert_eq!(body_limit(&Method::PUT, Some("/api/v1/eb/messages/{id}/audio")), 50 << 20);
        assert_eq!([show_bytes(64 << 10), show_bytes(50 << 20), show_bytes((6 << 20) + (64 << 10))], ["64 KiB", "50 MiB", "6 MiB 64 KiB"]);
    }
}
