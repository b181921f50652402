//! Partitions with a real network cut (issue 25 #5): two nodes run as real `serve` processes of
//! the binary, each in its own network namespace, and the network between them is cut and healed
//! with `nft` rules while both edit the same children.
//!
//! The topology: a router namespace R joined by veth pairs to the namespace of node A (410100
//! Zhengzhou, residence bureau), to that of node B (510100 Chengdu, hukou bureau) and to the
//! test's own (root) namespace. R forwards (its own `ip_forward`; the root namespace's is left
//! alone); the root namespace routes to A's and B's subnets through R, so the test reaches both
//! admin listeners, bound on the nodes' veth addresses. The certificates name those addresses. B
//! reaches A through a small TCP relay in the test (root namespace), A's directory endpoint,
//! which can delay every chunk by a set time: the kernel has no `netem`. The cut is an `nft`
//! table in R's forward chain: first it answers every TCP segment between A and B (and between B
//! and the relay) with a reset, so each delivery fails at once and only the senders' backoff
//! paces them; then, still cut, it turns into a black hole that drops everything silently (a
//! delivery waits in its connect). Healing deletes the table. Deleting the namespaces
//! deletes the veth pairs and the table with them (on drop, also on a panic).
//!
//! The nodes use SQLite files (the PostgreSQL server at 127.0.0.1 is not reachable from inside a
//! namespace), so the test runs in the SQLite pass only. Where namespaces cannot be made (not
//! root) it is skipped with a notice; CI sets `HUKOU_SYNC_REQUIRE_NETNS=1` and then a skip fails.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hukou_sync::devnet::pki::{init_with_hosts, resign_directory, DevPki, Hosts, NodePlan};
use hukou_sync::devnet::DIRECTORY_DAYS;
use hukou_sync::domain::{NodeId, RegionPrefix};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{client_with_token, eventually, flowing_child, id_number, CHENGDU, ZHENGZHOU};

const A_PEER: u16 = 7441;
const A_ADMIN: u16 = 7081;
const B_PEER: u16 = 7442;
const B_ADMIN: u16 = 7082;
/// The nodes' cap on the sender's backoff (`[sync] max_backoff_secs`).
const MAX_BACKOFF_MS: u64 = 1000;
/// Children edited on both sides while cut; the first `CONFLICTED` get a real conflict.
const CHILDREN: u16 = 6;
const CONFLICTED: u16 = 3;

