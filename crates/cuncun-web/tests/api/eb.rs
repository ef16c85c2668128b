//! The warning workflow through the API: who may compose, submit, approve; regions; four eyes.
use crate::harness::*;
use serde_json::{Value, json};

fn warning(areas: &[&str]) -> Value {
    json!({"event_type": "11B03", "severity": 2, "title": "暴雨橙色预警", "text": "预计未来6小时有暴雨", "areas": areas})
}

#[tokio::test]
async fn department_sender_submits_but_never_approves() {
    for app in apps().await {
        let s = app.token("sender").await;
        let (st, body) = app.send(&s, "POST", "/api/v1/eb/messages", warning(&["500236100"])).await;
        assert_eq!(st, 201, "{body}");
        let id = body["message"]["id"].as_i64().unwrap();
        assert_eq!(body["message"]["status"], "draft");
        assert_eq!(body["message"]["ebmid"].as_str().unwrap().len(), 35);
        assert_eq!(app.send(&s, "POST", &format!("/api/v1/eb/messages/{id}/submit"), json!({})).await.0, 200);
        let (st, body) = app.send(&s, "POST", &format!("/api/v1/eb/messages/{id}/approve"), json!({})).await;
        assert_eq!(st, 403, "a department sender cannot approve: {body}");
        let r = app.token("reviewer").await;
        let (st, body) = app.send(&r, "POST", &format!("/api/v1/eb/messages/{id}/approve"), json!({})).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["message"]["status"], "approved");
        let (_, again) = app.send(&r, "POST", &format!("/api/v1/eb/messages/{id}/approve"), json!({})).await;
        assert_eq!(again["error"]["code"], "conflict");
        let log = app.store.audit_recent(50).await.unwrap();
        assert!(log.iter().any(|e| e.action == "message.approved" && e.actor.ends_with(":reviewer")));
    }
}

#[tokio::test]
async fn senders_stay_inside_their_region() {
    for app in apps().await {
        let t = app.token("t1sender").await;
        let (st, body) = app.send(&t, "POST", "/api/v1/eb/messages", warning(&["500236100"])).await;
        assert_eq!(st, 403, "another township: {body}");
        let (st, _) = app.send(&t, "POST", "/api/v1/eb/messages", warning(&["500236"])).await;
        assert_eq!(st, 403, "the whole county is above the sender's township");
        let (st, body) = app.send(&t, "POST", "/api/v1/eb/messages", warning(&["500236001001"])).await;
        assert_eq!(st, 201, "{body}");
        // The other township's viewer does not see it.
        let v = app.token("t2view").await;
        let (_, list) = app.get(&v, "/api/v1/eb/messages").await;
        assert!(list["items"].as_array().unwrap().is_empty());
        let id = body["message"]["id"].as_i64().unwrap();
        assert_eq!(app.get(&v, &format!("/api/v1/eb/messages/{id}")).await.0, 403);
        let v1 = app.token("t1view").await;
        assert_eq!(app.get(&v1, &format!("/api/v1/eb/messages/{id}")).await.0, 200);
    }
}

