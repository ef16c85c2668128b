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
    pub bus: BusCfg,
    pub eb: EbCfg,
    pub media: MediaCfg,
    pub log: Log,
    pub interchange: InterchangeCfg,
    pub cap: CapCfg,
}

/// CAP 1.2 feeds to poll and the key that signs exported alerts (docs/CAP.md, "In the platform").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapCfg {
    /// Atom/RSS feeds of CAP alerts: `{ url = "...", department = "<department sender username>" }`.
    pub feeds: Vec<cuncun_web::cap_pages::FeedSource>,
    pub poll_seconds: u64,
    /// RSA private key (PEM) that signs exported CAP alerts; "" = exported unsigned.
    pub signing_key: String,
    /// Its certificate (PEM), embedded in KeyInfo; optional.
    pub signing_cert: String,
}

impl Default for CapCfg {
    fn default() -> Self {
        CapCfg { feeds: Vec::new(), poll_seconds: 300, signing_key: String::new(), signing_cert: String::new() }
    }
}

/// EBD interchange with parent and child platforms (docs/INTERCHANGE.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterchangeCfg {
    pub enabled: bool,
    /// This platform's name in EBRPSInfo and EBM SenderName.
    pub name: String,
    /// The URL peers post to: this platform's web address + /ebd.
    pub url: String,
    /// Directory with this platform's SM2 key and certificate (`cuncun keys generate`).
    pub keys: String,
    /// Trust list of the peers' certificates (`cuncun keys trust add`).
    pub trust: String,
    /// Severities of parent EBMs that are dispatched at once; others wait for local review.
    pub auto_dispatch: Vec<u8>,
    pub check_every_s: u64,
    pub report_every_s: u64,
    pub peer: Vec<PeerCfg>,
    /// Largest EBDT package `POST /ebd` accepts, in MiB; a larger body is refused with 413
    /// before it is read. Default: the EBD tar limit (256 MiB).
    pub max_package_mib: u64,
    /// `POST /ebd` bodies read at once; more get 503 with Retry-After. Memory for anonymous
    /// uploads stays under about this many times the package limit (docs/SECURITY.md).
    pub max_concurrent_uploads: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerCfg {
    /// "parent" or "child".
    pub role: String,
    pub ebrid: String,
    pub url: String,
    pub name: String,
}