/// Runs `ip` (or another tool) and reports a failure with its stderr.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command inside namespace `ns`.
fn in_ns(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// The namespaces, links and processes of one run; all removed on drop.
struct Net {
    /// Router, A, B.
    names: [String; 3],
    /// The root namespace's end of the veth pair to the router.
    root_link: String,
    /// `10.77.<base>.0/24`: root–router; `<base+1>`: router–A; `<base+2>`: router–B.
    base: u8,
    processes: Vec<Child>,
    /// The nodes' files (databases, logs).
    dir: tempfile::TempDir,
}

impl Net {
    fn router(&self) -> &str {
        &self.names[0]
    }
    fn ip(&self, subnet: u8, host: u8) -> String {
        format!("10.77.{}.{host}", self.base + subnet)
    }
    fn root_ip(&self) -> String {
        self.ip(0, 1)
    }
    fn a_ip(&self) -> String {
        self.ip(1, 2)
    }
    fn b_ip(&self) -> String {
        self.ip(2, 2)
    }

    /// Creates the namespaces and links. `Err` from the first `ip netns add`: namespaces are not
    /// allowed here (the caller skips); any later error fails the test.
    fn create() -> Result<Net, String> {
        let pid = std::process::id();
        let tag = format!("hkp{}", pid % 100_000);
        let base = u8::try_from((pid % 60) * 4).unwrap();
        let router = format!("{tag}r");
        // The probe: nothing is made (nor removed on drop) where this fails.
        run("ip", &["netns", "add", &router])?;
        let net = Net {
            names: [router, format!("{tag}a"), format!("{tag}b")],
            root_link: tag.clone(),
            base,
            processes: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        for ns in &net.names[1..] {
            run("ip", &["netns", "add", ns]).unwrap();
        }
        net.wire().unwrap();
        Ok(net)
    }

    fn wire(&self) -> Result<(), String> {
        let [r, a, b] = &self.names;
        let root = &self.root_link;
        let p = |s: u8| format!("10.77.{}", self.base + s);
        run(
            "ip",
            &[
                "link", "add", root, "type", "veth", "peer", "name", "up0", "netns", r,
            ],
        )?;
        run(
            "ip",
            &["addr", "add", &format!("{}.1/24", p(0)), "dev", root],
        )?;
        run("ip", &["link", "set", root, "up"])?;
        run(
            "ip",
            &[
                "-n",
                r,
                "addr",
                "add",
                &format!("{}.2/24", p(0)),
                "dev",
                "up0",
            ],
        )?;
        for (subnet, ns, dev) in [(1, a, "to_a"), (2, b, "to_b")] {
            run(
                "ip",
                &[
                    "-n", r, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns",
                    ns,
                ],
            )?;
            run(
                "ip",
                &[
                    "-n",
                    r,
                    "addr",
                    "add",
                    &format!("{}.1/24", p(subnet)),
                    "dev",
                    dev,
                ],
            )?;
            run("ip", &["-n", r, "link", "set", dev, "up"])?;
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{}.2/24", p(subnet)),
                    "dev",
                    "eth0",
                ],
            )?;
            run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("{}.1", p(subnet)),
                ],
            )?;
            run(
                "ip",
                &[
                    "route",
                    "add",
                    &format!("{}.0/24", p(subnet)),
                    "via",
                    &format!("{}.2", p(0)),
                ],
            )?;
        }
        run("ip", &["-n", r, "link", "set", "up0", "up"])?;
        run("ip", &["-n", r, "link", "set", "lo", "up"])?;
        in_ns(r, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    }

    /// Cuts A from B (replacing a cut in place, in one `nft` transaction): every packet between
    /// them, or between B and the relay at `relay_port` in the root namespace, is dropped; with
    /// [`Cut::Reset`] TCP segments are answered with a reset first (deliveries fail at once).
    fn cut(&self, relay_port: u16, how: Cut) {
        let (a, b, root) = (self.a_ip(), self.b_ip(), self.root_ip());
        let pairs = [
            format!("ip saddr {a} ip daddr {b}"),
            format!("ip saddr {b} ip daddr {a}"),
            format!("ip saddr {b} ip daddr {root} tcp dport {relay_port}"),
            format!("ip saddr {root} tcp sport {relay_port} ip daddr {b}"),
        ];
        let mut rules = String::from(
            "table inet hukou_cut\ndelete table inet hukou_cut\ntable inet hukou_cut {\n \
             chain forward {\n  type filter hook forward priority 0; policy accept;\n",
        );
        for m in &pairs {
            if how == Cut::Reset {
                rules.push_str(&format!("  {m} meta l4proto tcp reject with tcp reset\n"));
            }
            rules.push_str(&format!("  {m} drop\n"));
        }
        rules.push_str(" }\n}\n");
        let path = self.dir.path().join("cut.nft");
        std::fs::write(&path, rules).unwrap();
        in_ns(self.router(), &["nft", "-f", path.to_str().unwrap()]).unwrap();
    }

    fn heal(&self) {
        in_ns(
            self.router(),
            &["nft", "delete", "table", "inet", "hukou_cut"],
        )
        .unwrap();
    }
}

/// How the cut treats packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// TCP answered with a reset (a firewall that rejects): connecting fails at once.
    Reset,
    /// Everything dropped silently (a black hole): connecting waits for its timeout.
    Drop,
}

