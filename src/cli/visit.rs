//! `hukou-sync visit add|amend|show|list|due`: visits (走访) from the console, audited like the
//! API.

use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::audit::Actor;
use crate::config::Settings;
use crate::domain::IdNumber;
use crate::sync::ledger::china_today;
use crate::visits::{self, VisitInput, VisitView};

#[derive(Debug, Subcommand)]
pub enum VisitCommand {
    /// Record a visit of a child whose file is here.
    Add {
        id_number: String,
        /// The day of the visit (YYYY-MM-DD; default today, China time).
        #[arg(long)]
        on: Option<String>,
        /// The visitor's name.
        #[arg(long)]
        visitor: String,
        /// children_director 儿童主任, child_supervisor 儿童督导员, social_worker 社工, caseworker 民政工作人员.
        #[arg(long, default_value = "children_director")]
        role: String,
        /// home 入户走访, phone 电话回访, school 到校走访, video 视频回访.
        #[arg(long, default_value = "home")]
        kind: String,
        /// Whom the visitor saw (repeatable): child, guardian, caregiver, teacher, village_cadre, other.
        #[arg(long, required = true)]
        seen: Vec<String>,
        /// A finding, AREA=TEXT (repeatable): guardianship, living, health, education, psychological, safety.
        #[arg(long = "finding", value_name = "AREA=TEXT")]
        findings: Vec<String>,
        /// A graded indicator, AREA=GRADE[:NOTE] (repeatable): guardianship, living, psychological,
        /// safety; GRADE is 1–4 or this node's label (红).
        #[arg(long = "grade", value_name = "AREA=GRADE[:NOTE]")]
        grades: Vec<String>,
        /// Who assessed (default: the visitor).
        #[arg(long)]
        assessor: Option<String>,
        /// The resulting level (default: the most severe grade).
        #[arg(long)]
        level: Option<String>,
        /// A follow-up action (repeatable, at most 10).
        #[arg(long = "follow-up")]
        follow_up: Vec<String>,
        /// When the next visit is planned (YYYY-MM-DD).
        #[arg(long)]
        next: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Amend a visit this node recorded, from a JSON file holding the whole visit (as `show --json` prints its `visit`).
    Amend {
        visit_id: String,
        #[arg(long)]
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show one visit.
    Show {
        visit_id: String,
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A child's visits, latest first.
    List {
        id_number: String,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        #[arg(long)]
        after: Option<String>,
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Visits due within DAYS (default 7), or overdue, by region, township or worker.
    Due {
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(0..=366))]
        within: u32,
        /// Only overdue visits.
        #[arg(long)]
        overdue: bool,
        /// Residence region prefix (2, 4 or 6 digits).
        #[arg(long)]
        region: Option<String>,
        /// Residence township (9 digits).
        #[arg(long)]
        township: Option<String>,
        /// The responsible worker's name.
        #[arg(long)]
        worker: Option<String>,
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        #[arg(long)]
        after: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn split_pair<'a>(what: &str, s: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    s.split_once('=')
        .ok_or_else(|| anyhow::anyhow!("{what}: expected AREA=VALUE, got {s:?}"))
}

/// The API body of `visit add`'s flags (validated by the same code as the API's).
#[allow(clippy::too_many_arguments)]
fn input_of(
    on: Option<String>,
    visitor: String,
    role: String,
    kind: String,
    seen: Vec<String>,
    findings: Vec<String>,
    grades: Vec<String>,
    assessor: Option<String>,
    level: Option<String>,
    follow_up: Vec<String>,
    next: Option<String>,
) -> anyhow::Result<VisitInput> {
    let mut body = Map::new();
    body.insert(
        "visited_on".into(),
        json!(on.unwrap_or_else(|| china_today(Utc::now()).to_string())),
    );
    body.insert("visitor".into(), json!({"name": visitor, "role": role}));
    body.insert("kind".into(), json!(kind));
    body.insert("seen".into(), json!(seen));
    let mut f = Map::new();
    for item in &findings {
        let (area, text) = split_pair("--finding", item)?;
        f.insert(area.to_owned(), json!(text));
    }
    body.insert("findings".into(), Value::Object(f));
    if !grades.is_empty() {
        let mut indicators = Map::new();
        for item in &grades {
            let (area, rest) = split_pair("--grade", item)?;
            let (grade, note) = match rest.split_once(':') {
                Some((g, n)) => (g, Some(n)),
                None => (rest, None),
            };
            let grade = grade
                .parse::<u8>()
                .map(|n| json!(n))
                .unwrap_or_else(|_| json!(grade));
            let mut i = json!({"grade": grade});
            if let Some(n) = note {
                i["note"] = json!(n);
            }
            indicators.insert(area.to_owned(), i);
        }
        let mut a = json!({
            "indicators": indicators,
            "assessor": assessor.unwrap_or_else(|| body["visitor"]["name"].as_str().unwrap_or_default().to_owned()),
        });
        if let Some(l) = level {
            a["level"] = l
                .parse::<u8>()
                .map(|n| json!(n))
                .unwrap_or_else(|_| json!(l));
        }
        body.insert("assessment".into(), a);
    } else if level.is_some() || assessor.is_some() {
        anyhow::bail!("--level and --assessor need at least one --grade AREA=GRADE");
    }
    if !follow_up.is_empty() {
        body.insert("follow_up".into(), json!(follow_up));
    }
    if let Some(n) = next {
        body.insert("next_due_on".into(), json!(n));
    }
    parse_input(Value::Object(body))
}

fn parse_input(v: Value) -> anyhow::Result<VisitInput> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let field = e.path().to_string();
        anyhow::anyhow!("{field}: {}", e.into_inner())
    })
}

