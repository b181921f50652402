//! The **development** PKI on disk, for running an exchange on one machine (`hukou-sync pki
//! init|issue`, the demo, the benchmarks and the tests).
//!
//! [`init_dev_pki`] writes, into an empty directory, everything a small exchange needs: an
//! exchange CA, a directory authority key, a signed directory (serial 1), and for each node a TLS
//! certificate (SAN URI `urn:hukou-sync:node:<id>`, server and client auth), a record-signing key
//! and a ready `hukou-sync.toml` with absolute paths. [`issue_node`] adds one node to such a
//! directory and re-signs the directory with the next serial; [`resign_directory`] re-signs it
//! after an edit (tests revoke certificates or keys, expire the directory...).
//!
//! Layout (keys are `0600`):
//!
//! ```text
//! <out>/ca.pem, ca.key                 exchange CA (dev only)
//! <out>/authority.key, authority.pub   directory authority: Ed25519 PKCS#8 key, base64url public key
//! <out>/directory.json                 the signed directory
//! <out>/nodes/<id>/tls.pem, tls.key    the node's TLS certificate and key
//! <out>/nodes/<id>/signing.key         the node's record-signing key
//! <out>/nodes/<id>/hukou-sync.toml     the node's configuration
//! <out>/nodes/<id>/data/               its SQLite database (created on first start)
//! ```
//!
//! Every key here is generated on one machine, so whoever holds the directory can impersonate any
//! node: never use it for real data. In production a real exchange CA issues certificates from
//! CSRs made on each node and an offline authority signs the directory (see `certs/README.md`).
//!
//! All keys, certificates and the signed directory are generated and checked in memory first;
//! files are created only afterwards, never overwriting anything, and if writing fails the files
//! and directories this run created are removed again. Certificates come from [`crate::tls::pki`],
//! directory entries and signatures from [`crate::directory::assemble`]; this module owns the
//! layout, the ports and the node configuration files.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::hash::HashAlg;
use crate::crypto::keys::Pkcs8Document;
use crate::crypto::{PublicKey, SigningKey, Suite};
use crate::directory::assemble::{self, default_serves, endpoint_port, load_authority_key};
use crate::directory::{self, Directory, DirectoryDoc, NodeEntry, SignedDirectory};
use crate::domain::{NodeId, RegionPrefix};
use crate::tls::pki::{self as tls_pki, CertifiedKey};

/// Exchange CA certificate, in the output directory.
const CA_CERT: &str = "ca.pem";
/// Exchange CA private key.
const CA_KEY: &str = "ca.key";
/// Directory authority private key (Ed25519 PKCS#8 DER).
const AUTHORITY_KEY: &str = "authority.key";
/// Directory authority public key (base64url, one line).
pub const AUTHORITY_PUB: &str = "authority.pub";
/// The signed directory.
pub const DIRECTORY: &str = "directory.json";
/// Parent of the per-node directories.
const NODES: &str = "nodes";
/// Per-node files.
const TLS_CERT: &str = "tls.pem";
const TLS_KEY: &str = "tls.key";
const SIGNING_KEY: &str = "signing.key";
const CONFIG: &str = "hukou-sync.toml";
const DATA: &str = "data";
const DATABASE: &str = "node.db";

/// Common name of a generated exchange CA.
const CA_NAME: &str = "hukou-sync development exchange CA (not for real data)";
/// Host of the peer endpoints in the directory when no `--host` is given.
const DEFAULT_ENDPOINT_HOST: &str = "127.0.0.1";
/// First peer port when nothing says otherwise.
pub const DEFAULT_PEER_PORT: u16 = 7443;
/// First admin port when nothing says otherwise.
pub const DEFAULT_ADMIN_PORT: u16 = 8080;
/// Longest directory / key-window validity accepted, in days (about a century).
pub const MAX_DAYS: i64 = 36_500;
/// A node certificate is valid at least this many days (and at least as long as the directory).
const MIN_CERT_DAYS: i64 = 365;

/// One node for [`init_dev_pki`] to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// Its node id (also the SAN URI of its certificate).
    pub id: NodeId,
    /// The region prefixes it serves (at least one; no prefix served by two nodes).
    pub serves: Vec<RegionPrefix>,
    /// Its peer (mutual TLS) port; the directory endpoint is `https://127.0.0.1:<peer_port>`.
    pub peer_port: u16,
    /// Its admin API port, on 127.0.0.1.
    pub admin_port: u16,
}

/// What was written for one node (all paths absolute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevNode {
    /// The node id.
    pub id: NodeId,
    /// `<out>/nodes/<id>`.
    pub dir: PathBuf,
    /// Its `hukou-sync.toml`.
    pub config: PathBuf,
    /// Its TLS certificate (PEM).
    pub tls_cert: PathBuf,
    /// Its TLS private key (PEM, `0600`).
    pub tls_key: PathBuf,
    /// Its record-signing key (PKCS#8, `0600`).
    pub signing_key: PathBuf,
    /// Lower-case hex SHA-256 of its certificate, as pinned in the directory.
    pub fingerprint: String,
}

/// What [`init_dev_pki`] wrote (all paths absolute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevPki {
    /// The output directory.
    pub out: PathBuf,
    /// The exchange CA certificate (PEM): every node's `[peer] ca`.
    pub ca_cert: PathBuf,
    /// The exchange CA private key (PEM, `0600`).
    pub ca_key: PathBuf,
    /// The directory authority's private key (PKCS#8, `0600`).
    pub authority_key: PathBuf,
    /// The directory authority's public key (also in `authority.pub`).
    pub authority_public: PublicKey,
    /// The signed directory.
    pub directory: PathBuf,
    /// The nodes, in the order of the plans.
    pub nodes: Vec<DevNode>,
}