#[tokio::test]
async fn a_real_warning_needs_a_second_person() {
    for app in apps().await {
        let a = app.token("admin").await;
        let (_, body) = app.send(&a, "POST", "/api/v1/eb/messages", warning(&["500236"])).await;
        let id = body["message"]["id"].as_i64().unwrap();
        app.send(&a, "POST", &format!("/api/v1/eb/messages/{id}/submit"), json!({})).await;
        let (st, body) = app.send(&a, "POST", &format!("/api/v1/eb/messages/{id}/approve"), json!({})).await;
        assert_eq!(st, 403);
        assert!(body["error"]["message"].as_str().unwrap().contains("other than its author"));
        // Drills need a second person too unless the platform allows self-approval (default no).
        let mut drill = warning(&["500236"]);
        drill["drill"] = json!(true);
        let (_, body) = app.send(&a, "POST", "/api/v1/eb/messages", drill).await;
        let did = body["message"]["id"].as_i64().unwrap();
        app.send(&a, "POST", &format!("/api/v1/eb/messages/{did}/submit"), json!({})).await;
        let (st, body) = app.send(&a, "POST", &format!("/api/v1/eb/messages/{did}/approve"), json!({})).await;
        assert_eq!(st, 403, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("drills too"), "{body}");
        let r = app.token("reviewer").await;
        assert_eq!(app.send(&r, "POST", &format!("/api/v1/eb/messages/{did}/approve"), json!({})).await.0, 200);
        // Viewers compose nothing; bad input is named.
        let v = app.token("t1view").await;
        assert_eq!(app.send(&v, "POST", "/api/v1/eb/messages", warning(&["500236001"])).await.0, 403);
        let mut bad = warning(&["500236"]);
        bad["severity"] = json!(7);
        let (st, body) = app.send(&a, "POST", "/api/v1/eb/messages", bad).await;
        assert_eq!(st, 400);
        assert!(body["error"]["message"].as_str().unwrap().starts_with("severity"));
        let (st, body) = app.send(&a, "POST", "/api/v1/eb/messages", warning(&["500299"])).await;
        assert_eq!(st, 403, "outside the admin's county: {body}");
    }
}

#[tokio::test]
async fn devices_register_with_a_code_and_a_one_time_secret() {
    for app in apps().await {
        let a = app.token("t2cast").await;
        let (st, body) = app
            .send(&a, "POST", "/api/v1/eb/terminals", json!({"kind": "outdoor_loudspeaker", "region_code": "500236100201", "name": "白帝村1号大喇叭"}))
            .await;
        assert_eq!(st, 201, "{body}");
        assert_eq!(body["resource"]["ebrid"], "65002361002010314010101");
        assert_eq!(body["secret"].as_str().unwrap().len(), 32);
        let (st, _) = app
            .send(&a, "POST", "/api/v1/eb/terminals", json!({"kind": "outdoor_loudspeaker", "region_code": "500236001001", "name": "x"}))
            .await;
        assert_eq!(st, 403, "outside the broadcaster's township");
        let (st, body) = app.send(&a, "POST", "/api/v1/eb/terminals", json!({"kind": "toaster", "region_code": "500236100201", "name": "x"})).await;
        assert_eq!(st, 400);
        assert!(body["error"]["message"].as_str().unwrap().contains("toaster"));
        let (_, list) = app.get(&a, "/api/v1/eb/terminals").await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let log = app.store.audit_recent(5).await.unwrap();
        assert!(log.iter().all(|e| !e.after.contains("secret_hash")), "no secret material in the audit log");
    }
}