impl Drop for Net {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.kill();
            let _ = p.wait();
        }
        if std::thread::panicking() {
            for id in [ZHENGZHOU, CHENGDU] {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{id}.log")));
                eprintln!("--- log of node {id}:\n{}", log.unwrap_or_default());
            }
        }
        let _ = run("ip", &["link", "del", &self.root_link]);
        for ns in &self.names {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// Whether this run must not skip.
fn required() -> bool {
    std::env::var_os("HUKOU_SYNC_REQUIRE_NETNS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A TCP relay in the root namespace to `to`, delaying each chunk in both directions by
/// `delay_ms` (changeable while it runs). Counts the bytes it carried.
struct Relay {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    carried: Arc<AtomicU64>,
}

async fn relay(listen: &str, to: SocketAddr) -> Relay {
    let listener = tokio::net::TcpListener::bind((listen, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let delay_ms = Arc::new(AtomicU64::new(0));
    let carried = Arc::new(AtomicU64::new(0));
    let (delay, count) = (delay_ms.clone(), carried.clone());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let (delay, count) = (delay.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pipe(ri, wo, delay.clone(), count.clone()));
                tokio::spawn(pipe(ro, wi, delay, count));
            });
        }
    });
    Relay {
        port,
        delay_ms,
        carried,
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read (chunks keep flowing
/// meanwhile: a delay, not a bandwidth limit).
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Arc<AtomicU64>,
    count: Arc<AtomicU64>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count.fetch_add(n as u64, Ordering::Relaxed);
                let due = tokio::time::Instant::now()
                    + Duration::from_millis(delay.load(Ordering::Relaxed));
                if tx.send((due, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// A node of the test: its admin base URL and an administrator's client.
struct Node {
    admin: String,
    http: reqwest::Client,
}

impl Node {
    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    async fn try_get(&self, path: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.admin))
            .send()
            .await
            .ok()?;
        if r.status() == 200 {
            r.json().await.ok()
        } else {
            None
        }
    }

    async fn patch(&self, id: &str, body: Value) {
        let r = self
            .http
            .patch(format!("{}/api/v1/children/{id}", self.admin))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// The delivery state of the sender to `peer`.
    async fn peer(&self, peer: &str) -> Value {
        let list = self.get("/api/v1/peers").await;
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["peer"] == peer)
            .cloned()
            .unwrap()
    }
}

/// Starts node `id` of `pki` as `serve` in namespace `ns`, its SQLite file and log in the
/// net's directory, both listeners on `ip`; creates an administrator token first.
fn serve(
    net: &mut Net,
    pki: &DevPki,
    id: &str,
    ns: usize,
    ip: &str,
    ports: (u16, u16),
) -> (String, String) {
    let dir = net.dir.path().to_owned();
    let node = pki.nodes.iter().find(|n| n.id.as_str() == id).unwrap();
    let db = format!("sqlite://{}", dir.join(format!("{id}.db")).display());
    let command = |program: &str| {
        let mut c = Command::new(program);
        c.env_remove("HUKOU_SYNC_CONFIG")
            .env("HUKOU_SYNC__DATABASE__URL", &db)
            .env("HUKOU_SYNC__DATABASE__POOL_SIZE", "4")
            .env(
                "HUKOU_SYNC__SYNC__MAX_BACKOFF_SECS",
                (MAX_BACKOFF_MS / 1000).to_string(),
            )
            .env("HUKOU_SYNC__PEER__LISTEN", format!("{ip}:{}", ports.0))
            .env("HUKOU_SYNC__ADMIN__LISTEN", format!("{ip}:{}", ports.1))
            .env("HUKOU_SYNC__LOG__FILTER", "warn");
        c
    };
    let out = command(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(&node.config)
        .args([
            "admin",
            "token",
            "create",
            "partition-test",
            "--role",
            "administrator",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let log = std::fs::File::create(dir.join(format!("{id}.log"))).unwrap();
    let child = command("ip")
        .args([
            "netns",
            "exec",
            &net.names[ns],
            env!("CARGO_BIN_EXE_hukou-sync"),
        ])
        .arg("--config")
        .arg(&node.config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    net.processes.push(child);
    (format!("http://{ip}:{}", ports.1), token)
}

fn plan(id: &str, serves: &str, peer: u16, admin: u16) -> NodePlan {
    NodePlan {
        id: NodeId::parse(id).unwrap(),
        serves: vec![RegionPrefix::parse(serves).unwrap()],
        peer_port: peer,
        admin_port: admin,
    }
}

/// The smallest possible wait of the sender after its `n`-th consecutive failure: the backoff's
/// bound (200 ms doubling, capped) halved by the full jitter ([`hukou_sync::sync::sender::backoff`]).
fn least_wait_ms(n: u32) -> u64 {
    (200u64 << n.min(20)).min(MAX_BACKOFF_MS) / 2
}

/// How many failed attempts a sender can make in `window` at most, counting from its first
/// failure (the loosest start): one attempt, then one after each least wait.
fn most_attempts(window: Duration) -> u64 {
    let mut spent = 0;
    let mut n = 1u32;
    let window = u64::try_from(window.as_millis()).unwrap();
    loop {
        spent += least_wait_ms(n);
        if spent > window {
            return u64::from(n);
        }
        n += 1;
    }
}

/// Edits the probe child's `father_situation` at B and returns how long until A shows it;
/// checks that the push went through the relay.
async fn arrival(a: &Node, b: &Node, relay: &Relay, probe: &str, situation: &str) -> Duration {
    let carried = relay.carried.load(Ordering::Relaxed);
    let started = Instant::now();
    b.patch(probe, json!({"father_situation": situation})).await;
    eventually(30, "B's edit reaches A through the relay", || async {
        a.try_get(&format!("/api/v1/children/{probe}"))
            .await
            .is_some_and(|f| f["record"]["father_situation"] == situation)
    })
    .await;
    let took = started.elapsed();
    assert!(
        relay.carried.load(Ordering::Relaxed) > carried,
        "B's push went through the relay, its directory endpoint for A"
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_cut_apart_edit_the_same_children_and_converge_when_healed() {
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        eprintln!(
            "skipped: the partition test's nodes run on SQLite (PostgreSQL at 127.0.0.1 is not \
             reachable inside a network namespace); it runs in the SQLite pass"
        );
        return;
    }
    let mut net = match Net::create() {
        Ok(net) => net,
        Err(why) => {
            assert!(
                !required(),
                "HUKOU_SYNC_REQUIRE_NETNS is set but network namespaces cannot be made: {why}"
            );
            eprintln!("SKIPPED partition test: network namespaces cannot be made here ({why}); run as root");
            return;
        }
    };
    if let Err(why) = run("nft", &["--version"]) {
        assert!(
            !required(),
            "HUKOU_SYNC_REQUIRE_NETNS is set but nft is missing: {why}"
        );
        eprintln!("SKIPPED partition test: nft is missing ({why}); apt-get install nftables");
        return;
    }
    hukou_sync::startup::install_crypto_provider();
    let (a_ip, b_ip, root_ip) = (net.a_ip(), net.b_ip(), net.root_ip());

    // The relay to A's peer listener, in the root namespace: A's directory endpoint.
    let relay = relay(&root_ip, format!("{a_ip}:{A_PEER}").parse().unwrap()).await;

    let root = tempfile::tempdir().unwrap();
    let hosts = Hosts::new(&[a_ip.clone(), b_ip.clone(), root_ip.clone()]).unwrap();
    let pki = init_with_hosts(
        &root.path().join("pki"),
        &[
            plan(ZHENGZHOU, "4101", A_PEER, A_ADMIN),
            plan(CHENGDU, "5101", B_PEER, B_ADMIN),
        ],
        DIRECTORY_DAYS,
        &hosts,
    )
    .unwrap()
    .pki;
    resign_directory(&pki, |d| {
        for n in &mut d.nodes {
            n.endpoint = if n.id.as_str() == ZHENGZHOU {
                format!("https://{root_ip}:{}", relay.port)
            } else {
                format!("https://{b_ip}:{B_PEER}")
            };
        }
    })
    .unwrap();
    let (a_admin, a_token) = serve(&mut net, &pki, ZHENGZHOU, 1, &a_ip, (A_PEER, A_ADMIN));
    let (b_admin, b_token) = serve(&mut net, &pki, CHENGDU, 2, &b_ip, (B_PEER, B_ADMIN));
    let a = Node {
        admin: a_admin,
        http: client_with_token(&a_token),
    };
    let b = Node {
        admin: b_admin,
        http: client_with_token(&b_token),
    };
    for n in [&a, &b] {
        eventually(30, "the node answers through the router", || async {
            n.try_get("/api/v1/peers").await.is_some()
        })
        .await;
    }

    // Children created at A (residence) flow to B (hukou).
    let ids: Vec<String> = (0..=CHILDREN)
        .map(|seq| id_number("510104", (2014, 6, 1), seq))
        .collect();
    for seq in 0..=CHILDREN {
        let r = a
            .http
            .post(format!("{}/api/v1/children", a.admin))
            .json(&flowing_child(seq))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    for id in &ids {
        eventually(30, "B holds every child A created", || async {
            b.try_get(&format!("/api/v1/children/{id}")).await.is_some()
        })
        .await;
    }

    // Latency: B's edits reach A through the relay; with 50 ms each way the edit takes at least
    // the delay of the request to arrive, and it still arrives (TLS and receipts over a slow
    // link). The last child is the latency probe.
    let probe = &ids[usize::from(CHILDREN)];
    let fast = arrival(&a, &b, &relay, probe, "normal").await;
    relay.delay_ms.store(50, Ordering::Relaxed);
    let slow = arrival(&a, &b, &relay, probe, "working_away").await;
    relay.delay_ms.store(0, Ordering::Relaxed);
    assert!(
        slow >= Duration::from_millis(50),
        "an edit over a 50 ms link arrived in {slow:?}"
    );
    eprintln!("B→A edit to visible at A: {fast:?} direct, {slow:?} with 50 ms each way");

    // The cut; then both sides edit the same children.
    net.cut(relay.port, Cut::Reset);
    for (seq, id) in ids.iter().take(usize::from(CHILDREN)).enumerate() {
        let mut at_a = json!({"last_visit_on": format!("2026-11-{:02}", 10 + seq)});
        let mut at_b = json!({"mother_situation": "working_away"});
        if seq < usize::from(CONFLICTED) {
            // The same shared field, differently: a real conflict (no authority decides it).
            at_a["health_status"] = json!("chronic_illness");
            at_b["health_status"] = json!("healthy");
        } else {
            at_a["notes"] = json!(format!("家访记录 {seq}"));
        }
        a.patch(id, at_a).await;
        b.patch(id, at_b).await;
    }

    // Both senders fail and back off: over a window, their failures grow, but no faster than
    // the backoff allows.
    for (n, peer) in [(&a, CHENGDU), (&b, ZHENGZHOU)] {
        eventually(30, "the sender's deliveries fail while cut", || async {
            n.peer(peer).await["consecutive_failures"].as_u64() >= Some(1)
        })
        .await;
    }
    let opened = Instant::now();
    let before = [a.peer(CHENGDU).await, b.peer(ZHENGZHOU).await];
    // A measuring window, not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = [a.peer(CHENGDU).await, b.peer(ZHENGZHOU).await];
    // Everything counted happened between the first request and the last answer.
    let window = opened.elapsed();
    let most = most_attempts(window);
    for (from, (x, y)) in ["A", "B"].iter().zip(before.iter().zip(after.iter())) {
        let grew = y["consecutive_failures"].as_u64().unwrap()
            - x["consecutive_failures"].as_u64().unwrap();
        eprintln!("{from}'s sender while cut: {grew} failed deliveries in {window:?} (at most {most}), last error: {}", y["last_error"]);
        assert!(grew >= 2, "{from}'s sender keeps trying while cut: {grew}");
        assert!(
            grew <= most,
            "{from}'s sender backs off: {grew} failures in {window:?}, at most {most}"
        );
        assert!(y["outbox_depth"].as_u64() > Some(0), "{y}");
        assert!(y["last_error"].is_string(), "{y}");
    }

    // The cut turns into a black hole (packets dropped, nothing answered): a connection waits
    // for its timeout instead of failing. More edits on both sides meanwhile.
    net.cut(relay.port, Cut::Drop);
    for id in ids.iter().take(usize::from(CHILDREN)) {
        a.patch(id, json!({"education_status": "primary"})).await;
        b.patch(id, json!({"father_situation": "normal"})).await;
    }
    let black = [a.peer(CHENGDU).await, b.peer(ZHENGZHOU).await];
    // Nothing answers, so a delivery waits in its connect (10 s timeout) instead of failing.
    tokio::time::sleep(Duration::from_secs(3)).await; // a measuring window
    let black_after = [a.peer(CHENGDU).await, b.peer(ZHENGZHOU).await];
    for (from, (x, y)) in ["A", "B"].iter().zip(black.iter().zip(black_after.iter())) {
        let grew = y["consecutive_failures"].as_u64().unwrap()
            - x["consecutive_failures"].as_u64().unwrap();
        eprintln!("{from}'s sender in the black hole: {grew} failed deliveries in 3 s");
        assert!(
            grew <= most_attempts(Duration::from_secs(3)),
            "{from}: {grew}"
        );
    }

    // Heal: both converge, nothing queued, nothing lost.
    net.heal();
    let healed = Instant::now();
    for (n, peer) in [(&a, CHENGDU), (&b, ZHENGZHOU)] {
        eventually(60, "the outbox drains after the heal", || async {
            n.peer(peer).await["outbox_depth"].as_u64() == Some(0)
        })
        .await;
    }
    for id in &ids {
        let path = format!("/api/v1/children/{id}/conflicts");
        eventually(60, "both nodes hold the same heads and record", || async {
            let (ca, cb) = (a.get(&path).await, b.get(&path).await);
            let file = format!("/api/v1/children/{id}");
            let (fa, fb) = (a.get(&file).await, b.get(&file).await);
            ca["heads"] == cb["heads"] && fa["record"] == fb["record"]
        })
        .await;
    }
    eprintln!("converged {:?} after the heal", healed.elapsed());

    for (seq, id) in ids.iter().take(usize::from(CHILDREN)).enumerate() {
        let file = format!("/api/v1/children/{id}");
        let (fa, fb) = (a.get(&file).await, b.get(&file).await);
        assert_eq!(
            fa["history"].as_array().unwrap().len(),
            fb["history"].as_array().unwrap().len()
        );
        let record = &fa["record"];
        // Every edit of both sides is there.
        assert_eq!(
            record["last_visit_on"],
            format!("2026-11-{:02}", 10 + seq),
            "{record}"
        );
        assert_eq!(record["mother_situation"], "working_away", "{record}");
        assert_eq!(record["education_status"], "primary", "{record}");
        assert_eq!(record["father_situation"], "normal", "{record}");
        let conflicts = a.get(&format!("{file}/conflicts")).await;
        let open = conflicts["conflicts"].as_array().unwrap();
        if seq < usize::from(CONFLICTED) {
            assert_eq!(open.len(), 1, "{conflicts}");
            assert_eq!(open[0]["field"], "health_status");
            let values: Vec<&Value> = open[0]["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| &c["value"])
                .collect();
            assert!(
                values.contains(&&json!("healthy")) && values.contains(&&json!("chronic_illness")),
                "{conflicts}"
            );
        } else {
            assert!(open.is_empty(), "{conflicts}");
            assert_eq!(record["notes"], format!("家访记录 {seq}"), "{record}");
        }
    }
    // Each real conflict queued once on each side: the hukou side reviews them, the residence
    // side sees the same among all.
    let queue_b = b.get("/api/v1/conflicts").await;
    let queue_a = a.get("/api/v1/conflicts?owner=all").await;
    for queue in [&queue_b, &queue_a] {
        let items = queue["items"].as_array().unwrap();
        assert_eq!(items.len(), usize::from(CONFLICTED), "{queue}");
        for id in ids.iter().take(usize::from(CONFLICTED)) {
            let of_id: Vec<&Value> = items
                .iter()
                .filter(|c| c["id_number"] == id.as_str())
                .collect();
            assert_eq!(of_id.len(), 1, "{id} queued once: {queue}");
            assert_eq!(of_id[0]["field"], "health_status");
            assert_eq!(of_id[0]["owner"], CHENGDU);
        }
    }
    drop(net);
    drop(root);
}
