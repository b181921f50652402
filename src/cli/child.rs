//! `hukou-sync child show|list|update|end-benefit`: the ledger from the console, audited like the API.

use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;
use serde_json::{Map, Value};

use crate::audit::Actor;
use crate::config::Settings;
use crate::domain::child::{Benefit, BenefitEnd};
use crate::domain::shown_time::shown;
use crate::domain::{IdNumber, RegionPrefix};
use crate::storage::records::ChildFilter;
use crate::sync::ledger;

#[derive(Debug, Subcommand)]
pub enum ChildCommand {
    /// Show one file with its history.
    Show {
        id_number: String,
        /// Why you read it (recorded in the audit log).
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List files.
    List {
        /// Hukou or residence region prefix.
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        category: Option<String>,
        /// A risk level: this node's label (e.g. 红) or the level, 1 (most severe) to 4.
        #[arg(long, visible_alias = "risk")]
        risk_level: Option<String>,
        /// Residence or hukou township, a 9-digit NBS code (e.g. 510104017).
        #[arg(long)]
        township: Option<String>,
        /// Neither visited nor confirmed for this many days (1 to 36,500; the six-month rule).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        stale_days: Option<u32>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after this ID number (the `next_after` of the previous page).
        #[arg(long)]
        after: Option<String>,
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change fields: --set field=value (repeatable), each value read by the field's type: codes
    /// as text (--set residence_region=440305), lists separated by ';' (--set categories=流动;留守),
    /// dates (--set last_visit_on=2026/9/1), a person as its parts (--set
    /// legal_guardian='王建国;祖父;13800000000'), a risk level as this node's label or its number
    /// (--set risk_level=红); JSON for structured values (--set 'categories=["flowing"]').
    #[command(visible_alias = "edit")]
    Update {
        id_number: String,
        #[arg(long = "set", value_name = "FIELD=VALUE", required = true)]
        set: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// End a benefit the child holds (退出), as the child's hukou bureau; the grant stays in the
    /// file with its end.
    EndBenefit {
        id_number: String,
        /// dibao, tekun, orphan_allowance, de_facto_unsupported_subsidy (or the Chinese label).
        benefit: String,
        /// The last month paid, YYYY-MM (not before the grant's start).
        #[arg(long)]
        month: String,
        /// age_18, income_over, changed, deceased, moved_out, other (or the Chinese label).
        #[arg(long)]
        reason: String,
        /// The decision's reference or what changed (up to 200 characters).
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Ask the bureau serving the child's hukou region whether it holds a file (a signed
    /// statement; both bureaus record the purpose).
    Lookup {
        id_number: String,
        /// Why you ask (recorded by both bureaus).
        #[arg(long)]
        purpose: String,
        /// The hukou region, when not the region of the ID number's first six digits.
        #[arg(long)]
        hukou_region: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Ask the hukou bureau to hand the child's residence role over to this node: it writes the
    /// move and the whole file arrives here (this node's server must be running to receive it).
    Handover {
        id_number: String,
        /// The child's residence region now, one this node serves.
        #[arg(long)]
        residence: String,
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        hukou_region: Option<String>,
        /// Wait up to this many seconds for the file to arrive (0: do not wait).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=3600))]
        wait: u64,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(settings: &Settings, cmd: ChildCommand) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    let actor = Actor::console();
    match cmd {
        ChildCommand::Show {
            id_number,
            purpose,
            json,
        } => {
            let id = IdNumber::parse(&id_number).map_err(|e| anyhow::anyhow!("id_number: {e}"))?;
            let file = ledger::read_child(
                &mut conn,
                &node,
                &id,
                &actor,
                purpose.as_deref(),
                Utc::now(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&file)?);
            } else {
                let r = &file.record;
                println!(
                    "{}  {}  {}  born {}",
                    r.id_number,
                    r.name.as_str(),
                    match file.sex {
                        crate::domain::Sex::Male => "男 (male)",
                        crate::domain::Sex::Female => "女 (female)",
                    },
                    file.birth_date
                );
                let below =
                    |t: &Option<crate::domain::division::TownshipCode>,
                     v: &Option<crate::domain::division::VillageCode>| {
                        let mut out = String::new();
                        if let Some(t) = t {
                            out.push_str(&format!(" · {t} {}", t.name()));
                        }
                        if let Some(v) = v {
                            out.push_str(&format!(" · {v} {}", v.name()));
                        }
                        out
                    };
                println!(
                    "  hukou:     {} {}{}",
                    r.hukou_region,
                    file.hukou_region_name,
                    below(&r.hukou_township, &r.hukou_village)
                );
                println!(
                    "  residence: {} {}{}",
                    r.residence_region,
                    file.residence_region_name,
                    below(&r.residence_township, &r.residence_village)
                );
                println!(
                    "  categories: {}",
                    r.categories
                        .iter()
                        .map(|c| c.label_zh())
                        .collect::<Vec<_>>()
                        .join("、")
                );
                let parent = |p: Option<crate::domain::child::ParentSituation>| {
                    p.map_or("-", |p| p.label_zh())
                };
                println!(
                    "  parents: father {}  mother {}",
                    parent(r.father_situation),
                    parent(r.mother_situation)
                );
                println!(
                    "  benefits: {}",
                    if r.benefits.is_empty() {
                        "-".to_owned()
                    } else {
                        r.benefits
                            .iter()
                            .map(|b| match &b.since {
                                Some(m) => format!("{} since {m}", b.benefit.label_zh()),
                                None => b.benefit.label_zh().to_owned(),
                            })
                            .collect::<Vec<_>>()
                            .join("、")
                    }
                );
                println!(
                    "  risk: {}  last visit: {}",
                    r.risk_level.map_or("-".into(), |l| node.palette.shown(l)),
                    r.last_visit_on.map_or("-".into(), |d| d.to_string())
                );
                if let Some(w) = &r.responsible_worker {
                    println!(
                        "  responsible worker (包保人): {} ({}){}{}",
                        w.name.as_str(),
                        w.role.label_zh(),
                        w.phone
                            .clone()
                            .map(|p| format!(" {}", String::from(p)))
                            .unwrap_or_default(),
                        w.township
                            .as_ref()
                            .map(|t| format!(" · {} {}", t, t.name()))
                            .unwrap_or_default()
                    );
                }
                if !r.key_care.is_empty() {
                    println!(
                        "  key care (重点关爱): {}",
                        r.key_care
                            .iter()
                            .map(|k| k.label_zh())
                            .collect::<Vec<_>>()
                            .join("、")
                    );
                }
                if let Some(d) = &r.disability {
                    println!("  disability: {} {}", d.kind.label_zh(), d.grade.label_zh());
                }
                if let Some(p) = r.psychological_state {
                    println!("  psychological state: {}", p.label_zh());
                }
                if let Some(notes) = &r.notes {
                    println!("  notes: {}", notes.as_str());
                }
                // Open conflicts (the read above is already audited).
                let open = crate::conflicts::of_file(&mut conn, &node, &id)?;
                for c in &open.conflicts {
                    let label = crate::domain::ChildField::from_name(&c.field)
                        .map_or(c.field.as_str(), |f| f.label_zh());
                    let who = if c.owner == node.id.as_str() {
                        "reviewed here".to_owned()
                    } else {
                        format!("awaiting review at {}", c.owner)
                    };
                    println!(
                        "  open conflict: {label} ({}), {} competing values, {who} — \
                         hukou-sync conflict show {}",
                        c.field,
                        c.candidates.len(),
                        r.id_number
                    );
                }
                if !file.served_here {
                    let by: Vec<String> =
                        file.now_served_by.iter().map(ToString::to_string).collect();
                    println!(
                        "  不再由本节点服务 (no longer served here) since {}: now at {} — \
                         read-only copy as of the move",
                        shown(file.updated_at),
                        if by.is_empty() {
                            "-".to_owned()
                        } else {
                            by.join(", ")
                        }
                    );
                }
                println!(
                    "  history ({} versions, {} head(s)):",
                    file.history.len(),
                    file.heads.len()
                );
                for v in &file.history {
                    println!(
                        "    {}  {}  by {}  changed: {}",
                        &v.id.to_string()[..12],
                        shown(v.stored_at),
                        v.author_node,
                        v.changed.join(", ")
                    );
                }
            }
        }
        ChildCommand::List {
            region,
            township,
            category,
            risk_level,
            stale_days,
            limit,
            after,
            purpose,
            json,
        } => {
            let after = after
                .map(|a| IdNumber::parse(&a).map(|id| id.to_string()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--after: {e}"))?;
            let region = region
                .map(|r| RegionPrefix::parse(&r).map(|p| p.digits().to_owned()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--region: {e}"))?;
            let township = township
                .map(|t| crate::domain::division::TownshipCode::parse(&t).map(|t| t.to_string()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--township: {e}"))?;
            let risk_level = risk_level
                .map(|r| node.palette.level_of(&r))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--risk-level: {e}"))?;
            let now = Utc::now();
            let filter = ChildFilter {
                region_prefix: region,
                township,
                category,
                risk_level,
                // Checked: a window reaching before year 1 means every file.
                stale_before: stale_days.map(|d| {
                    now.checked_sub_signed(chrono::Duration::days(i64::from(d)))
                        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
                        .naive_utc()
                }),
                limit: i64::from(limit.clamp(1, 10_000)),
                after,
                ..ChildFilter::default()
            };
            let page =
                ledger::list_children(&mut conn, &node, &filter, &actor, purpose.as_deref(), now)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                for c in &page.items {
                    println!(
                        "{}  {:<8}  hukou {}  residence {}  risk {:<5}  {}",
                        c.id_number,
                        c.name,
                        c.hukou_region,
                        c.residence_region,
                        c.risk_level.map_or("-".into(), |l| node.palette.shown(l)),
                        c.categories.join(",")
                    );
                }
                println!("{} file(s)", page.items.len());
                if let Some(next) = &page.next_after {
                    println!("more: --after {next}");
                }
            }
        }
        ChildCommand::Update {
            id_number,
            set,
            json,
        } => {
            let id = IdNumber::parse(&id_number).map_err(|e| anyhow::anyhow!("id_number: {e}"))?;
            let patch: Map<String, Value> = parse_assignments("--set", &set)?.into_iter().collect();
            let file = ledger::update_child(&mut conn, &node, &id, patch, &actor, Utc::now())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&file)?);
            } else {
                let last = file.history.last();
                println!(
                    "updated {}: version {} (changed: {})",
                    id.masked(),
                    last.map_or(String::new(), |v| v.id.short()),
                    last.map_or(String::new(), |v| v.changed.join(", "))
                );
            }
        }
        ChildCommand::Lookup {
            id_number,
            purpose,
            hukou_region,
            json,
        } => {
            return super::lookup::lookup(
                settings,
                (&store, &node),
                &id_number,
                &purpose,
                hukou_region,
                json,
            )
        }
        ChildCommand::Handover {
            id_number,
            residence,
            purpose,
            hukou_region,
            wait,
            json,
        } => {
            return super::lookup::handover(
                settings,
                (&store, &node),
                super::lookup::HandoverArgs {
                    id_number,
                    residence,
                    purpose,
                    hukou_region,
                    wait,
                    json,
                },
            )
        }
        ChildCommand::EndBenefit {
            id_number,
            benefit,
            month,
            reason,
            note,
            json,
        } => {
            let id = IdNumber::parse(&id_number).map_err(|e| anyhow::anyhow!("id_number: {e}"))?;
            let benefit: Benefit = serde_json::from_value(Value::String(benefit))
                .map_err(|e| anyhow::anyhow!("benefit: {e}"))?;
            let end: BenefitEnd = serde_json::from_value(serde_json::json!({
                "month": month, "reason": reason, "note": note,
            }))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let file =
                ledger::end_benefit(&mut conn, &node, &id, benefit, end, &actor, Utc::now())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&file)?);
            } else {
                println!(
                    "ended {} ({}) for {}: version {}",
                    benefit,
                    benefit.label_zh(),
                    id.masked(),
                    file.history.last().map_or(String::new(), |v| v.id.short()),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `FIELD=VALUE` arguments, each value read by its field's type
/// ([`crate::ledger_file::typed`]: codes as text, `;`-separated lists, dates, JSON for
/// structured values); empty or `null` clears. An error names the flag and the field.
pub(crate) fn parse_assignments(
    flag: &str,
    args: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, Value>> {
    let mut out = std::collections::BTreeMap::new();
    for s in args {
        let (k, v) = crate::ledger_file::typed::read_assignment(s)
            .map_err(|e| anyhow::anyhow!("{flag} {}: {}", e.field, e.reason))?;
        out.insert(k, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_read_codes_as_text_and_json_where_it_is_json() {
        let args: Vec<String> = [
            "residence_region=330106",
            r#"hukou_region="510115""#,
            r#"categories=["flowing"]"#,
            "notes=true",
            "risk_level=橙",
            "last_visit_on=",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let got = parse_assignments("--set", &args).unwrap();
        assert_eq!(got["residence_region"], Value::String("330106".into()));
        assert_eq!(got["hukou_region"], Value::String("510115".into()));
        assert_eq!(got["categories"], serde_json::json!(["flowing"]));
        assert_eq!(got["notes"], Value::String("true".into()));
        assert_eq!(got["risk_level"], Value::String("橙".into()));
        assert_eq!(got["last_visit_on"], Value::Null);
        assert!(parse_assignments("--set", &["no_equals".to_owned()]).is_err());
        let e = parse_assignments("--set", &["last_visit_on=2026-02-30".to_owned()]).unwrap_err();
        assert!(e.to_string().starts_with("--set last_visit_on: "), "{e}");
        let got = parse_assignments(
            "--set",
            &[
                "categories=流动;留守".to_owned(),
                "last_visit_on=2026/9/1".to_owned(),
            ],
        )
        .unwrap();
        assert_eq!(got["categories"], serde_json::json!(["流动", "留守"]));
        assert_eq!(got["last_visit_on"], serde_json::json!("2026-09-01"));
    }
}
