//! One conformance suite, run against every backend (SQLite always; PostgreSQL with
//! CUNCUN_TEST_PG_URL, which CI sets).

use cuncun_domain::model::*;
use cuncun_domain::{RegionCode, RegionLevel, Role};
use cuncun_store::testing::all_backends;
use cuncun_store::*;

fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

fn region(code: &str, name: &str) -> Region {
    let c = rc(code);
    Region { level: c.level(), parent: c.parent(), code: c, name: name.into() }
}

/// Two townships of one county, two villages each.
fn fixture() -> Vec<Region> {
    vec![
        region("50", "重庆市"),
        region("5002", "县"),
        region("500236", "奉节县"),
        region("500236001", "永安街道"),
        region("500236001001", "桂井社区"),
        region("500236001002", "诗城社区"),
        region("500236100", "白帝镇"),
        region("500236100201", "白帝村"),
        region("500236100202", "八阵村"),
    ]
}

fn new_user(name: &str, role: Role, region: &str) -> NewUser {
    NewUser {
        username: name.into(),
        display_name: format!("{name} 显示名"),
        role,
        region_code: rc(region),
        phone: "13800000000".into(),
        password_hash: "$argon2id$placeholder".into(),
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for db in all_backends().await {
        let again = db.store.migrate().await.unwrap();
        assert!(again.is_empty(), "{:?}: second migrate applied {again:?}", db.store.backend());
        db.store.ping().await.unwrap();
    }
}

#[tokio::test]
async fn region_tree_import_children_and_counts() {
    for db in all_backends().await {
        let s = &db.store;
        let r = s.import_regions(&fixture(), "fixture", &Actor::cli("test")).await.unwrap();
        assert_eq!(r.inserted, 9);
        // Re-import updates rather than duplicating.
        let mut renamed = fixture();
        renamed[6].name = "白帝镇(新)".into();
        let r2 = s.import_regions(&renamed, "fixture", &Actor::cli("test")).await.unwrap();
        assert_eq!((r2.inserted, r2.updated), (0, 9));
        let county = rc("500236");
        let kids = s.children(&county).await.unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1].region.name, "白帝镇(新)");
        assert_eq!(kids[1].children, 2);
        assert_eq!(kids[0].region.level, RegionLevel::Township);
        let c = s.region_counts(&county).await.unwrap();
        assert_eq!((c.townships, c.villages), (2, 4));
        let t = s.region_counts(&rc("500236100")).await.unwrap();
        assert_eq!((t.townships, t.villages), (1, 2));
        let found = s.search_regions(&rc("500236100"), "村", 10).await.unwrap();
        assert_eq!(found.len(), 2, "search stays inside the scope");
        let none = s.search_regions(&rc("500236001"), "白帝", 10).await.unwrap();
        assert!(none.is_empty());
        assert!(s.region(&rc("500236100202")).await.unwrap().is_some());
        assert!(s.region(&rc("500236100203")).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn hamlets_live_under_villages_only() {
    for db in all_backends().await {
        let s = &db.store;
        s.import_regions(&fixture(), "fixture", &Actor::system()).await.unwrap();
        let h = NewHamlet { village_code: rc("500236100201"), name: "王家湾".into(), households: 35, population: 96 };
        let made = s.add_hamlet(&h, &Actor::cli("test")).await.unwrap();
        assert_eq!(made.households, 35);
        assert!(matches!(s.add_hamlet(&h, &Actor::system()).await, Err(StoreError::Conflict(_))));
        let at_township = NewHamlet { village_code: rc("500236100"), ..h.clone() };
        assert!(matches!(s.add_hamlet(&at_township, &Actor::system()).await, Err(StoreError::Invalid(_))));
        assert_eq!(s.hamlets(&rc("500236100201")).await.unwrap().len(), 1);
        assert_eq!(s.region_counts(&rc("500236")).await.unwrap().hamlets, 1);
    }
}

#[tokio::test]
async fn users_are_unique_scoped_and_audited() {
    for db in all_backends().await {
        let s = &db.store;
        s.import_regions(&fixture(), "fixture", &Actor::system()).await.unwrap();
        let a = s.create_user(&new_user("admin", Role::Admin, "500236"), &Actor::cli("t")).await.unwrap();
        let t1 = s.create_user(&new_user("yongan", Role::Viewer, "500236001"), &Actor::user(&a)).await.unwrap();
        s.create_user(&new_user("baidi", Role::Steward, "500236100"), &Actor::user(&a)).await.unwrap();
        assert!(matches!(
            s.create_user(&new_user("admin", Role::Viewer, "500236"), &Actor::system()).await,
            Err(StoreError::Conflict(_))
        ));
        let bad_region = s.create_user(&new_user("ghost", Role::Viewer, "500237"), &Actor::system()).await;
        assert!(matches!(bad_region, Err(StoreError::Invalid(ref m)) if m.contains("500237")), "{bad_region:?}");
        assert_eq!(s.users_in(&rc("500236")).await.unwrap().len(), 3);
        let in_t1: Vec<_> = s.users_in(&rc("500236001")).await.unwrap().into_iter().map(|u| u.username).collect();
        assert_eq!(in_t1, ["yongan"]);
        let (u, hash) = s.user_credentials("yongan").await.unwrap().unwrap();
        assert_eq!(u.id, t1.id);
        assert!(hash.starts_with("$argon2"));
        let patch = UserPatch { role: Some(Role::Reviewer), ..Default::default() };
        let up = s.update_user(t1.id, &patch, &Actor::user(&a)).await.unwrap();
        assert_eq!(up.role, Role::Reviewer);
        let last = &s.audit_recent(1).await.unwrap()[0];
        assert_eq!(last.action, "user.update");
        assert_eq!(last.actor, "user:1:admin");
        assert!(last.before.contains("viewer") && last.after.contains("reviewer"));
        s.set_password(t1.id, "$argon2id$new", &Actor::user(&a)).await.unwrap();
        let pw = &s.audit_recent(1).await.unwrap()[0];
        assert!(!pw.after.contains("argon2"), "the hash never reaches the audit log");
    }
}

#[tokio::test]
async fn sessions_expire_and_revoke() {
    for db in all_backends().await {
        let s = &db.store;
        s.import_regions(&fixture(), "fixture", &Actor::system()).await.unwrap();
        let u = s.create_user(&new_user("u1", Role::Viewer, "500236"), &Actor::system()).await.unwrap();
        let now = now_ms();
        for (h, exp) in [("h1", now + 60_000), ("h2", now + 60_000), ("h3", now - 1)] {
            s.create_session(&NewSession {
                token_hash: h.into(),
                user_id: u.id,
                kind: "web".into(),
                csrf_token: "c".into(),
                expires_at_ms: exp,
                client: "test".into(),
            })
            .await
            .unwrap();
        }
        assert!(s.live_session("h1", now).await.unwrap().is_some());
        assert!(s.live_session("h3", now).await.unwrap().is_none(), "expired");
        assert!(s.revoke_session("h1", &Actor::user(&u)).await.unwrap());
        assert!(s.live_session("h1", now).await.unwrap().is_none(), "revoked");
        assert!(!s.revoke_session("h1", &Actor::user(&u)).await.unwrap());
        // Disabling a user revokes their remaining sessions.
        let patch = UserPatch { disabled: Some(true), ..Default::default() };
        s.update_user(u.id, &patch, &Actor::system()).await.unwrap();
        assert!(s.live_session("h2", now).await.unwrap().is_none());
        assert_eq!(s.sessions_of(u.id).await.unwrap().len(), 3);
    }
}

#[tokio::test]
async fn registry_batch_counts_by_region() {
    for db in all_backends().await {
        let s = &db.store;
        s.import_regions(&fixture(), "fixture", &Actor::system()).await.unwrap();
        let hh = |v: &str, members| NewHousehold {
            village_code: rc(v),
            hamlet: None,
            head_name: "张三".into(),
            phone: "13900000000".into(),
            address: "一号".into(),
            members,
            coverage_modes: vec![CoverageMode::Satellite, CoverageMode::Cable],
            hd: true,
            fibre: false,
            care_elderly: true,
            care_children: false,
            care_disabled: false,
        };
        let batch = RegistryBatch {
            households: (0..2500).map(|i| hh(if i % 2 == 0 { "500236100201" } else { "500236001001" }, 3)).collect(),
            stewards: vec![NewSteward {
                name: "李文华".into(),
                phone: "13700000000".into(),
                region_code: rc("500236100"),
                villages: vec![rc("500236100201"), rc("500236100202")],
            }],
            outlets: vec![NewOutlet {
                kind: OutletKind::Township,
                region_code: rc("500236100"),
                name: "白帝镇广电服务站".into(),
                address: "白帝镇".into(),
                phone: "023-1".into(),
                hotline: "96655".into(),
            }],
            terminals: vec![NewTerminal {
                kind: TerminalKind::OutdoorLoudspeaker,
                region_code: rc("500236100201"),
                name: "白帝村1号大喇叭".into(),
                vendor: "v".into(),
                model: "m".into(),
                lon: Some(109.5),
                lat: None,
            }],
            ..Default::default()
        };
        s.insert_registry(&batch, &Actor::cli("demo")).await.unwrap();
        let c = s.region_counts(&rc("500236")).await.unwrap();
        assert_eq!((c.households, c.population, c.terminals, c.stewards, c.outlets), (2500, 7500, 1, 1, 1));
        let t = s.region_counts(&rc("500236001")).await.unwrap();
        assert_eq!((t.households, t.terminals, t.stewards), (1250, 0, 0));
    }
}

#[tokio::test]
async fn audit_chain_detects_an_edited_row() {
    for db in all_backends().await {
        let s = &db.store;
        s.import_regions(&fixture(), "fixture", &Actor::system()).await.unwrap();
        for i in 0..5 {
            s.audit(&Actor::cli("t"), "test.event", "thing", &i.to_string(), "", "{}").await.unwrap();
        }
        let (n, faults) = verify_audit(s).await.unwrap();
        assert_eq!((n, faults.len()), (6, 0));
        // The table refuses ordinary edits...
        let refused = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").execute(s.pool()).await;
        assert!(refused.is_err(), "{:?}: audit_log must be append-only", s.backend());
        // ...and someone who drops the guard and edits a row is still caught by the chain.
        let drop = match s.backend() {
            Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
            Backend::Postgres => "DROP TRIGGER audit_log_no_change ON audit_log",
        };
        sqlx::query(drop).execute(s.pool()).await.unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").execute(s.pool()).await.unwrap();
        let (_, faults) = verify_audit(s).await.unwrap();
        assert_eq!(faults, vec![cuncun_domain::audit::ChainFault::ContentChanged { seq: 3 }]);
    }
}

#[tokio::test]
async fn concurrent_audited_writes_keep_one_chain() {
    for db in all_backends().await {
        let s = std::sync::Arc::new(db.store);
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for j in 0..10 {
                    s.audit(&Actor::cli("t"), "x", "y", &format!("{i}-{j}"), "", "").await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (n, faults) = verify_audit(&*s).await.unwrap();
        assert_eq!(n, 80);
        assert!(faults.is_empty(), "{faults:?}");
    }
}