#[tokio::test]
async fn terminal_pages_rekey_retire_and_show_the_online_day() {
    for app in apps().await {
        let a = app.token("t2cast").await;
        let (_, body) = app
            .send(&a, "POST", "/api/v1/eb/terminals", json!({"kind": "outdoor_loudspeaker", "region_code": "500236100201", "name": "白帝村2号大喇叭"}))
            .await;
        let (id, ebrid, secret) = (body["resource"]["id"].as_i64().unwrap(), body["resource"]["ebrid"].as_str().unwrap().to_string(), body["secret"].clone());
        let (b, csrf) = app.browser("t2cast").await;
        let get = |path: String| {
            let b = b.clone();
            async move {
                let r = b.get(path).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (st, page) = get(format!("{}/eb/terminals/{id}", app.url)).await;
        assert_eq!(st, 200);
        assert!(page.contains(&ebrid));
        assert_eq!(get(format!("{}/eb/terminals?problems=1", app.url)).await.0, 200);
        assert_eq!(get(format!("{}/eb/online", app.url)).await.0, 200);
        assert_eq!(get(format!("{}/eb/online?day=yesterday", app.url)).await.0, 400);
        // Another township's viewer neither reads nor changes the device.
        let (v, vcsrf) = app.browser("t1view").await;
        assert_eq!(v.get(format!("{}/eb/terminals/{id}", app.url)).send().await.unwrap().status(), 403);
        let r = v.post(format!("{}/eb/terminals/{id}/retire", app.url)).form(&[("csrf", vcsrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 403);
        // A new secret is shown once and differs from the first.
        let r = b.post(format!("{}/eb/terminals/{id}/secret", app.url)).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains(&ebrid) && !page.contains(secret.as_str().unwrap()));
        let r = b.post(format!("{}/eb/terminals/{id}/retire", app.url)).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let (_, list) = app.get(&a, "/api/v1/eb/terminals").await;
        assert!(list["items"].as_array().unwrap().is_empty(), "retired devices leave the list");
    }
}

#[tokio::test]
async fn an_approved_update_replaces_the_original() {
    for app in apps().await {
        let s = app.token("sender").await;
        let r = app.token("reviewer").await;
        let (_, b) = app.send(&s, "POST", "/api/v1/eb/messages", warning(&["500236100"])).await;
        let (id, ebmid) = (b["message"]["id"].as_i64().unwrap(), b["message"]["ebmid"].as_str().unwrap().to_string());
        app.send(&s, "POST", &format!("/api/v1/eb/messages/{id}/submit"), json!({})).await;
        app.send(&r, "POST", &format!("/api/v1/eb/messages/{id}/approve"), json!({})).await;
        let mut upd = warning(&["500236100"]);
        upd["title"] = json!("暴雨红色预警（升级）");
        upd["severity"] = json!(1);
        upd["updates"] = json!(ebmid);
        let (st, b) = app.send(&s, "POST", "/api/v1/eb/messages", upd).await;
        assert_eq!(st, 201, "{b}");
        assert_eq!(b["message"]["related_ebmid"], ebmid.as_str());
        let uid = b["message"]["id"].as_i64().unwrap();
        app.send(&s, "POST", &format!("/api/v1/eb/messages/{uid}/submit"), json!({})).await;
        assert_eq!(app.send(&r, "POST", &format!("/api/v1/eb/messages/{uid}/approve"), json!({})).await.0, 200);
        let (_, orig) = app.get(&r, &format!("/api/v1/eb/messages/{id}")).await;
        assert_eq!(orig["message"]["status"], "cancelled", "the original is replaced");
        let outbox = app.store.pending_outbox().await.unwrap();
        assert!(outbox.iter().any(|o| o.message_id == id && o.action == "cancel"), "terminals will be told");
    }
}

fn sheet(rows: &[[&str; 9]]) -> Vec<u8> {
    use cuncun_xlsx::Cell;
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| r.iter().map(|v| if v.is_empty() { Cell::Empty } else { Cell::Text(v.to_string()) }).collect())
        .collect();
    cuncun_xlsx::write_rows(cuncun_xlsx::resources::COLUMNS, cuncun_xlsx::resources::SHEET_NAME, &cells).unwrap()
}

async fn import(app: &App, token: &str, bytes: Vec<u8>, mode: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{}/api/v1/eb/terminals/import?mode={mode}", app.url))
        .bearer_auth(token)
        .header("content-type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        .body(bytes)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn excel_import_is_all_or_nothing_and_names_every_bad_row() {
    for app in apps().await {
        let a = app.token("admin").await;
        let file = sheet(&[
            ["室外大喇叭", "500236100201", "白帝村1号大喇叭", "迪威", "EB-OL200", "2024-05-01", "109.5", "31.0", ""],
            ["音柱", "500236100202", "八阵村音柱", "", "", "", "", "", ""],
            ["烤面包机", "500236100201", "坏行一", "", "", "", "", "", ""],
            ["室外大喇叭", "500299100201", "坏行二", "", "", "", "", "", ""],
            ["室外大喇叭", "500236100201", "", "", "", "", "", "95", ""],
        ]);
        let (st, body) = import(&app, &a, file.clone(), "all").await;
        assert_eq!(st, 422, "{body}");
        assert_eq!(body["imported"], 0);
        let rows: Vec<i64> = body["errors"].as_array().unwrap().iter().map(|e| e["row"].as_i64().unwrap()).collect();
        assert!(rows.contains(&4) && rows.contains(&5) && rows.contains(&6), "rows 4-6 are bad: {body}");
        assert!(!rows.contains(&2) && !rows.contains(&3), "rows 2-3 are fine: {body}");
        let (_, list) = app.get(&a, "/api/v1/eb/terminals").await;
        assert!(list["items"].as_array().unwrap().is_empty(), "nothing half-imported");
        // Explicitly: import the valid rows.
        let (st, body) = import(&app, &a, file, "valid_rows").await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["imported"], 2);
        let devices = body["devices"].as_array().unwrap();
        assert_eq!(devices[0]["resource_code"], "65002361002010314010101");
        assert_eq!(devices[1]["secret"].as_str().unwrap().len(), 32);
        let (_, list) = app.get(&a, "/api/v1/eb/terminals").await;
        assert_eq!(list["items"].as_array().unwrap().len(), 2);
        // The export reads back with the same devices.
        let r = client().get(format!("{}/eb/terminals/export.xlsx", app.url)).bearer_auth(&a).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let back = cuncun_xlsx::resources::parse_resources(&r.bytes().await.unwrap());
        let codes: Vec<String> = back.valid.iter().filter_map(|(_, r)| r.ebrid.as_ref().map(|e| e.to_string())).collect();
        assert_eq!(codes.len(), 2, "{:?}", back.errors);
        // Re-importing the export refuses the already registered codes.
        let (st, _) = import(&app, &a, cuncun_xlsx::resources::export_resources(back.valid.iter().map(|(_, r)| (r, ""))).unwrap(), "all").await;
        assert_eq!(st, 422);
        // A township broadcaster cannot import into another township.
        let t = app.token("t2cast").await;
        let other = sheet(&[["室外大喇叭", "500236001001", "越界", "", "", "", "", "", ""]]);
        let (st, body) = import(&app, &t, other, "all").await;
        assert_eq!(st, 422);
        assert!(body["errors"].to_string().contains("outside your region"));
        let (st, _) = import(&app, &t, b"not a spreadsheet".to_vec(), "all").await;
        assert_eq!(st, 422, "a non-xlsx file is reported, not a crash");
    }
}

/// A minimal valid WAV: 8 kHz mono 8-bit, a few samples of silence.
fn wav() -> Vec<u8> {
    let data = vec![128u8; 800];
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

#[tokio::test]
async fn a_draft_takes_an_uploaded_recording() {
    for app in apps().await {
        let s = app.token("sender").await;
        let (_, b) = app.send(&s, "POST", "/api/v1/eb/messages", warning(&["500236100"])).await;
        let id = b["message"]["id"].as_i64().unwrap();
        let put = |bytes: Vec<u8>| {
            let url = format!("{}/api/v1/eb/messages/{id}/audio", app.url);
            let s = s.clone();
            async move {
                let r = client().put(url).bearer_auth(s).body(bytes).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let (st, body) = put(b"just some text, not audio".to_vec()).await;
        assert_eq!(st, 400, "{body}");
        let (st, body) = put(wav()).await;
        assert_eq!(st, 200, "{body}");
        let sha = body["message"]["audio_sha256"].as_str().unwrap().to_string();
        let got = client().get(format!("{}/media/{sha}", app.url)).send().await.unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().to_vec(), wav(), "terminals fetch exactly the upload");
        app.send(&s, "POST", &format!("/api/v1/eb/messages/{id}/submit"), json!({})).await;
        let (st, _) = put(wav()).await;
        assert_eq!(st, 409, "audio is fixed once submitted");
    }
}

#[tokio::test]
async fn administrators_grant_departments_what_they_may_send() {
    for app in apps().await {
        let a = app.token("admin").await;
        let (_, users) = app.get(&a, "/api/v1/users").await;
        let sender = users["items"].as_array().unwrap().iter().find(|u| u["username"] == "sender").unwrap()["id"].as_i64().unwrap();
        let path = format!("/api/v1/users/{sender}/grant");
        let grant = json!({"event_types": ["11A"], "regions": ["500236100"]});
        // Only an administrator whose region holds the department sets it.
        assert_eq!(app.send(&app.token("t1admin").await, "PUT", &path, grant.clone()).await.0, 403);
        assert_eq!(app.send(&app.token("reviewer").await, "PUT", &path, grant.clone()).await.0, 403);
        let (st, body) = app.send(&a, "PUT", &path, json!({"event_types": ["11A"], "regions": ["500299"]})).await;
        assert_eq!(st, 400, "{body}");
        let (st, body) = app.send(&a, "PUT", &path, grant).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body, json!({"event_types": ["11A"], "regions": ["500236100"]}));
        // The sender may now send floods to one township, and nothing else.
        let s = app.token("sender").await;
        let (st, body) = app.send(&s, "POST", "/api/v1/eb/messages", warning(&["500236100"])).await;
        assert_eq!(st, 403, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("not granted event type 11B03"), "{body}");
        let mut flood = warning(&["500236100"]);
        flood["event_type"] = json!("11A01");
        assert_eq!(app.send(&s, "POST", "/api/v1/eb/messages", flood.clone()).await.0, 201);
        flood["areas"] = json!(["500236001"]);
        let (st, body) = app.send(&s, "POST", "/api/v1/eb/messages", flood).await;
        assert_eq!(st, 403, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("not granted area 500236001"), "{body}");
        // The user page sets it too, and every change is audited.
        let (c, csrf) = app.browser("admin").await;
        let page = c.get(format!("{}/users/{sender}", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("id=\"grant-form\"") && page.contains("value=\"11A\""), "the user page shows the grant");
        let r = c
            .post(format!("{}/users/{sender}/grant", app.url))
            .form(&[("csrf", csrf.as_str()), ("event_types", "11B, 11000"), ("regions", "500236")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let (_, body) = app.get(&a, &path).await;
        assert_eq!(body, json!({"event_types": ["11B", "11000"], "regions": ["500236"]}));
        let log = app.store.audit_recent(50).await.unwrap();
        assert_eq!(log.iter().filter(|e| e.action == "department.grant" && e.actor.ends_with(":admin")).count(), 2);
    }
}

/// The page's compose form is the application's input: a ticked drill box makes a drill, a
/// refused form comes back with what was typed, and editing a draft shows its fields.
#[tokio::test]
async fn the_compose_form_marks_drills_and_keeps_what_was_typed() {
    for app in apps().await {
        let (c, csrf) = app.browser("t2cast").await;
        let form = |drill: bool, areas: &str| {
            let mut f = vec![
                ("csrf", csrf.clone()),
                ("priority", "emergency".to_string()),
                ("event_type", "11B03".into()),
                ("severity", "2".into()),
                ("title", "防汛演练".into()),
                ("text", "白帝镇防汛应急演练，请勿惊慌".into()),
                ("areas", areas.to_string()),
                ("valid_minutes", "60".into()),
                ("repeat", "2".into()),
            ];
            if drill {
                f.push(("drill", "1".into()));
            }
            f
        };
        // Outside the broadcaster's township: refused, the form comes back filled in.
        let r = c.post(format!("{}/eb/messages", app.url)).form(&form(true, "500236001")).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let page = r.text().await.unwrap();
        assert!(page.contains("白帝镇防汛应急演练") && page.contains("value=\"500236001\""), "{page}");
        assert!(page.contains("name=\"drill\" value=\"1\" checked"), "the drill box stays ticked");
        let r = c.post(format!("{}/eb/messages", app.url)).form(&form(true, "500236100")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let at = r.headers()["location"].to_str().unwrap().to_string();
        let id: i64 = at.rsplit('/').next().unwrap().parse().unwrap();
        let t = app.token("t2cast").await;
        let (_, body) = app.get(&t, &format!("/api/v1/eb/messages/{id}")).await;
        assert_eq!(body["message"]["drill"], true, "{body}");
        let r = c.post(format!("{}/eb/messages", app.url)).form(&form(false, "500236100")).send().await.unwrap();
        let id2: i64 = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().parse().unwrap();
        let (_, body) = app.get(&t, &format!("/api/v1/eb/messages/{id2}")).await;
        assert_eq!(body["message"]["drill"], false, "no box, no drill: {body}");
        let edit = c.get(format!("{}/eb/messages/{id}/edit", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(edit.contains("防汛演练") && edit.contains("value=\"60\"") && edit.contains("value=\"1\" checked"), "{edit}");
    }
}