fn print_visit(v: &VisitView) {
    let b = &v.visit;
    println!(
        "{}  {}  {}  {} ({})  by {}",
        b.visit_id,
        b.visited_on,
        b.kind.label_zh(),
        b.visitor.name.as_str(),
        b.visitor.role.label_zh(),
        b.recorded_by
    );
    let seen: Vec<&str> = b.seen.iter().map(|s| s.label_zh()).collect();
    println!("  seen: {}", seen.join("、"));
    let f = &b.findings;
    for (label, text) in [
        ("监护 (guardianship)", &f.guardianship),
        ("生活 (living)", &f.living),
        ("健康 (health)", &f.health),
        ("教育 (education)", &f.education),
        ("心理 (psychological)", &f.psychological),
        ("安全 (safety)", &f.safety),
    ] {
        if let Some(t) = text {
            println!("  {label}: {}", t.as_str());
        }
    }
    if let Some(a) = &b.assessment {
        println!(
            "  risk: {} (level {}), assessed by {}",
            v.risk_label.as_deref().unwrap_or("-"),
            a.level,
            a.assessor.as_str()
        );
        for (area, i) in &a.indicators {
            println!(
                "    {}: {}{}",
                area.label_zh(),
                i.grade,
                i.note
                    .as_ref()
                    .map(|n| format!(" — {}", n.as_str()))
                    .unwrap_or_default()
            );
        }
    }
    for f in &b.follow_up {
        println!("  follow-up: {}", f.as_str());
    }
    if let Some(n) = b.next_due_on {
        println!("  next visit: {n}");
    }
}

