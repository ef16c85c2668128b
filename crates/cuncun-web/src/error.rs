//! One error type. API responses carry JSON; page responses are turned into an HTML page in the
//! reader's language by [`html_errors`]. Internal causes are logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub enum AppError {
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    Conflict(String),
    /// The request body is larger than the route accepts (see [`crate::limits`]).
    PayloadTooLarge(String),
    /// The path exists but not with this method; the text names the methods it takes.
    MethodNotAllowed(String),
    TooManyRequests(String),
    Csrf,
    Unavailable(String),
    Internal(String),
}

/// Marks an error response so that page routes can re-render it as HTML.
#[derive(Debug, Clone)]
pub struct ErrorMark(pub AppError);

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthorized => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::Csrf => "csrf",
            AppError::NotFound(_) => "not_found",
            AppError::BadRequest(_) => "bad_request",
            AppError::Conflict(_) => "conflict",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::MethodNotAllowed(_) => "method_not_allowed",
            AppError::TooManyRequests(_) => "too_many_requests",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }
    /// The message safe to show.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthorized => "log in first (session cookie or Authorization: Bearer token)".into(),
            AppError::Csrf => "the form's CSRF token is missing or wrong; reload the page".into(),
            AppError::Internal(_) => "internal error; the cause is in the server log".into(),
            AppError::Unavailable(_) => "the database is unavailable; try again shortly".into(),
            AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::BadRequest(m)
            | AppError::Conflict(m)
            | AppError::PayloadTooLarge(m)
            | AppError::MethodNotAllowed(m)
            | AppError::TooManyRequests(m) => m.clone(),
        }
    }

    /// An error response that no handler of ours made (axum's own rejections of a query string,
    /// a form, a JSON or multipart body, an unknown method): its status and plain text, in our
    /// shape. Every 4xx the OpenAPI does not list becomes 400, so clients see documented statuses.
    pub fn rejected(status: StatusCode, text: &str) -> AppError {
        let text = text.trim().to_string();
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(text),
            StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed(text),
            StatusCode::NOT_FOUND => AppError::NotFound(if text.is_empty() { "no such page or endpoint".into() } else { text }),
            StatusCode::UNAUTHORIZED => AppError::Unauthorized,
            StatusCode::FORBIDDEN => AppError::Forbidden(text),
            StatusCode::CONFLICT => AppError::Conflict(text),
            StatusCode::TOO_MANY_REQUESTS => AppError::TooManyRequests(text),
            s if s.is_server_error() => AppError::Internal(format!("{s}: {text}")),
            _ => AppError::BadRequest(if text.is_empty() { status.canonical_reason().unwrap_or("bad request").into() } else { text }),
        }
    }

    /// A multipart upload that could not be read: too large (413) or malformed (400).
    pub fn upload(e: axum::extract::multipart::MultipartError) -> AppError {
        AppError::rejected(e.status(), &format!("upload: {}", e.body_text()))
    }
}

impl From<cuncun_app::Error> for AppError {
    fn from(e: cuncun_app::Error) -> Self {
        use cuncun_app::Error as E;
        match e {
            E::BadRequest(m) => AppError::BadRequest(m),
            E::Forbidden(m) => AppError::Forbidden(m),
            E::NotFound(m) => AppError::NotFound(m),
            E::Conflict(m) => AppError::Conflict(m),
            E::Unavailable(m) => AppError::Unavailable(m),
            E::Internal(m) => AppError::Internal(m),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Internal(cause) => tracing::error!(%cause, "internal error"),
            AppError::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let body = serde_json::json!({ "error": { "code": self.code(), "message": self.message() } });
        let mut res = (self.status(), axum::Json(body)).into_response();
        res.extensions_mut().insert(ErrorMark(self));
        res
    }
}

/// For everything outside /api: error responses become an HTML page in the reader's language
/// (with the signed-in frame when there is a session), and an unauthenticated page request goes
/// to the login page.
pub async fn html_errors(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_string();
    let is_api = path.starts_with("/api/") || path == "/openapi.json";
    let lang = crate::session::lang_of(req.headers(), req.uri().query());
    let token = crate::auth::cookie(req.headers(), crate::auth::SESSION_COOKIE).map(str::to_string);
    let res = next.run(req).await;
    if is_api {
        return res;
    }
    let Some(ErrorMark(err)) = res.extensions().get::<ErrorMark>().cloned() else { return res };
    if matches!(err, AppError::Unauthorized) {
        return axum::response::Redirect::to("/login").into_response();
    }
    let who = match token {
        Some(t) => crate::session::lookup(&state, &t).await.ok(),
        None => None,
    };
    crate::pages::error_page(lang, &err, who, &path)
}
