//! `hukou-sync conflict list|show|resolve`: the review queue from the console, with the same
//! rules as the API (`conflicts::{queue, read, resolve}`): reads of a file's conflicts are
//! audited, a resolution names the heads the reviewer saw and is refused if the file moved on.

use std::collections::BTreeMap;
use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;
use serde_json::Value;

use crate::audit::Actor;
use crate::config::Settings;
use crate::conflicts::{self, ConflictError, FileConflicts, Resolution};
use crate::domain::child::ChildField;
use crate::domain::id_number::IdNumber;
use crate::domain::shown_time::shown;
use crate::domain::RiskPalette;

#[derive(Debug, Subcommand)]
pub enum ConflictCommand {
    /// The review queue: open conflicts, oldest first (this node's by default).
    List {
        /// Conflicts reviewed at every node, not only here.
        #[arg(long)]
        all: bool,
        /// Keyset paging: the cursor printed after "more:" (`next_after` in --json).
        #[arg(long)]
        after: Option<String>,
        /// Conflicts per page, 1 to 500.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: u16,
        #[arg(long)]
        json: bool,
    },
    /// A file's open conflicts: each field's common-ancestor value, the competing values with
    /// author and time, who reviews it, and the exact `resolve` command to use (audited read).
    Show {
        id_number: String,
        #[arg(long)]
        json: bool,
    },
    /// Resolve a file's conflicts reviewed here: one signed resolution version.
    ///
    /// --heads are the heads `conflict show` printed (the file must not have changed since).
    /// For each disputed field either keep a candidate by its side (the short version id shown)
    /// or set a value (JSON, or a bare string):
    ///   hukou-sync conflict resolve 510104201406010615 --heads 3f2a…,9b1c… --keep risk_level=3f2a1b
    ///   hukou-sync conflict resolve 510104201406010615 --heads 3f2a…,9b1c… --set risk_level=橙
    #[command(verbatim_doc_comment)]
    Resolve {
        id_number: String,
        /// The file's heads as `conflict show` printed them, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        heads: Vec<String>,
        /// FIELD=SIDE: keep the value of the candidate whose version id starts with SIDE.
        #[arg(long = "keep", value_name = "FIELD=SIDE")]
        keep: Vec<String>,
        /// FIELD=VALUE: the value to keep (JSON allowed, e.g. 'categories=["flowing"]').
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(settings: &Settings, cmd: ConflictCommand) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    let actor = Actor::console();
    match cmd {
        ConflictCommand::List {
            all,
            after,
            limit,
            json,
        } => {
            let owner = (!all).then(|| node.id.to_string());
            let page = conflicts::queue(
                &mut conn,
                owner.as_deref(),
                after.as_deref(),
                i64::from(limit),
                &crate::domain::Scope::whole_node(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(ExitCode::SUCCESS);
            }
            for c in &page.items {
                let field = ChildField::from_name(&c.field).map_or("", ChildField::label_zh);
                println!(
                    "{}  {:<8}  {} ({}), {} values  reviewed at {}{}  since {}",
                    c.id_number,
                    c.name,
                    field,
                    c.field,
                    c.candidates,
                    c.owner,
                    if c.owner == node.id.to_string() {
                        " (here)"
                    } else {
                        ""
                    },
                    shown(c.opened_at)
                );
            }
            println!("{} open conflict(s)", page.items.len());
            if let Some(next) = &page.next_after {
                println!("more: --after {next}");
            }
        }
        ConflictCommand::Show { id_number, json } => {
            let id = parse_id(&id_number)?;
            let file = conflicts::read(&mut conn, &node, &id, &actor, Utc::now())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&file)?);
            } else {
                print_file(&file, &node.id.to_string(), &node.palette);
            }
        }
        ConflictCommand::Resolve {
            id_number,
            heads,
            keep,
            set,
            json,
        } => {
            let id = parse_id(&id_number)?;
            let mut values = crate::cli::child::parse_assignments("--set", &set)?;
            if !keep.is_empty() {
                // A side names a candidate of the file as it is now; the heads check inside
                // `resolve` refuses the decision if the file changed meanwhile.
                let file = conflicts::of_file(&mut conn, &node, &id)?;
                for k in &keep {
                    let (field, side) = k
                        .split_once('=')
                        .ok_or_else(|| anyhow::anyhow!("--keep {k:?}: expected FIELD=SIDE"))?;
                    let value = candidate_value(&file, field, side)?;
                    values.insert(field.to_owned(), value);
                }
            }
            let resolution = Resolution { heads, values };
            match conflicts::resolve(&mut conn, &node, &id, resolution, &actor, Utc::now()) {
                Ok(file) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&file)?);
                    } else {
                        println!(
                            "resolved {}: new head {} ({} conflict(s) left open)",
                            id.masked(),
                            file.heads.join(","),
                            file.conflicts.len()
                        );
                    }
                }
                Err(ConflictError::Stale {
                    missing,
                    unknown,
                    current,
                }) => {
                    let mut why = Vec::new();
                    if !missing.is_empty() {
                        why.push(format!(
                            "--heads leaves out the file's head(s) {}",
                            missing.join(", ")
                        ));
                    }
                    if !unknown.is_empty() {
                        why.push(format!(
                            "{} is not (or no longer) a head of the file",
                            unknown.join(", ")
                        ));
                    }
                    eprintln!("error: {}; the file now:", why.join("; "));
                    print_file(&current, &node.id.to_string(), &node.palette);
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_id(raw: &str) -> anyhow::Result<IdNumber> {
    IdNumber::parse(raw).map_err(|e| anyhow::anyhow!("id_number: {e}"))
}

/// The value of the candidate of `field` whose side (version id) starts with `side`.
fn candidate_value(file: &FileConflicts, field: &str, side: &str) -> anyhow::Result<Value> {
    let conflict = file
        .conflicts
        .iter()
        .find(|c| c.field == field)
        .ok_or_else(|| anyhow::anyhow!("--keep {field}: this file has no open conflict on it"))?;
    let side = side.trim();
    let matches: Vec<_> = conflict
        .candidates
        .iter()
        .filter(|c| !side.is_empty() && c.side.starts_with(side))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.value.clone()),
        [] => Err(anyhow::anyhow!(
            "--keep {field}={side}: no candidate's version starts with {side:?} (candidates: {})",
            sides(conflict)
        )),
        _ => Err(anyhow::anyhow!(
            "--keep {field}={side}: several candidates start with {side:?}; give more digits ({})",
            sides(conflict)
        )),
    }
}

