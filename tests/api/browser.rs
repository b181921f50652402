//! End to end in real headless Chromium (Debian's `chromium` and `chromedriver`): a reviewer
//! logs in on the hukou node, opens a conflict that two real nodes created, resolves it, and the
//! residence node's view changes. A screenshot of the conflict page is kept under `target/`.

use std::time::Duration;

use hukou_sync::accounts::Role;
use serde_json::Value;

use crate::conflicts::conflicted_pair;
use crate::helpers::{add_user, eventually};
use crate::webdriver::{Driver, Session};

const WAIT: Duration = Duration::from_secs(15);

/// Whether the browser test can run here. On a machine without Chromium it is skipped with a
/// notice so `cargo test` works with only the Rust toolchain; CI sets `HUKOU_SYNC_REQUIRE_BROWSER=1`
/// (in `.ci/run`, which installs Chromium), and then a missing browser fails the test.
fn browser_available() -> bool {
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let present =
        std::path::Path::new(&driver).exists() && std::path::Path::new(&chromium).exists();
    if !present {
        assert!(
            std::env::var_os("HUKOU_SYNC_REQUIRE_BROWSER").is_none(),
            "HUKOU_SYNC_REQUIRE_BROWSER is set but {driver} or {chromium} is missing"
        );
        eprintln!(
            "SKIPPED the browser test: {driver} or {chromium} is missing \
             (apt-get install chromium chromium-driver fonts-wqy-zenhei)"
        );
    }
    present
}

#[tokio::test]
async fn a_reviewer_resolves_a_conflict_in_the_browser_and_the_other_node_follows() {
    if !browser_available() {
        return;
    }
    let (pair, id) = conflicted_pair().await;
    let huk = &pair.hukou;
    add_user(huk, "wang.fang", Role::Reviewer, "correct horse battery");

    let driver = Driver::start().await.expect("chromedriver starts");
    let browser = driver.session().await.expect("a Chromium session");

    // Unauthenticated: the queue sends us to the login page.
    browser.goto(&huk.url("/ui/conflicts")).await.unwrap();
    browser.wait_for("#username", WAIT).await.unwrap();
    assert!(browser.current_url().await.unwrap().contains("/ui/login"));

    // A wrong password first.
    log_in(&browser, "wang.fang", "wrong password!!").await;
    browser.wait_for("#login-error", WAIT).await.unwrap();

    log_in(&browser, "wang.fang", "correct horse battery").await;
    browser.wait_for("#queue", WAIT).await.unwrap();
    let cookies = browser.cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "hks_session")
        .expect("a session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");

    // The queue lists the conflict; open it.
    browser
        .find(".conflict-link")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("#resolve-form", WAIT).await.unwrap();
    let text = browser.page_source().await.unwrap();
    assert!(text.contains("healthy") && text.contains("chronic_illness"));
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser/conflict-page.png");
    browser.screenshot_to(&shot).await.unwrap();
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    // Take the residence bureau's value and resolve.
    let mut chosen = false;
    for side in browser
        .find_all("#field-health_status .side")
        .await
        .unwrap()
    {
        if side.text().await.unwrap().contains("chronic_illness") {
            side.find("input[type=radio]")
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            chosen = true;
        }
    }
    assert!(chosen);
    browser
        .find("#resolve")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("#notice", WAIT).await.unwrap();
    browser.wait_for("#no-conflicts", WAIT).await.unwrap();
    let resolved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser/resolved.png");
    browser.screenshot_to(&resolved).await.unwrap();

    // The other node's view changed: the resolution arrived and closed the conflict there too.
    let res = &pair.residence;
    eventually(15, "the resolution to reach the residence node", || async {
        let f: Value = res
            .get(&format!("/api/v1/children/{id}"))
            .await
            .json()
            .await
            .unwrap();
        f["record"]["health_status"] == "chronic_illness"
            && f["history"].as_array().unwrap().len() == 4
    })
    .await;
    let open: Value = res
        .get(&format!("/api/v1/children/{id}/conflicts"))
        .await
        .json()
        .await
        .unwrap();
    assert!(open["conflicts"].as_array().unwrap().is_empty());
    browser.close().await.unwrap();
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// Fills the login form and submits it.
async fn log_in(browser: &Session, username: &str, password: &str) {
    for (field, text) in [("#username", username), ("#password", password)] {
        let input = browser.find(field).await.unwrap();
        input.send_keys(text).await.unwrap();
    }
    browser.find("#login").await.unwrap().click().await.unwrap();
}