/// Creates a development PKI under `out` for `nodes`: exchange CA, directory authority, a signed
/// directory (serial 1) expiring in `authority_validity_days` days, and per node a TLS
/// certificate, a record-signing key (window: one day ago until the directory expires) and a
/// configuration. Peer endpoints are `https://127.0.0.1:<peer_port>`; certificates name
/// `localhost` and `127.0.0.1`.
///
/// Refuses an `out` that exists and is not empty, and invalid plans (no nodes, duplicate ids,
/// a prefix served twice, duplicate or zero ports) before writing anything.
pub fn init_dev_pki(
    out: &Path,
    nodes: &[NodePlan],
    authority_validity_days: i64,
) -> anyhow::Result<DevPki> {
    init_with_hosts(out, nodes, authority_validity_days, &Hosts::new(&[])?).map(|i| i.pki)
}

/// [`init_dev_pki`] with every key (the directory authority's and each node's record-signing
/// key) of `suite`; each node's configuration sets `signature_suite` to it.
pub fn init_dev_pki_in(
    out: &Path,
    nodes: &[NodePlan],
    authority_validity_days: i64,
    suite: Suite,
) -> anyhow::Result<DevPki> {
    init_dev_pki_hashed(
        out,
        nodes,
        authority_validity_days,
        suite,
        HashAlg::default_for(suite),
    )
}

/// [`init_dev_pki_in`] with the directory declaring the content hash `hash` (tests of a network
/// whose hash is not its suite's default).
pub fn init_dev_pki_hashed(
    out: &Path,
    nodes: &[NodePlan],
    authority_validity_days: i64,
    suite: Suite,
    hash: HashAlg,
) -> anyhow::Result<DevPki> {
    init_with_suite(
        out,
        nodes,
        authority_validity_days,
        &Hosts::new(&[])?,
        suite,
        hash,
    )
    .map(|i| i.pki)
}

/// Re-signs the directory after `edit` changes it ([`assemble::resign`]). Tests use it to revoke
/// certificates or keys, change windows or expire the directory.
///
/// The current directory is loaded and verified with `pki.authority_public` (an expired one is
/// accepted, so that an expired directory can be renewed). Before `edit` runs, the serial is
/// raised by one and `issued_at` set to now, so `edit` may still override both (to test a
/// rollback, say). If `edit` moves `expires_at` to or before `issued_at` without touching
/// `issued_at` (to expire the directory), `issued_at` is moved back to one day before
/// `expires_at`. The result must pass directory validation; it is signed with
/// `pki.authority_key` and atomically replaces `pki.directory`.
pub fn resign_directory(pki: &DevPki, edit: impl FnOnce(&mut DirectoryDoc)) -> anyhow::Result<()> {
    assemble::resign(
        &pki.directory,
        &pki.authority_key,
        &pki.authority_public,
        edit,
    )?;
    Ok(())
}

/// Certificate hosts and the host of the peer endpoints.
#[derive(Debug, Clone)]
pub struct Hosts {
    /// Names put in the certificates (validated when a certificate is issued).
    sans: Vec<String>,
    /// Host of the directory endpoints.
    endpoint: String,
}

impl Hosts {
    /// `--host` values; none means `localhost` and `127.0.0.1` with endpoints on `127.0.0.1`.
    pub fn new(hosts: &[String]) -> anyhow::Result<Hosts> {
        let given: Vec<String> = hosts
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        let Some(first) = given.first().cloned() else {
            return Ok(Hosts {
                sans: tls_pki::DEFAULT_HOSTS
                    .iter()
                    .map(|h| (*h).to_owned())
                    .collect(),
                endpoint: DEFAULT_ENDPOINT_HOST.to_owned(),
            });
        };
        let mut sans = Vec::new();
        for h in given {
            if !sans.contains(&h) {
                sans.push(h);
            }
        }
        Ok(Hosts {
            sans,
            endpoint: first,
        })
    }

    fn san_refs(&self) -> Vec<&str> {
        self.sans.iter().map(String::as_str).collect()
    }

