//! The interchange page: each peer platform's link state, and the EBDs that came in and went out.

use crate::pages::{Chrome, render};
use crate::session::Caller;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use cuncun_app::records::interchange::{EbdInRow, EbdOutRow};

pub fn routes() -> Router<AppState> {
    Router::new().route("/eb/interchange", get(page))
}

pub struct PeerRow {
    pub name: String,
    pub role: String,
    pub ebrid: String,
    pub url: String,
    pub link: String,
    pub since: String,
    pub last_ok: String,
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "eb_interchange.html")]
struct Page {
    c: Chrome,
    enabled: bool,
    own: String,
    peers: Vec<PeerRow>,
    inbox: Vec<EbdInRow>,
    outbox: Vec<EbdOutRow>,
}

async fn page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let v = state.app().interchange_view(&c.principal(&state).await?, 100).await?;
    let chrome = Chrome::of(&c, "/eb/interchange");
    let states = v.peers;
    let (enabled, own, peers) = match &state.interchange {
        Some(ix) => {
            let cfg = ix.config();
            let peers = cfg
                .peers
                .iter()
                .map(|p| {
                    let s = states.iter().find(|s| s.peer == p.ebrid.as_str());
                    PeerRow {
                        name: p.name.clone(),
                        role: chrome.t(if p.role == cuncun_interchange::PeerRole::Parent { "ix.parent" } else { "ix.child" }).to_string(),
                        ebrid: p.ebrid.to_string(),
                        url: p.url.clone(),
                        link: s.map(|s| s.link.clone()).unwrap_or_else(|| "unknown".into()),
                        since: s.map(|s| chrome.time(&s.changed_ms)).unwrap_or_default(),
                        last_ok: s.map(|s| chrome.opt_time(&s.last_ok_ms)).unwrap_or_default(),
                        last_error: s.and_then(|s| s.last_error.clone()).unwrap_or_default(),
                    }
                })
                .collect();
            (true, format!("{} {}", cfg.own, cfg.own_name), peers)
        }
        None => (false, String::new(), Vec::new()),
    };
    render(&Page { c: chrome, enabled, own, peers, inbox: v.inbox, outbox: v.outbox })
}
