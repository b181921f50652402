//! End to end in real headless Chromium (Debian's `chromium` and `chromedriver`). A reviewer
//! logs in on the hukou node, opens a conflict that two real nodes created, resolves it, and the
//! residence node's view changes. A screenshot of the conflict page is kept under `target/`.
//! Then two whole days of work, on two real nodes: a caseworker at the residence bureau uploads
//! a ledger, finds the child not visited for six months, records a visit and opens a case with a
//! PDF document; a reviewer at the hukou bureau sees the case arrive and approves it with its
//! effective month. Their screenshots are kept under `target/screenshots/`.
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

/// Where the daily-work screenshots go: `screenshots/` in the build's target directory
/// (`target/screenshots/` by default), kept as test artefacts.
fn screenshot_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("screenshots")
}

/// Types `text` into the input with this CSS selector.
async fn type_into(browser: &Client, css: &str, text: &str) {
    find(browser, css).await.send_keys(text).await.unwrap();
}

/// Chooses an option of a select by its value.
async fn choose(browser: &Client, css: &str, value: &str) {
    find(browser, css)
        .await
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("choosing {value} in `{css}`: {e}"));
}

/// Submits a form by its button, waits until the page it was on is gone (its root element
/// stale), then for the next page's marker.
async fn submit(browser: &Client, button: &str, then: &str) -> String {
    let old = find(browser, "html").await;
    find(browser, button).await.click().await.unwrap();
    let deadline = Instant::now() + WAIT;
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "{button} did not leave the page");
        tokio::time::sleep(POLL).await;
    }
    wait_for(browser, then).await;
    browser.source().await.unwrap()
}