pub fn run(settings: &Settings, cmd: VisitCommand) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    let actor = Actor::console();
    let parse_id = |s: &str| IdNumber::parse(s).map_err(|e| anyhow::anyhow!("id_number: {e}"));
    let parse_visit =
        |s: &str| uuid::Uuid::parse_str(s).map_err(|_| anyhow::anyhow!("a visit id is a UUID"));
    match cmd {
        VisitCommand::Add {
            id_number,
            on,
            visitor,
            role,
            kind,
            seen,
            findings,
            grades,
            assessor,
            level,
            follow_up,
            next,
            json,
        } => {
            let id = parse_id(&id_number)?;
            let input = input_of(
                on, visitor, role, kind, seen, findings, grades, assessor, level, follow_up, next,
            )?;
            let v = visits::record(&mut conn, &node, &id, input, &actor, Utc::now())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("visit recorded: {}", v.visit.visit_id);
                print_visit(&v);
                if v.file_updated == Some(true) {
                    println!("  the file's last visit and risk follow this visit");
                }
            }
        }
        VisitCommand::Amend {
            visit_id,
            file,
            json,
        } => {
            let id = parse_visit(&visit_id)?;
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            anyhow::ensure!(
                text.len() <= 64 * 1024,
                "{}: at most 64 KiB",
                file.display()
            );
            let mut value: Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            // `show --json` prints the stored visit: drop what an amendment cannot change.
            if let Some(o) = value.as_object_mut() {
                for k in ["visit_id", "child_id", "recorded_by"] {
                    o.remove(k);
                }
            }
            let input = parse_input(value)?;
            let v = visits::amend(&mut conn, &node, &id, input, &actor, Utc::now())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("visit amended: {}", v.visit.visit_id);
                print_visit(&v);
            }
        }
        VisitCommand::Show {
            visit_id,
            purpose,
            json,
        } => {
            let id = parse_visit(&visit_id)?;
            let v = visits::read(
                &mut conn,
                &node,
                &id,
                &actor,
                purpose.as_deref(),
                Utc::now(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_visit(&v);
            }
        }
        VisitCommand::List {
            id_number,
            limit,
            after,
            purpose,
            json,
        } => {
            let id = parse_id(&id_number)?;
            let after = after
                .as_deref()
                .map(|a| {
                    visits::parse_list_cursor(a)
                        .ok_or_else(|| anyhow::anyhow!("--after is YYYY-MM-DD/visit-id"))
                })
                .transpose()?;
            let page = visits::list(
                &mut conn,
                &node,
                &id,
                after,
                i64::from(limit),
                &actor,
                purpose.as_deref(),
                Utc::now(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                if page.items.is_empty() {
                    println!("no visits recorded for {}", id.masked());
                }
                for v in &page.items {
                    print_visit(v);
                }
                if let Some(n) = page.next_after {
                    println!("more: --after {n}");
                }
            }
        }
        VisitCommand::Due {
            within,
            overdue,
            region,
            township,
            worker,
            limit,
            after,
            json,
        } => {
            let today = china_today(Utc::now());
            let filter = visits::DueQuery {
                within_days: within,
                overdue,
                region: region.as_deref(),
                township: township.as_deref(),
                worker: worker.as_deref(),
                after: after.as_deref(),
                limit: i64::from(limit),
            }
            .filter(today)
            .map_err(|(field, why)| anyhow::anyhow!("--{field}: {why}"))?;
            let page = visits::due(
                &mut conn,
                &node,
                filter,
                today,
                &crate::domain::Scope::whole_node(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                println!(
                    "{} visit(s) due by {} (today {today})",
                    page.items.len(),
                    page.due_by
                );
                for d in &page.items {
                    println!(
                        "{}  {}  due {}{}  last visit {}  {}  worker {}",
                        IdNumber::mask_text(&d.id_number),
                        d.residence_township
                            .as_deref()
                            .unwrap_or(&d.residence_region),
                        d.due_on,
                        if d.overdue_days > 0 {
                            format!(" (overdue {} days)", d.overdue_days)
                        } else {
                            String::new()
                        },
                        d.last_visit_on.map_or("-".to_owned(), |d| d.to_string()),
                        d.categories.join(","),
                        d.responsible_worker.as_deref().unwrap_or("-"),
                    );
                }
                if let Some(n) = page.next_after {
                    println!("more: --after {n}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
