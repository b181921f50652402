//! `hukou-sync admin user|token …`: accounts of the admin listener from the console. Passwords are
//! read from standard input (one line), never from the command line, so they stay out of shell
//! history and process lists. Token secrets are printed once and never stored.

use std::io::BufRead;
use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;

use crate::accounts::{self, Role, Scope};
use crate::audit::Actor;
use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// People who log in to the admin pages.
    #[command(subcommand)]
    User(UserCommand),
    /// Bearer tokens of the bureau's local systems.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password (12+ characters) is read from standard input.
    Add {
        username: String,
        /// caseworker, reviewer, auditor or administrator.
        #[arg(long)]
        role: String,
        /// The name shown on the pages (default: the user name).
        #[arg(long)]
        display_name: Option<String>,
        /// Limit the user to these regions: region prefixes (41, 4101, 410105) or townships
        /// (410105001), comma-separated; default the whole node.
        #[arg(long, default_value = "*")]
        scope: String,
    },
    /// Change the regions a user may see and edit; ends their sessions.
    Scope {
        username: String,
        /// Region or township prefixes, comma-separated; `*` for the whole node.
        scope: String,
    },
    /// Set a new password (read from standard input); unlocks and ends the user's sessions.
    Passwd {
        username: String,
    },
    /// Clear a lockout after repeated failed logins.
    Unlock {
        username: String,
    },
    /// Stop a user from logging in; ends their sessions.
    Disable {
        username: String,
    },
    Enable {
        username: String,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token scoped to a role; prints its secret once.
    Create {
        name: String,
        #[arg(long)]
        role: String,
        /// Limit the token to these regions (as for users); default the whole node.
        #[arg(long, default_value = "*")]
        scope: String,
    },
    /// Revoke a token; the next request with it is refused.
    Revoke { name: String },
    List {
        #[arg(long)]
        json: bool,
    },
}

fn read_password() -> anyhow::Result<String> {
    // Ask only a person: a password piped in needs no prompt on the terminal.
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("password (one line on standard input):");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!pw.is_empty(), "no password on standard input");
    Ok(pw)
}

pub fn run(settings: &Settings, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    let (store, node) = crate::startup::open_node_blocking(settings)?;
    let mut conn = store.conn()?;
    let actor = Actor::console();
    let hlc = || node.clock.now();
    let now = Utc::now();
    match cmd {
        AdminCommand::User(UserCommand::Add {
            username,
            role,
            display_name,
            scope,
        }) => {
            let role: Role = role.parse()?;
            let scope: Scope = scope.parse()?;
            let password = read_password()?;
            let display = display_name.unwrap_or_else(|| username.clone());
            let user = accounts::NewUser {
                username: &username,
                display_name: &display,
                role,
                password: &password,
                scope: &scope,
            };
            accounts::add_user(&mut conn, hlc(), &actor, &user, now)?;
            println!("added user {username} ({role}, scope {scope})");
        }
        AdminCommand::User(UserCommand::Scope { username, scope }) => {
            let scope: Scope = scope.parse()?;
            accounts::set_scope(&mut conn, hlc(), &actor, &username, &scope, now)?;
            println!("scope of {username} is now {scope}; their sessions ended");
        }
        AdminCommand::User(UserCommand::Passwd { username }) => {
            let password = read_password()?;
            accounts::set_password(&mut conn, hlc(), &actor, &username, &password, now)?;
            println!("password of {username} changed; their sessions ended");
        }
        AdminCommand::User(UserCommand::Unlock { username }) => {
            accounts::unlock(&mut conn, hlc(), &actor, &username, now)?;
            println!("unlocked {username}");
        }
        AdminCommand::User(UserCommand::Disable { username }) => {
            accounts::set_disabled(&mut conn, hlc(), &actor, &username, true, now)?;
            println!("disabled {username}; their sessions ended");
        }
        AdminCommand::User(UserCommand::Enable { username }) => {
            accounts::set_disabled(&mut conn, hlc(), &actor, &username, false, now)?;
            println!("enabled {username}");
        }
        AdminCommand::User(UserCommand::List { json }) => {
            let users = accounts::list_users(&mut conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!(
                    "{:<24} {:<14} {:<10} {:<20} display name",
                    "user", "role", "state", "scope"
                );
                for u in users {
                    let state = if u.disabled {
                        "disabled"
                    } else if u.locked_until.is_some_and(|t| t > now) {
                        "locked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<24} {:<14} {:<10} {:<20} {}",
                        u.username, u.role, state, u.scope, u.display_name
                    );
                }
            }
        }
        AdminCommand::Token(TokenCommand::Create { name, role, scope }) => {
            let role: Role = role.parse()?;
            let scope: Scope = scope.parse()?;
            let secret =
                accounts::create_token(&mut conn, hlc(), &actor, &name, role, &scope, now)?;
            eprintln!("token {name} ({role}, scope {scope}) created; this is the only time its secret is shown:");
            println!("{secret}");
        }
        AdminCommand::Token(TokenCommand::Revoke { name }) => {
            accounts::revoke_token(&mut conn, hlc(), &actor, &name, now)?;
            println!("revoked token {name}");
        }
        AdminCommand::Token(TokenCommand::List { json }) => {
            let tokens = accounts::list_tokens(&mut conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                println!(
                    "{:<24} {:<14} {:<8} {:<20} last used",
                    "token", "role", "state", "scope"
                );
                for t in tokens {
                    println!(
                        "{:<24} {:<14} {:<8} {:<20} {}",
                        t.name,
                        t.role,
                        if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        },
                        t.scope,
                        t.last_used_at.map_or("never".into(), |x| x.to_rfc3339())
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
