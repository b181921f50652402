//! `hukou-sync pki init|issue`: the arguments of the development PKI commands and their
//! summaries. The PKI itself (layout, certificates, directory, node configurations) is
//! [`crate::devnet::pki`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::crypto::hash::HashAlg;
use crate::crypto::{PublicKey, Suite};
use crate::devnet::pki::{
    init_with_suite, issue_node, DevNode, Hosts, Initialized, IssueRequest, Listen, NodePlan,
    AUTHORITY_PUB, DEFAULT_ADMIN_PORT, DEFAULT_PEER_PORT, MAX_DAYS,
};
use crate::directory::assemble::default_serves;
use crate::directory::NodeEntry;
use crate::domain::{NodeId, RegionPrefix};

/// `hukou-sync pki`: the development PKI.
#[derive(Debug, clap::Subcommand)]
pub enum PkiCommand {
    /// Create a development PKI (exchange CA, directory authority, node certificates and
    /// signing keys), a signed directory and a configuration per node. Never for real data.
    Init(InitArgs),
    /// Add a node to an existing development PKI and re-sign the directory (serial + 1).
    Issue(IssueArgs),
}

/// Arguments of `pki init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Output directory; must not exist or be empty (nothing is ever overwritten).
    #[arg(long, default_value = "certs/dev")]
    out: PathBuf,
    /// Node ids, comma-separated, e.g. `410100,510100`. A six-digit region code serves its
    /// region by default (trailing `00` pairs stripped: 410100 → 4101, 410000 → 41).
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Served prefixes per node, `<id>=<prefix>[+<prefix>...]`, comma-separated, e.g.
    /// `410100=4101,510100=5101+5102`; `*` serves every region. Required for node ids that
    /// are not six-digit region codes.
    #[arg(long, value_delimiter = ',')]
    serves: Vec<String>,
    /// Host names / IP addresses put in every node certificate (repeatable); the first one is
    /// the host of the peer endpoints in the directory. Default: localhost and 127.0.0.1, with
    /// endpoints on 127.0.0.1.
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// Peer (mutual TLS) port of the first node; node i gets base-port + i.
    #[arg(long, default_value_t = DEFAULT_PEER_PORT)]
    base_port: u16,
    /// Admin API port of the first node; node i gets admin-base-port + i.
    #[arg(long, default_value_t = DEFAULT_ADMIN_PORT)]
    admin_base_port: u16,
    /// Validity of the directory and of the record-signing key windows, in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(i64).range(1..=MAX_DAYS))]
    days: i64,
    /// Signature suite of the directory authority's and every node's record-signing key
    /// (`ed25519` or `sm2-sm3`); each node's configuration sets `signature_suite` to it.
    #[arg(long, default_value_t = Suite::Ed25519)]
    suite: Suite,
    /// The network's content hash declared in the directory (`sha256` or `sm3`): of version
    /// ids, receipts, the audit tree and the reconciliation summary, fixed for the network's
    /// life. Default: `sm3` with `--suite sm2-sm3`, `sha256` with `ed25519`.
    #[arg(long)]
    hash: Option<HashAlg>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `pki issue`.
#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The directory `pki init` wrote.
    #[arg(long, default_value = "certs/dev")]
    dir: PathBuf,
    /// Id of the new node, e.g. `420100`.
    #[arg(long)]
    node: String,
    /// Prefixes it serves, comma- or `+`-separated (default: from a six-digit region code).
    #[arg(long, value_delimiter = ',')]
    serves: Vec<String>,
    /// Host names / IP addresses for its certificate (repeatable); the first is its endpoint
    /// host. Default: localhost and 127.0.0.1, with the endpoint on 127.0.0.1.
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// Peer (mutual TLS) port. Default: the highest peer port in the directory + 1.
    #[arg(long)]
    port: Option<u16>,
    /// Admin API port. Default: the highest admin port of the existing node configs + 1.
    #[arg(long)]
    admin_port: Option<u16>,
    /// Validity of its record-signing key window, in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(i64).range(1..=MAX_DAYS))]
    days: i64,
    /// Signature suite of its record-signing key (`ed25519` or `sm2-sm3`).
    #[arg(long, default_value_t = Suite::Ed25519)]
    suite: Suite,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `pki` subcommand.
