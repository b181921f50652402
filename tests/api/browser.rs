//! End to end in real headless Chromium (Debian's `chromium` and `chromedriver`): a reviewer
//! logs in on the hukou node, opens a conflict that two real nodes created, resolves it, and the
//! residence node's view changes. A screenshot of the conflict page is kept under `target/`.
//!
//! The browser is driven with `fantoccini` over plain HTTP to a `chromedriver` this file starts
//! on a free 127.0.0.1 port ([`Chromedriver`], killed on drop). Running it needs Debian's
//! `chromium` and `chromedriver` packages (same major version), plus a CJK font or Chinese text
//! screenshots as boxes: `apt-get install chromium chromium-driver fonts-wqy-zenhei`.
//! `CHROMEDRIVER` and `CHROMIUM` override the paths `/usr/bin/chromedriver` and
//! `/usr/bin/chromium`. Chromium runs with `--headless=new`, `--no-sandbox` (needed as root, e.g.
//! in CI containers) and `--disable-dev-shm-usage` (small `/dev/shm` in containers), a fresh
//! profile per session, and downloads disabled.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hukou_sync::accounts::Role;
use serde_json::{json, Value};

use crate::conflicts::conflicted_pair;
use crate::helpers::Pair;
use crate::helpers::{add_user, eventually};

const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);
const CHROME_ARGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --window-size=1280,1000 --no-first-run --no-default-browser-check --disable-extensions \
    --disable-background-networking --disable-sync --disable-component-update --lang=zh-CN";

/// Whether the browser test can run here. On a machine without Chromium it is skipped with a
/// notice so `cargo test` works with only the Rust toolchain; CI sets `HUKOU_SYNC_REQUIRE_BROWSER=1`
/// (in `.ci/run`, which installs Chromium), and then a missing browser fails the test.
fn browser_available() -> bool {
    let (driver, chromium) = (chromedriver_path(), chromium_path());
    let present = Path::new(&driver).exists() && Path::new(&chromium).exists();
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

fn chromedriver_path() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// A running chromedriver on a free 127.0.0.1 port, its output in a log file quoted when it
/// fails to start; killed on drop.
struct Chromedriver {
    child: Child,
    url: String,
    _logs: tempfile::TempDir,
}

impl Chromedriver {
    /// Starts chromedriver and waits up to 20 s for it to accept connections.
    async fn start() -> Chromedriver {
        let bin = chromedriver_path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let logs = tempfile::tempdir().expect("a log dir");
        let log_path = logs.path().join("chromedriver.log");
        let log = std::fs::File::create(&log_path).expect("a log file");
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let mut driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _logs: logs,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            let exited = driver.child.try_wait().expect("chromedriver's status");
            if exited.is_some() || Instant::now() > deadline {
                let out = std::fs::read_to_string(&log_path).unwrap_or_default();
                let why = exited.map_or("not ready after 20 s".into(), |s| {
                    format!("exited with {s}")
                });
                panic!("{bin} on port {port} {why}; output:\n{out}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A new headless Chromium session with a fresh profile (the directory lives as long as the
    /// returned guard).
    async fn session(&self) -> (Client, tempfile::TempDir) {
        let profile = tempfile::tempdir().expect("a profile dir");
        let mut args: Vec<String> = CHROME_ARGS.split_whitespace().map(String::from).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium_path(), "args": args, "prefs": {
                "download.prompt_for_download": false,
                "download_restrictions": 3,
                // `--lang` alone leaves navigator.language / Accept-Language at en-US in headless.
                "intl.accept_languages": "zh-CN,zh",
            }},
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        (client, profile)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls every 50 ms until the CSS selector matches or [`WAIT`] passes.
async fn wait_for(browser: &Client, css: &str) -> Element {
    browser
        .wait()
        .at_most(WAIT)
        .every(POLL)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for `{css}`: {e}"))
}

/// The first element matching a CSS selector.
async fn find(browser: &Client, css: &str) -> Element {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("finding `{css}`: {e}"))
}

/// Writes a viewport screenshot to `path`, creating its parent directories.
async fn screenshot_to(browser: &Client, path: &Path) {
    let png = browser.screenshot().await.unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, png).unwrap();
}

#[tokio::test]
async fn a_reviewer_resolves_a_conflict_in_the_browser_and_the_other_node_follows() {
    if !browser_available() {
        return;
    }
    let (pair, id) = conflicted_pair().await;
    add_user(
        &pair.hukou,
        "wang.fang",
        Role::Reviewer,
        "correct horse battery",
    );

    let driver = Chromedriver::start().await;
    let (browser, _profile) = driver.session().await;
    // The scenario runs as its own task so that the session is closed (Chromium quits before its
    // profile is removed) even when an assertion fails; the failure is then raised again.
    let outcome = tokio::spawn(resolve_in_the_browser(browser.clone(), pair, id)).await;
    browser.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn resolve_in_the_browser(browser: Client, pair: Pair, id: String) {
    let huk = &pair.hukou;

    // Unauthenticated: the queue sends us to the login page.
    browser.goto(&huk.url("/ui/conflicts")).await.unwrap();
    wait_for(&browser, "#username").await;
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("/ui/login"));

    // A wrong password first.
    log_in(&browser, "wang.fang", "wrong password!!").await;
    wait_for(&browser, "#login-error").await;

    log_in(&browser, "wang.fang", "correct horse battery").await;
    wait_for(&browser, "#queue").await;
    let cookies = browser.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "hks_session")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(
        session.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );

    // The queue lists the conflict; open it.
    find(&browser, ".conflict-link")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#resolve-form").await;
    let text = browser.source().await.unwrap();
    // Values by their Chinese labels, not their codes.
    assert!(text.contains("健康") && text.contains("慢性病"), "{text}");
    assert!(!text.contains("chronic_illness"), "{text}");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser/conflict-page.png");
    screenshot_to(&browser, &shot).await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    // Take the residence bureau's value and resolve.
    let mut chosen = false;
    for side in browser
        .find_all(Locator::Css("#field-health_status .side"))
        .await
        .unwrap()
    {
        if side.text().await.unwrap().contains("慢性病") {
            side.find(Locator::Css("input[type=radio]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            chosen = true;
        }
    }
    assert!(chosen);
    find(&browser, "#resolve").await.click().await.unwrap();
    wait_for(&browser, "#notice").await;
    wait_for(&browser, "#no-conflicts").await;
    let resolved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser/resolved.png");
    screenshot_to(&browser, &resolved).await;

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
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// Fills the login form and submits it.
async fn log_in(browser: &Client, username: &str, password: &str) {
    for (field, text) in [("#username", username), ("#password", password)] {
        find(browser, field).await.send_keys(text).await.unwrap();
    }
    find(browser, "#login").await.click().await.unwrap();
}
