//! The admin pages without a browser: login, lockout, sessions and CSRF, roles, and the refusals
//! of the resolve form — real HTTP against real nodes, cookies handled by hand so each one can be
//! checked.

use std::collections::BTreeMap;

use hukou_sync::accounts::Role;
use serde_json::Value;

use crate::conflicts::conflicted_pair;
use crate::helpers::CHENGDU;
use crate::helpers::{add_user, spawn_app, TestApp};

const PASSWORD: &str = "correct horse battery";

/// `application/x-www-form-urlencoded`, as a browser sends a form.
fn encode_form(form: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A cookie-keeping client that does not follow redirects.
pub struct Visitor {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    /// The value of a hidden input, e.g. `csrf`.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_owned()
    }
}

impl Visitor {
    pub fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
            cookies: BTreeMap::new(),
        }
    }

    async fn finish(&mut self, r: reqwest::Response) -> Page {
        let set_cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            set_cookies,
            body: r.text().await.unwrap(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    /// A download: the status, the Content-Type and the body's bytes.
    pub async fn download(&self, path: &str) -> (u16, String, Vec<u8>) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let kind = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, kind, r.bytes().await.unwrap().to_vec())
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode_form(form))
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    /// The value of a cookie this visitor holds.
    pub fn cookie(&self, name: &str) -> String {
        self.cookies.get(name).cloned().unwrap_or_default()
    }

    /// Posts a body as is (a `multipart/form-data` form).
    pub async fn post_raw(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> Page {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    pub async fn login(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/ui/login").await;
        let csrf = form.hidden("csrf");
        self.post(
            "/ui/login",
            &[
                ("csrf", &csrf),
                ("next", "/ui/conflicts"),
                ("username", user),
                ("password", password),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn login_sessions_lockout_and_csrf() {
    let app = spawn_app().await;
    add_user(&app, "li.wei", Role::Reviewer, PASSWORD);
    let mut v = Visitor::new(&app);

    // Pages need a session.
    let p = v.get("/ui/conflicts").await;
    assert_eq!(p.status, 303);
    assert!(p.location.unwrap().starts_with("/ui/login?next="));

    // The login form's token must come back with its cookie.
    let form = v.get("/ui/login").await;
    assert!(form.body.contains("登录"));
    let csrf = form.hidden("csrf");
    let p = v
        .post(
            "/ui/login",
            &[
                ("csrf", "forged"),
                ("username", "li.wei"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(!p.set_cookies.iter().any(|c| c.starts_with("hks_session=")));
    let _ = csrf;

    // Wrong password, then the right one.
    let p = v.login("li.wei", "wrong password!!").await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("用户名或密码错误"), "{}", p.body);
    let p = v.login("nobody", PASSWORD).await;
    assert_eq!(
        p.status, 401,
        "an unknown user reads exactly like a wrong password"
    );
    let p = v.login("li.wei", PASSWORD).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("/ui/conflicts"));
    let session = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("hks_session="))
        .expect("a session cookie")
        .clone();
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    assert!(
        !session.contains("Secure"),
        "plain HTTP on loopback: {session}"
    );
    let page = v.get("/ui/conflicts").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("冲突队列"));
    // The session is stored only as a hash.
    let secret = session
        .trim_start_matches("hks_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.count(&format!(
            "sessions WHERE id_hash = '{secret}' OR csrf_token = '{secret}'"
        )),
        0
    );

    // Logging out needs the session's token; then the session is gone.
    let p = v.post("/ui/logout", &[("csrf", "forged")]).await;
    assert_eq!(p.status, 403);
    let token = page.hidden("csrf");
    let p = v.post("/ui/logout", &[("csrf", &token)]).await;
    assert_eq!(p.status, 303);
    let mut replay = Visitor::new(&app);
    replay.cookies.insert("hks_session".into(), secret);
    assert_eq!(replay.get("/ui/conflicts").await.status, 303);

    // Five failures lock the account: then even the right password is refused, exactly as a
    // wrong one (issue 18 #1: the answer must not tell that the guess was right).
    for _ in 0..5 {
        assert_eq!(v.login("li.wei", "not the password").await.status, 401);
    }
    let p = v.login("li.wei", PASSWORD).await;
    assert_eq!(p.status, 401);
    assert!(!p.body.contains("锁定"), "{}", p.body);
    let events: Value = app
        .get("/api/v1/audit/events?action=user.lockout")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    let denied: Value = app
        .get("/api/v1/audit/events?action=user.login")
        .await
        .json()
        .await
        .unwrap();
    let outcomes: Vec<&str> = denied["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"ok") && outcomes.contains(&"denied"));
    app.stop().await;
}

#[tokio::test]
async fn the_resolve_form_refuses_what_it_must_and_pages_audit_their_reads() {
    let (pair, id) = conflicted_pair().await;
    let huk = &pair.hukou;
    add_user(huk, "cw", Role::Caseworker, PASSWORD);
    add_user(huk, "rv", Role::Reviewer, PASSWORD);
    add_user(&pair.residence, "rv", Role::Reviewer, PASSWORD);
    let path = format!("/ui/conflicts/{id}");
    let versions = huk.count("versions");

    // A caseworker sees the conflict but gets no button, and a forged post is refused.
    let mut cw = Visitor::new(huk);
    assert_eq!(cw.login("cw", PASSWORD).await.status, 303);
    let page = cw.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("health_status"));
    assert!(!page.body.contains("id=\"resolve\""));
    let csrf = page.hidden("csrf");
    let heads = page.hidden("heads");
    let p = cw
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("heads", &heads),
                ("choice.health_status", "c0"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);

    // A reviewer: no token or a wrong one is refused; stale heads re-show the current state; a
    // value that fails validation is refused; nothing is stored by any of them.
    let mut rv = Visitor::new(huk);
    assert_eq!(rv.login("rv", PASSWORD).await.status, 303);
    let page = rv.get(&path).await;
    assert!(page.body.contains("id=\"resolve\""));
    let csrf = page.hidden("csrf");
    let p = rv
        .post(&path, &[("heads", &heads), ("choice.health_status", "c0")])
        .await;
    assert_eq!(p.status, 403);
    let p = rv
        .post(
            &path,
            &[
                ("csrf", "forged"),
                ("heads", &heads),
                ("choice.health_status", "c0"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    let stale = heads.split(',').next().unwrap().to_owned();
    let p = rv
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("heads", &stale),
                ("choice.health_status", "c0"),
            ],
        )
        .await;
    assert_eq!(p.status, 409);
    assert!(p.body.contains("已变更"), "{}", p.body);
    assert_eq!(p.hidden("heads"), heads, "the page shows the current heads");
    let p = rv
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("heads", &heads),
                ("choice.health_status", "custom"),
                ("custom.health_status", "not-a-health-status"),
            ],
        )
        .await;
    assert_eq!(p.status, 422);
    assert!(p.body.contains("validation"), "{}", p.body);
    let p = rv.post(&path, &[("csrf", &csrf), ("heads", &heads)]).await;
    assert_eq!(p.status, 422, "no choice made");
    assert_eq!(huk.count("versions"), versions);

    // A reviewer on the other node is shown who reviews it, and cannot resolve.
    let mut other = Visitor::new(&pair.residence);
    assert_eq!(other.login("rv", PASSWORD).await.status, 303);
    let page = other.get(&path).await;
    assert!(
        page.body.contains(&format!("等待节点 {CHENGDU} 审核")),
        "{}",
        page.body
    );
    assert!(!page.body.contains("id=\"resolve\""));
    let p = other
        .post(
            &path,
            &[
                ("csrf", &page.hidden("csrf")),
                ("heads", &heads),
                ("choice.health_status", "c0"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    assert_eq!(pair.residence.count("versions"), versions);

    // The child's page shows the file and its history, and the read is audited with the user.
    let page = rv.get(&format!("/ui/children/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("张小明") && page.body.contains("版本历史"));
    let reads: Value = huk
        .get(&format!(
            "/api/v1/audit/events?action=child.read&object_id={id}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert!(reads["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"]["actor"]["id"] == "user:rv" && e["event"]["actor"]["via"] == "ui"));

    // An auditor may not open children's files.
    add_user(huk, "au", Role::Auditor, PASSWORD);
    let mut au = Visitor::new(huk);
    assert_eq!(au.login("au", PASSWORD).await.status, 303);
    assert_eq!(au.get(&format!("/ui/children/{id}")).await.status, 403);
    assert_eq!(au.get("/ui/audit").await.status, 200);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn an_administrator_starts_a_reconciliation_from_the_page() {
    let pair = crate::helpers::spawn_pair().await;
    let huk = &pair.hukou;
    huk.create_child(&crate::helpers::flowing_child(3)).await;
    add_user(huk, "admin", Role::Administrator, PASSWORD);
    add_user(huk, "rv", Role::Reviewer, PASSWORD);

    // A reviewer sees the runs but may not start one.
    let mut rv = Visitor::new(huk);
    assert_eq!(rv.login("rv", PASSWORD).await.status, 303);
    let page = rv.get("/ui/reconcile").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("id=\"start\""));
    let csrf = page.hidden("csrf");
    let p = rv
        .post(
            "/ui/reconcile",
            &[("csrf", &csrf), ("peer", crate::helpers::ZHENGZHOU)],
        )
        .await;
    assert_eq!(p.status, 403);

    let mut admin = Visitor::new(huk);
    assert_eq!(admin.login("admin", PASSWORD).await.status, 303);
    let page = admin.get("/ui/reconcile").await;
    assert!(page.body.contains("id=\"start\""));
    let csrf = page.hidden("csrf");
    let p = admin
        .post("/ui/reconcile", &[("peer", crate::helpers::ZHENGZHOU)])
        .await;
    assert_eq!(p.status, 403, "no CSRF token");
    let p = admin
        .post("/ui/reconcile", &[("csrf", &csrf), ("peer", "999999")])
        .await;
    assert_eq!(p.status, 409);
    assert!(p.body.contains("999999"), "{}", p.body);
    let p = admin
        .post(
            "/ui/reconcile",
            &[("csrf", &csrf), ("peer", crate::helpers::ZHENGZHOU)],
        )
        .await;
    assert_eq!(p.status, 303);
    let run = p.location.unwrap();
    crate::helpers::eventually(30, "the run to finish", || {
        let run = run.clone();
        let mut v = Visitor {
            http: admin.http.clone(),
            base: admin.base.clone(),
            cookies: admin.cookies.clone(),
        };
        async move {
            let page = v.get(&run).await;
            page.status == 200
                && page.body.contains("id=\"report\"")
                && !page.body.contains(">running<")
        }
    })
    .await;
    let page = admin.get(&run).await;
    assert!(page.body.contains(">ok<"), "{}", page.body);
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

#[tokio::test]
async fn over_tls_the_session_cookie_is_secure() {
    use hukou_sync::tls::pki;
    let certs = tempfile::tempdir().unwrap();
    let ca = pki::generate_ca("bureau admin CA").unwrap();
    let server = pki::issue_node_cert(&ca, "510100", &["127.0.0.1"]).unwrap();
    let (cert, key) = (
        certs.path().join("admin.crt"),
        certs.path().join("admin.key"),
    );
    std::fs::write(&cert, &server.cert_pem).unwrap();
    pki::write_private_pem(&key, &server.key_pem).unwrap();
    let app = crate::helpers::spawn_app_with(|s| {
        s.admin.tls = Some(hukou_sync::config::AdminTls { cert, key });
    })
    .await;
    add_user(&app, "li.wei", Role::Reviewer, PASSWORD);
    let mut roots = rustls::RootCertStore::empty();
    for c in pki::load_certs_from_pem(&ca.cert_pem).unwrap() {
        roots.add(c).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(hukou_sync::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut v = Visitor {
        http: reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: app.base.replace("http://", "https://"),
        cookies: BTreeMap::new(),
    };
    let p = v.login("li.wei", PASSWORD).await;
    assert_eq!(p.status, 303);
    let session = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("hks_session="))
        .unwrap();
    assert!(
        session.contains("Secure") && session.contains("HttpOnly"),
        "{session}"
    );
    assert_eq!(v.get("/ui/conflicts").await.status, 200);
    app.stop().await;
}
