//! `tatmx`: the command line for a tatmx federation.
//!
//! Federation admins use it to run the CA and enrol nodes; agency staff use it to send referrals
//! and read their inbox and outbox through their own node's Agency socket; anyone can run
//! `tatmx demo` to watch a small federation work on one machine.

mod agency;
mod audit;
mod bench;
mod case;
mod consent;
mod consult;
mod demo;
mod directory;
mod doctor;
mod errors;
mod manual;
mod output;
mod pki;
mod policy;
mod trust;
mod user;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

/// tatmx: a federated exchange for threat assessment and threat management teams.
#[derive(Parser)]
#[command(name = "tatmx", version, about, propagate_version = true)]
struct Cli {
    /// The node's Agency API socket.
    #[arg(
        long,
        global = true,
        env = "TATMX_AGENCY_SOCKET",
        default_value = "/var/lib/tatmx/agency.sock"
    )]
    socket: PathBuf,
    /// The node's Admin API socket.
    #[arg(
        long,
        global = true,
        env = "TATMX_ADMIN_SOCKET",
        default_value = "/var/lib/tatmx/admin.sock"
    )]
    admin_socket: PathBuf,
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
    /// The signed federation directory (federation admin).
    #[command(subcommand)]
    Directory(directory::DirectoryCommand),
    /// This node's trust: status, directory and CRL import, anchors (agency admin).
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// The teams this node exchanges with (agency admin).
    #[command(subcommand)]
    Peer(trust::PeerCommand),
    /// This node's certificate: renew, install and inspect (agency admin).
    #[command(subcommand)]
    Cert(CertCommand),
    /// Send and read referrals.
    #[command(subcommand)]
    Referral(agency::ReferralCommand),
    /// Consultations: ask partner teams for advice, de-identified, or answer as a partner.
    #[command(subcommand)]
    Consult(consult::ConsultCommand),
    /// Consent records (after FHIR Consent) on this agency's node.
    #[command(subcommand)]
    Consent(consent::ConsentCommand),
    /// The audit trail: verify the chain, read entries, account for disclosures (security
    /// officers, auditors, counsel).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Check and test policy files (for counsel), offline.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Referrals this team has received.
    Inbox(agency::ListArgs),
    /// Delivery state of everything this node has sent; `retry` resends a dead letter.
    Outbox(agency::OutboxArgs),
    /// What this node purged (retraction or retention): ids, categories, when and why.
    Purged(agency::ListArgs),
    /// Staff accounts of the node's browser console: add, list, disable, reset.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Run a small federation of four teams on this machine and take a referral through its
    /// whole closed loop.
    Demo(demo::DemoArgs),
    /// Measure end-to-end delivery between two real nodes against the raw mutual-TLS ceiling,
    /// start-up, memory, backlog drain, fan-out and a large registry.
    Bench(bench::BenchArgs),
    /// Check a node's setup: its config, keys and certificates, store, whether it runs, and
    /// each peer over mutual TLS; says what to fix. Exits non-zero if any check fails.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script: `tatmx completions bash > /etc/bash_completion.d/tatmx`.
    Completions(manual::CompletionsArgs),
    /// Print the manual page, or write one page per command into a directory with --out.
    Man(manual::ManArgs),
}

/// `tatmx cert ...`
#[derive(Subcommand)]
enum CertCommand {
    /// Make a new key and CSR on this host to renew the node's certificate.
    Renew(pki::CertRenewArgs),
    /// Install a new certificate and key into the running node, without a restart.
    Install(trust::InstallArgs),
    /// Show what a certificate says: identity, DNS names, serial, validity, fingerprint.
    Inspect(pki::CertInspectArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ca(cmd) => pki::run_ca(cmd),
        Command::Node(cmd) => pki::run_node(cmd),
        Command::Directory(cmd) => directory::run(cmd),
        Command::Trust(cmd) => trust::run_trust(&cli.admin_socket, cmd).await,
        Command::Peer(cmd) => trust::run_peer(&cli.admin_socket, cmd).await,
        Command::Cert(CertCommand::Renew(args)) => pki::run_cert(pki::CertCommand::Renew(args)),
        Command::Cert(CertCommand::Install(args)) => trust::install(&cli.admin_socket, args).await,
        Command::Cert(CertCommand::Inspect(args)) => pki::run_cert(pki::CertCommand::Inspect(args)),
        Command::Referral(cmd) => agency::run_referral(&cli.socket, cmd).await,
        Command::Consent(cmd) => consent::run(&cli.socket, cmd).await,
        Command::Consult(cmd) => consult::run(&cli.socket, cmd).await,
        Command::Audit(cmd) => audit::run(&cli.admin_socket, cmd).await,
        Command::Policy(cmd) => policy::run(cmd),
        Command::Inbox(args) => agency::inbox(&cli.socket, &args).await,
        Command::Outbox(args) => agency::outbox(&cli.socket, args).await,
        Command::Purged(args) => agency::purged(&cli.socket, &args).await,
        Command::User(cmd) => user::run(&cli.admin_socket, cmd).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Doctor(args) => match doctor::run(&args).await {
            // The report has said what failed and what to do; only the exit status is left.
            Ok(healthy) if !healthy => return std::process::ExitCode::FAILURE,
            other => other.map(|_| ()),
        },
        Command::Completions(args) => manual::completions(Cli::command(), &args),
        Command::Man(args) => manual::man(Cli::command(), &args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(next) = errors::next_step(&e) {
                eprintln!("  next: {next}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
