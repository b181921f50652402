//! The crate's layering, checked: every `crate::…` path in `src/` (in `use` lines and inline,
//! `super::` chains that climb to the crate root included; unit-test modules excluded) must
//! follow an edge of [`ALLOWED`]. The table is the layering `src/lib.rs` documents (DESIGN §10):
//! arrows point down, never up or sideways. A new module must be added to the table, and the
//! table must name exactly the modules `src/lib.rs` declares.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// For each top-level module, the modules it may import. Read top to bottom: each row may name
/// only rows below it (with the one sideways edge `ui → api`: the web pages share the API's
/// state and its one mapping of errors to HTTP).
const ALLOWED: &[(&str, &[&str])] = &[
    // Commands: parse arguments, call below, print.
    (
        "cli",
        &[
            "devnet",
            "startup",
            "api",
            "ui",
            "jobs",
            "config",
            "accounts",
            "conflicts",
            "eligibility",
            "reconcile",
            "visits",
            "stats",
            "sync",
            "audit",
            "ledger_file",
            "storage",
            "directory",
            "tls",
            "crypto",
            "domain",
        ],
    ),
    // A development network (dev PKI, signed directory, nodes on 127.0.0.1): demo, benches,
    // tests.
    (
        "devnet",
        &[
            "startup",
            "api",
            "ui",
            "jobs",
            "config",
            "accounts",
            "conflicts",
            "eligibility",
            "reconcile",
            "visits",
            "stats",
            "sync",
            "audit",
            "ledger_file",
            "storage",
            "directory",
            "tls",
            "crypto",
            "domain",
        ],
    ),
    // Builds listeners and state, starts the jobs.
    (
        "startup",
        &[
            "api",
            "ui",
            "jobs",
            "config",
            "accounts",
            "conflicts",
            "eligibility",
            "reconcile",
            "visits",
            "stats",
            "sync",
            "audit",
            "storage",
            "directory",
            "tls",
            "crypto",
            "domain",
        ],
    ),
    // The two listeners' HTTP surfaces and the background jobs.
    (
        "api",
        &[
            "config",
            "accounts",
            "conflicts",
            "eligibility",
            "reconcile",
            "visits",
            "stats",
            "sync",
            "audit",
            "storage",
            "directory",
            "tls",
            "crypto",
            "domain",
        ],
    ),
    // The pages read ledger files as the command line does (upload, download, typed values).
    (
        "ui",
        &[
            "api",
            "config",
            "accounts",
            "conflicts",
            "eligibility",
            "reconcile",
            "visits",
            "stats",
            "sync",
            "audit",
            "ledger_file",
            "storage",
            "directory",
            "tls",
            "crypto",
            "domain",
        ],
    ),
    (
        "jobs",
        &[
            "config",
            "accounts",
            "conflicts",
            "eligibility",
            "reconcile",
            "visits",
            "stats",
            "sync",
            "audit",
            "storage",
            "directory",
            "tls",
            "crypto",
            "domain",
        ],
    ),
    // Settings from TOML and the environment: parsed into foundation types and into the settings
    // types services own (`accounts::Policy`, `eligibility::Deadlines`); config never calls a
    // service to validate, and no service imports config.
    (
        "config",
        &[
            "accounts",
            "eligibility",
            "storage",
            "directory",
            "tls",
            "crypto",
            "domain",
        ],
    ),
    // Services on top of the exchange: none imports another, none imports config.
    ("accounts", &["audit", "storage", "crypto", "domain"]),
    (
        "conflicts",
        &["sync", "audit", "storage", "directory", "crypto", "domain"],
    ),
    (
        "eligibility",
        &["sync", "audit", "storage", "directory", "crypto", "domain"],
    ),
    (
        "reconcile",
        &["sync", "audit", "storage", "directory", "crypto", "domain"],
    ),
    (
        "visits",
        &["sync", "audit", "storage", "directory", "crypto", "domain"],
    ),
    (
        "stats",
        &["sync", "audit", "storage", "directory", "crypto", "domain"],
    ),
    // The exchange: versions, heads, merge, ingest, outbox, sender, receipts.
    // (It checks a ledger file's rows against the files on record for an import.)
    (
        "sync",
        &[
            "audit",
            "ledger_file",
            "storage",
            "directory",
            "crypto",
            "domain",
        ],
    ),
    // The audit log, and the ledger files people exchange (CSV today).
    ("audit", &["storage", "crypto", "domain"]),
    ("ledger_file", &["crypto", "domain"]),
    // Foundations.
    ("storage", &["crypto", "domain"]),
    ("directory", &["tls", "crypto", "domain"]),
    ("tls", &["crypto", "domain"]),
    ("crypto", &["domain"]),
    ("domain", &[]),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text without comments and without items marked `#[cfg(test)]` (unit tests may
/// reach for fixtures anywhere; the layering is about the shipped code).
fn shipped_code(text: &str) -> String {
    let without_comments: String = text
        .lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal (a URL) is rare in paths that matter here; cutting
            // there only ever drops text, never invents an import.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::with_capacity(without_comments.len());
    let mut rest = without_comments.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        // Skip the item: up to the end of its first balanced `{…}` block, or its `;`.
        let mut depth = 0usize;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The top-level module a file belongs to, and how many `super::` it takes to reach the crate
/// root from it.
fn module_of(file: &Path) -> (String, usize) {
    let rel = file.strip_prefix(src_dir()).unwrap();
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    // src/x.rs and src/x/mod.rs are module x (depth 1); src/x/y.rs is x::y (depth 2).
    let depth = if parts.last().is_some_and(|p| p == "mod") {
        parts.len() - 1
    } else {
        parts.len()
    };
    (parts[0].clone(), depth)
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Every top-level module named by a path that starts at the crate root.
fn imported_modules(code: &str, depth: usize) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let preceded_by_ident = i > 0
            && (bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b'$');
        if !preceded_by_ident && rest.starts_with("crate::") {
            let after = &rest["crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                // `use crate::{a::X, b, c::{…}}`: the first segment of each top-level entry.
                let mut level = 0usize;
                let mut entry_start = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => level += 1,
                        '}' if level == 0 => break,
                        '}' => level -= 1,
                        ',' if level == 0 => entry_start = true,
                        c if c.is_whitespace() => {}
                        _ => {
                            if entry_start && level == 0 {
                                let name = ident_at(&group[j..]);
                                if !name.is_empty() {
                                    found.insert(name);
                                }
                            }
                            entry_start = false;
                        }
                    }
                }
            } else {
                let name = ident_at(after);
                if !name.is_empty() {
                    found.insert(name);
                }
            }
            i += "crate::".len();
            continue;
        }
        if !preceded_by_ident && rest.starts_with("super::") {
            let mut n = 0;
            let mut tail = rest;
            while let Some(t) = tail.strip_prefix("super::") {
                n += 1;
                tail = t;
            }
            if n >= depth {
                let name = ident_at(tail);
                if !name.is_empty() {
                    found.insert(name);
                }
            }
            i += n * "super::".len();
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    found
}

/// The modules `src/lib.rs` declares.
fn declared_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .or_else(|| l.trim().strip_prefix("mod "))
        })
        .map(|m| m.trim_end_matches(';').trim().to_owned())
        .collect()
}

