//! `tatmx`: the command line for a tatmx federation.
//!
//! Federation admins use it to run the CA and enrol nodes; agency staff use it to send referrals
//! and read their inbox and outbox through their own node's Agency socket; anyone can run
//! `tatmx demo` to watch a small federation work on one machine.

mod agency;
mod demo;
mod output;
mod pki;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// tatmx: a federated exchange for threat assessment and threat management teams.
#[derive(Parser)]
#[command(version, about, propagate_version = true)]
struct Cli {
    /// The node's Agency API socket.
    #[arg(
        long,
        global = true,
        env = "TATMX_AGENCY_SOCKET",
        default_value = "/var/lib/tatmx/agency.sock"
    )]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The federation certificate authority (kept offline by the federation admin).
    #[command(subcommand)]
    Ca(pki::CaCommand),
    /// Enrol this host as a node: make its key and certificate signing request.
    #[command(subcommand)]
    Node(pki::NodeCommand),
    /// Send and read referrals.
    #[command(subcommand)]
    Referral(agency::ReferralCommand),
    /// Referrals this team has received.
    Inbox(agency::ListArgs),
    /// Delivery state of everything this node has sent.
    Outbox(agency::ListArgs),
    /// Run a small federation of three teams on this machine and send a referral through it.
    Demo(demo::DemoArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ca(cmd) => pki::run_ca(cmd),
        Command::Node(cmd) => pki::run_node(cmd),
        Command::Referral(cmd) => agency::run_referral(&cli.socket, cmd).await,
        Command::Inbox(args) => agency::inbox(&cli.socket, &args).await,
        Command::Outbox(args) => agency::outbox(&cli.socket, &args).await,
        Command::Demo(args) => demo::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
