//! A minimal W3C WebDriver client for the browser tests.
//!
//! It owns three things: a `chromedriver` process on a free 127.0.0.1 port ([`Driver`], killed
//! when the driver and every session made from it are gone), headless Chromium sessions
//! ([`Session`]) and element handles ([`Element`]), speaking plain JSON over HTTP with `reqwest`.
//! No WebDriver crate (thirtyfour, fantoccini) is used on purpose: the few commands the tests need
//! fit in one file, and the dependency tree stays what the project already has.
//!
//! Running it needs Debian's `chromium` and `chromedriver` packages (same major version), plus a
//! CJK font or Chinese text screenshots as boxes: `apt-get install chromium chromium-driver
//! fonts-wqy-zenhei`. `CHROMEDRIVER` and `CHROMIUM` override the paths
//! `/usr/bin/chromedriver` and `/usr/bin/chromium`. Chromium runs with `--headless=new`,
//! `--no-sandbox` (needed as root, e.g. in CI containers) and `--disable-dev-shm-usage` (small
//! `/dev/shm` in containers), a fresh profile per session, and downloads disabled.
//!
//! Call [`Session::close`] at the end of a test; dropping an open session deletes it with a short
//! blocking request instead.
#![allow(dead_code)] // test support: not every test binary uses every command

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};

/// The W3C web element identifier key (WebDriver spec §12.1; chromedriver returns exactly this).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const POLL: Duration = Duration::from_millis(50);
const CHROME_ARGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --window-size=1280,1000 --no-first-run --no-default-browser-check --disable-extensions \
    --disable-background-networking --disable-sync --disable-component-update --lang=zh-CN";

#[derive(Debug)]
pub enum WdError {
    /// chromedriver could not be started or did not become ready (the message quotes its log).
    Driver(String),
    /// The HTTP request to chromedriver failed (connection refused, timeout, ...).
    Http(reqwest::Error),
    /// A W3C error response: `value.error` and `value.message`, with the HTTP status.
    WebDriver {
        status: u16,
        error: String,
        message: String,
    },
    /// `no such element` for this CSS selector.
    NoSuchElement {
        selector: String,
        status: u16,
        message: String,
    },
    /// A `wait_for*` poll ran out of time.
    Timeout { what: String, waited: Duration },
    /// An unexpected response shape, or a local I/O error.
    Other(String),
}

impl fmt::Display for WdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WdError::Driver(m) => write!(f, "chromedriver: {m}"),
            WdError::Http(e) => write!(f, "webdriver http: {e}"),
            WdError::WebDriver {
                status,
                error,
                message,
            } => {
                write!(f, "webdriver error `{error}` (HTTP {status}): {message}")
            }
            WdError::NoSuchElement {
                selector,
                status,
                message,
            } => {
                write!(f, "no such element `{selector}` (HTTP {status}): {message}")
            }
            WdError::Timeout { what, waited } => {
                write!(f, "timed out after {waited:?} waiting for {what}")
            }
            WdError::Other(m) => write!(f, "webdriver: {m}"),
        }
    }
}

impl std::error::Error for WdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WdError::Http(e) => Some(e),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for WdError {
    fn from(e: reqwest::Error) -> Self {
        WdError::Http(e)
    }
}

fn other(what: &str, v: impl fmt::Display) -> WdError {
    WdError::Other(format!("{what}: {v}"))
}

