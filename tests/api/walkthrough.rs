//! The README's three-bureau walkthrough, run as written: every `sh` block between its
//! `<!-- walkthrough:begin -->` and `<!-- walkthrough:end -->` markers, in order, as one
//! `bash -euo pipefail` script in an empty directory, with the built `hukou-sync` first on the
//! `PATH` and free loopback ports for the three nodes. The script's own waiting loops await each
//! delivery; this test only bounds the whole run and stops whatever it left running.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::time::Duration;

const README: &str = include_str!("../../README.md");

/// The walkthrough's shell blocks, in order.
fn walkthrough_script() -> String {
    let (_, rest) = README
        .split_once("<!-- walkthrough:begin -->")
        .expect("the README has a walkthrough");
    let (body, _) = rest
        .split_once("<!-- walkthrough:end -->")
        .expect("the walkthrough ends");
    let mut script = String::new();
    let mut in_block = false;
    for line in body.lines() {
        match (in_block, line.trim_end()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, l) => {
                script.push_str(l);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(!in_block, "an unclosed block in the walkthrough");
    script
}

/// A base port with `n` consecutive free ports, below Linux's ephemeral range (where the other
/// tests' port-0 listeners land).
fn free_ports(n: u16, from: u16) -> u16 {
    (from..30_000)
        .step_by(usize::from(n))
        .find(|base| (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()))
        .expect("free ports")
}

#[tokio::test]
async fn the_readme_walkthrough_of_a_three_bureau_week_runs_as_written() {
    let script = walkthrough_script();
    for step in [
        "pki init",
        "import",
        "case create",
        "conflict resolve",
        "residence_region=",
        "reconcile --peer",
        "audit verify --export",
    ] {
        assert!(script.contains(step), "the walkthrough shows {step}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("week.sh"), &script).unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_hukou-sync"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Spread concurrent runs (SQLite and PostgreSQL suites never share a machine's run, but a
    // developer may run two) by the process id.
    let start = 20_000 + (std::process::id() % 400) as u16 * 20;
    let peer_base = free_ports(3, start);
    let admin_base = free_ports(3, peer_base + 3);
    let mut command = tokio::process::Command::new("bash");
    command
        .args(["-euo", "pipefail", "week.sh"])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("PEER_BASE", peer_base.to_string())
        .env("ADMIN_BASE", admin_base.to_string())
        .env_remove("HUKOU_SYNC_CONFIG")
        .env_remove("TEST_DATABASE_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so the nodes it starts are stopped with it whatever happens.
    command.as_std_mut().process_group(0);
    let child = command.spawn().unwrap();
    let group = child.id().unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output()).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", "--", &format!("-{group}")])
        .status();
    let output = outcome
        .expect("the walkthrough finishes within five minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let logs: String = ["zhengzhou.log", "chengdu.log", "hangzhou.log"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            format!(
                "--- {f}\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect();
    assert!(
        output.status.success(),
        "the walkthrough failed ({}):\n{stdout}\n{stderr}\n{logs}",
        output.status
    );
    for seen in [
        "imported 1 of 1 rows",
        "已认定 (approved)",
        "备注 (notes): reviewed here",
        "0 conflict(s) left open",
        "不再由本节点服务 (no longer served here)",
        "reconciliation with 330100 — ok",
        "reconciliation with 410100 — ok",
        "ok: ",
    ] {
        assert!(stdout.contains(seen), "{seen:?} in:\n{stdout}\n{stderr}");
    }
    // Nothing was refused anywhere during the week.
    assert!(!stdout.contains("refused    1"), "{stdout}");
    assert!(!stdout.contains("failed"), "{stdout}");
}
