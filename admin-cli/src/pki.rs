//! `tatmx ca ...` and `tatmx node init`: setting up a federation's certificates.
//!
//! The CA key and each node key are written with mode 0600 and never overwritten. A node's key
//! is made on the node's host; only its CSR goes to the federation admin.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use tatmx_certs::files::{write_public, write_secret};
use tatmx_certs::{CertificateAuthority, FederationId, NodeKey, TeamId, TeamIdentity};

/// `tatmx ca ...`
#[derive(Subcommand)]
pub enum CaCommand {
    /// Create a new federation CA.
    Init(CaInitArgs),
    /// Issue a node certificate from the node's CSR.
    Sign(CaSignArgs),
}

/// `tatmx node ...`
#[derive(Subcommand)]
pub enum NodeCommand {
    /// Make this node's private key and a CSR to send to the federation admin.
    Init(NodeInitArgs),
}

/// Arguments of `tatmx ca init`.
#[derive(Args)]
pub struct CaInitArgs {
    /// The federation id, a DNS-style name such as county-mdt.example.
    #[arg(long)]
    pub federation: String,
    /// Where to write ca.pem and ca.key.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// How long the CA is valid, in days.
    #[arg(long, default_value_t = 3650)]
    pub days: u32,
}

/// Arguments of `tatmx ca sign`.
#[derive(Args)]
pub struct CaSignArgs {
    /// The node's certificate signing request (PEM).
    pub csr: PathBuf,
    /// The team id the certificate proves, such as lincoln-high.
    #[arg(long)]
    pub team: String,
    /// The directory holding ca.pem and ca.key.
    #[arg(long, default_value = ".")]
    pub ca_dir: PathBuf,
    /// How long the certificate is valid, in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Where to write the certificate; defaults to <team>.pem beside the CSR.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `tatmx node init`.
#[derive(Args)]
pub struct NodeInitArgs {
    /// The federation id.
    #[arg(long)]
    pub federation: String,
    /// This node's team id.
    #[arg(long)]
    pub team: String,
    /// Where to write node.key and node.csr.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// Runs a `tatmx ca` command.
pub fn run_ca(cmd: CaCommand) -> anyhow::Result<()> {
    match cmd {
        CaCommand::Init(args) => {
            let written = ca_init(&args)?;
            println!("Federation CA created for {}.", args.federation);
            println!(
                "  certificate (give to every member): {}",
                written.cert.display()
            );
            println!(
                "  private key (mode 0600):            {}",
                written.key.display()
            );
            println!();
            println!("Keep the private key offline: on an encrypted, disconnected medium, with a");
            println!("backup in a safe. Anyone holding it can enrol a node into the federation.");
            Ok(())
        }
        CaCommand::Sign(args) => {
            let (path, issued) = ca_sign(&args)?;
            println!("Certificate issued for {}.", issued.identity);
            println!("  serial:  {}", issued.serial_hex);
            println!("  expires: {}", issued.not_after.date());
            println!("  file:    {}", path.display());
            Ok(())
        }
    }
}

/// Runs a `tatmx node` command.
pub fn run_node(cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Init(args) => {
            let written = node_init(&args)?;
            println!("Node key and CSR created for {}.", written.identity);
            println!(
                "  private key (mode 0600, never leaves this host): {}",
                written.key.display()
            );
            println!(
                "  CSR (send to the federation admin):              {}",
                written.csr.display()
            );
            Ok(())
        }
    }
}

/// Files written by `tatmx ca init`.
pub struct CaFiles {
    /// ca.pem
    pub cert: PathBuf,
    /// ca.key
    pub key: PathBuf,
}

/// Creates the CA files.
pub fn ca_init(args: &CaInitArgs) -> anyhow::Result<CaFiles> {
    let federation = FederationId::new(args.federation.clone())?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let ca = CertificateAuthority::create(federation, args.days)?;
    let files = CaFiles {
        cert: args.dir.join("ca.pem"),
        key: args.dir.join("ca.key"),
    };
    write_secret(&files.key, &ca.key_pem())?;
    write_public(&files.cert, ca.cert_pem())?;
    Ok(files)
}

/// Signs a CSR and writes the certificate.
pub fn ca_sign(args: &CaSignArgs) -> anyhow::Result<(PathBuf, tatmx_certs::IssuedCertificate)> {
    let ca = load_ca(&args.ca_dir)?;
    let team = TeamId::new(args.team.clone())?;
    let csr = std::fs::read_to_string(&args.csr)
        .with_context(|| format!("cannot read the CSR {}", args.csr.display()))?;
    let issued = ca
        .sign_csr(&csr, team, args.days)
        .with_context(|| format!("cannot sign {}", args.csr.display()))?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.csr
            .with_file_name(format!("{}.pem", issued.identity.team))
    });
    write_public(&out, &issued.cert_pem)?;
    Ok((out, issued))
}

fn load_ca(dir: &Path) -> anyhow::Result<CertificateAuthority> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is --ca-dir the directory of `tatmx ca init`?)",
                path.display()
            )
        })
    };
    Ok(CertificateAuthority::load(
        &read("ca.pem")?,
        &read("ca.key")?,
    )?)
}

/// Files written by `tatmx node init`.
pub struct NodeFiles {
    /// The identity the CSR asks for.
    pub identity: TeamIdentity,
    /// node.key
    pub key: PathBuf,
    /// node.csr
    pub csr: PathBuf,
}

/// Makes the node key and CSR.
pub fn node_init(args: &NodeInitArgs) -> anyhow::Result<NodeFiles> {
    let identity = TeamIdentity::new(
        FederationId::new(args.federation.clone())?,
        TeamId::new(args.team.clone())?,
    );
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let node = NodeKey::generate(&identity)?;
    let files = NodeFiles {
        identity,
        key: args.dir.join("node.key"),
        csr: args.dir.join("node.csr"),
    };
    write_secret(&files.key, &node.key_pem)?;
    write_public(&files.csr, &node.csr_pem)?;
    Ok(files)
}
