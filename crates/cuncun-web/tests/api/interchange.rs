//! The interchange page: who may see it, and what it says when interchange is not configured.
use crate::harness::*;

#[tokio::test]
async fn interchange_page_is_for_operators_and_says_when_off() {
    for app in apps().await {
        let (admin, _) = app.browser("admin").await;
        let r = admin.get(format!("{}/eb/interchange", app.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains("id=\"ix-disabled\""), "not configured here, and the page says so");
        assert!(page.contains("上下级平台对接"), "Chinese first");
        let (viewer, _) = app.browser("t1view").await;
        let r = viewer.get(format!("{}/eb/interchange", app.url)).send().await.unwrap();
        assert_eq!(r.status(), 403, "a viewer does not see the interchange");
        // Without interchange there is no receiving endpoint either.
        let r = client().post(format!("{}/ebd", app.url)).body("x").send().await.unwrap();
        assert!(r.status() == 404 || r.status() == 405, "got {}", r.status());
    }
}