fn sides(c: &conflicts::OpenConflict) -> String {
    c.candidates
        .iter()
        .map(|c| c.side.chars().take(12).collect::<String>())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as people read it: a risk level by this node's label (`红 (1)`).
fn show_value(field: &str, v: &Value, palette: &RiskPalette) -> String {
    if field == ChildField::RiskLevel.name() {
        if let Some(shown) = palette.shown_value(v) {
            return shown;
        }
    }
    match v {
        Value::Null => "（空）(empty)".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_file(file: &FileConflicts, here: &str, palette: &RiskPalette) {
    let id = IdNumber::parse(&file.id_number).map_or_else(|_| "******".to_owned(), |i| i.masked());
    println!(
        "{id}  {}  hukou {}  residence {}",
        file.name, file.hukou_region, file.residence_region
    );
    println!("heads: {}", file.heads.join(","));
    if file.conflicts.is_empty() {
        println!("no open conflict");
        return;
    }
    let mut keep: BTreeMap<&str, String> = BTreeMap::new();
    for c in &file.conflicts {
        let label = ChildField::from_name(&c.field).map_or("", ChildField::label_zh);
        let whose = if c.owner == here {
            "reviewed here".to_owned()
        } else {
            format!("reviewed at {}", c.owner)
        };
        println!("{label} ({}): {whose}", c.field);
        println!(
            "  common ancestor: {}",
            show_value(&c.field, &c.base, palette)
        );
        for cand in &c.candidates {
            println!(
                "  side {}  {}  by {} at {}",
                cand.side.chars().take(12).collect::<String>(),
                show_value(&c.field, &cand.value, palette),
                cand.author.as_deref().unwrap_or("?"),
                cand.at.map_or_else(|| "?".to_owned(), shown)
            );
        }
        if c.owner == here {
            if let Some(first) = c.candidates.first() {
                keep.insert(&c.field, first.side.chars().take(12).collect());
            }
        }
    }
    if file.reviewable_here {
        let keeps: Vec<String> = keep
            .iter()
            .map(|(f, s)| format!("--keep {f}={s}"))
            .collect();
        println!(
            "to resolve (choose each side, or --set FIELD=VALUE):\n  hukou-sync conflict resolve {} --heads {} {}",
            file.id_number,
            file.heads.join(","),
            keeps.join(" ")
        );
    } else {
        println!("awaiting review at {}", file.awaiting.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_risk_level_in_conflict_is_shown_by_this_nodes_label() {
        let palette =
            RiskPalette::new(["橙", "红", "黄", "绿"].map(String::from).to_vec()).unwrap();
        assert_eq!(
            show_value("risk_level", &serde_json::json!(1), &palette),
            "橙 (1)"
        );
        assert_eq!(
            show_value("risk_level", &Value::Null, &palette),
            "（空）(empty)"
        );
        assert_eq!(show_value("notes", &serde_json::json!(1), &palette), "1");
    }
}
