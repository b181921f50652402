//! The `hukou-sync` binary against a test node's database: import, export, audit verify, keygen,
//! configuration errors.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use crate::helpers::{id_number, spawn_app, TestApp};

fn bin(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("--config")
        .arg(app.config_file())
        .args(args)
        .env_remove("HUKOU_SYNC_CONFIG")
        .output()
        .unwrap()
}

fn ledger(rows: &[String]) -> String {
    let mut s = String::from("身份证号,姓名,户籍地区划代码,居住地区划代码,儿童类别,风险等级,最近走访日期,监护人姓名,监护人关系\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

fn row(seq: u16) -> String {
    format!(
        "{},王小{seq},510104,410105,流动;留守,黄,2026/9/1,王建国,祖父",
        id_number("510104", (2015, 3, 3), seq)
    )
}

#[tokio::test]
async fn import_is_all_or_nothing_by_default() {
    let app = spawn_app().await;
    let events = app.count("audit_events");
    let mut rows: Vec<String> = (0..20).map(row).collect();
    rows[7] = rows[7].replace("510104,410105", "510104,419999");
    let path = app.dir.path().join("ledger.csv");
    std::fs::write(&path, ledger(&rows)).unwrap();
    let out = bin(&app, &["import", path.to_str().unwrap(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["imported"], 0);
    assert_eq!(summary["errors"][0]["row"], 9);
    assert_eq!(summary["errors"][0]["field"], "residence_region");
    assert_eq!(app.count("children"), 0);
    assert_eq!(app.count("versions"), 0);
    assert_eq!(app.count("audit_events"), events);

    let report = app.dir.path().join("report.csv");
    let out = bin(
        &app,
        &[
            "import",
            path.to_str().unwrap(),
            "--skip-invalid",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.count("children"), 19);
    assert_eq!(app.count("audit_events"), events + 19);
    let report = std::fs::read_to_string(report).unwrap();
    assert!(
        report.starts_with("row,field,reason\n9,residence_region,"),
        "{report}"
    );
    // Importing the same ledger again: every row is a duplicate.
    let out = bin(&app, &["import", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(app.count("children"), 19);
    app.stop().await;
}

#[tokio::test]
async fn import_reads_gb18030_and_english_headers_and_export_round_trips() {
    let app = spawn_app().await;
    let text = ledger(&(0..5).map(row).collect::<Vec<_>>());
    let (gb, _, bad) = encoding_rs::GB18030.encode(&text);
    assert!(!bad);
    assert!(
        std::str::from_utf8(&gb).is_err(),
        "the sample must not also be UTF-8"
    );
    let path = app.dir.path().join("ledger-gb.csv");
    std::fs::write(&path, &gb).unwrap();
    let out = bin(&app, &["import", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.count("children"), 5);

    let english = format!(
        "id_number,name,hukou_region,residence_region,categories,sex\n{},Li Lei,510104,410105,flowing,男\n",
        id_number("510104", (2016, 1, 2), 11)
    );
    let path = app.dir.path().join("ledger-en.csv");
    std::fs::write(&path, english).unwrap();
    let out = bin(&app, &["import", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Sex that contradicts the ID number is a row error.
    let wrong = format!(
        "id_number,name,hukou_region,residence_region,sex\n{},Han Mei,510104,410105,男\n",
        id_number("510104", (2016, 1, 2), 12)
    );
    std::fs::write(&path, wrong).unwrap();
    let out = bin(&app, &["import", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));

    let export = app.dir.path().join("export.csv");
    let out = bin(
        &app,
        &[
            "export",
            "--out",
            export.to_str().unwrap(),
            "--purpose",
            "backup",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = std::fs::read_to_string(&export).unwrap();
    assert_eq!(exported.lines().count(), 7);
    assert!(exported.contains("Li Lei"));
    // The export re-imports cleanly into an empty node.
    let other = spawn_app().await;
    let out = bin(&other, &["import", export.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(other.count("children"), 6);
    let jsonl = app.dir.path().join("export.jsonl");
    assert!(bin(
        &app,
        &[
            "export",
            "--format",
            "jsonl",
            "--out",
            jsonl.to_str().unwrap(),
            "--purpose",
            "test"
        ]
    )
    .status
    .success());
    assert_eq!(std::fs::read_to_string(&jsonl).unwrap().lines().count(), 6);
    app.stop().await;
    other.stop().await;
}

/// A ledger of three import batches (4,207 = 2,000 + 2,000 + 207 rows, prepared on the worker
/// threads and written in order) that takes every statement size of a bulk insert (64, 16, 4 and
/// 1 rows), with empty optional cells, lands whole: every row once in every table, empty cells
/// stored as NULL, the audit trail intact.
#[tokio::test]
async fn a_large_import_spans_multi_row_statements() {
    let app = spawn_app().await;
    let events = app.count("audit_events");
    let rows: Vec<String> = (0..4207u32)
        .map(|i| {
            let id = id_number("510104", (2015, 1 + i / 1000, 3), (i % 1000) as u16);
            if i % 3 == 0 {
                format!("{id},李小{i},510104,410105,流动,,,李建国,祖父")
            } else {
                format!("{id},王小{i},510104,410105,流动;留守,黄,2026/9/1,王建国,祖父")
            }
        })
        .collect();
    let path = app.dir.path().join("ledger.csv");
    std::fs::write(&path, ledger(&rows)).unwrap();
    let out = bin(&app, &["import", path.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["imported"], 4207);
    for table in ["children", "versions", "heads", "recon_dirty"] {
        assert_eq!(app.count(table), 4207, "{table}");
    }
    assert_eq!(app.count("audit_events"), events + 4207);
    assert_eq!(app.count("children WHERE risk_level IS NULL"), 1403);
    assert_eq!(app.count("children WHERE last_visit_on IS NULL"), 1403);
    assert_eq!(app.count("versions WHERE signature IS NULL"), 0);
    let out = bin(&app, &["audit", "verify", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn audit_verify_and_export_from_the_command_line() {
    let app = spawn_app().await;
    let path = app.dir.path().join("ledger.csv");
    std::fs::write(&path, ledger(&(0..10).map(row).collect::<Vec<_>>())).unwrap();
    assert!(bin(&app, &["import", path.to_str().unwrap()])
        .status
        .success());
    assert!(bin(&app, &["audit", "head"]).status.success());
    let out = bin(&app, &["audit", "verify", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let export = app.dir.path().join("audit.jsonl");
    let out = bin(
        &app,
        &[
            "audit",
            "export",
            "--out",
            export.to_str().unwrap(),
            "--purpose",
            "test",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .args(["audit", "verify", "--export", export.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    app.exec("UPDATE audit_events SET actor_id = 'someone-else' WHERE seq = 3");
    let out = bin(&app, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sequence number 3"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    app.stop().await;
}

#[tokio::test]
async fn keygen_writes_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    let out = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("public key:"));
    // Never overwrites.
    let out = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_config_with_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[admin]\nlisten = \"127.0.0.1:0\"\nport = 8080\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .args(["--config", cfg.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port"), "{err}");
    // The same through the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .args(["migrate"])
        .env("HUKOU_SYNC__DATABASE__URL", "mysql://nowhere")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database.url"));
}

/// `peers` shows a delivery error only while it is newer than the last success (an old
/// "Connection refused" after later deliveries is history, not the peer's state), with times
/// labelled UTC; and logs written to a pipe carry no colour codes.
#[tokio::test]
async fn peers_shows_only_a_current_error_and_logs_to_a_pipe_without_colour() {
    let pair = crate::helpers::spawn_pair().await;
    let residence = &pair.residence;
    residence
        .create_child(&crate::helpers::flowing_child(700))
        .await;
    crate::helpers::eventually(30, "a delivery succeeded", || async {
        residence.count("peer_status WHERE last_success_at IS NOT NULL") == 1
    })
    .await;
    let run = |args: &[&str]| {
        crate::helpers::node_command(&pair.pki, crate::helpers::ZHENGZHOU, residence)
            .args(args)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap()
    };
    let peers = || run(&["peers"]);
    residence.exec(
        "UPDATE peer_status SET last_error = 'Connection refused', \
         last_error_at = '2020-01-01 00:00:00'",
    );
    let out = peers();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("510100"), "{text}");
    assert!(text.contains(" UTC+8"), "{text}");
    assert!(!text.contains("last error"), "{text}");
    // A command that logs (a dry reconciliation run against the live peer), to a pipe.
    let out = run(&["reconcile", "--peer", crate::helpers::CHENGDU, "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(!logs.is_empty(), "debug logs expected");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in piped logs: {logs:?}"
    );
    residence.exec("UPDATE peer_status SET last_error_at = '2999-01-01 00:00:00'");
    let text = String::from_utf8(peers().stdout).unwrap();
    assert!(
        text.contains("last error (2999-01-01 08:00:00 UTC+8): Connection refused"),
        "{text}"
    );
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// A command run without a configuration says loudly where its defaults put the database and
/// the signing key (it creates both in the current directory).
#[test]
fn a_command_without_a_configuration_warns_where_its_files_go() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .arg("peers")
        .current_dir(dir.path())
        .env_remove("HUKOU_SYNC_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: no --config"), "{err}");
    assert!(err.contains("signing key"), "{err}");
}

/// `child list` pages with `--after` (it prints where the next page starts), and a day count
/// past its bound is refused with a clear error instead of overflowing a date.
#[tokio::test]
async fn child_list_pages_with_after_and_bounds_stale_days() {
    let app = spawn_app().await;
    let rows: Vec<String> = (0..3).map(row).collect();
    let path = app.dir.path().join("ledger.csv");
    std::fs::write(&path, ledger(&rows)).unwrap();
    let out = bin(&app, &["import", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin(&app, &["child", "list", "--limit", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("2 file(s)"), "{text}");
    let next = text
        .lines()
        .find_map(|l| l.strip_prefix("more: --after "))
        .unwrap_or_else(|| panic!("no next page in {text}"))
        .to_owned();
    let out = bin(&app, &["child", "list", "--limit", "2", "--after", &next]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1 file(s)"), "{text}");
    assert!(!text.contains(&next), "{text}");
    let out = bin(&app, &["child", "list", "--stale-days", "2147483647"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stale-days"));
    let out = bin(&app, &["child", "list", "--after", "not-an-id"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--after"));
}

/// One key format is enough: `audit head` prints the key's id and the key itself; `audit verify
/// --export --key` takes either (an id must be the export's key's); without `--key` it names the
/// key it trusted and warns.
#[tokio::test]
async fn audit_verify_takes_a_key_or_its_id_and_names_the_key_it_trusted() {
    let app = spawn_app().await;
    let head = String::from_utf8(bin(&app, &["audit", "head"]).stdout).unwrap();
    // "size N  root R  at T UTC  key <id> (<key>)"
    let key_part = head.split("  key ").nth(1).unwrap().trim();
    let (id, key) = key_part.split_once(" (").unwrap();
    let key = key.trim_end_matches(')');
    assert_eq!(id.len(), 16, "{head}");
    assert_eq!(key.len(), 43, "{head}");
    assert!(head.contains(" UTC+8"), "{head}");
    let export = app.dir.path().join("audit.jsonl");
    assert!(bin(
        &app,
        &[
            "audit",
            "export",
            "--out",
            export.to_str().unwrap(),
            "--purpose",
            "test"
        ]
    )
    .status
    .success());
    let verify = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
            .args(["audit", "verify", "--export", export.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    for k in [id, key] {
        let out = verify(&["--key", k]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("no --key"));
    }
    let out = verify(&["--key", "0123456789abcdef"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not the id of the key"));
    let out = verify(&[]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: no --key") && err.contains(key),
        "{err}"
    );
    app.stop().await;
}

/// An import warns about, and counts, children whose hukou or residence region no node in the
/// directory serves (nobody would receive those files for that region); `sample`'s default
/// hukou prefix is one `pki init`'s network serves.
#[tokio::test]
async fn import_counts_children_whose_region_no_node_serves() {
    let pair = crate::helpers::spawn_pair().await;
    let residence = &pair.residence;
    // Row 2 is a Chengdu child; row 3's hukou is in Wuhan (420102), which no node serves.
    let wuhan = format!(
        "{},李小明,420102,410105,流动,黄,2026/9/1,李建国,祖父",
        id_number("420102", (2015, 3, 3), 900)
    );
    let path = residence.dir.path().join("ledger.csv");
    std::fs::write(&path, ledger(&[row(901), wuhan])).unwrap();
    let out = crate::helpers::node_command(&pair.pki, crate::helpers::ZHENGZHOU, residence)
        .args(["import", path.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["imported"], 2);
    assert_eq!(
        summary["unserved"],
        serde_json::json!([{"row": 3, "field": "hukou_region", "region": "420102"}])
    );
    // The default sample is served on both sides by a `pki init` network (4101 and 5101).
    let out = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .args(["sample", "--count", "5"])
        .env_remove("HUKOU_SYNC_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines().skip(1) {
        assert!(line.contains(",5101"), "{line}");
    }
    pair.residence.stop().await;
    pair.hukou.stop().await;
}

/// `child show` shows the parents' situations and the benefits held, by their Chinese labels.
#[tokio::test]
async fn child_show_shows_parents_and_benefits() {
    let app = spawn_app().await;
    let mut child = crate::helpers::flowing_child(950);
    child["hukou_region"] = serde_json::json!("410102");
    child["id_number"] = serde_json::json!(id_number("410102", (2014, 6, 1), 950));
    child["benefits"] = serde_json::json!([{"benefit": "dibao", "since": "2026-01"}]);
    let id = child["id_number"].as_str().unwrap().to_owned();
    app.create_child(&child).await;
    let out = bin(&app, &["child", "show", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("parents: father 外出务工  mother -"),
        "{text}"
    );
    assert!(text.contains("benefits: 低保 since 2026-01"), "{text}");
}

/// Exports hold full ID numbers: they are written 0600, never over an existing file without
/// `--force`, only with a purpose, and each is audited with it; `--bom` starts a CSV with the
/// UTF-8 byte-order mark Excel on Chinese Windows needs, and the import reads it back.
#[tokio::test]
async fn exports_are_private_never_overwrite_and_are_audited_with_their_purpose() {
    let app = spawn_app().await;
    let path = app.dir.path().join("ledger.csv");
    std::fs::write(&path, ledger(&(0..3).map(row).collect::<Vec<_>>())).unwrap();
    assert!(bin(&app, &["import", path.to_str().unwrap()])
        .status
        .success());
    let out_path = app.dir.path().join("out.csv");
    let out = out_path.to_str().unwrap();
    // No purpose: refused by the command line.
    assert_eq!(bin(&app, &["export", "--out", out]).status.code(), Some(2));
    assert!(!out_path.exists());
    let ok = bin(
        &app,
        &["export", "--out", out, "--purpose", "月度核对", "--bom"],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mode = std::fs::metadata(&out_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bytes = std::fs::read(&out_path).unwrap();
    assert!(bytes.starts_with("\u{feff}".as_bytes()));
    // Not over an existing file, unless asked.
    let again = bin(&app, &["export", "--out", out, "--purpose", "again"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read(&out_path).unwrap(), bytes);
    assert!(bin(
        &app,
        &["export", "--out", out, "--purpose", "again", "--force"]
    )
    .status
    .success());
    // The BOM file imports into an empty node.
    let bom_path = app.dir.path().join("bom.csv");
    std::fs::write(&bom_path, &bytes).unwrap();
    let other = spawn_app().await;
    let imported = bin(&other, &["import", bom_path.to_str().unwrap()]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert_eq!(other.count("children"), 3);
    // The audit log's export too: private, purposeful, itself audited.
    let log_path = app.dir.path().join("log.jsonl");
    let log = log_path.to_str().unwrap();
    assert!(bin(
        &app,
        &["audit", "export", "--out", log, "--purpose", "审计抽查"]
    )
    .status
    .success());
    let mode = std::fs::metadata(&log_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        bin(&app, &["audit", "export", "--out", log, "--purpose", "x"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(app.count("audit_events WHERE action = 'child.export'"), 2);
    assert_eq!(
        app.count("audit_events WHERE action = 'audit.export' AND purpose = '审计抽查'"),
        1
    );
    app.stop().await;
    other.stop().await;
}

/// A command piped into a reader that stops early (`| head`) ends as Unix tools do — by SIGPIPE,
/// without a panic message — instead of panicking on the closed pipe (exit 101).
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hukou-sync"))
        .args(["sample", "--count", "200000"])
        .env_remove("HUKOU_SYNC_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101));
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "{:?}",
        out.status
    );
}

/// Whether the tests run on PostgreSQL (`TEST_DATABASE_URL`).
fn on_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty())
}

/// How many times `ANALYZE` ran on the test schema's `children` table (PostgreSQL).
fn analyzed(app: &TestApp) -> i64 {
    app.count(
        "pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'children' \
         AND analyze_count > 0",
    )
}

/// A CSV ledger is imported a chunk at a time (here 100 rows, 11 chunks) in one transaction: a
/// refused row in a late chunk stores nothing of the file, and the report names it by its row,
/// as a repeat of a row in the first chunk is named by that row; with `--skip-invalid` every
/// valid row of every chunk arrives. On PostgreSQL an import of 10,000 rows refreshes the
/// planner's statistics and the smaller ones do not.
#[tokio::test]
async fn a_csv_import_streams_chunk_by_chunk_and_a_late_bad_row_stores_nothing() {
    let app = spawn_app().await;
    // Three files on record first, so "nothing stored" is counted against a non-empty node.
    let small = app.dir.path().join("small.csv");
    std::fs::write(&small, ledger(&(2000..2003).map(row).collect::<Vec<_>>())).unwrap();
    let out = bin(
        &app,
        &["import", small.to_str().unwrap(), "--chunk-rows", "100"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (files, versions, events) = (
        app.count("children"),
        app.count("versions"),
        app.count("audit_events"),
    );
    assert_eq!(files, 3);
    if on_postgres() {
        assert_eq!(analyzed(&app), 0, "a three-row import does not analyze");
    }
    let mut rows: Vec<String> = (0..1050u32)
        .map(|i| {
            let id = id_number("510104", (2014, 1 + i / 500, 3), (i % 500) as u16);
            format!("{id},王小{i},510104,410105,流动;留守,黄,2026/9/1,王建国,祖父")
        })
        .collect();
    // Line 1021 (the 11th chunk) is served by no node here; line 1042 repeats line 6's child.
    rows[1019] = rows[1019].replace("510104,410105", "510104,419999");
    let first_id = rows[4][..18].to_owned();
    rows[1040] = format!("{first_id}{}", &rows[1040][18..]);
    let path = app.dir.path().join("ledger.csv");
    std::fs::write(&path, ledger(&rows)).unwrap();
    let args = ["import", path.to_str().unwrap(), "--chunk-rows", "100"];
    let out = bin(&app, &[&args[..], &["--json"]].concat());
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows"], 1050);
    assert_eq!(summary["imported"], 0);
    assert_eq!(summary["rejected"], 2, "{summary}");
    assert_eq!(summary["errors"][0]["row"], 1021);
    assert_eq!(summary["errors"][0]["field"], "residence_region");
    assert_eq!(summary["errors"][1]["row"], 1042);
    assert_eq!(summary["errors"][1]["field"], "id_number");
    assert_eq!(summary["errors"][1]["reason"], "repeats row 6");
    assert_eq!(app.count("children"), files);
    assert_eq!(app.count("versions"), versions);
    assert_eq!(app.count("audit_events"), events);
    if on_postgres() {
        assert_eq!(analyzed(&app), 0, "a refused import does not analyze");
    }

    let report = app.dir.path().join("report.csv");
    let out = bin(
        &app,
        &[
            &args[..],
            &["--skip-invalid", "--report", report.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "imported 1048 of 1050 rows (2 skipped)"
    );
    let report = std::fs::read_to_string(report).unwrap();
    assert!(
        report.starts_with("row,field,reason\n1021,residence_region,")
            && report.contains("\n1042,id_number,repeats row 6\n"),
        "{report}"
    );
    assert_eq!(app.count("children"), files + 1048);
    assert_eq!(app.count("versions"), versions + 1048);
    assert_eq!(app.count("audit_events"), events + 1048);
    // Every valid row arrived, the last chunk's too.
    let last_id = &rows[1049][..18];
    assert_eq!(
        app.count(&format!("children WHERE id_number = '{last_id}'")),
        1
    );
    if on_postgres() {
        assert_eq!(
            analyzed(&app),
            0,
            "an import of fewer than 10,000 rows does not analyze"
        );
        let large: Vec<String> = (0..10_000u32)
            .map(|i| {
                let born = (2012 + (i / 5000) as i32, 1 + (i / 500) % 10, 5);
                let id = id_number("510104", born, (i % 500) as u16);
                format!("{id},李小{i},510104,410105,流动,黄,2026/9/1,李建国,祖父")
            })
            .collect();
        std::fs::write(&path, ledger(&large)).unwrap();
        let out = bin(&app, &["import", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(analyzed(&app), 1, "a large import analyzes");
        std::fs::write(&small, ledger(&(2003..2006).map(row).collect::<Vec<_>>())).unwrap();
        let out = bin(&app, &["import", small.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            app.count(
                "pg_stat_user_tables WHERE schemaname = current_schema() \
                 AND relname = 'children' AND analyze_count = 1"
            ),
            1,
            "a small import after it does not analyze again"
        );
    }
    app.stop().await;
}
