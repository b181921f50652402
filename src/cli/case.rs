//! `hukou-sync case list|show|create|act|evidence`: eligibility cases and their evidence files
//! from the console, audited like the API.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;

use crate::audit::Actor;
use crate::config::Settings;
use crate::crypto::hash::Digest;
use crate::domain::case::state::Transition;
use crate::domain::case::{Evidence, MAX_EVIDENCE};
use crate::domain::shown_time::shown;
use crate::eligibility::service::{self, CaseQuery, NewCase};

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// List cases, oldest first: --incoming (this node decides), --outgoing, --overdue.
    List {
        #[arg(long, conflicts_with = "outgoing")]
        incoming: bool,
        #[arg(long)]
        outgoing: bool,
        #[arg(long)]
        overdue: bool,
        /// Keyset paging: the case id printed after "more:" (`next_after` in --json).
        #[arg(long)]
        after: Option<uuid::Uuid>,
        /// Cases per page, 1 to 1000.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show one case with its history and deadline.
    Show {
        case_id: String,
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Open a case from a JSON request file (the body of POST /api/v1/cases). Every document
    /// it names must be stored here first (`case evidence add FILE`).
    Create { file: PathBuf },
    /// Evidence files (证明材料): store one here, or save one a case names.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Make a transition, given as JSON.
    ///
    /// The requester (residence bureau) may:
    ///   '{"action":"provide_info","answer":"户口簿与低保证明已补交"}'
    ///   '{"action":"withdraw","reason":"家庭已迁回原籍"}'          (reason optional)
    /// The decider (hukou bureau) may:
    ///   '{"action":"receive"}'                                   (done automatically on arrival)
    ///   '{"action":"request_info","question":"请提供父亲的诊断证明"}'
    ///   '{"action":"approve","effective_month":"2026-12","review_on":"2027-06-30"}'
    ///                                                            (review_on optional)
    ///   '{"action":"deny","reason_code":"income_above_threshold","reason_text":"家庭人均收入高于当地低保标准"}'
    ///     reason_code: income_above_threshold, not_hukou_resident, documents_insufficient,
    ///     not_eligible_category, duplicate, other
    /// Texts are 1 to 2,000 characters; months are YYYY-MM, dates YYYY-MM-DD.
    /// An answer may attach documents: each --evidence TYPE:ISSUER:NUMBER:FILE (PDF, JPEG or
    /// PNG) is stored here encrypted and named by its SHA-256 with its type, issuer and number;
    /// the deciding bureau fetches the file over mutual TLS, e.g.
    ///   case act ID '{"action":"provide_info","answer":"已补交父亲诊断证明"}' \
    ///     --evidence '诊断证明:成都市第一人民医院:ZD-2026-118:./诊断证明.pdf'
    #[command(verbatim_doc_comment)]
    Act {
        case_id: String,
        /// The transition as JSON (see above).
        transition: String,
        #[arg(long)]
        officer: Option<String>,
        /// A document the answer adds (provide_info only; up to 20): TYPE:ISSUER:NUMBER:FILE.
        #[arg(long, value_name = "TYPE:ISSUER:NUMBER:FILE")]
        evidence: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Store a PDF, JPEG or PNG file here (encrypted) and print its SHA-256, the name a case
    /// gives it ("sha256" in grounds.evidence or an answer's evidence).
    Add {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Save a file a case names (decrypted; audited evidence.download) to --out (mode 0600).
    Get {
        case_id: String,
        sha256: String,
        /// Where to write it; an existing file is refused unless --force.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
        /// Why it is read (recorded in the audit event).
        #[arg(long)]
        purpose: Option<String>,
    },
}

pub fn run(settings: &Settings, cmd: CaseCommand) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let deadlines = crate::startup::deadlines(settings)?;
    let mut conn = store.conn()?;
    let actor = Actor::console();
    let vault = || crate::startup::evidence_vault(settings, &store, &node);
    match cmd {
        CaseCommand::List {
            incoming,
            outgoing,
            overdue,
            after,
            limit,
            json,
        } => {
            let q = CaseQuery {
                incoming: if incoming {
                    Some(true)
                } else if outgoing {
                    Some(false)
                } else {
                    None
                },
                overdue_only: overdue,
                after: after.map(|a| a.to_string()),
                limit: i64::from(limit),
                ..CaseQuery::default()
            };
            let list =
                service::list_for(&mut conn, &node, &deadlines, &q, &actor, None, Utc::now())?;
            let next_after = (list.len() == limit as usize)
                .then(|| list.last().map(|c| c.case_id.clone()))
                .flatten();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "items": list, "next_after": next_after })
                    )?
                );
            } else {
                for c in &list {
                    let flag = match &c.deadline {
                        Some(crate::eligibility::calendar::DeadlineStatus::Overdue {
                            days_over,
                        }) => format!("OVERDUE {days_over} working days"),
                        Some(crate::eligibility::calendar::DeadlineStatus::DueSoon {
                            days_left,
                        }) => format!("due soon ({days_left} left)"),
                        Some(crate::eligibility::calendar::DeadlineStatus::OnTime {
                            days_left,
                        }) => format!("{days_left} working days left"),
                        None => String::new(),
                    };
                    let provisional = if c.due_provisional {
                        " 暂定 (provisional)"
                    } else {
                        ""
                    };
                    println!(
                        "{}  {:<28} {:<15} {} → {}  due {}{provisional}  {flag}",
                        c.case_id, c.benefit, c.state, c.requester, c.decider, c.due_on
                    );
                }
                println!("{} case(s)", list.len());
                if let Some(next) = &next_after {
                    println!("more: --after {next}");
                }
            }
        }
        CaseCommand::Show {
            case_id,
            purpose,
            json,
        } => {
            let v = service::read(
                &mut conn,
                &node,
                &deadlines,
                &case_id,
                &actor,
                purpose.as_deref(),
                Utc::now(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let c = &v.case;
                println!(
                    "case {}  {} ({})  {} ({})",
                    c.case_id,
                    c.benefit.label_zh(),
                    c.benefit.code(),
                    c.state.label_zh(),
                    c.state
                );
                println!(
                    "  child {}  requester {}  decider {}",
                    c.child_id, c.requester, c.decider
                );
                if v.due_provisional {
                    println!(
                        "  due {} (China working days) 暂定 (provisional: it counts into a year \
                         without a published holiday calendar, on the statutory holidays only)",
                        v.due_on
                    );
                } else {
                    println!("  due {} (China working days)", v.due_on);
                }
                let documents = c
                    .grounds
                    .evidence
                    .iter()
                    .chain(c.history.iter().flat_map(|s| match &s.transition {
                        Transition::ProvideInfo { evidence, .. } => evidence.as_slice(),
                        _ => &[],
                    }));
                for e in documents {
                    println!(
                        "  document {} ({} {})  sha256 {}",
                        e.doc_type.as_str(),
                        e.issuer.as_str(),
                        e.number.as_str(),
                        e.sha256
                    );
                }
                println!("  history:");
                for step in &c.history {
                    println!(
                        "    {}  {:<13} by {}{}",
                        shown(step.at),
                        step.transition.kind().as_str(),
                        step.by,
                        step.officer
                            .as_deref()
                            .map(|o| format!(" ({o})"))
                            .unwrap_or_default()
                    );
                }
                if v.allowed_actions.is_empty() {
                    println!("  nothing for this node to do");
                } else {
                    println!("  this node may now: {}", v.allowed_actions.join(", "));
                }
            }
        }
        CaseCommand::Create { file } => {
            let new: NewCase = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
            let v = service::create(&mut conn, &node, &deadlines, new, &actor, Utc::now())?;
            println!(
                "opened case {} ({}), decider {}, due {}{}",
                v.case.case_id,
                v.case.benefit.code(),
                v.case.decider,
                v.due_on,
                if v.due_provisional {
                    " 暂定 (provisional)"
                } else {
                    ""
                }
            );
        }
        CaseCommand::Act {
            case_id,
            transition,
            officer,
            evidence,
        } => {
            let mut t: Transition = serde_json::from_str(&transition)
                .map_err(|e| anyhow::anyhow!("transition: {e}"))?;
            if !evidence.is_empty() {
                let Transition::ProvideInfo { evidence: list, .. } = &mut t else {
                    anyhow::bail!("--evidence goes with provide_info (an answer's documents)");
                };
                if list.len() + evidence.len() > MAX_EVIDENCE {
                    anyhow::bail!("--evidence: at most {MAX_EVIDENCE} documents per answer");
                }
                let vault = vault()?;
                for spec in &evidence {
                    list.push(evidence_of(spec, &mut conn, &node, &vault, &actor)?);
                }
            }
            let v = service::transition(
                &mut conn,
                &node,
                &deadlines,
                &case_id,
                t,
                officer,
                &actor,
                Utc::now(),
            )?;
            println!("case {} is now {}", v.case.case_id, v.case.state);
        }
        CaseCommand::Evidence(EvidenceCommand::Add { file, json }) => {
            let vault = vault()?;
            let (stored, created) = store_file(&file, &mut conn, &node, &vault, &actor)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "sha256": stored.sha256, "media_type": stored.media_type,
                        "size": stored.size, "new": created,
                    }))?
                );
            } else {
                println!("{}", stored.sha256);
                eprintln!(
                    "{} {} ({}, {} bytes), stored encrypted; name it in a case by this sha256",
                    if created { "stored" } else { "already stored:" },
                    file.display(),
                    stored.media_type.as_str(),
                    stored.size
                );
            }
        }
        CaseCommand::Evidence(EvidenceCommand::Get {
            case_id,
            sha256,
            out,
            force,
            purpose,
        }) => {
            let vault = vault()?;
            let sha: Digest = sha256.parse().map_err(|_| {
                anyhow::anyhow!("{sha256:?} is not a SHA-256 (64 lower-case hex characters)")
            })?;
            let (media, bytes) = crate::eligibility::evidence::download(
                &mut conn,
                &node,
                &vault,
                &case_id,
                &sha,
                &actor,
                purpose.as_deref(),
                Utc::now(),
            )?;
            let mut f = super::open_output(&out, force)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_all()?;
            println!(
                "wrote {} bytes ({}) to {}",
                bytes.len(),
                media.as_str(),
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stores a file as evidence, its type found from its first bytes.
fn store_file(
    file: &std::path::Path,
    conn: &mut crate::storage::DbConn,
    node: &crate::sync::LocalNode,
    vault: &crate::eligibility::evidence::Vault,
    actor: &Actor,
) -> anyhow::Result<(crate::eligibility::evidence::StoredEvidence, bool)> {
    let meta = std::fs::metadata(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    if meta.len() > vault.max_bytes as u64 {
        anyhow::bail!(
            "{} is {} bytes, more than [evidence] max_bytes ({})",
            file.display(),
            meta.len(),
            vault.max_bytes
        );
    }
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let media = crate::domain::evidence_file::sniff(&bytes).ok_or_else(|| {
        anyhow::anyhow!(
            "{} is not a PDF, JPEG or PNG file (it does not start like one)",
            file.display()
        )
    })?;
    Ok(crate::eligibility::evidence::upload(
        conn,
        node,
        vault,
        media.as_str(),
        &bytes,
        actor,
        Utc::now(),
    )?)
}

/// One `--evidence TYPE:ISSUER:NUMBER:FILE`: the file is stored here (as `case evidence add`
/// does) and named by its hash; the other parts are checked as the API checks them.
fn evidence_of(
    spec: &str,
    conn: &mut crate::storage::DbConn,
    node: &crate::sync::LocalNode,
    vault: &crate::eligibility::evidence::Vault,
    actor: &Actor,
) -> anyhow::Result<Evidence> {
    let parts: Vec<&str> = spec.splitn(4, ':').collect();
    let [doc_type, issuer, number, file] = parts.as_slice() else {
        anyhow::bail!("--evidence {spec:?}: expected TYPE:ISSUER:NUMBER:FILE");
    };
    let text = |name: &str, v: &str| {
        anyhow::anyhow!("--evidence: the {name} {v:?} is not accepted (1 to its length limit, no control characters)")
    };
    let (stored, _) = store_file(std::path::Path::new(file), conn, node, vault, actor)
        .map_err(|e| anyhow::anyhow!("--evidence: {e:#}"))?;
    Ok(Evidence {
        doc_type: (*doc_type)
            .to_owned()
            .try_into()
            .map_err(|_| text("type", doc_type))?,
        issuer: (*issuer)
            .to_owned()
            .try_into()
            .map_err(|_| text("issuer", issuer))?,
        number: (*number)
            .to_owned()
            .try_into()
            .map_err(|_| text("number", number))?,
        sha256: stored.sha256,
    })
}