pub fn run(cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PkiCommand::Init(args) => run_init(args),
        PkiCommand::Issue(args) => run_issue(args),
    }
}

fn run_init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let plans = plans_from_args(
        &args.nodes,
        &args.serves,
        args.base_port,
        args.admin_base_port,
    )?;
    let hosts = Hosts::new(&args.hosts)?;
    let hash = args.hash.unwrap_or(HashAlg::default_for(args.suite));
    let init = init_with_suite(&args.out, &plans, args.days, &hosts, args.suite, hash)?;
    let report = InitReport::new(&init);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print();
    }
    Ok(ExitCode::SUCCESS)
}

fn run_issue(args: IssueArgs) -> anyhow::Result<ExitCode> {
    let id = NodeId::parse(args.node.trim()).map_err(|e| anyhow!("--node {:?}: {e}", args.node))?;
    let serves = if args.serves.is_empty() {
        None
    } else {
        Some(parse_prefixes(
            args.serves.iter().map(String::as_str),
            "--serves",
        )?)
    };
    let request = IssueRequest {
        id,
        serves,
        hosts: Hosts::new(&args.hosts)?,
        peer_port: args.port,
        admin_port: args.admin_port,
        days: args.days,
        suite: args.suite,
    };
    let issued = issue_node(&args.dir, request)?;
    let report = IssueReport {
        out: issued.out.clone(),
        directory: issued.directory.clone(),
        serial: issued.serial,
        node: NodeReport::new(&issued.node, &issued.entry, &issued.listen),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print();
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the plans of `pki init` from its arguments.
fn plans_from_args(
    nodes: &[String],
    serves: &[String],
    base_port: u16,
    admin_base_port: u16,
) -> anyhow::Result<Vec<NodePlan>> {
    let ids = nodes
        .iter()
        .map(|raw| NodeId::parse(raw.trim()).map_err(|e| anyhow!("--nodes: {raw:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut explicit: BTreeMap<NodeId, Vec<RegionPrefix>> = BTreeMap::new();
    for spec in serves.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (id, prefixes) = spec.split_once('=').ok_or_else(|| {
            anyhow!("--serves {spec:?}: expected <node id>=<prefix>[+<prefix>...]")
        })?;
        let id = NodeId::parse(id.trim()).map_err(|e| anyhow!("--serves {spec:?}: {e}"))?;
        if !ids.contains(&id) {
            bail!("--serves {spec:?}: node {id} is not in --nodes");
        }
        let prefixes = parse_prefixes(std::iter::once(prefixes), "--serves")?;
        explicit.entry(id).or_default().extend(prefixes);
    }
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| -> anyhow::Result<NodePlan> {
            let offset = u16::try_from(i).context("too many nodes")?;
            let serves = match explicit.remove(&id) {
                Some(serves) => serves,
                None => default_serves(&id).ok_or_else(|| {
                    anyhow!(
                        "node {id} is not a six-digit region code, so its prefixes cannot be \
                         derived: give them with --serves {id}=<prefix>"
                    )
                })?,
            };
            Ok(NodePlan {
                peer_port: base_port.checked_add(offset).with_context(|| {
                    format!("peer port of node {id}: {base_port} + {i} > 65535")
                })?,
                admin_port: admin_base_port.checked_add(offset).with_context(|| {
                    format!("admin port of node {id}: {admin_base_port} + {i} > 65535")
                })?,
                id,
                serves,
            })
        })
        .collect()
}

/// Parses prefixes given as a list of `+`-separated groups, e.g. `["4101+4102", "42"]`.
fn parse_prefixes<'a>(
    groups: impl IntoIterator<Item = &'a str>,
    what: &str,
) -> anyhow::Result<Vec<RegionPrefix>> {
    let mut out = Vec::new();
    for p in groups
        .into_iter()
        .flat_map(|g| g.split('+'))
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        out.push(RegionPrefix::parse(p).map_err(|e| anyhow!("{what}: {p:?}: {e}"))?);
    }
    if out.is_empty() {
        bail!("{what}: no region prefix given");
    }
    Ok(out)
}

/// One node in a summary.
#[derive(Debug, Serialize)]
struct NodeReport {
    id: NodeId,
    name: String,
    serves: Vec<RegionPrefix>,
    endpoint: String,
    peer_listen: SocketAddr,
    admin_listen: SocketAddr,
    tls_fingerprint: String,
    signing_public_key: Option<PublicKey>,
    dir: PathBuf,
    config: PathBuf,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    signing_key: PathBuf,
}

impl NodeReport {
    fn new(node: &DevNode, entry: &NodeEntry, listen: &Listen) -> NodeReport {
        NodeReport {
            id: node.id.clone(),
            name: entry.name.clone(),
            serves: entry.serves.clone(),
            endpoint: entry.endpoint.clone(),
            peer_listen: listen.peer,
            admin_listen: listen.admin,
            tls_fingerprint: node.fingerprint.clone(),
            signing_public_key: entry.signing_keys.first().map(|w| w.key),
            dir: node.dir.clone(),
            config: node.config.clone(),
            tls_cert: node.tls_cert.clone(),
            tls_key: node.tls_key.clone(),
            signing_key: node.signing_key.clone(),
        }
    }

    fn print(&self) {
        let serves: Vec<String> = self.serves.iter().map(ToString::to_string).collect();
        println!(
            "  node {} ({}), serves {}",
            self.id,
            self.name,
            serves.join(", ")
        );
        println!(
            "    peer      {} (listens on {})",
            self.endpoint, self.peer_listen
        );
        println!("    admin     http://{}", self.admin_listen);
        println!(
            "    TLS cert  {} (sha256 {})",
            self.tls_cert.display(),
            self.tls_fingerprint
        );
        if let Some(key) = &self.signing_public_key {
            println!(
                "    signing   {} (public {key})",
                self.signing_key.display()
            );
        }
        println!("    config    {}", self.config.display());
    }
}

/// Summary of `pki init`.
#[derive(Debug, Serialize)]
struct InitReport {
    out: PathBuf,
    ca_cert: PathBuf,
    ca_key: PathBuf,
    authority_key: PathBuf,
    authority_pub: PathBuf,
    authority_public_key: PublicKey,
    directory: PathBuf,
    serial: u64,
    expires_at: DateTime<Utc>,
    hash: HashAlg,
    nodes: Vec<NodeReport>,
}

impl InitReport {
    fn new(init: &Initialized) -> InitReport {
        let pki = &init.pki;
        InitReport {
            out: pki.out.clone(),
            ca_cert: pki.ca_cert.clone(),
            ca_key: pki.ca_key.clone(),
            authority_key: pki.authority_key.clone(),
            authority_pub: pki.out.join(AUTHORITY_PUB),
            authority_public_key: pki.authority_public,
            directory: pki.directory.clone(),
            serial: init.doc.serial,
            expires_at: init.doc.expires_at,
            hash: init.doc.hash,
            nodes: pki
                .nodes
                .iter()
                .zip(&init.doc.nodes)
                .zip(&init.listens)
                .map(|((node, entry), listen)| NodeReport::new(node, entry, listen))
                .collect(),
        }
    }

    fn print(&self) {
        println!(
            "Development PKI written to {} — for development and tests only, never for real data.",
            self.out.display()
        );
        println!(
            "  exchange CA          {} (key {}, 0600)",
            self.ca_cert.display(),
            self.ca_key.display()
        );
        println!(
            "  directory authority  {} (0600); public key in {}:",
            self.authority_key.display(),
            self.authority_pub.display()
        );
        println!("                       {}", self.authority_public_key);
        println!(
            "  signed directory     {} (serial {}, expires {}, content hash {})",
            self.directory.display(),
            self.serial,
            self.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.hash
        );
        for node in &self.nodes {
            node.print();
        }
        if let Some(first) = self.nodes.first() {
            println!(
                "Start a node with: hukou-sync --config {} serve",
                first.config.display()
            );
        }
    }
}

/// Summary of `pki issue`.
#[derive(Debug, Serialize)]
struct IssueReport {
    out: PathBuf,
    directory: PathBuf,
    serial: u64,
    node: NodeReport,
}

impl IssueReport {
    fn print(&self) {
        println!(
            "Added node {} to the development PKI in {}.",
            self.node.id,
            self.out.display()
        );
        self.node.print();
        println!(
            "  directory {} re-signed (serial {}); running nodes load it on SIGHUP or within \
             directory.reload_interval_secs.",
            self.directory.display(),
            self.serial
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::devnet::pki::DIRECTORY;
    use crate::directory::assemble::read_authority_public;
    use crate::directory::Directory;
    use crate::domain::RegionCode;
    use clap::Parser;

    fn plan(id: &str, serves: &str, peer_port: u16, admin_port: u16) -> NodePlan {
        NodePlan {
            id: NodeId::parse(id).unwrap(),
            serves: vec![RegionPrefix::parse(serves).unwrap()],
            peer_port,
            admin_port,
        }
    }

    fn route(dir: &Directory, code: &str) -> String {
        dir.route(&RegionCode::parse(code).unwrap())
            .unwrap()
            .id
            .to_string()
    }

    #[test]
    fn init_arguments_become_plans() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let plans = plans_from_args(
            &s(&["410100", " 510100", "hub"]),
            &s(&["hub=*", "510100=5101+5102", "410100=4101"]),
            7443,
            8080,
        )
        .unwrap();
        assert_eq!(plans[0], plan("410100", "4101", 7443, 8080));
        assert_eq!(plans[1].serves.len(), 2);
        assert_eq!((plans[1].peer_port, plans[1].admin_port), (7444, 8081));
        assert_eq!(plans[2].serves, vec![RegionPrefix::everywhere()]);

        let err = |nodes: &[&str], serves: &[&str]| {
            plans_from_args(&s(nodes), &s(serves), 7443, 8080)
                .unwrap_err()
                .to_string()
        };
        assert!(err(&["hub"], &[]).contains("--serves hub="));
        assert!(err(&["410100"], &["510100=5101"]).contains("not in --nodes"));
        assert!(err(&["410100"], &["410100"]).contains("expected"));
        assert!(err(&["410100"], &["410100=410"]).contains("\"410\""));
        assert!(err(&["Bad"], &[]).contains("--nodes"));
        assert!(plans_from_args(&s(&["410100", "510100"]), &[], 65535, 8080).is_err());
    }

    /// The commands end to end, through clap.
    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: PkiCommand,
    }

    #[test]
    fn commands_run_end_to_end() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("dev");
        let out_s = out.to_str().unwrap();
        let cli = Cli::try_parse_from([
            "pki",
            "init",
            "--out",
            out_s,
            "--nodes",
            "410100,510100",
            "--serves",
            "510100=5101+5103",
            "--host",
            "127.0.0.1",
            "--host",
            "localhost",
            "--base-port",
            "17443",
            "--admin-base-port",
            "18080",
            "--days",
            "10",
            "--json",
        ])
        .unwrap();
        assert_eq!(run(cli.cmd).unwrap(), ExitCode::SUCCESS);
        let authority = read_authority_public(&out.join(AUTHORITY_PUB)).unwrap();
        let dir = Directory::load(&out.join(DIRECTORY), &authority, Utc::now()).unwrap();
        assert_eq!(route(&dir, "510302"), "510100");
        assert_eq!(
            dir.node(&NodeId::parse("510100").unwrap())
                .unwrap()
                .endpoint,
            "https://127.0.0.1:17444"
        );

        let cli =
            Cli::try_parse_from(["pki", "issue", "--dir", out_s, "--node", "420100"]).unwrap();
        assert_eq!(run(cli.cmd).unwrap(), ExitCode::SUCCESS);
        let dir = Directory::load(&out.join(DIRECTORY), &authority, Utc::now()).unwrap();
        assert_eq!(dir.serial(), 2);
        let wuhan = dir.node(&NodeId::parse("420100").unwrap()).unwrap();
        assert_eq!(wuhan.endpoint, "https://127.0.0.1:17445");
        let s = Settings::load(Some(&out.join("nodes/420100/hukou-sync.toml"))).unwrap();
        assert_eq!(s.admin.listen.port(), 18082);

        let cli =
            Cli::try_parse_from(["pki", "issue", "--dir", out_s, "--node", "420100"]).unwrap();
        assert!(run(cli.cmd).is_err());
        assert!(Cli::try_parse_from(["pki", "init", "--nodes", "1", "--days", "0"]).is_err());
        assert!(Cli::try_parse_from(["pki", "init"]).is_err());
    }
}
