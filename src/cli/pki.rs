//! `hukou-sync pki init|issue`: a development PKI for an exchange on one machine — an exchange
//! CA, a TLS certificate and a record-signing key per node, a directory authority key, a signed
//! directory and a ready configuration per node. Never for real data: in production a real
//! exchange CA issues certificates from CSRs and an offline authority signs the directory (see
//! `certs/README.md`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{Duration, Utc};

use crate::crypto::keys::{PublicKey, SigningKey};
use crate::directory::{self, Directory, DirectoryDoc, KeyWindow, NodeEntry};
use crate::domain::{NodeId, RegionCode, RegionPrefix};
use crate::tls::pki as tls_pki;

#[derive(Debug, clap::Subcommand)]
pub enum PkiCommand {
    /// Create a development PKI, signed directory and node configurations.
    Init(InitArgs),
    /// Add a node to an existing development PKI and re-sign the directory.
    Issue(IssueArgs),
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Output directory (must not exist or be empty).
    #[arg(long, default_value = "certs/dev")]
    out: PathBuf,
    /// Node ids, comma-separated; a six-digit region code serves its region by default
    /// (410100 → 4101, 410000 → 41).
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Served prefixes per node: `410100=4101+4102` (repeatable).
    #[arg(long)]
    serves: Vec<String>,
    #[arg(long, default_value_t = 7443)]
    base_port: u16,
    #[arg(long, default_value_t = 8080)]
    admin_base_port: u16,
    /// Validity of the directory and of the signing-key windows, in days.
    #[arg(long, default_value_t = 365)]
    days: i64,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The directory `pki init` wrote.
    #[arg(long, default_value = "certs/dev")]
    dir: PathBuf,
    #[arg(long)]
    node: String,
    /// Served prefixes, `+`-separated (default: from the node id).
    #[arg(long)]
    serves: Option<String>,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    admin_port: Option<u16>,
    #[arg(long, default_value_t = 365)]
    days: i64,
}

/// One node to create.
#[derive(Debug, Clone)]
pub struct NodePlan {
    pub id: NodeId,
    pub serves: Vec<RegionPrefix>,
    pub peer_port: u16,
    pub admin_port: u16,
}

/// What was written for one node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DevNode {
    pub id: NodeId,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub signing_key: PathBuf,
    pub fingerprint: String,
}

/// What `init_dev_pki` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DevPki {
    pub out: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub authority_key: PathBuf,
    pub authority_public: PublicKey,
    pub directory: PathBuf,
    pub nodes: Vec<DevNode>,
}

const HOSTS: &[&str] = &["localhost", "127.0.0.1"];

/// Default served prefix of a node named by a region code: trailing `00` pairs stripped.
fn default_serves(id: &NodeId) -> Option<Vec<RegionPrefix>> {
    let s = id.as_str();
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut p = s;
    while p.len() > 2 && p.ends_with("00") {
        p = &p[..p.len() - 2];
    }
    RegionPrefix::parse(p).ok().map(|p| vec![p])
}

fn node_name(id: &NodeId) -> String {
    RegionCode::parse(id.as_str()).map_or_else(
        |_| format!("node {id}"),
        |r| format!("{} 民政局", r.full_name()),
    )
}

/// Creates the PKI, directory and configurations under `out`.
pub fn init_dev_pki(out: &Path, nodes: &[NodePlan], days: i64) -> anyhow::Result<DevPki> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        anyhow::bail!(
            "{} exists and is not empty; refusing to overwrite key material",
            out.display()
        );
    }
    std::fs::create_dir_all(out.join("nodes"))?;
    let out = std::fs::canonicalize(out)?;
    let ca = tls_pki::generate_ca("hukou-sync development exchange CA")?;
    let ca_cert = out.join("ca.pem");
    let ca_key = out.join("ca.key");
    tls_pki::write_public_pem(&ca_cert, &ca.cert_pem)?;
    tls_pki::write_private_pem(&ca_key, &ca.key_pem)?;
    let authority_key = out.join("authority.key");
    let authority = SigningKey::write_new(&authority_key)?;
    let authority_public = authority.public_key();
    std::fs::write(out.join("authority.pub"), format!("{authority_public}\n"))?;
    let directory = out.join("directory.json");
    let now = Utc::now();
    let mut doc = DirectoryDoc {
        format: directory::FORMAT.to_owned(),
        serial: 1,
        issued_at: now,
        expires_at: now + Duration::days(days),
        nodes: Vec::new(),
        revoked_certificates: Vec::new(),
        revoked_keys: Vec::new(),
    };
    let mut written = Vec::new();
    for plan in nodes {
        let (entry, dev) = make_node(&out, &ca, plan, &directory, &authority_public, days)?;
        doc.nodes.push(entry);
        written.push(dev);
    }
    directory::write_signed(&directory, &directory::sign(&doc, &authority)?)?;
    Ok(DevPki {
        out,
        ca_cert,
        ca_key,
        authority_key,
        authority_public,
        directory,
        nodes: written,
    })
}