impl Default for InterchangeCfg {
    fn default() -> Self {
        InterchangeCfg {
            enabled: false,
            name: String::new(),
            url: String::new(),
            keys: "cuncun-data/keys".into(),
            trust: "cuncun-data/trust.toml".into(),
            auto_dispatch: vec![1],
            check_every_s: 60,
            report_every_s: 30,
            peer: Vec::new(),
            max_package_mib: cuncun_ebd::Limits::default().max_tar_bytes >> 20,
            max_concurrent_uploads: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaCfg {
    /// Where audio (uploads and text-to-speech renderings, named by SHA-256) is kept.
    pub dir: String,
    /// Render spoken audio for messages with espeak-ng (Debian package espeak-ng).
    pub tts: bool,
}

impl Default for MediaCfg {
    fn default() -> Self {
        MediaCfg { dir: "cuncun-data/media".into(), tts: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusCfg {
    /// "embedded" (the terminal gateway runs inside cuncun) or mqtt://host:port of an external
    /// broker (Mosquitto, EMQX) that terminals connect to instead.
    pub url: String,
    /// Where the embedded gateway listens for terminals.
    pub listen: String,
    /// Terminals connected at once to the embedded gateway (the process needs this many open files).
    pub max_connections: usize,
    /// Credentials of the platform's own client at an external broker.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Scale-out: where gateway nodes (`cuncun gateway`) link to this platform, e.g.
    /// 10.0.0.5:1885; "" = no nodes (the embedded gateway alone).
    pub backbone_listen: String,
    /// The secret nodes present on the backbone (better given as CUNCUN_BUS_BACKBONE_SECRET).
    pub backbone_secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EbCfg {
    /// The region this platform serves (its resource code and message ids derive from it).
    pub region: Option<String>,
    /// Seconds without a receipt before a target is sent the message again.
    pub resend_after_s: u64,
    /// Base URL terminals fetch audio from, e.g. http://192.168.1.10:8080.
    pub media_base_url: String,
    /// A new message as severe as the one playing: "newer_wins" (interrupts) or "keep_current".
    pub equal_severity: cuncun_domain::eb::EqualSeverity,
    /// Whether the author of a drill may approve it alone (default false: four eyes for drills).
    pub drills_self_approve: bool,
}

impl Default for BusCfg {
    fn default() -> Self {
        BusCfg {
            url: "embedded".into(),
            listen: "127.0.0.1:1883".into(),
            max_connections: 19_000,
            username: None,
            password: None,
            backbone_listen: String::new(),
            backbone_secret: None,
        }
    }
}

impl Default for EbCfg {
    fn default() -> Self {
        EbCfg {
            region: None,
            resend_after_s: 5,
            media_base_url: String::new(),
            equal_severity: cuncun_domain::eb::EqualSeverity::NewerWins,
            drills_self_approve: false,
        }
    }
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
    /// A terminal offline or reporting faults this long gets a repair ticket for its steward.
    pub repair_after_minutes: u64,
    /// An open repair ticket escalates to the outlet head this long after the request (the
    /// deadline is 24 h).
    pub escalate_after_hours: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A tracing filter, e.g. "info" or "cuncun=debug,sqlx=warn".
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: Database::default(),
            web: Web::default(),
            bus: BusCfg::default(),
            eb: EbCfg::default(),
            media: MediaCfg::default(),
            log: Log::default(),
            interchange: InterchangeCfg::default(),
            cap: CapCfg::default(),
        }
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
            repair_after_minutes: 240,
            escalate_after_hours: 20,
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
    "CUNCUN_BUS_URL",
    "CUNCUN_BUS_LISTEN",
    "CUNCUN_BUS_USERNAME",
    "CUNCUN_BUS_PASSWORD",
    "CUNCUN_EB_REGION",
    "CUNCUN_EB_MEDIA_BASE_URL",
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
                "CUNCUN_BUS_URL" => cfg.bus.url = v.clone(),
                "CUNCUN_BUS_LISTEN" => cfg.bus.listen = v.clone(),
                "CUNCUN_BUS_USERNAME" => cfg.bus.username = Some(v.clone()),
                "CUNCUN_BUS_PASSWORD" => cfg.bus.password = Some(v.clone()),
                "CUNCUN_BUS_BACKBONE_LISTEN" => cfg.bus.backbone_listen = v.clone(),
                "CUNCUN_BUS_BACKBONE_SECRET" => cfg.bus.backbone_secret = Some(v.clone()),
                "CUNCUN_EB_REGION" => cfg.eb.region = Some(v.clone()),
                "CUNCUN_EB_MEDIA_BASE_URL" => cfg.eb.media_base_url = v.clone(),
                _ => {}
            }
        }
        if cfg.bus.url != "embedded" && !cfg.bus.url.starts_with("mqtt://") {
            bail!("bus.url = {:?}: expected \"embedded\" or mqtt://host:port", cfg.bus.url);
        }
        if !cfg.bus.backbone_listen.is_empty() {
            if cfg.bus.url != "embedded" {
                bail!("bus.backbone_listen needs bus.url = \"embedded\": gateway nodes replace an external broker, they do not join one");
            }
            if cfg.bus.backbone_secret.as_deref().is_none_or(|s| s.len() < 16) {
                bail!("bus.backbone_listen is set: bus.backbone_secret (or CUNCUN_BUS_BACKBONE_SECRET) must be at least 16 characters");
            }
        }
        if cfg.interchange.enabled {
            if cfg.eb.region.is_none() {
                bail!("interchange.enabled needs eb.region: the platform's resource code derives from it");
            }
            if !cfg.interchange.url.starts_with("http") {
                bail!("interchange.url = {:?}: the address peers post to, e.g. http://10.0.0.5:8080/ebd", cfg.interchange.url);
            }
            for (i, p) in cfg.interchange.peer.iter().enumerate() {
                if p.role != "parent" && p.role != "child" {
                    bail!("interchange.peer[{i}].role = {:?}: expected \"parent\" or \"child\"", p.role);
                }
                cuncun_domain::eb::Ebrid::parse(&p.ebrid).map_err(|e| anyhow::anyhow!("interchange.peer[{i}].ebrid: {e}"))?;
            }
            if cfg.interchange.peer.iter().filter(|p| p.role == "parent").count() > 1 {
                bail!("interchange.peer: at most one parent platform");
            }
            if cfg.interchange.auto_dispatch.iter().any(|s| !(1..=4).contains(s)) {
                bail!("interchange.auto_dispatch: severities are 1 (red) to 4 (blue)");
            }
            if !(1..=1024).contains(&cfg.interchange.max_package_mib) {
                bail!("interchange.max_package_mib = {}: must be 1-1024", cfg.interchange.max_package_mib);
            }
            if !(1..=64).contains(&cfg.interchange.max_concurrent_uploads) {
                bail!("interchange.max_concurrent_uploads = {}: must be 1-64", cfg.interchange.max_concurrent_uploads);
            }
        }
        if let Some(r) = &cfg.eb.region {
            cuncun_domain::RegionCode::parse(r).map_err(|e| anyhow::anyhow!("eb.region: {e}"))?;
        }
        if !(1..=23).contains(&cfg.web.escalate_after_hours) {
            bail!("web.escalate_after_hours = {}: must be 1-23 (tickets are due within 24 hours)", cfg.web.escalate_after_hours);
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
            repair_after: std::time::Duration::from_secs(self.web.repair_after_minutes.max(1) * 60),
            escalate_after: std::time::Duration::from_secs(self.web.escalate_after_hours * 3600),
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

    #[test]
    fn interchange_and_backbone_settings_are_checked() {
        let e = |text: &str, name: &str| format!("{:#}", Config::load_with(Some(&write(name, text)), &[]).unwrap_err());
        assert!(e("[interchange]\nenabled = true\nurl = \"http://x/ebd\"\n", "ix1.toml").contains("eb.region"));
        let base = "[eb]\nregion = \"500236\"\n[interchange]\nenabled = true\nurl = \"http://x/ebd\"\n";
        let bad_role = format!("{base}[[interchange.peer]]\nrole = \"uncle\"\nebrid = \"10500000000000000000101\"\nurl = \"http://p/ebd\"\nname = \"p\"\n");
        assert!(e(&bad_role, "ix2.toml").contains("interchange.peer[0].role"));
        let bad_id = format!("{base}[[interchange.peer]]\nrole = \"parent\"\nebrid = \"123\"\nurl = \"http://p/ebd\"\nname = \"p\"\n");
        assert!(e(&bad_id, "ix3.toml").contains("interchange.peer[0].ebrid"));
        let ok = format!("{base}auto_dispatch = [1]\n[[interchange.peer]]\nrole = \"parent\"\nebrid = \"10500000000000000000101\"\nurl = \"http://p/ebd\"\nname = \"p\"\n");
        let c = Config::load_with(Some(&write("ix4.toml", &ok)), &[]).unwrap();
        assert_eq!((c.interchange.peer.len(), c.interchange.auto_dispatch.clone()), (1, vec![1]));
        assert_eq!((c.interchange.max_package_mib, c.interchange.max_concurrent_uploads), (256, 2), "upload bounds by default");
        assert!(e(&format!("{base}max_concurrent_uploads = 0\n"), "ix5.toml").contains("interchange.max_concurrent_uploads"));
        assert!(e(&format!("{base}max_package_mib = 100000\n"), "ix6.toml").contains("interchange.max_package_mib"));
        let esc = e("[web]\nescalate_after_hours = 30\n", "esc.toml");
        assert!(esc.contains("web.escalate_after_hours"), "{esc}");
        let c = Config::load_with(Some(&write("esc2.toml", "[web]\nescalate_after_hours = 12\n")), &[]).unwrap();
        assert_eq!(c.web_options().escalate_after, std::time::Duration::from_secs(12 * 3600));
        let short = Config::load_with(None, &[("CUNCUN_BUS_BACKBONE_LISTEN".into(), "127.0.0.1:1885".into())]).unwrap_err();
        assert!(short.to_string().contains("backbone_secret"), "{short}");
    }

    #[test]
    fn cap_feeds_are_read() {
        let ok = "[cap]\npoll_seconds = 60\nfeeds = [{ url = \"http://qx.example/cap.atom\", department = \"qxj\" }]\n";
        let c = Config::load_with(Some(&write("cap1.toml", ok)), &[]).unwrap();
        assert_eq!((c.cap.feeds[0].department.as_str(), c.cap.poll_seconds), ("qxj", 60));
        let typo = "[cap]\nfeeds = [{ url = \"http://x\", dept = \"qxj\" }]\n";
        let e = format!("{:#}", Config::load_with(Some(&write("cap2.toml", typo)), &[]).unwrap_err());
        assert!(e.contains("cap2.toml") && e.contains("dept"), "{e}");
    }
}
