//! Configuration: a TOML file plus CUNCUN_* environment variables; every setting has a default
//! that works on one machine. Errors name the file, the line and the setting.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: Database,
    pub web: Web,
    pub log: Log,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// sqlite://PATH (embedded default) or postgres://USER@HOST:PORT/DB
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Web {
    pub listen: String,
    /// Health, readiness and metrics; keep it off the public network.
    pub ops_listen: String,
    pub secure_cookies: bool,
    pub session_ttl_hours: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A tracing filter, e.g. "info" or "cuncun=debug,sqlx=warn".
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config { database: Database::default(), web: Web::default(), log: Log::default() }
    }
}
impl Default for Database {
    fn default() -> Self {
        Database { url: "sqlite://cuncun-data/cuncun.db".into() }
    }
}
impl Default for Web {
    fn default() -> Self {
        Web {
            listen: "127.0.0.1:8080".into(),
            ops_listen: "127.0.0.1:9090".into(),
            secure_cookies: false,
            session_ttl_hours: 12,
        }
    }
}
impl Default for Log {
    fn default() -> Self {
        Log { level: "info,sqlx=error".into() }
    }
}

/// Environment overrides: CUNCUN_<SECTION>_<KEY>, e.g. CUNCUN_DATABASE_URL, CUNCUN_WEB_LISTEN.
const ENV_KEYS: &[&str] = &[
    "CUNCUN_DATABASE_URL",
    "CUNCUN_WEB_LISTEN",
    "CUNCUN_WEB_OPS_LISTEN",
    "CUNCUN_WEB_SECURE_COOKIES",
    "CUNCUN_WEB_SESSION_TTL_HOURS",
    "CUNCUN_LOG_LEVEL",
];

impl Config {
    /// Reads `path` if given (it must exist), else defaults; then applies the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let env: Vec<(String, String)> =
            ENV_KEYS.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
        Self::load_with(path, &env)
    }

    pub fn load_with(path: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<Config> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config file {}", p.display()))?;
                toml::from_str::<Config>(&text).map_err(|e| {
                    anyhow::anyhow!("config file {}: {}", p.display(), e.to_string().trim_end())
                })?
            }
            None => Config::default(),
        };
        for (k, v) in env {
            let bool_of = |v: &str| match v {
                "1" | "true" | "yes" => Ok(true),
                "0" | "false" | "no" => Ok(false),
                _ => bail!("environment variable {k}={v:?}: expected true or false"),
            };
            match k.as_str() {
                "CUNCUN_DATABASE_URL" => cfg.database.url = v.clone(),
                "CUNCUN_WEB_LISTEN" => cfg.web.listen = v.clone(),
                "CUNCUN_WEB_OPS_LISTEN" => cfg.web.ops_listen = v.clone(),
                "CUNCUN_WEB_SECURE_COOKIES" => cfg.web.secure_cookies = bool_of(v)?,
                "CUNCUN_WEB_SESSION_TTL_HOURS" => {
                    cfg.web.session_ttl_hours = v
                        .parse()
                        .map_err(|_| anyhow::anyhow!("environment variable {k}={v:?}: expected a whole number of hours"))?
                }
                "CUNCUN_LOG_LEVEL" => cfg.log.level = v.clone(),
                _ => {}
            }
        }
        if cfg.web.session_ttl_hours == 0 {
            bail!("web.session_ttl_hours must be at least 1");
        }
        Ok(cfg)
    }

    pub fn web_options(&self) -> cuncun_web::WebOptions {
        cuncun_web::WebOptions {
            secure_cookies: self.web.secure_cookies,
            session_ttl: std::time::Duration::from_secs(self.web.session_ttl_hours * 3600),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("cuncun-cfg-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn file_then_environment() {
        let p = write("ok.toml", "[database]\nurl = \"postgres://postgres@127.0.0.1/test\"\n[web]\nlisten = \"0.0.0.0:80\"\n");
        let c = Config::load_with(Some(&p), &[("CUNCUN_WEB_LISTEN".into(), "127.0.0.1:1".into())]).unwrap();
        assert_eq!(c.database.url, "postgres://postgres@127.0.0.1/test");
        assert_eq!(c.web.listen, "127.0.0.1:1");
        assert_eq!(c.web.ops_listen, "127.0.0.1:9090");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let missing = Config::load_with(Some(Path::new("/nonexistent/cuncun.toml")), &[]).unwrap_err();
        assert!(format!("{missing:#}").contains("/nonexistent/cuncun.toml"));
        let p = write("typo.toml", "[web]\nlisten = \"x\"\nlistn = \"y\"\n");
        let e = format!("{:#}", Config::load_with(Some(&p), &[]).unwrap_err());
        assert!(e.contains("typo.toml") && e.contains("listn") && e.contains("line 3"), "{e}");
        let bad = Config::load_with(None, &[("CUNCUN_WEB_SECURE_COOKIES".into(), "maybe".into())]).unwrap_err();
        assert!(bad.to_string().contains("CUNCUN_WEB_SECURE_COOKIES"));
    }
}