fn make_node(
    out: &Path,
    ca: &tls_pki::CertifiedKey,
    plan: &NodePlan,
    directory: &Path,
    authority: &PublicKey,
    days: i64,
) -> anyhow::Result<(NodeEntry, DevNode)> {
    let dir = out.join("nodes").join(plan.id.as_str());
    std::fs::create_dir_all(dir.join("data"))?;
    let cert = tls_pki::issue_node_cert(ca, plan.id.as_str(), HOSTS)?;
    let tls_cert = dir.join("tls.pem");
    let tls_key = dir.join("tls.key");
    tls_pki::write_public_pem(&tls_cert, &cert.cert_pem)?;
    tls_pki::write_private_pem(&tls_key, &cert.key_pem)?;
    let der = tls_pki::load_certs_from_pem(&cert.cert_pem)?;
    let fingerprint = der
        .first()
        .map(crate::tls::fingerprint)
        .context("no certificate issued")?;
    let signing_key = dir.join("signing.key");
    let key = SigningKey::write_new(&signing_key)?;
    let now = Utc::now();
    let entry = NodeEntry {
        id: plan.id.clone(),
        name: node_name(&plan.id),
        serves: plan.serves.clone(),
        endpoint: format!("https://127.0.0.1:{}", plan.peer_port),
        tls_fingerprints: vec![fingerprint.clone()],
        signing_keys: vec![KeyWindow {
            key: key.public_key(),
            valid_from: now - Duration::days(1),
            valid_until: now + Duration::days(days),
        }],
    };
    let config = dir.join("hukou-sync.toml");
    let serves: Vec<String> = plan.serves.iter().map(|p| format!("\"{p}\"")).collect();
    let toml = format!(
        "# Generated by `hukou-sync pki init` for development only.\n\
         [node]\nid = \"{id}\"\nserves = [{serves}]\nsigning_key = \"{sk}\"\n\n\
         [database]\nurl = \"sqlite://{db}\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [peer]\nlisten = \"127.0.0.1:{peer}\"\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
         [directory]\npath = \"{dirfile}\"\nauthority_key = \"{auth}\"\n",
        id = plan.id,
        serves = serves.join(", "),
        sk = signing_key.display(),
        db = dir.join("data").join("node.db").display(),
        admin = plan.admin_port,
        peer = plan.peer_port,
        ca = out.join("ca.pem").display(),
        cert = tls_cert.display(),
        key = tls_key.display(),
        dirfile = directory.display(),
        auth = authority,
    );
    std::fs::write(&config, toml)?;
    Ok((
        entry,
        DevNode {
            id: plan.id.clone(),
            dir,
            config,
            tls_cert,
            tls_key,
            signing_key,
            fingerprint,
        },
    ))
}

/// Re-signs the directory after `edit` changes it; the serial goes up by one.
pub fn resign_directory(pki: &DevPki, edit: impl FnOnce(&mut DirectoryDoc)) -> anyhow::Result<()> {
    resign(&pki.directory, &pki.authority_key, edit)
}

