//! `hukou-sync report add|list|show`: mandatory reports and referrals from the console, audited
//! like the API.

use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;
use serde_json::json;

use crate::audit::Actor;
use crate::config::Settings;
use crate::domain::IdNumber;
use crate::sync::ledger::china_today;
use crate::visits::reports::{self, ReportInput, ReportView};

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Record a report about a child whose file is here.
    Add {
        id_number: String,
        /// residents_committee, school, childcare, medical, welfare_institution, social_work,
        /// hotel, public, child (or the Chinese label).
        #[arg(long)]
        kind: String,
        /// The reporting body or person.
        #[arg(long)]
        reporter: Option<String>,
        /// The day of the report (YYYY-MM-DD; default today, China time).
        #[arg(long)]
        on: Option<String>,
        /// What the reporter saw.
        #[arg(long)]
        seen: String,
        /// An urgent report (the child's risk becomes red until a visit assesses the child).
        #[arg(long)]
        urgent: bool,
        /// The police were called.
        #[arg(long)]
        police: bool,
        /// Referred to: township_social_work, psychological, police, medical, education,
        /// procuratorate, other.
        #[arg(long)]
        refer_to: Option<String>,
        /// The receiving body.
        #[arg(long)]
        refer_name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Reports held here (or a child's), urgent first.
    List {
        id_number: Option<String>,
        #[arg(long)]
        urgent: bool,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one report.
    Show {
        report_id: String,
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn print_report(r: &ReportView) {
    let b = &r.report;
    println!(
        "{}  {}  {}  {}{}  about {}  by {}",
        b.report_id,
        b.reported_on,
        b.urgency.label_zh(),
        b.reporter.kind.label_zh(),
        b.reporter
            .name
            .as_ref()
            .map(|n| format!(" ({})", n.as_str()))
            .unwrap_or_default(),
        b.child_id.masked(),
        b.recorded_by
    );
    println!("  seen: {}", b.seen.as_str());
    if b.police_called {
        println!("  police called (已报警)");
    }
    if let Some(f) = &b.referral {
        println!(
            "  referred to {}{}{}",
            f.target.label_zh(),
            f.name
                .as_ref()
                .map(|n| format!(" {}", n.as_str()))
                .unwrap_or_default(),
            f.outcome
                .as_ref()
                .map(|o| format!(": {}", o.as_str()))
                .unwrap_or_default()
        );
    }
}

pub fn run(settings: &Settings, cmd: ReportCommand) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    let actor = Actor::console();
    let parse_id = |s: &str| IdNumber::parse(s).map_err(|e| anyhow::anyhow!("id_number: {e}"));
    match cmd {
        ReportCommand::Add {
            id_number,
            kind,
            reporter,
            on,
            seen,
            urgent,
            police,
            refer_to,
            refer_name,
            json,
        } => {
            let id = parse_id(&id_number)?;
            let mut body = json!({
                "reported_on": on.unwrap_or_else(|| china_today(Utc::now()).to_string()),
                "reporter": {"kind": kind},
                "seen": seen,
                "urgency": if urgent { "urgent" } else { "normal" },
                "police_called": police,
            });
            if let Some(r) = reporter {
                body["reporter"]["name"] = json!(r);
            }
            match (refer_to, refer_name) {
                (Some(t), name) => {
                    body["referral"] = json!({"target": t});
                    if let Some(n) = name {
                        body["referral"]["name"] = json!(n);
                    }
                }
                (None, Some(_)) => anyhow::bail!("--refer-name needs --refer-to"),
                (None, None) => {}
            }
            let input: ReportInput = serde_path_to_error::deserialize(body)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.path(), e.inner()))?;
            let r = reports::record(&mut conn, &node, &id, input, &actor, Utc::now())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("report recorded: {}", r.report.report_id);
                print_report(&r);
                if r.file_updated == Some(true) && r.report.is_urgent() {
                    println!("  the child's risk is red until a visit assesses the child");
                }
            }
        }
        ReportCommand::List {
            id_number,
            urgent,
            limit,
            purpose,
            json,
        } => {
            let id = id_number.as_deref().map(parse_id).transpose()?;
            let page = reports::list(
                &mut conn,
                &node,
                id.as_ref(),
                urgent,
                None,
                i64::from(limit),
                &actor,
                purpose.as_deref(),
                Utc::now(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                if page.items.is_empty() {
                    println!("no reports");
                }
                for r in &page.items {
                    print_report(r);
                }
            }
        }
        ReportCommand::Show {
            report_id,
            purpose,
            json,
        } => {
            let id = uuid::Uuid::parse_str(&report_id)
                .map_err(|_| anyhow::anyhow!("a report id is a UUID"))?;
            let r = reports::read(
                &mut conn,
                &node,
                &id,
                &actor,
                purpose.as_deref(),
                Utc::now(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_report(&r);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
