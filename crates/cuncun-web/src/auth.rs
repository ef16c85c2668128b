//! Cookies, CSRF comparison and the login rate limiter (passwords and tokens: cuncun_app::accounts).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "cuncun_session";
pub const LOGIN_CSRF_COOKIE: &str = "cuncun_login_csrf";
pub const LANG_COOKIE: &str = "cuncun_lang";

// Passwords and tokens are the application layer's (the CLI creates users too).
pub use cuncun_app::accounts::{dummy_hash, hash_password, random_token, token_hash, verify_password};

/// Equal-time comparison for secrets.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Failed logins per key (username, and client address) in a sliding window.
pub struct LoginLimiter {
    window: Duration,
    per_user: usize,
    per_client: usize,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimiter {
    pub fn new(window: Duration, per_user: usize, per_client: usize) -> Self {
        LoginLimiter { window, per_user, per_client, failures: Mutex::new(HashMap::new()) }
    }

    fn recent(&self, map: &mut HashMap<String, Vec<Instant>>, key: &str) -> usize {
        let now = Instant::now();
        let v = map.entry(key.to_string()).or_default();
        v.retain(|t| now.duration_since(*t) < self.window);
        v.len()
    }

    /// Whether another attempt is allowed for this username from this client.
    pub fn allowed(&self, username: &str, client: &str) -> bool {
        let Ok(mut m) = self.failures.lock() else { return false };
        self.recent(&mut m, &format!("u:{username}")) < self.per_user
            && self.recent(&mut m, &format!("c:{client}")) < self.per_client
    }

    pub fn fail(&self, username: &str, client: &str) {
        if let Ok(mut m) = self.failures.lock() {
            let now = Instant::now();
            // Bound memory under a flood of distinct usernames.
            if m.len() > 100_000 {
                m.retain(|_, v| v.iter().any(|t| now.duration_since(*t) < self.window));
            }
            m.entry(format!("u:{username}")).or_default().push(now);
            m.entry(format!("c:{client}")).or_default().push(now);
        }
    }

    pub fn succeed(&self, username: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(&format!("u:{username}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a phc string"));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn limiter_blocks_after_failures() {
        let l = LoginLimiter::new(Duration::from_secs(60), 3, 10);
        for _ in 0..3 {
            assert!(l.allowed("a", "1.2.3.4"));
            l.fail("a", "1.2.3.4");
        }
        assert!(!l.allowed("a", "1.2.3.4"));
        assert!(!l.allowed("a", "5.6.7.8"), "per-username limit holds across clients");
        assert!(l.allowed("b", "1.2.3.4"));
    }

    #[test]
    fn cookies_parse() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("cookie", "a=1; cuncun_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("a", "ab"));
    }
}