#[tokio::test]
async fn a_caseworkers_day_and_a_reviewers_day_in_the_browser() {
    if !browser_available() {
        return;
    }
    let pair = crate::helpers::spawn_pair().await;
    add_user(
        &pair.residence,
        "wang.fang",
        Role::Caseworker,
        "correct horse battery",
    );
    add_user(
        &pair.hukou,
        "chen.jing",
        Role::Reviewer,
        "correct horse battery",
    );
    let driver = Chromedriver::start().await;
    let (browser, _profile) = driver.session().await;
    let outcome = tokio::spawn(the_two_days(browser.clone(), pair)).await;
    browser.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn the_two_days(browser: Client, pair: Pair) {
    let shots = screenshot_dir();
    let files = tempfile::tempdir().unwrap();
    let (res, huk) = (&pair.residence, &pair.hukou);
    let stale = crate::helpers::id_number("510104", (2013, 4, 2), 51);
    let fresh = crate::helpers::id_number("510104", (2015, 8, 9), 52);
    let ledger = files.path().join("台账.csv");
    std::fs::write(
        &ledger,
        format!(
            "序号,身份证号,姓名,户籍地,居住地,儿童类别,风险等级,最近走访日期,信息更新日期,联系人\n\
             1,{stale},刘小雨,510104,410105,流动;留守,3,2025-01-10,2025-01-10,刘建国\n\
             2,{fresh},陈小川,510104,410105,流动,4,2026-11-01,2026-11-01,陈伟\n"
        ),
    )
    .unwrap();
    let document = files.path().join("服刑通知书.pdf");
    std::fs::write(&document, crate::helpers::pdf("服刑通知书 川监2025-118")).unwrap();

    // The caseworker's day at the residence bureau: log in, upload the ledger.
    browser.goto(&res.url("/ui/ledger")).await.unwrap();
    wait_for(&browser, "#username").await;
    log_in(&browser, "wang.fang", "correct horse battery").await;
    wait_for(&browser, "#upload").await;
    type_into(&browser, "#upload-file", ledger.to_str().unwrap()).await;
    let page = submit(&browser, "#upload-submit", "#import-result").await;
    assert!(page.contains("<span id=\"imported\">2</span>"), "{page}");
    assert!(
        page.contains("序号") && page.contains("联系人"),
        "ignored columns listed"
    );
    screenshot_to(&browser, &shots.join("caseworker-1-ledger-uploaded.png")).await;

    // Find the stale child: files not visited for six months.
    browser.goto(&res.url("/ui/children")).await.unwrap();
    wait_for(&browser, "#filters").await;
    choose(&browser, "select[name=stale_days]", "183").await;
    let page = submit(&browser, "#search", "#files").await;
    assert!(
        page.contains("刘小雨") && !page.contains("陈小川"),
        "{page}"
    );
    let listed = find(&browser, "#files").await.text().await.unwrap();
    assert!(
        !listed.contains(&stale),
        "ID numbers are masked in lists: {listed}"
    );
    screenshot_to(&browser, &shots.join("caseworker-2-stale-files.png")).await;
    find(&browser, &format!("a[href='/ui/children/{stale}']"))
        .await
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#visit").await;

    // Record a visit with an assessment (the date defaults to today).
    type_into(&browser, "#visit-visitor_name", "王芳").await;
    choose(&browser, "#visit-visitor_role", "children_director").await;
    find(&browser, "#visit input[name=seen][value=child]")
        .await
        .click()
        .await
        .unwrap();
    find(&browser, "#visit input[name=seen][value=caregiver]")
        .await
        .click()
        .await
        .unwrap();
    choose(&browser, "#visit-grade_living", "2").await;
    type_into(&browser, "#visit-assessor", "王芳").await;
    type_into(&browser, "#visit-follow_up", "联系学校了解出勤").await;
    let page = submit(&browser, "#visit-submit", "#notice").await;
    assert!(
        page.contains("走访已记录") && page.contains("入户走访"),
        "{page}"
    );
    screenshot_to(&browser, &shots.join("caseworker-3-visit-recorded.png")).await;

    // Open a case with a PDF document.
    choose(&browser, "#open-case-benefit", "dibao").await;
    choose(&browser, "#open-case-father_situation", "imprisoned").await;
    choose(&browser, "#open-case-mother_situation", "missing").await;
    type_into(
        &browser,
        "#open-case-summary",
        "父亲服刑在押，母亲失联，由祖父抚养，家庭无稳定收入",
    )
    .await;
    type_into(&browser, "#open-case-officer", "ZZ-JS-017").await;
    type_into(&browser, "#open-case-doc_type", "服刑通知书").await;
    type_into(&browser, "#open-case-issuer", "四川省某监狱").await;
    type_into(&browser, "#open-case-number", "川监2025-118").await;
    type_into(&browser, "#open-case-file", document.to_str().unwrap()).await;
    let page = submit(&browser, "#open-case-submit", "#evidence").await;
    assert!(
        page.contains("案件已提交") && page.contains("服刑通知书"),
        "{page}"
    );
    screenshot_to(&browser, &shots.join("caseworker-4-case-opened.png")).await;
    let url = browser.current_url().await.unwrap();
    let case_id = url.path().trim_start_matches("/ui/cases/").to_owned();

    // The reviewer's day at the hukou bureau: the case arrives with its document.
    eventually(
        20,
        "the case and its document at the hukou node",
        || async {
            let r = huk.get(&format!("/api/v1/cases/{case_id}")).await;
            if r.status() != 200 {
                return false;
            }
            let v: Value = r.json().await.unwrap();
            v["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["status"] == "present")
        },
    )
    .await;
    browser.goto(&huk.url("/ui/cases")).await.unwrap();
    wait_for(&browser, "#username").await;
    log_in(&browser, "chen.jing", "correct horse battery").await;
    wait_for(&browser, "#incoming").await;
    screenshot_to(&browser, &shots.join("reviewer-1-incoming.png")).await;
    find(
        &browser,
        &format!("#incoming a[href='/ui/cases/{case_id}']"),
    )
    .await
    .click()
    .await
    .unwrap();
    wait_for(&browser, "#evidence").await;
    if browser.find(Locator::Css("#receive-submit")).await.is_ok() {
        submit(&browser, "#receive-submit", "#notice").await;
    }
    wait_for(&browser, "#approve").await;
    // A month input takes its value by the browser's own picker; set it as a user's pick would.
    let month = find(&browser, "#approve-effective_month").await;
    browser
        .execute(
            "arguments[0].value = '2026-11';",
            vec![serde_json::to_value(&month).unwrap()],
        )
        .await
        .unwrap();
    type_into(&browser, "#approve-officer", "CD-JJ-003").await;
    let page = submit(&browser, "#approve-submit", "#effective").await;
    assert!(
        page.contains("2026年11月") && page.contains("approved"),
        "{page}"
    );
    screenshot_to(&browser, &shots.join("reviewer-2-approved.png")).await;

    // The decision reaches the residence bureau.
    eventually(20, "the approval at the residence node", || async {
        let r = res.get(&format!("/api/v1/cases/{case_id}")).await;
        let v: Value = r.json().await.unwrap();
        v["case"]["state"] == "approved"
    })
    .await;
    for name in [
        "caseworker-1-ledger-uploaded.png",
        "caseworker-4-case-opened.png",
        "reviewer-2-approved.png",
    ] {
        assert!(std::fs::metadata(shots.join(name)).unwrap().len() > 10_000);
    }
    pair.residence.stop().await;
    pair.hukou.stop().await;
}