    /// `https://<host>:<port>` (IPv6 literals in brackets).
    pub fn endpoint(&self, port: u16) -> String {
        match self.endpoint.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("https://[{ip}]:{port}"),
            _ => format!("https://{}:{port}", self.endpoint),
        }
    }

    /// Where the peer listener binds: the loopback address for a loopback endpoint host
    /// (`localhost`, 127.0.0.0/8, `::1`), otherwise every interface.
    pub fn peer_listen(&self, port: u16) -> SocketAddr {
        let ip = match self.endpoint.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => ip,
            Ok(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            Ok(IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Err(_) if self.endpoint.eq_ignore_ascii_case("localhost") => {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
            Err(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        SocketAddr::new(ip, port)
    }
}

/// Where a node's listeners bind.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// The peer (mutual TLS) listener.
    pub peer: SocketAddr,
    /// The admin API listener.
    pub admin: SocketAddr,
}

/// The admin listener of a node: loopback only.
pub fn admin_listen(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A node generated in memory, not yet written.
struct PreparedNode {
    plan: NodePlan,
    cert: CertifiedKey,
    signing_key: Pkcs8Document,
    suite: Suite,
    entry: NodeEntry,
    listen: Listen,
}

/// Issues the node's certificate and signing key and builds its directory entry, in memory.
fn prepare_node(
    ca: &CertifiedKey,
    plan: &NodePlan,
    hosts: &Hosts,
    now: DateTime<Utc>,
    days: i64,
    suite: Suite,
) -> anyhow::Result<PreparedNode> {
    let validity = days_duration(days)?;
    let cert_days =
        u64::try_from(days.max(MIN_CERT_DAYS)).context("certificate validity out of range")?;
    let cert =
        tls_pki::issue_node_cert_for_days(ca, plan.id.as_str(), &hosts.san_refs(), cert_days)
            .with_context(|| format!("issuing the TLS certificate of node {}", plan.id))?;
    let fingerprint = tls_pki::pem_fingerprint(&cert.cert_pem)?;
    let (signing, signing_key) = SigningKey::generate_in(suite)?;
    let entry = assemble::node_entry(
        &plan.id,
        plan.serves.clone(),
        hosts.endpoint(plan.peer_port),
        fingerprint,
        signing.public_key(),
        now,
        validity,
    );
    Ok(PreparedNode {
        plan: plan.clone(),
        cert,
        signing_key,
        suite,
        entry,
        listen: Listen {
            peer: hosts.peer_listen(plan.peer_port),
            admin: admin_listen(plan.admin_port),
        },
    })
}

/// `days` as a duration, refusing values outside `1..=MAX_DAYS`.
fn days_duration(days: i64) -> anyhow::Result<Duration> {
    if !(1..=MAX_DAYS).contains(&days) {
        bail!("validity must be between 1 and {MAX_DAYS} days, got {days}");
    }
    Duration::try_days(days).context("validity out of range")
}

/// Checks the plans of `init` (ids, prefixes, ports) before anything is generated.
fn check_plans(nodes: &[NodePlan]) -> anyhow::Result<()> {
    if nodes.is_empty() {
        bail!("no nodes to create");
    }
    let mut ids = HashSet::new();
    let mut prefixes: BTreeMap<&RegionPrefix, &NodeId> = BTreeMap::new();
    let mut ports: BTreeMap<u16, String> = BTreeMap::new();
    for plan in nodes {
        if !ids.insert(&plan.id) {
            bail!("node {} is listed twice", plan.id);
        }
        if plan.serves.is_empty() {
            bail!("node {} serves no region prefix", plan.id);
        }
        for prefix in &plan.serves {
            if let Some(other) = prefixes.insert(prefix, &plan.id) {
                bail!(
                    "prefix {prefix} is given to node {other} and to node {}; a prefix is served \
                     by one node",
                    plan.id
                );
            }
        }
        for (port, what) in [(plan.peer_port, "peer"), (plan.admin_port, "admin")] {
            let me = format!("the {what} port of node {}", plan.id);
            if port == 0 {
                bail!("{me} is 0");
            }
            if let Some(other) = ports.insert(port, me.clone()) {
                bail!("port {port} is both {other} and {me}");
            }
        }
    }
    Ok(())
}

/// Result of [`init_with_hosts`].
pub struct Initialized {
    /// What was written.
    pub pki: DevPki,
    /// The signed directory document.
    pub doc: DirectoryDoc,
    /// Where each node's listeners bind, in the order of the plans.
    pub listens: Vec<Listen>,
}

/// [`init_dev_pki`] with the certificate hosts and endpoint host of `hosts`.
pub fn init_with_hosts(
    out: &Path,
    nodes: &[NodePlan],
    days: i64,
    hosts: &Hosts,
) -> anyhow::Result<Initialized> {
    init_with_suite(out, nodes, days, hosts, Suite::Ed25519, HashAlg::Sha256)
}

/// [`init_with_hosts`] with every key of `suite` (see [`init_dev_pki_in`]), and the directory
/// declaring the network's content hash `hash`.
pub fn init_with_suite(
    out: &Path,
    nodes: &[NodePlan],
    days: i64,
    hosts: &Hosts,
    suite: Suite,
    hash: HashAlg,
) -> anyhow::Result<Initialized> {
    check_plans(nodes)?;
    let validity = days_duration(days)?;

    // Everything is generated, and the directory signed (which validates it), in memory first.
    let ca = tls_pki::generate_ca(CA_NAME)?;
    let (authority, authority_pkcs8) = SigningKey::generate_in(suite)?;
    let authority_public = authority.public_key();
    let now = Utc::now();
    let prepared = nodes
        .iter()
        .map(|plan| prepare_node(&ca, plan, hosts, now, days, suite))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut doc = assemble::first_document(
        prepared.iter().map(|p| p.entry.clone()).collect(),
        now,
        validity,
    );
    doc.hash = hash;
    let signed = directory::sign(&doc, &authority)?;

    let mut created = Created::default();
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} exists and is not empty; refusing to overwrite key material (choose \
                     another --out or remove it)",
                    out.display()
                );
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            created.dir(out, 0o755)?;
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", out.display())),
    }
    let result = (|| -> anyhow::Result<DevPki> {
        let out =
            fs::canonicalize(out).with_context(|| format!("cannot resolve {}", out.display()))?;
        write_init(
            &mut created,
            &out,
            &ca,
            &authority_pkcs8,
            authority_public,
            &prepared,
            &signed,
        )
    })();
    match result {
        Ok(pki) => Ok(Initialized {
            pki,
            doc,
            listens: prepared.iter().map(|p| p.listen).collect(),
        }),
        Err(e) => {
            created.undo();
            Err(e)
        }
    }
}

/// Writes what `init` generated under the (canonical, empty) `out`.
fn write_init(
    created: &mut Created,
    out: &Path,
    ca: &CertifiedKey,
    authority_pkcs8: &Pkcs8Document,
    authority_public: PublicKey,
    prepared: &[PreparedNode],
    signed: &SignedDirectory,
) -> anyhow::Result<DevPki> {
    let ca_cert = out.join(CA_CERT);
    let ca_key = out.join(CA_KEY);
    let authority_key = out.join(AUTHORITY_KEY);
    let directory_path = out.join(DIRECTORY);
    created.public_pem(&ca_cert, &ca.cert_pem)?;
    created.private_pem(&ca_key, &ca.key_pem)?;
    created.secret(&authority_key, authority_pkcs8.as_bytes())?;
    created.file(
        &out.join(AUTHORITY_PUB),
        format!("{authority_public}\n").as_bytes(),
        0o644,
    )?;
    created.dir(&out.join(NODES), 0o755)?;
    let mut nodes = Vec::with_capacity(prepared.len());
    for node in prepared {
        nodes.push(write_node(
            created,
            out,
            node,
            &directory_path,
            &authority_public,
        )?);
    }
    directory::write_signed(&directory_path, signed)?;
    created.push(directory_path.clone());
    Ok(DevPki {
        out: out.to_owned(),
        ca_cert,
        ca_key,
        authority_key,
        authority_public,
        directory: directory_path,
        nodes,
    })
}

