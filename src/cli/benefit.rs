//! `hukou-sync benefit review-due|age-out`: the review due list of the benefits this node
//! decides, and the age-out run on demand (the node runs it daily). Ending one benefit is
//! `child end-benefit`.

use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;

use crate::audit::Actor;
use crate::config::Settings;
use crate::domain::IdNumber;
use crate::eligibility::benefits;
use crate::sync::ledger::china_today;

#[derive(Debug, Subcommand)]
pub enum BenefitCommand {
    /// Benefits due for review (复核) within some days, by review date.
    ReviewDue {
        /// Due within this many days from today (0 to 366).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=366))]
        within_days: u32,
        /// Continue after this ID number (the `next_after` of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Files scanned per page (1 to 500).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// Why you read it (recorded in the audit log).
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// End the age-limited benefits of those who turned 18 now (the node does it daily).
    AgeOut,
}

pub fn run(settings: &Settings, cmd: BenefitCommand) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    let now = Utc::now();
    match cmd {
        BenefitCommand::ReviewDue {
            within_days,
            after,
            limit,
            purpose,
            json,
        } => {
            if let Some(a) = &after {
                IdNumber::parse(a).map_err(|e| anyhow::anyhow!("--after: {e}"))?;
            }
            let due_by = china_today(now) + chrono::Days::new(u64::from(within_days));
            let page = benefits::review_due_for(
                &mut conn,
                &node,
                due_by,
                after.as_deref(),
                i64::from(limit),
                &Actor::console(),
                purpose.as_deref(),
                now,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                for i in &page.items {
                    println!(
                        "{}  {}  {} ({})  review {}{}",
                        i.id_number,
                        i.name,
                        i.benefit,
                        i.benefit.label_zh(),
                        i.review_on,
                        if i.overdue { "  OVERDUE" } else { "" }
                    );
                }
                if page.items.is_empty() {
                    println!("no benefit due for review by {due_by}");
                }
                if let Some(next) = &page.next_after {
                    println!("more: --after {next}");
                }
            }
        }
        BenefitCommand::AgeOut => {
            let n = benefits::age_out(&mut conn, &node, now)?;
            println!("age-limited benefits ended in {n} file(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