fn resign(
    path: &Path,
    authority_key: &Path,
    edit: impl FnOnce(&mut DirectoryDoc),
) -> anyhow::Result<()> {
    let authority = SigningKey::load(authority_key)?;
    let current = Directory::load(path, &authority.public_key(), Utc::now())?;
    let mut doc = current.doc().clone();
    edit(&mut doc);
    doc.serial = current.serial() + 1;
    doc.issued_at = Utc::now();
    let signed = directory::sign(&doc, &authority)?;
    let tmp = path.with_extension("json.new");
    let _ = std::fs::remove_file(&tmp);
    directory::write_signed(&tmp, &signed)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn parse_serves(id: &NodeId, spec: Option<&str>) -> anyhow::Result<Vec<RegionPrefix>> {
    match spec {
        Some(s) => s
            .split('+')
            .map(|p| RegionPrefix::parse(p).map_err(|e| anyhow::anyhow!("--serves {p}: {e}")))
            .collect(),
        None => default_serves(id)
            .ok_or_else(|| anyhow::anyhow!("node {id} is not a region code: give --serves")),
    }
}

pub fn run(cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PkiCommand::Init(a) => {
            let mut plans = Vec::new();
            for (i, raw) in a.nodes.iter().enumerate() {
                let id =
                    NodeId::parse(raw.trim()).map_err(|e| anyhow::anyhow!("--nodes {raw}: {e}"))?;
                let spec = a
                    .serves
                    .iter()
                    .find_map(|s| s.strip_prefix(&format!("{id}=")));
                let i = u16::try_from(i)?;
                plans.push(NodePlan {
                    serves: parse_serves(&id, spec)?,
                    id,
                    peer_port: a.base_port.checked_add(i).context("port out of range")?,
                    admin_port: a
                        .admin_base_port
                        .checked_add(i)
                        .context("port out of range")?,
                });
            }
            let pki = init_dev_pki(&a.out, &plans, a.days)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&pki)?);
            } else {
                println!(
                    "development PKI in {} (never for real data)",
                    pki.out.display()
                );
                println!("  exchange CA        {}", pki.ca_cert.display());
                println!(
                    "  directory          {} (serial 1, signed)",
                    pki.directory.display()
                );
                println!("  authority key      {}", pki.authority_public);
                for n in &pki.nodes {
                    println!(
                        "  node {:<12} cert {}…  config {}",
                        n.id,
                        &n.fingerprint[..16],
                        n.config.display()
                    );
                }
                println!(
                    "start a node with: hukou-sync --config {} serve",
                    pki.nodes
                        .first()
                        .map_or(String::new(), |n| n.config.display().to_string())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PkiCommand::Issue(a) => {
            let out = std::fs::canonicalize(&a.dir)
                .with_context(|| format!("{} does not exist", a.dir.display()))?;
            let id = NodeId::parse(&a.node).map_err(|e| anyhow::anyhow!("--node: {e}"))?;
            let authority_key = out.join("authority.key");
            let directory_path = out.join("directory.json");
            let authority = SigningKey::load(&authority_key)?;
            let current = Directory::load(&directory_path, &authority.public_key(), Utc::now())?;
            if current.node(&id).is_some() {
                anyhow::bail!("node {id} is already in the directory");
            }
            let port = |e: &NodeEntry| {
                e.endpoint
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .unwrap_or(7442)
            };
            let max = current.nodes().map(port).max().unwrap_or(7442);
            let plan = NodePlan {
                serves: parse_serves(&id, a.serves.as_deref())?,
                id: id.clone(),
                peer_port: a.port.unwrap_or(max.saturating_add(1)),
                admin_port: a
                    .admin_port
                    .unwrap_or(8080u16.saturating_add(current.nodes().count() as u16)),
            };
            let ca = tls_pki::load_ca(&out.join("ca.pem"), &out.join("ca.key"))?;
            let (entry, dev) = make_node(
                &out,
                &ca,
                &plan,
                &directory_path,
                &authority.public_key(),
                a.days,
            )?;
            resign(&directory_path, &authority_key, |d| d.nodes.push(entry))?;
            println!(
                "added node {id}: cert {}…, config {}; directory re-signed",
                &dev.fingerprint[..16],
                dev.config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn plan(id: &str, port: u16) -> NodePlan {
        let id = NodeId::parse(id).unwrap();
        NodePlan {
            serves: default_serves(&id).unwrap(),
            id,
            peer_port: port,
            admin_port: port + 1000,
        }
    }

    #[test]
    fn init_writes_a_working_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dev");
        let pki = init_dev_pki(&out, &[plan("410100", 7443), plan("510100", 7444)], 30).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&pki.ca_key), 0o600);
        assert_eq!(mode(&pki.authority_key), 0o600);
        let dirx = Directory::load(&pki.directory, &pki.authority_public, Utc::now()).unwrap();
        assert_eq!(
            dirx.route(&RegionCode::parse("410105").unwrap())
                .unwrap()
                .id
                .as_str(),
            "410100"
        );
        assert_eq!(
            dirx.route(&RegionCode::parse("510104").unwrap())
                .unwrap()
                .id
                .as_str(),
            "510100"
        );
        for n in &pki.nodes {
            assert_eq!(mode(&n.tls_key), 0o600);
            assert_eq!(mode(&n.signing_key), 0o600);
            let cert = tls_pki::load_certs(&n.tls_cert).unwrap();
            assert_eq!(crate::tls::node_id_of(&cert[0]).unwrap(), n.id.as_str());
            assert!(dirx
                .node(&n.id)
                .unwrap()
                .tls_fingerprints
                .contains(&n.fingerprint));
            let s = crate::config::Settings::load(Some(&n.config)).unwrap();
            assert_eq!(s.node.id, n.id);
        }
        assert!(init_dev_pki(&out, &[plan("410100", 7443)], 30).is_err());
        resign_directory(&pki, |d| d.revoked_keys.clear()).unwrap();
        assert_eq!(
            Directory::load(&pki.directory, &pki.authority_public, Utc::now())
                .unwrap()
                .serial(),
            2
        );
    }

    #[test]
    fn default_prefixes_follow_the_region_code() {
        let p = |s: &str| default_serves(&NodeId::parse(s).unwrap()).map(|v| v[0].to_string());
        assert_eq!(p("410100").as_deref(), Some("4101"));
        assert_eq!(p("410000").as_deref(), Some("41"));
        assert_eq!(p("510104").as_deref(), Some("510104"));
        assert_eq!(p("zz-1"), None);
    }
}
