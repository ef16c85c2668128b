//! The CAP feed poller job: Atom/RSS feeds polled for a department, each entry imported through
//! the same command as an upload (`App::import_cap`). Reads are bounded (size, time, same-host
//! redirects).

use crate::{AppError, AppState};
use cuncun_app::cap::{CapRefusal, CapSource, MAX_CAP_BYTES};
use std::time::Duration;

/// A CAP Atom/RSS feed polled for one department (its account's username).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSource {
    pub url: String,
    pub department: String,
}

/// What a feed entry offers: the CAP document inline, or a link to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    Inline { id: String, xml: String },
    Link { id: String, url: String },
}

impl FeedItem {
    pub fn id(&self) -> &str {
        match self {
            FeedItem::Inline { id, .. } | FeedItem::Link { id, .. } => id,
        }
    }
}

/// The entries of an Atom feed or RSS 2.0 channel. An inline alert without a link is rewritten
/// from its parsed form (so an inline signature does not survive; link to signed alerts).
pub fn feed_items(text: &str) -> Result<Vec<FeedItem>, String> {
    use cuncun_cap::xml::{Element, Node};
    let doc = cuncun_cap::xml::parse(text).map_err(|e| format!("line {}: {}", e.line, e.message))?;
    let child = |e: &Element, name: &str| e.elements().find(|c| c.local == name).map(|c| c.text().trim().to_string());
    let mut out = Vec::new();
    let entries: Vec<&Element> = match doc.root.local.as_str() {
        "feed" => doc.root.elements().filter(|e| e.local == "entry").collect(),
        "rss" => doc.root.elements().filter(|e| e.local == "channel").flat_map(|c| c.elements().filter(|e| e.local == "item")).collect(),
        other => return Err(format!("expected an Atom <feed> or RSS <rss> document, found <{other}>")),
    };
    for e in entries {
        let cap_link = e
            .elements()
            .filter(|l| l.local == "link")
            .find(|l| l.attr("type").is_some_and(|t| t.contains("cap")))
            .or_else(|| e.elements().find(|l| l.local == "link" && l.attr("rel").is_none_or(|r| r == "alternate")))
            .and_then(|l| l.attr("href").map(str::to_string).or_else(|| Some(l.text().trim().to_string())))
            .filter(|u| !u.is_empty());
        let inline = e
            .elements()
            .find(|c| c.local == "content")
            .and_then(|c| c.children.iter().find_map(|n| match n { Node::Element(a) if a.local == "alert" => Some(a.clone()), _ => None }));
        let id = child(e, "id").or_else(|| child(e, "guid")).or_else(|| cap_link.clone()).unwrap_or_default();
        if let Some(url) = cap_link.filter(|_| inline.is_none()) {
            out.push(FeedItem::Link { id, url });
        } else if let Some(a) = inline {
            let d = cuncun_cap::xml::Document { before: Vec::new(), root: a, after: Vec::new() };
            let (alert, _) = cuncun_cap::parse::alert_from_document(&d);
            let id = if id.is_empty() { alert.identifier.clone() } else { id };
            out.push(FeedItem::Inline { id, xml: cuncun_cap::write_alert(&alert) });
        }
    }
    Ok(out)
}

/// The `cap_feed_poller` job (registered by `cuncun serve` when `cap.feeds` is set): every `every`
/// (at least 5 s) each feed is polled; each entry is fetched and imported once per run of the job
/// (by entry id; the import itself is idempotent per CAP identifier). Refusals are logged and not
/// retried; a feed that cannot be read is the job's last error until a round succeeds.
pub async fn run_feed_poller(ctx: cuncun_app::jobs::JobCtx, state: AppState, feeds: Vec<FeedSource>, every: Duration) -> anyhow::Result<()> {
    let client = client();
    let seen = tokio::sync::Mutex::new(std::collections::HashSet::new());
    let (state, client, feeds, seen) = (&state, &client, &feeds, &seen);
    cuncun_app::jobs::every(&ctx, every.max(Duration::from_secs(5)), move || async move {
        let mut seen = seen.lock().await;
        let mut failed = Vec::new();
        for f in feeds {
            if let Err(e) = poll_feed(state, client, f, &mut seen).await {
                tracing::warn!(feed = %f.url, error = %e, "CAP feed poll failed");
                failed.push(format!("{}: {e}", f.url));
            }
        }
        anyhow::ensure!(failed.is_empty(), "CAP feeds not read: {}", failed.join("; "));
        Ok(())
    })
    .await
}

/// The poller's HTTP client: 30 s per request, redirects only to the same host (a feed must not
/// send the platform to fetch from anywhere else).
pub fn client() -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(|a| {
        let same = a.previous().first().is_some_and(|first| first.host_str() == a.url().host_str());
        if a.previous().len() > 5 {
            a.error("more than 5 redirects")
        } else if same {
            a.follow()
        } else {
            let host = a.url().host_str().unwrap_or("?").to_string();
            a.error(format!("redirect to another host ({host}) refused"))
        }
    });
    reqwest::Client::builder().timeout(Duration::from_secs(30)).redirect(policy).build().unwrap_or_default()
}

/// The largest feed or alert body read, in bytes: reading stops there.
pub const MAX_FEED_BYTES: usize = 16 * MAX_CAP_BYTES;

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut r = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    if r.content_length().is_some_and(|n| n > MAX_FEED_BYTES as u64) {
        return Err(format!("response larger than {MAX_FEED_BYTES} bytes"));
    }
    // Chunk by chunk, so that a server that sends without end cannot fill memory.
    let mut b = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
        if b.len() + chunk.len() > MAX_FEED_BYTES {
            return Err(format!("response larger than {MAX_FEED_BYTES} bytes"));
        }
        b.extend_from_slice(&chunk);
    }
    Ok(b)
}

/// One poll of one feed; returns how many alerts were newly imported.
pub async fn poll_feed(
    state: &AppState,
    client: &reqwest::Client,
    f: &FeedSource,
    seen: &mut std::collections::HashSet<(String, String)>,
) -> Result<usize, String> {
    let dept = state.app().cap_feed_department(&f.department).await.map_err(|e| e.to_string())?;
    let body = fetch(client, &f.url).await?;
    let text = String::from_utf8(body).map_err(|_| "the feed is not UTF-8".to_string())?;
    let mut imported = 0;
    for item in feed_items(&text)? {
        let key = (f.url.clone(), item.id().to_string());
        if seen.contains(&key) {
            continue;
        }
        let bytes = match &item {
            FeedItem::Inline { xml, .. } => xml.clone().into_bytes(),
            FeedItem::Link { url, .. } => match fetch(client, url).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(feed = %f.url, entry = %url, error = %e, "CAP feed entry not fetched; retried next poll");
                    continue;
                }
            },
        };
        match state.app().import_cap(&dept, &bytes, CapSource::Feed { url: &f.url }).await {
            Ok(r) => imported += usize::from(r.created),
            Err(CapRefusal::Other(e)) => return Err(AppError::from(e).message()),
            Err(e) => {
                let why: Vec<String> = e.issues().iter().map(|i| i.to_string()).collect();
                tracing::warn!(feed = %f.url, entry = %item.id(), issues = %why.join("; "), "CAP feed entry refused");
            }
        }
        seen.insert(key);
    }
    Ok(imported)
}