/// Writes one node's directory: certificate, keys, data directory and configuration.
fn write_node(
    created: &mut Created,
    out: &Path,
    node: &PreparedNode,
    directory_path: &Path,
    authority: &PublicKey,
) -> anyhow::Result<DevNode> {
    let id = &node.plan.id;
    let dir = out.join(NODES).join(id.as_str());
    created.dir(&dir, 0o755)?;
    created.dir(&dir.join(DATA), 0o700)?;
    let tls_cert = dir.join(TLS_CERT);
    let tls_key = dir.join(TLS_KEY);
    let signing_key = dir.join(SIGNING_KEY);
    let config = dir.join(CONFIG);
    created.public_pem(&tls_cert, &node.cert.cert_pem)?;
    created.private_pem(&tls_key, &node.cert.key_pem)?;
    created.secret(&signing_key, node.signing_key.as_bytes())?;
    let toml = render_config(&ConfigPaths {
        node,
        signing_key: &signing_key,
        database: &dir.join(DATA).join(DATABASE),
        ca: &out.join(CA_CERT),
        cert: &tls_cert,
        key: &tls_key,
        directory: directory_path,
        authority,
    })?;
    created.file(&config, toml.as_bytes(), 0o644)?;
    let fingerprint = node
        .entry
        .tls_fingerprints
        .first()
        .cloned()
        .context("node entry has no fingerprint")?;
    Ok(DevNode {
        id: id.clone(),
        dir,
        config,
        tls_cert,
        tls_key,
        signing_key,
        fingerprint,
    })
}

/// What a node configuration refers to.
struct ConfigPaths<'a> {
    node: &'a PreparedNode,
    signing_key: &'a Path,
    database: &'a Path,
    ca: &'a Path,
    cert: &'a Path,
    key: &'a Path,
    directory: &'a Path,
    authority: &'a PublicKey,
}

/// The `hukou-sync.toml` of a node, as written: the sections and keys of
/// [`crate::config::Settings`] that a development node needs (everything else keeps its default).
#[derive(Debug, Serialize)]
struct NodeConfigFile<'a> {
    node: NodeSection<'a>,
    database: DatabaseSection,
    admin: AdminSection,
    peer: PeerSection<'a>,
    directory: DirectorySection<'a>,
}

#[derive(Debug, Serialize)]
struct NodeSection<'a> {
    id: &'a NodeId,
    serves: &'a [RegionPrefix],
    signing_key: &'a Path,
    /// Written only for SM2, so an Ed25519 node's configuration is as before.
    #[serde(skip_serializing_if = "is_ed25519")]
    signature_suite: Suite,
}

fn is_ed25519(s: &Suite) -> bool {
    *s == Suite::Ed25519
}

#[derive(Debug, Serialize)]
struct DatabaseSection {
    url: String,
}

#[derive(Debug, Serialize)]
struct AdminSection {
    listen: SocketAddr,
}

#[derive(Debug, Serialize)]
struct PeerSection<'a> {
    listen: SocketAddr,
    ca: &'a Path,
    cert: &'a Path,
    key: &'a Path,
}

#[derive(Debug, Serialize)]
struct DirectorySection<'a> {
    path: &'a Path,
    authority_key: &'a PublicKey,
}

/// The `hukou-sync.toml` of a node (parses into [`crate::config::Settings`]): a comment naming
/// the node, then [`NodeConfigFile`] serialized. Paths must be UTF-8.
fn render_config(c: &ConfigPaths<'_>) -> anyhow::Result<String> {
    let node = c.node;
    for path in [c.signing_key, c.ca, c.cert, c.key, c.directory] {
        utf8(path)?;
    }
    let file = NodeConfigFile {
        node: NodeSection {
            id: &node.plan.id,
            serves: &node.plan.serves,
            signing_key: c.signing_key,
            signature_suite: node.suite,
        },
        database: DatabaseSection {
            url: format!("sqlite://{}", utf8(c.database)?),
        },
        admin: AdminSection {
            listen: node.listen.admin,
        },
        peer: PeerSection {
            listen: node.listen.peer,
            ca: c.ca,
            cert: c.cert,
            key: c.key,
        },
        directory: DirectorySection {
            path: c.directory,
            authority_key: c.authority,
        },
    };
    let body = toml::to_string(&file).context("cannot write the node configuration as TOML")?;
    Ok(format!(
        "# hukou-sync configuration of node {id} ({name}), written by `hukou-sync pki`.\n\
         # Development PKI: never use these keys for real data (see certs/README.md).\n\
         \n\
         {body}",
        id = node.plan.id,
        name = node.entry.name.replace(['\n', '\r'], " "),
    ))
}

fn utf8(path: &Path) -> anyhow::Result<&str> {
    path.to_str().with_context(|| {
        format!(
            "path {} is not UTF-8 and cannot be written into a configuration",
            path.display()
        )
    })
}

/// Files and directories created by this run, removed again (newest first) if it fails.
/// Only what this run created is ever removed, and directories only when empty.
#[derive(Debug, Default)]
struct Created(Vec<PathBuf>);

impl Created {
    fn push(&mut self, path: PathBuf) {
        self.0.push(path);
    }

