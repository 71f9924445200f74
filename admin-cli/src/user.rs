//! `tatmx user ...`: the staff accounts of the node's browser console, over the Admin socket.
//!
//! Adding or resetting an account prints its initial password and TOTP secret once; the node
//! keeps only a hash of the password, and nothing shows either again.

use std::path::Path;

use clap::{Args, Subcommand};
use serde_json::json;
use tatmx_proto::v1 as pb;

use crate::errors::refused;
use crate::{output, trust};

/// `tatmx user ...`
#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a console account; prints its initial password and TOTP secret, once.
    Add(AddArgs),
    /// List the console accounts: role, disabled, locked, last sign-in.
    List(ListArgs),
    /// Disable an account and end its sessions at once.
    Disable(NameArgs),
    /// Issue new credentials (password and TOTP), enable the account, clear its lockout, and
    /// end its sessions; prints them once.
    Reset(NameArgs),
}

/// Arguments of `tatmx user add`.
#[derive(Args)]
pub struct AddArgs {
    /// The username: lowercase letters, digits, '.', '_' or '-', starting with a letter.
    pub name: String,
    /// case-worker (referrals, inbox), chair (also accepts, declines, completes, forwards,
    /// consults), auditor (audit log, accounting of disclosures) or admin (trust status).
    #[arg(long)]
    pub role: String,
}

/// Arguments of `tatmx user list`.
#[derive(Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments naming one account.
#[derive(Args)]
pub struct NameArgs {
    /// The username.
    pub name: String,
}

/// Runs `tatmx user ...`.
pub async fn run(admin_socket: &Path, command: UserCommand) -> anyhow::Result<()> {
    let mut admin = trust::client(admin_socket).await?;
    match command {
        UserCommand::Add(args) => {
            let issued = admin
                .add_user(pb::AddUserRequest {
                    username: args.name,
                    role: args.role,
                })
                .await
                .map_err(refused)?
                .into_inner();
            print_issued(&issued, "added");
        }
        UserCommand::List(args) => {
            let users = admin
                .list_users(pb::ListUsersRequest {})
                .await
                .map_err(refused)?
                .into_inner()
                .users;
            if args.json {
                let rows: Vec<_> = users.iter().map(user_json).collect();
                output::print_json(&rows)?;
            } else if users.is_empty() {
                println!(
                    "No console accounts yet; add one with `tatmx user add NAME --role ROLE`."
                );
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.username.clone(),
                            u.role.clone(),
                            state(u).into(),
                            output::time(u.last_sign_in.as_ref()),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    output::table(&["USERNAME", "ROLE", "STATE", "LAST SIGN-IN"], &rows)
                );
            }
        }
        UserCommand::Disable(args) => {
            let user = admin
                .disable_user(pb::UserRef {
                    username: args.name,
                })
                .await
                .map_err(refused)?
                .into_inner();
            println!(
                "{} ({}) is disabled; its sessions have ended. `tatmx user reset {}` enables it again with new credentials.",
                user.username, user.role, user.username
            );
        }
        UserCommand::Reset(args) => {
            let issued = admin
                .reset_user(pb::UserRef {
                    username: args.name,
                })
                .await
                .map_err(refused)?
                .into_inner();
            print_issued(&issued, "given new credentials (any sessions have ended)");
        }
    }
    Ok(())
}

fn state(user: &pb::UserInfo) -> &'static str {
    if user.disabled {
        "disabled"
    } else if user.locked_until.is_some() {
        "locked"
    } else {
        "active"
    }
}

fn user_json(user: &pb::UserInfo) -> serde_json::Value {
    json!({
        "username": user.username,
        "role": user.role,
        "state": state(user),
        "disabled": user.disabled,
        "failed_logins": user.failed_logins,
        "locked_until": output::time_json(user.locked_until.as_ref()),
        "created_at": output::time_json(user.created_at.as_ref()),
        "last_sign_in": output::time_json(user.last_sign_in.as_ref()),
    })
}

fn print_issued(issued: &pb::IssuedCredentials, what: &str) {
    let (name, role) = issued
        .user
        .as_ref()
        .map(|u| (u.username.as_str(), u.role.as_str()))
        .unwrap_or_default();
    println!("Console account {name} ({role}) {what}.");
    println!();
    println!("Give these to {name} in person or over a channel you trust. They are shown");
    println!("only now: the node keeps a hash of the password, and never shows either again.");
    println!();
    println!("  initial password:  {}", issued.password);
    println!("  TOTP secret:       {}", issued.totp_secret);
    println!("  TOTP URI:          {}", issued.totp_uri);
    println!();
    println!("Add the secret to an authenticator app (type it in, or make a QR code of the URI,");
    println!("for example with `qrencode -t ansiutf8 'URI'`): SHA-1, 6 digits, every 30 seconds.");
}