/// The violations of the table in the tree under `src/`: (file, from, to).
fn violations() -> Vec<(String, String, String)> {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, to)| (*m, to.iter().copied().collect()))
        .collect();
    let declared = declared_modules();
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        if file
            .file_name()
            .is_some_and(|n| n == "lib.rs" || n == "main.rs")
        {
            continue;
        }
        let (module, depth) = module_of(&file);
        let text = std::fs::read_to_string(&file).unwrap();
        for target in imported_modules(&shipped_code(&text), depth) {
            if target == module || !declared.contains(&target) {
                // Itself, or a name that is not a module (`crate::foo!` macros, items of lib.rs).
                continue;
            }
            let ok = allowed
                .get(module.as_str())
                .is_some_and(|to| to.contains(target.as_str()));
            if !ok {
                let rel = file.strip_prefix(src_dir()).unwrap().display().to_string();
                bad.push((rel, module.clone(), target));
            }
        }
    }
    bad
}

#[test]
fn the_table_names_exactly_the_modules_lib_rs_declares() {
    let declared = declared_modules();
    let in_table: BTreeSet<String> = ALLOWED.iter().map(|(m, _)| (*m).to_owned()).collect();
    assert_eq!(
        declared, in_table,
        "src/lib.rs's modules and the layering table differ"
    );
}

#[test]
fn the_table_points_down_only() {
    // Each row names only rows below it (ui → api is the one documented sideways edge).
    let rank: BTreeMap<&str, usize> = ALLOWED
        .iter()
        .enumerate()
        .map(|(i, (m, _))| (*m, i))
        .collect();
    for (i, (m, to)) in ALLOWED.iter().enumerate() {
        for t in *to {
            let below = rank.get(t).is_some_and(|r| *r > i);
            let documented_sideways = *m == "ui" && *t == "api";
            assert!(
                below || documented_sideways,
                "{m} → {t} points up or sideways"
            );
        }
    }
}

#[test]
fn imports_point_down_only() {
    let bad = violations();
    assert!(
        bad.is_empty(),
        "imports against the layering (file: from → to):\n{}",
        bad.iter()
            .map(|(f, a, b)| format!("  {f}: {a} → {b}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_scanner_sees_every_form_of_import() {
    let code = "use crate::a::X;\nuse crate::{b::Y, c, d::{e, f}};\nfn g() { crate::h::i(); super::super::j::k(); super::l(); }\nmacro_rules! m { () => { $crate::n::o } }";
    let found = imported_modules(&shipped_code(code), 2);
    let expected: BTreeSet<String> = ["a", "b", "c", "d", "h", "j"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(found, expected);
    let test_only = "use crate::a::X;\n#[cfg(test)]\nmod tests { use crate::z::Y; }\n// crate::q\n";
    let found = imported_modules(&shipped_code(test_only), 1);
    assert_eq!(found, ["a".to_owned()].into_iter().collect());
}