/// The chromedriver process; killed when the last [`Driver`] or [`Session`] holding it drops.
struct Process {
    child: Child,
    _logs: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running chromedriver on a free 127.0.0.1 port, killed on drop (once its sessions are gone).
pub struct Driver {
    process: Arc<Process>,
    base: String,
    http: reqwest::Client,
}

impl Driver {
    /// Starts `chromedriver` (env `CHROMEDRIVER` or `/usr/bin/chromedriver`) and waits up to 20 s
    /// for `GET /status` to report ready. Its output goes to a log file quoted in errors.
    pub async fn start() -> Result<Driver, WdError> {
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let io =
            |what: &'static str| move |e: std::io::Error| WdError::Driver(format!("{what}: {e}"));
        let free = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
        let port = free.map_err(io("no free port"))?.port();
        let logs = tempfile::tempdir().map_err(io("log dir"))?;
        let log_path = logs.path().join("chromedriver.log");
        let log = std::fs::File::create(&log_path).map_err(io("log file"))?;
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("log file"))?)
            .stderr(log)
            .spawn()
            .map_err(|e| WdError::Driver(format!("cannot run {bin}: {e}")))?;
        let mut process = Process { child, _logs: logs };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                let status: Value = r.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    return Ok(Driver {
                        process: Arc::new(process),
                        base,
                        http,
                    });
                }
            }
            let exited = process.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let out = std::fs::read_to_string(&log_path).unwrap_or_default();
                let why = exited.map_or("not ready after 20 s".into(), |s| {
                    format!("exited with {s}")
                });
                return Err(WdError::Driver(format!(
                    "{bin} on port {port} {why}; output:\n{out}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium session (env `CHROMIUM` or `/usr/bin/chromium`), fresh profile.
    pub async fn session(&self) -> Result<Session, WdError> {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile = tempfile::tempdir().map_err(|e| other("profile dir", e))?;
        let mut args: Vec<String> = CHROME_ARGS.split_whitespace().map(String::from).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": args, "prefs": {
                "download.prompt_for_download": false,
                "download_restrictions": 3,
                // `--lang` alone leaves navigator.language / Accept-Language at en-US in headless.
                "intl.accept_languages": "zh-CN,zh",
            }},
        }}});
        let root = Ctx {
            http: self.http.clone(),
            url: self.base.clone(),
        };
        let created = root.post("/session", caps).await?;
        let id = created["sessionId"]
            .as_str()
            .ok_or_else(|| other("no sessionId", &created))?;
        let url = format!("{}/session/{id}", self.base);
        let ctx = Arc::new(Ctx {
            http: self.http.clone(),
            url,
        });
        Ok(Session {
            ctx,
            open: true,
            _profile: profile,
            _process: self.process.clone(),
        })
    }
}

/// HTTP plumbing shared by a session and its elements; `url` is `.../session/{id}`.
struct Ctx {
    http: reqwest::Client,
    url: String,
}

impl Ctx {
    async fn get(&self, path: &str) -> Result<Value, WdError> {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, WdError> {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn get_string(&self, path: &str) -> Result<String, WdError> {
        match self.get(path).await? {
            Value::String(s) => Ok(s),
            v => Err(other(&format!("GET {path}: expected a string"), v)),
        }
    }

    /// Sends one command and returns the response's `value`, or the W3C error it carries.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        let mut v: Value = serde_json::from_str(&text).map_err(|e| {
            other(
                &format!("{method} {path}: HTTP {status}, bad JSON ({e})"),
                &text,
            )
        })?;
        let value = v["value"].take();
        if status.is_success() {
            return Ok(value);
        }
        let (error, message) = (value["error"].as_str(), value["message"].as_str());
        Err(WdError::WebDriver {
            status: status.as_u16(),
            error: error.unwrap_or("unknown error").to_string(),
            message: message.unwrap_or(&text).to_string(),
        })
    }

    /// `POST {scope}/element` with a CSS selector; `no such element` names the selector.
    async fn find(self: &Arc<Self>, scope: &str, css: &str) -> Result<Element, WdError> {
        let body = json!({"using": "css selector", "value": css});
        match self.post(&format!("{scope}/element"), body).await {
            Ok(v) => Element::new(self, &v, css),
            Err(WdError::WebDriver {
                status,
                error,
                message,
            }) if error == "no such element" => Err(WdError::NoSuchElement {
                selector: css.to_string(),
                status,
                message,
            }),
            Err(e) => Err(e),
        }
    }
}

/// A Chromium session. Call [`Session::close`]; an open session is deleted on drop (blocking).
pub struct Session {
    ctx: Arc<Ctx>,
    open: bool,
    _profile: tempfile::TempDir,
    _process: Arc<Process>,
}

impl Session {
    pub async fn goto(&self, url: &str) -> Result<(), WdError> {
        self.ctx.post("/url", json!({"url": url})).await.map(drop)
    }

    pub async fn current_url(&self) -> Result<String, WdError> {
        self.ctx.get_string("/url").await
    }

    pub async fn title(&self) -> Result<String, WdError> {
        self.ctx.get_string("/title").await
    }