    fn dir(&mut self, path: &Path, mode: u32) -> anyhow::Result<()> {
        DirBuilder::new()
            .mode(mode)
            .create(path)
            .with_context(|| format!("cannot create directory {}", path.display()))?;
        self.push(path.to_owned());
        Ok(())
    }

    /// A new secret file (never overwriting), `0600` from the start, synced.
    fn secret(&mut self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        crate::crypto::write_new_secret(path, bytes)?;
        self.push(path.to_owned());
        Ok(())
    }

    /// A new public file (never overwriting) with `mode`, synced.
    fn file(&mut self, path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        self.push(path.to_owned());
        file.write_all(bytes)
            .and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    fn public_pem(&mut self, path: &Path, pem: &str) -> anyhow::Result<()> {
        tls_pki::write_public_pem(path, pem)?;
        self.push(path.to_owned());
        Ok(())
    }

    fn private_pem(&mut self, path: &Path, pem: &str) -> anyhow::Result<()> {
        tls_pki::write_private_pem(path, pem)?;
        self.push(path.to_owned());
        Ok(())
    }

    /// Best-effort removal: the error that made the run fail is the one worth reporting.
    fn undo(self) {
        for path in self.0.iter().rev() {
            let _ = if path.is_dir() {
                fs::remove_dir(path)
            } else {
                fs::remove_file(path)
            };
        }
    }
}

/// A node for [`issue_node`] to add.
pub struct IssueRequest {
    /// Its node id.
    pub id: NodeId,
    /// `None`: derived from the id.
    pub serves: Option<Vec<RegionPrefix>>,
    /// Certificate hosts and endpoint host.
    pub hosts: Hosts,
    /// `None`: the highest peer port in the directory + 1.
    pub peer_port: Option<u16>,
    /// `None`: the highest admin port of the existing node configs + 1.
    pub admin_port: Option<u16>,
    /// Validity of its signing-key window.
    pub days: i64,
    /// Suite of its record-signing key.
    pub suite: Suite,
}

/// What [`issue_node`] did.
#[derive(Debug)]
pub struct Issued {
    /// The (canonical) PKI directory.
    pub out: PathBuf,
    /// The re-signed directory file.
    pub directory: PathBuf,
    /// Its new serial.
    pub serial: u64,
    /// What was written for the node.
    pub node: DevNode,
    /// Its directory entry.
    pub entry: NodeEntry,
    /// Where its listeners bind.
    pub listen: Listen,
}

/// Adds a node to the development PKI in `dir` and re-signs its directory (serial + 1).
pub fn issue_node(dir: &Path, req: IssueRequest) -> anyhow::Result<Issued> {
    let out = fs::canonicalize(dir).with_context(|| {
        format!(
            "cannot open the development PKI directory {} (create one with `hukou-sync pki init`)",
            dir.display()
        )
    })?;
    let directory_path = out.join(DIRECTORY);
    let authority_public = assemble::read_authority_public(&out.join(AUTHORITY_PUB))?;
    let now = Utc::now();
    let current = Directory::load(&directory_path, &authority_public, now)
        .with_context(|| format!("cannot use {}", directory_path.display()))?;
    let id = req.id;
    if current.node(&id).is_some() {
        bail!(
            "node {id} is already in the directory {}",
            directory_path.display()
        );
    }
    let node_dir = out.join(NODES).join(id.as_str());
    if fs::symlink_metadata(&node_dir).is_ok() {
        bail!(
            "{} already exists (left over from an earlier attempt?); remove it first",
            node_dir.display()
        );
    }
    let serves = match req.serves {
        Some(serves) => serves,
        None => default_serves(&id).ok_or_else(|| {
            anyhow!(
                "node {id} is not a six-digit region code, so its prefixes cannot be derived: \
                 give them with --serves"
            )
        })?,
    };
    for prefix in &serves {
        if let Some(owner) = current.nodes().find(|n| n.serves.contains(prefix)) {
            bail!("prefix {prefix} is already served by node {}", owner.id);
        }
    }

    let peer_ports: BTreeSet<u16> = current
        .nodes()
        .filter_map(|n| endpoint_port(&n.endpoint))
        .collect();
    let admin_ports = existing_admin_ports(&out, current.nodes().map(|n| &n.id));
    let mut used: BTreeSet<u16> = peer_ports.union(&admin_ports).copied().collect();
    let peer_port = pick_port(
        req.peer_port,
        peer_ports.last().copied(),
        DEFAULT_PEER_PORT,
        &used,
        "--port",
    )?;
    used.insert(peer_port);
    let admin_port = pick_port(
        req.admin_port,
        admin_ports.last().copied(),
        DEFAULT_ADMIN_PORT,
        &used,
        "--admin-port",
    )?;
    let plan = NodePlan {
        id: id.clone(),
        serves,
        peer_port,
        admin_port,
    };

    let authority = load_authority_key(&out.join(AUTHORITY_KEY), &authority_public)?;
    let ca = tls_pki::load_ca(&out.join(CA_CERT), &out.join(CA_KEY))?;
    let prepared = prepare_node(&ca, &plan, &req.hosts, now, req.days, req.suite)?;
    let mut doc = current.doc().clone();
    doc.nodes.push(prepared.entry.clone());
    assemble::next_issue(&mut doc, now)?;
    let signed = directory::sign(&doc, &authority)?;

    let mut created = Created::default();
    let result = (|| -> anyhow::Result<DevNode> {
        let nodes_dir = out.join(NODES);
        if !nodes_dir.is_dir() {
            created.dir(&nodes_dir, 0o755)?;
        }
        let node = write_node(
            &mut created,
            &out,
            &prepared,
            &directory_path,
            &authority_public,
        )?;
        directory::write_signed(&directory_path, &signed)?;
        Ok(node)
    })();
    match result {
        Ok(node) => Ok(Issued {
            out,
            directory: directory_path,
            serial: doc.serial,
            node,
            entry: prepared.entry,
            listen: prepared.listen,
        }),
        Err(e) => {
            created.undo();
            Err(e)
        }
    }
}

/// The explicit port (refused if taken), or the first free port after `highest` (or `first`).
fn pick_port(
    explicit: Option<u16>,
    highest: Option<u16>,
    first: u16,
    used: &BTreeSet<u16>,
    flag: &str,
) -> anyhow::Result<u16> {
    if let Some(port) = explicit {
        if port == 0 {
            bail!("{flag} 0: give a real port");
        }
        if used.contains(&port) {
            bail!("{flag} {port}: already used by another node of this PKI");
        }
        return Ok(port);
    }
    let mut port = match highest {
        Some(p) => p.checked_add(1),
        None => Some(first),
    };
    while let Some(p) = port {
        if !used.contains(&p) {
            return Ok(p);
        }
        port = p.checked_add(1);
    }
    bail!(
        "no free port left after {}: give {flag}",
        highest.unwrap_or(first)
    )
}

/// Admin ports of the existing nodes' generated configurations. A node without one here (it runs
/// elsewhere) is skipped; an unreadable or unparsable one is skipped with a warning.
fn existing_admin_ports<'a>(out: &Path, ids: impl Iterator<Item = &'a NodeId>) -> BTreeSet<u16> {
    #[derive(Deserialize)]
    struct Config {
        admin: Option<Admin>,
    }
    #[derive(Deserialize)]
    struct Admin {
        listen: Option<SocketAddr>,
    }
    ids.filter_map(|id| {
        let path = out.join(NODES).join(id.as_str()).join(CONFIG);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read a node configuration; its admin port is not avoided");
                return None;
            }
        };
        match toml::from_str::<Config>(&text) {
            Ok(config) => config.admin?.listen.map(|a| a.port()),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot parse a node configuration; its admin port is not avoided");
                None
            }
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::directory::assemble::read_authority_public;
    use crate::directory::DirectoryError;
    use crate::domain::RegionCode;

    fn plan(id: &str, serves: &str, peer_port: u16, admin_port: u16) -> NodePlan {
        NodePlan {
            id: NodeId::parse(id).unwrap(),
            serves: vec![RegionPrefix::parse(serves).unwrap()],
            peer_port,
            admin_port,
        }
    }

    fn two_nodes() -> Vec<NodePlan> {
        vec![
            plan("410100", "4101", 7443, 8080),
            plan("510100", "5101", 7444, 8081),
        ]
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn authority_pub(pki: &DevPki) -> PublicKey {
        read_authority_public(&pki.out.join(AUTHORITY_PUB)).unwrap()
    }

    fn load(pki: &DevPki) -> Directory {
        Directory::load(&pki.directory, &authority_pub(pki), Utc::now()).unwrap()
    }

    fn route(dir: &Directory, code: &str) -> String {
        dir.route(&RegionCode::parse(code).unwrap())
            .unwrap()
            .id
            .to_string()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Checks one node's files, certificate, directory entry and configuration.
    fn check_node(pki: &DevPki, dir: &Directory, node: &DevNode, peer_port: u16, admin_port: u16) {
        assert_eq!(node.dir, pki.out.join("nodes").join(node.id.as_str()));
        for p in [&node.tls_key, &node.signing_key] {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
        assert_eq!(mode(&node.tls_cert), 0o644);

        let certs = tls_pki::load_certs(&node.tls_cert).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(crate::tls::node_id_of(&certs[0]).unwrap(), node.id.as_str());
        assert_eq!(crate::tls::fingerprint(&certs[0]), node.fingerprint);
        tls_pki::load_private_key(&node.tls_key).unwrap();
        let entry = dir.node(&node.id).unwrap();
        assert_eq!(entry.tls_fingerprints, vec![node.fingerprint.clone()]);
        assert!(dir
            .authenticate_peer(node.id.as_str(), &node.fingerprint, Utc::now())
            .is_ok());
        assert_eq!(entry.endpoint, format!("https://127.0.0.1:{peer_port}"));
        let signing = SigningKey::load(&node.signing_key).unwrap();
        assert_eq!(
            dir.signing_keys_at(&node.id, Utc::now()),
            vec![signing.public_key()]
        );

        let s = Settings::load(Some(&node.config)).unwrap();
        assert_eq!(s.node.id, node.id);
        assert_eq!(s.node.serves, entry.serves);
        assert_eq!(s.node.signing_key, node.signing_key);
        assert_eq!(
            s.database.url,
            format!("sqlite://{}", node.dir.join("data/node.db").display())
        );
        assert_eq!(s.admin.listen, admin_listen(admin_port));
        let peer = s.peer.unwrap();
        assert_eq!(peer.listen.to_string(), format!("127.0.0.1:{peer_port}"));
        assert_eq!(peer.ca, pki.ca_cert);
        assert_eq!(peer.cert, node.tls_cert);
        assert_eq!(peer.key, node.tls_key);
        let d = s.directory.unwrap();
        assert_eq!(d.path, pki.directory);
        assert_eq!(d.authority_key, pki.authority_public.to_string());
    }

    /// The directory declares the suite's default content hash (SM3 beside SM2) unless told
    /// otherwise, and an Ed25519 network's directory leaves the field out (its bytes as before).
    #[test]
    fn the_directory_declares_the_network_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let load = |pki: &DevPki| {
            crate::directory::Directory::load(&pki.directory, &pki.authority_public, Utc::now())
                .unwrap()
        };
        let sm = init_dev_pki_in(&tmp.path().join("sm"), &two_nodes(), 30, Suite::Sm2Sm3).unwrap();
        assert_eq!(load(&sm).hash(), HashAlg::Sm3);
        assert!(fs::read_to_string(&sm.directory)
            .unwrap()
            .contains("\"sm3\""));
        let ed = init_dev_pki(&tmp.path().join("ed"), &two_nodes(), 30).unwrap();
        assert_eq!(load(&ed).hash(), HashAlg::Sha256);
        assert!(!fs::read_to_string(&ed.directory)
            .unwrap()
            .contains("\"hash\""));
        let sm_sha = init_dev_pki_hashed(
            &tmp.path().join("sm-sha"),
            &two_nodes(),
            30,
            Suite::Sm2Sm3,
            HashAlg::Sha256,
        )
        .unwrap();
        assert_eq!(load(&sm_sha).hash(), HashAlg::Sha256);
    }

    #[test]
    fn init_writes_a_working_exchange() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("certs/dev");
        let pki = init_dev_pki(&out, &two_nodes(), 30).unwrap();

        assert_eq!(pki.out, fs::canonicalize(&out).unwrap());
        assert_eq!(
            entries(&pki.out),
            [
                "authority.key",
                "authority.pub",
                "ca.key",
                "ca.pem",
                "directory.json",
                "nodes"
            ]
        );
        assert_eq!(mode(&pki.ca_key), 0o600);
        assert_eq!(mode(&pki.authority_key), 0o600);
        assert_eq!(authority_pub(&pki), pki.authority_public);
        assert_eq!(
            SigningKey::load(&pki.authority_key).unwrap().public_key(),
            pki.authority_public
        );
        tls_pki::load_ca(&pki.ca_cert, &pki.ca_key).unwrap();

        let dir = load(&pki);
        assert_eq!(dir.serial(), 1);
        let days = (dir.expires_at() - dir.issued_at()).num_days();
        assert_eq!(days, 30);
        assert_eq!(route(&dir, "410105"), "410100");
        assert_eq!(route(&dir, "510104"), "510100");
        assert!(dir.route(&RegionCode::parse("420106").unwrap()).is_none());
        assert_eq!(dir.node(&pki.nodes[0].id).unwrap().name, "河南省 郑州市");

        assert_eq!(pki.nodes.len(), 2);
        assert_eq!(entries(&pki.out.join("nodes")), ["410100", "510100"]);
        check_node(&pki, &dir, &pki.nodes[0], 7443, 8080);
        check_node(&pki, &dir, &pki.nodes[1], 7444, 8081);
        assert_eq!(
            entries(&pki.nodes[0].dir),
            [
                "data",
                "hukou-sync.toml",
                "signing.key",
                "tls.key",
                "tls.pem"
            ]
        );
    }

    #[test]
    fn init_refuses_a_non_empty_directory_and_accepts_an_empty_one() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("notes.txt"), "keep me").unwrap();
        let err = init_dev_pki(tmp.path(), &two_nodes(), 30).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err:#}");
        assert_eq!(entries(tmp.path()), ["notes.txt"]);

        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        init_dev_pki(&empty, &two_nodes(), 30).unwrap();
        // ...but not twice.
        assert!(init_dev_pki(&empty, &two_nodes(), 30).is_err());
    }

    #[test]
    fn init_refuses_bad_plans_before_writing_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("dev");
        let bad: Vec<(Vec<NodePlan>, &str)> = vec![
            (vec![], "no nodes"),
            (
                vec![
                    plan("410100", "4101", 7443, 8080),
                    plan("410100", "4102", 7444, 8081),
                ],
                "listed twice",
            ),
            (
                vec![
                    plan("410100", "4101", 7443, 8080),
                    plan("410101", "4101", 7444, 8081),
                ],
                "prefix 4101",
            ),
            (
                vec![
                    plan("410100", "4101", 7443, 8080),
                    plan("510100", "5101", 8080, 8081),
                ],
                "port 8080",
            ),
            (vec![plan("410100", "4101", 0, 8080)], "is 0"),
        ];
        for (plans, needle) in bad {
            let err = init_dev_pki(&out, &plans, 30).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!out.exists());
        }
        for days in [0, -1, MAX_DAYS + 1] {
            assert!(init_dev_pki(&out, &two_nodes(), days).is_err());
            assert!(!out.exists());
        }
        let mut no_serves = two_nodes();
        no_serves[1].serves.clear();
        assert!(init_dev_pki(&out, &no_serves, 30).is_err());
        assert!(!out.exists());
    }

    #[test]
    fn issue_adds_a_node_and_re_signs_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = init_dev_pki(&tmp.path().join("dev"), &two_nodes(), 30).unwrap();
        let before = load(&pki);

        let issued = issue_node(
            &pki.out,
            IssueRequest {
                id: NodeId::parse("420100").unwrap(),
                serves: None,
                hosts: Hosts::new(&[]).unwrap(),
                peer_port: None,
                admin_port: None,
                days: 30,
                suite: Suite::Ed25519,
            },
        )
        .unwrap();
        assert_eq!(issued.serial, 2);
        let after = load(&pki);
        assert_eq!(after.serial(), 2);
        assert_eq!(after.expires_at(), before.expires_at());
        assert_eq!(route(&after, "420106"), "420100");
        // The existing nodes are unchanged.
        for n in &pki.nodes {
            assert_eq!(after.node(&n.id), before.node(&n.id));
        }
        assert_eq!(after.nodes().count(), 3);
        let pki3 = DevPki {
            nodes: vec![issued.node.clone()],
            ..pki.clone()
        };
        // Next ports after the existing ones.
        check_node(&pki3, &after, &issued.node, 7445, 8082);

        // Explicit serves, host and ports; a taken port is refused.
        let taken = issue_node(
            &pki.out,
            IssueRequest {
                id: NodeId::parse("wuhan-2").unwrap(),
                serves: Some(vec![RegionPrefix::parse("4202").unwrap()]),
                hosts: Hosts::new(&[]).unwrap(),
                peer_port: Some(7444),
                admin_port: None,
                days: 30,
                suite: Suite::Ed25519,
            },
        );
        assert!(taken.unwrap_err().to_string().contains("already used"));
        let issued = issue_node(
            &pki.out,
            IssueRequest {
                id: NodeId::parse("wuhan-2").unwrap(),
                serves: Some(vec![RegionPrefix::parse("4202").unwrap()]),
                hosts: Hosts::new(&["localhost".to_owned()]).unwrap(),
                peer_port: Some(9443),
                admin_port: Some(9080),
                days: 30,
                suite: Suite::Ed25519,
            },
        )
        .unwrap();
        assert_eq!(issued.serial, 3);
        let after = load(&pki);
        assert_eq!(
            after.node(&issued.node.id).unwrap().endpoint,
            "https://localhost:9443"
        );
        assert_eq!(route(&after, "420202"), "wuhan-2");
        let s = Settings::load(Some(&issued.node.config)).unwrap();
        assert_eq!(s.peer.unwrap().listen.to_string(), "127.0.0.1:9443");
        assert_eq!(s.admin.listen.port(), 9080);
    }

    #[test]
    fn issue_refuses_duplicates_and_leaves_the_directory_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = init_dev_pki(&tmp.path().join("dev"), &two_nodes(), 30).unwrap();
        let original = fs::read(&pki.directory).unwrap();
        let request = |id: &str, serves: Option<&str>| IssueRequest {
            id: NodeId::parse(id).unwrap(),
            serves: serves.map(|s| vec![RegionPrefix::parse(s).unwrap()]),
            hosts: Hosts::new(&[]).unwrap(),
            peer_port: None,
            admin_port: None,
            days: 30,
            suite: Suite::Ed25519,
        };

        let err = issue_node(&pki.out, request("410100", None)).unwrap_err();
        assert!(
            err.to_string().contains("already in the directory"),
            "{err:#}"
        );
        let err = issue_node(&pki.out, request("410101", Some("4101"))).unwrap_err();
        assert!(err.to_string().contains("already served"), "{err:#}");
        let err = issue_node(&pki.out, request("zz-1", None)).unwrap_err();
        assert!(err.to_string().contains("--serves"), "{err:#}");

        assert_eq!(fs::read(&pki.directory).unwrap(), original);
        assert_eq!(entries(&pki.out.join("nodes")), ["410100", "510100"]);

        // A directory signed by another authority is refused.
        let (other, _) = SigningKey::generate().unwrap();
        let doc = load(&pki).doc().clone();
        directory::write_signed(&pki.directory, &directory::sign(&doc, &other).unwrap()).unwrap();
        let err = issue_node(&pki.out, request("420100", None)).unwrap_err();
        assert!(format!("{err:#}").contains("signature"), "{err:#}");
        assert_eq!(entries(&pki.out.join("nodes")), ["410100", "510100"]);
    }

    #[test]
    fn resign_directory_bumps_the_serial_and_can_expire_and_renew() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = init_dev_pki(&tmp.path().join("dev"), &two_nodes(), 30).unwrap();
        let fp = pki.nodes[0].fingerprint.clone();

        resign_directory(&pki, |d| d.revoked_certificates.push(fp.clone())).unwrap();
        let dir = load(&pki);
        assert_eq!(dir.serial(), 2);
        assert!(dir.authenticate_peer("410100", &fp, Utc::now()).is_err());

        // Expire it: issued_at follows expires_at back.
        let past = Utc::now() - Duration::hours(1);
        resign_directory(&pki, |d| d.expires_at = past).unwrap();
        assert!(matches!(
            Directory::load(&pki.directory, &pki.authority_public, Utc::now()),
            Err(DirectoryError::Expired { .. })
        ));

        // An expired directory can still be renewed.
        resign_directory(&pki, |d| d.expires_at = Utc::now() + Duration::days(1)).unwrap();
        assert_eq!(load(&pki).serial(), 4);

        // An invalid edit writes nothing.
        let before = fs::read(&pki.directory).unwrap();
        assert!(resign_directory(&pki, |d| d.nodes[1].id = d.nodes[0].id.clone()).is_err());
        assert_eq!(fs::read(&pki.directory).unwrap(), before);
    }

    #[test]
    fn hosts_and_endpoints() {
        let d = Hosts::new(&[]).unwrap();
        assert_eq!(d.sans, ["localhost", "127.0.0.1"]);
        assert_eq!(d.endpoint(7443), "https://127.0.0.1:7443");
        assert_eq!(d.peer_listen(7443).to_string(), "127.0.0.1:7443");
        let h = |v: &[&str]| Hosts::new(&v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>());
        let v6 = h(&["::1", "localhost"]).unwrap();
        assert_eq!(v6.endpoint(1), "https://[::1]:1");
        assert_eq!(v6.peer_listen(1).to_string(), "[::1]:1");
        let lan = h(&["node1.example.org", "10.0.0.5", "node1.example.org"]).unwrap();
        assert_eq!(lan.sans, ["node1.example.org", "10.0.0.5"]);
        assert_eq!(lan.endpoint(7443), "https://node1.example.org:7443");
        assert_eq!(lan.peer_listen(7443).to_string(), "0.0.0.0:7443");
        assert_eq!(endpoint_port("https://[::1]:7443"), Some(7443));
        assert_eq!(endpoint_port("https://a.example:8443/x"), Some(8443));
        assert_eq!(endpoint_port("https://a.example"), None);
        assert_eq!(endpoint_port("https://[::1]"), None);
    }

    #[test]
    fn toml_strings_are_escaped() {
        #[derive(Serialize)]
        struct K<'a> {
            k: &'a str,
        }
        let s = "a\"b\\c\nd\u{7f}é";
        let v: toml::Table = toml::from_str(&toml::to_string(&K { k: s }).unwrap()).unwrap();
        assert_eq!(v["k"].as_str(), Some(s));
    }
}
