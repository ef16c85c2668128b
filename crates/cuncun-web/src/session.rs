//! Who is calling: the session behind a cookie (pages) or a bearer token (API), and the reader's
//! language. Extractors reject with [`AppError::Unauthorized`].

use crate::auth::{self, LANG_COOKIE, SESSION_COOKIE};
use cuncun_app::accounts::LoginFailure;
use crate::i18n::Lang;
use crate::{AppError, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use cuncun_domain::model::User;
use cuncun_app::records::SessionRow;

pub fn lang_of(headers: &HeaderMap, query: Option<&str>) -> Lang {
    if let Some(q) = query {
        for kv in q.split('&') {
            if let Some(("lang", v)) = kv.split_once('=') {
                if let Some(l) = Lang::from_tag(v) {
                    return l;
                }
            }
        }
    }
    auth::cookie(headers, LANG_COOKIE).and_then(Lang::from_tag).unwrap_or(Lang::Zh)
}

/// A logged-in caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub session: SessionRow,
    pub lang: Lang,
    /// True when authenticated by bearer token (an API client), false for a browser cookie.
    pub bearer: bool,
}

impl Caller {
    /// The caller as the application layer's principal.
    pub async fn principal(&self, state: &crate::AppState) -> Result<cuncun_app::Principal, AppError> {
        let via = if self.bearer { cuncun_app::Via::Api } else { cuncun_app::Via::Page };
        Ok(state.app().principal_of(&self.user, via).await?)
    }
    /// Form submissions must carry the session's CSRF token.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), AppError> {
        if auth::same(submitted, &self.session.csrf_token) { Ok(()) } else { Err(AppError::Csrf) }
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let lang = lang_of(&parts.headers, parts.uri.query());
        let (token, is_bearer) = match bearer(&parts.headers) {
            Some(t) => (t.to_string(), true),
            None => match auth::cookie(&parts.headers, SESSION_COOKIE) {
                Some(t) => (t.to_string(), false),
                None => return Err(AppError::Unauthorized),
            },
        };
        let (user, session) = lookup(state, &token).await?;
        // A cookie authenticates API writes only with the CSRF header, so that another site
        // cannot make a browser change data through the API.
        // Inside a nested router the URI has lost its prefix; the original one has not.
        let path = match parts.extensions.get::<axum::extract::OriginalUri>() {
            Some(o) => o.0.path().to_string(),
            None => parts.uri.path().to_string(),
        };
        let is_api = path.starts_with("/api/");
        if is_api && !is_bearer && !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !auth::same(sent, &session.csrf_token) {
                return Err(AppError::Csrf);
            }
        }
        Ok(Caller { user, session, lang, bearer: is_bearer })
    }
}

pub async fn lookup(state: &AppState, token: &str) -> Result<(User, SessionRow), AppError> {
    state.app().session(token).await?.ok_or(AppError::Unauthorized)
}

/// The client address, for rate limiting and the audit log.
pub fn client_of(parts_addr: Option<std::net::SocketAddr>) -> String {
    parts_addr.map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

/// Logs a user in: checks the limiter and password, creates a session, audits the outcome.
/// Returns the raw token (shown once to the client) and the session's CSRF token.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
    client: &str,
    kind: &str,
) -> Result<(String, String, User), AppError> {
    let username = username.trim();
    if !state.limiter.allowed(username, client) {
        state.metrics.login("limited");
        return Err(AppError::TooManyRequests(
            "too many failed logins; wait a few minutes and try again".into(),
        ));
    }
    let ttl = state.opts.session_ttl.as_millis() as i64;
    match state.app().login(username, password, client, kind, ttl).await? {
        Ok(s) => {
            state.limiter.succeed(username);
            state.metrics.login("ok");
            Ok((s.token, s.csrf, s.user))
        }
        Err(LoginFailure::Disabled) => {
            state.metrics.login("disabled");
            Err(AppError::Forbidden("this account is disabled".into()))
        }
        Err(LoginFailure::WrongCredentials) => {
            state.limiter.fail(username, client);
            state.metrics.login("failed");
            Err(AppError::BadRequest("wrong username or password".into()))
        }
    }
}