    pub async fn page_source(&self) -> Result<String, WdError> {
        self.ctx.get_string("/source").await
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element, WdError> {
        self.ctx.find("", css).await
    }

    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>, WdError> {
        let found = self
            .ctx
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await?;
        let list = found
            .as_array()
            .ok_or_else(|| other("elements: not a list", &found))?;
        list.iter()
            .map(|v| Element::new(&self.ctx, v, css))
            .collect()
    }

    /// Polls `find` every 50 ms until the selector matches or `timeout` passes.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element, WdError> {
        let start = Instant::now();
        loop {
            match self.find(css).await {
                Err(WdError::NoSuchElement { .. }) if start.elapsed() < timeout => {}
                Err(WdError::NoSuchElement { .. }) => {
                    return Err(WdError::Timeout {
                        what: format!("element `{css}`"),
                        waited: timeout,
                    });
                }
                found => return found,
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until `document.body.innerText` contains `needle`; the error quotes the last text.
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) -> Result<(), WdError> {
        let start = Instant::now();
        loop {
            let text = self.execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            );
            let text = text.await?;
            let text = text.as_str().unwrap_or_default();
            if text.contains(needle) {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                let seen: String = text.chars().take(500).collect();
                let what = format!("text {needle:?} (page text: {seen:?})");
                return Err(WdError::Timeout {
                    what,
                    waited: timeout,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs a synchronous script; its `return` value is the result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, WdError> {
        self.ctx
            .post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// PNG bytes of the viewport.
    pub async fn screenshot_png(&self) -> Result<Vec<u8>, WdError> {
        let b64 = self.ctx.get_string("/screenshot").await?;
        let engine = base64::engine::general_purpose::STANDARD;
        engine
            .decode(b64.as_bytes())
            .map_err(|e| other("screenshot is not base64", e))
    }

    /// Writes a viewport screenshot to `path`, creating its parent directories.
    pub async fn screenshot_to(&self, path: &Path) -> Result<(), WdError> {
        let png = self.screenshot_png().await?;
        let io = |e: std::io::Error| other(&format!("writing {}", path.display()), e);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(path, png).map_err(io)
    }

    pub async fn cookies(&self) -> Result<Vec<Value>, WdError> {
        match self.ctx.get("/cookie").await? {
            Value::Array(list) => Ok(list),
            v => Err(other("cookies: not a list", v)),
        }
    }

    /// Deletes the session, which quits Chromium.
    pub async fn close(mut self) -> Result<(), WdError> {
        self.open = false;
        self.ctx.send(Method::DELETE, "", None).await.map(drop)
    }
}

impl Drop for Session {
    /// For a session that was not closed (e.g. a failing test): a blocking `DELETE`, so Chromium
    /// quits before its profile dir is removed. Errors are ignored.
    fn drop(&mut self) {
        if self.open {
            delete_blocking(&self.ctx.url);
        }
    }
}

fn delete_blocking(url: &str) -> Option<()> {
    let (host, path) = url.strip_prefix("http://")?.split_once('/')?;
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let req = format!("DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    stream.read_to_end(&mut Vec::new()).ok().map(drop)
}

/// An element reference; `path` is `/element/{id}`, `selector` the CSS that found it.
pub struct Element {
    ctx: Arc<Ctx>,
    path: String,
    selector: String,
}

impl Element {
    fn new(ctx: &Arc<Ctx>, v: &Value, css: &str) -> Result<Element, WdError> {
        let id = v[ELEMENT_KEY]
            .as_str()
            .ok_or_else(|| other(&format!("`{css}`: no element in"), v))?;
        Ok(Element {
            ctx: ctx.clone(),
            path: format!("/element/{id}"),
            selector: css.to_string(),
        })
    }

    async fn post(&self, cmd: &str, body: Value) -> Result<(), WdError> {
        self.ctx
            .post(&format!("{}{cmd}", self.path), body)
            .await
            .map(drop)
    }

    pub async fn click(&self) -> Result<(), WdError> {
        self.post("/click", json!({})).await
    }

    pub async fn send_keys(&self, text: &str) -> Result<(), WdError> {
        self.post("/value", json!({"text": text})).await
    }

    pub async fn clear(&self) -> Result<(), WdError> {
        self.post("/clear", json!({})).await
    }

    /// The rendered text (`innerText`-like).
    pub async fn text(&self) -> Result<String, WdError> {
        self.ctx.get_string(&format!("{}/text", self.path)).await
    }

    /// An HTML attribute; `None` when it is absent.
    pub async fn attr(&self, name: &str) -> Result<Option<String>, WdError> {
        match self
            .ctx
            .get(&format!("{}/attribute/{name}", self.path))
            .await?
        {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            v => Err(other(&format!("`{}` attribute {name}", self.selector), v)),
        }
    }

    /// A DOM property, e.g. `value` or `checked`.
    pub async fn property(&self, name: &str) -> Result<Value, WdError> {
        self.ctx
            .get(&format!("{}/property/{name}", self.path))
            .await
    }

    /// The first descendant matching a CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element, WdError> {
        self.ctx.find(&self.path, css).await
    }
}
