//! `tatmx ca ...`, `tatmx node init`, `tatmx cert renew` and `tatmx cert inspect`: a federation's
//! certificates.
//!
//! The CA key and each node key are written with mode 0600 and never overwritten. A node's key
//! is made on the node's host; only its CSR goes to the federation admin. A DNS name goes into a
//! node certificate only when the node's CSR asks for it (`--dns-name` at `node init` or `cert
//! renew`) and the admin grants it (`--dns-name` at `ca sign`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use tatmx_certs::files::{write_public, write_secret};
use tatmx_certs::{CertificateAuthority, DnsName, FederationId, NodeKey, TeamId, TeamIdentity};
use tatmx_certs::{RevocationReason, RevokedCertificate};
use time::OffsetDateTime;

/// `tatmx ca ...`
#[derive(Subcommand)]
pub enum CaCommand {
    /// Create a new federation CA.
    Init(CaInitArgs),
    /// Issue a node certificate from the node's CSR.
    Sign(CaSignArgs),
    /// Revoke a certificate by serial, or every current certificate of a team, and write a new CRL.
    Revoke(CaRevokeArgs),
    /// Write a fresh CRL (do this before the last one's next update).
    Crl(CaCrlArgs),
    /// List the certificates this CA has issued and revoked.
    List(CaListArgs),
}

/// `tatmx node ...`
#[derive(Subcommand)]
pub enum NodeCommand {
    /// Make this node's private key and a CSR to send to the federation admin.
    Init(NodeInitArgs),
}

/// `tatmx cert ...` (on the node's host)
#[derive(Subcommand)]
pub enum CertCommand {
    /// Make a new key and CSR for this node, to renew its certificate. The current key stays in
    /// use until the new certificate is installed.
    Renew(CertRenewArgs),
    /// Show what a certificate says: identity, DNS names, serial, validity, fingerprint.
    Inspect(CertInspectArgs),
}

/// Arguments of `tatmx cert inspect`.
#[derive(Args)]
pub struct CertInspectArgs {
    /// The certificate (PEM), such as node.pem or ca.pem.
    pub cert: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses a `--dns-name` value, so a wildcard or an IP address is refused with its reason
/// before anything is made.
fn dns_name(value: &str) -> Result<DnsName, String> {
    DnsName::new(value).map_err(|e| e.to_string())
}

/// Arguments of `tatmx ca revoke`.
#[derive(Args)]
pub struct CaRevokeArgs {
    /// The serial number (hex) of the certificate to revoke.
    #[arg(required_unless_present = "team", conflicts_with = "team")]
    pub serial: Option<String>,
    /// Revoke every unexpired certificate of this team instead.
    #[arg(long)]
    pub team: Option<String>,
    /// Why: key-compromise, affiliation-changed, superseded, cessation-of-operation or unspecified.
    #[arg(long)]
    pub reason: String,
    /// The directory holding the CA.
    #[arg(long, default_value = ".")]
    pub ca_dir: PathBuf,
    /// How long the new CRL is valid, in days.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
}

/// Arguments of `tatmx ca crl`.
#[derive(Args)]
pub struct CaCrlArgs {
    /// The directory holding the CA.
    #[arg(long, default_value = ".")]
    pub ca_dir: PathBuf,
    /// How long the CRL is valid, in days.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
}

/// Arguments of `tatmx ca list`.
#[derive(Args)]
pub struct CaListArgs {
    /// The directory holding the CA.
    #[arg(long, default_value = ".")]
    pub ca_dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx cert renew`.
#[derive(Args)]
pub struct CertRenewArgs {
    /// The node's current certificate, to take its identity from.
    #[arg(long, default_value = "node.pem")]
    pub cert: PathBuf,
    /// Where to write node.next.key and node.next.csr.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// A DNS name the new CSR asks for (repeat for more); replaces the current certificate's
    /// DNS names, which are asked for again when none is given.
    #[arg(long = "dns-name", value_name = "NAME", value_parser = dns_name)]
    pub dns_names: Vec<DnsName>,
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
    /// The team's role (core, affiliate, partner), recorded in the CA's register.
    #[arg(long)]
    pub role: Option<String>,
    /// The team's discipline, recorded in the CA's register.
    #[arg(long)]
    pub discipline: Option<String>,
    /// Where to write the certificate; defaults to <team>.pem beside the CSR.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Grant this DNS name, which the CSR must ask for (repeat for more). Without it the
    /// certificate carries the team's URI alone. No wildcards, no IP addresses.
    #[arg(long = "dns-name", value_name = "NAME", value_parser = dns_name)]
    pub dns_names: Vec<DnsName>,
}

/// The CA's record of what it issued and revoked, kept beside its key (`register.json`). It is
/// what `tatmx ca revoke --team` and the CRL are made from.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Every certificate issued, oldest first.
    pub issued: Vec<IssuedEntry>,
    /// Every revocation, oldest first.
    pub revoked: Vec<RevokedEntry>,
    /// The number of the last CRL written.
    pub crl_number: u64,
}

/// One issued certificate.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedEntry {
    /// Serial, hex.
    pub serial: String,
    /// The team it proves.
    pub team: String,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The team's role, as the admin stated it at signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The team's discipline, as the admin stated it at signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discipline: Option<String>,
    /// The DNS names granted, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
}

/// One revocation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedEntry {
    /// Serial, hex.
    pub serial: String,
    /// Why.
    pub reason: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
}

impl Register {
    fn path(ca_dir: &Path) -> PathBuf {
        ca_dir.join("register.json")
    }

    /// Reads the register; a CA without one has issued nothing yet.
    pub fn load(ca_dir: &Path) -> anyhow::Result<Self> {
        let path = Self::path(ca_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid CA register", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the register.
    pub fn save(&self, ca_dir: &Path) -> anyhow::Result<()> {
        write_public(&Self::path(ca_dir), &serde_json::to_string_pretty(self)?)?;
        Ok(())
    }
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
    /// A DNS name to ask for (repeat for more), so standard TLS clients can check the host
    /// they dial; the team's URI stays the node's identity. No wildcards, no IP addresses.
    #[arg(long = "dns-name", value_name = "NAME", value_parser = dns_name)]
    pub dns_names: Vec<DnsName>,
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
            let (path, issued, not_granted) = ca_sign(&args)?;
            println!("Certificate issued for {}.", issued.identity);
            println!("  serial:  {}", issued.serial_hex);
            println!("  expires: {}", issued.not_after.date());
            if !issued.dns_names.is_empty() {
                println!("  DNS:     {}", joined(&issued.dns_names));
            }
            println!("  file:    {}", path.display());
            if !not_granted.is_empty() {
                println!();
                println!(
                    "The CSR also asked for DNS name(s) {}, not granted;",
                    not_granted.join(", ")
                );
                println!("sign again with --dns-name for each one to include.");
            }
            Ok(())
        }
        CaCommand::Revoke(args) => {
            let (serials, crl) = ca_revoke(&args)?;
            for serial in &serials {
                println!("Revoked {serial} ({}).", args.reason);
            }
            println!("New CRL: {}", crl.display());
            println!(
                "Distribute it with `tatmx trust import {}` on every node,",
                crl.display()
            );
            println!("or sign a new directory (`tatmx directory sign`), which carries it.");
            Ok(())
        }
        CaCommand::Crl(args) => {
            let path = ca_crl(&args.ca_dir, args.days)?;
            println!("CRL written: {}", path.display());
            Ok(())
        }
        CaCommand::List(args) => {
            let register = Register::load(&args.ca_dir)?;
            if args.json {
                return crate::output::print_json(&register_json(&register));
            }
            let rows: Vec<Vec<String>> = register
                .issued
                .iter()
                .map(|i| {
                    let revoked = register.revoked.iter().find(|r| r.serial == i.serial);
                    vec![
                        i.team.clone(),
                        i.serial.clone(),
                        i.not_after.date().to_string(),
                        revoked
                            .map_or_else(|| "valid".into(), |r| format!("revoked ({})", r.reason)),
                    ]
                })
                .collect();
            print!(
                "{}",
                crate::output::table(&["TEAM", "SERIAL", "EXPIRES", "STATE"], &rows)
            );
            Ok(())
        }
    }
}

/// The register as `tatmx ca list --json` prints it: one object per certificate issued, with
/// the table's columns, oldest first.
fn register_json(register: &Register) -> serde_json::Value {
    register
        .issued
        .iter()
        .map(|i| {
            let revoked = register.revoked.iter().find(|r| r.serial == i.serial);
            serde_json::json!({
                "team": i.team,
                "serial": i.serial,
                "not_after": crate::output::datetime_json(i.not_after),
                "role": i.role,
                "discipline": i.discipline,
                "state": if revoked.is_some() { "revoked" } else { "valid" },
                "revocation_reason": revoked.map(|r| &r.reason),
                "revoked_at": revoked.map(|r| crate::output::datetime_json(r.revoked_at)),
            })
        })
        .collect()
}

/// Names joined for one line of output.
fn joined(names: &[DnsName]) -> String {
    names
        .iter()
        .map(DnsName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a `tatmx cert` command.
pub fn run_cert(cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::Inspect(args) => cert_inspect(&args),
        CertCommand::Renew(args) => {
            let written = cert_renew(&args)?;
            println!("New key and CSR made for {}.", written.identity);
            if !written.dns_names.is_empty() {
                println!("  DNS names asked for: {}", joined(&written.dns_names));
            }
            println!("  new private key (mode 0600): {}", written.key.display());
            println!(
                "  CSR (send to the federation admin): {}",
                written.csr.display()
            );
            println!("Once signed, install it without a restart:");
            println!(
                "  tatmx cert install NEW.pem --key {}",
                written.key.display()
            );
            Ok(())
        }
    }
}

/// Prints what a certificate says, for `tatmx cert inspect`.
pub fn cert_inspect(args: &CertInspectArgs) -> anyhow::Result<()> {
    let pem = std::fs::read_to_string(&args.cert)
        .with_context(|| format!("cannot read {}", args.cert.display()))?;
    let summary = tatmx_certs::CertificateSummary::from_pem(&pem)
        .with_context(|| format!("{} is not a certificate", args.cert.display()))?;
    let identity = summary.identity.as_ref().map(ToString::to_string);
    if args.json {
        return crate::output::print_json(&serde_json::json!({
            "identity": identity,
            "federation_of_ca": summary.federation_of_ca().map(|f| f.to_string()),
            "uris": summary.uris,
            "dns_names": summary.dns_names,
            "serial": summary.serial_hex,
            "not_before": crate::output::datetime_json(summary.not_before),
            "not_after": crate::output::datetime_json(summary.not_after),
            "fingerprint_sha256": summary.fingerprint_sha256,
            "is_ca": summary.is_ca,
        }));
    }
    let none = || "(none)".to_owned();
    if let Some(federation) = summary.federation_of_ca() {
        println!("federation CA: {federation}");
    } else {
        println!("identity:    {}", identity.unwrap_or_else(none));
    }
    if summary.uris.len() > 1 || summary.identity.is_none() {
        println!("URIs:        {}", summary.uris.join(", "));
    }
    println!(
        "DNS names:   {}",
        if summary.dns_names.is_empty() {
            none()
        } else {
            summary.dns_names.join(", ")
        }
    );
    println!("serial:      {}", summary.serial_hex);
    println!("not before:  {}", summary.not_before);
    println!("not after:   {}", summary.not_after);
    println!("fingerprint: {}", summary.fingerprint_sha256);
    Ok(())
}

/// Makes node.next.key and node.next.csr for the identity in the current certificate, asking
/// for the given DNS names or, when none is given, the current certificate's.
pub fn cert_renew(args: &CertRenewArgs) -> anyhow::Result<NodeFiles> {
    let pem = std::fs::read_to_string(&args.cert)
        .with_context(|| format!("cannot read {}", args.cert.display()))?;
    let summary = tatmx_certs::CertificateSummary::from_pem(&pem)?;
    let identity = summary.require_identity()?.clone();
    let dns_names = if args.dns_names.is_empty() {
        summary
            .dns_names
            .iter()
            .map(|name| {
                DnsName::new(name.as_str()).with_context(|| {
                    format!(
                        "{} carries a DNS name that cannot be asked for again; give the names \
                         to keep with --dns-name",
                        args.cert.display()
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        args.dns_names.clone()
    };
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let node = NodeKey::generate_with_dns_names(&identity, &dns_names)?;
    let files = NodeFiles {
        identity,
        dns_names,
        key: args.dir.join("node.next.key"),
        csr: args.dir.join("node.next.csr"),
    };
    write_secret(&files.key, &node.key_pem)?;
    write_public(&files.csr, &node.csr_pem)?;
    Ok(files)
}

/// Revokes and writes a new CRL; returns the serials revoked and the CRL's path.
pub fn ca_revoke(args: &CaRevokeArgs) -> anyhow::Result<(Vec<String>, PathBuf)> {
    let reason: RevocationReason = args.reason.parse()?;
    let mut register = Register::load(&args.ca_dir)?;
    let now = OffsetDateTime::now_utc();
    let serials: Vec<String> = match (&args.serial, &args.team) {
        (Some(serial), _) => vec![serial.to_ascii_lowercase()],
        (None, Some(team)) => register
            .issued
            .iter()
            .filter(|i| &i.team == team && i.not_after > now)
            .map(|i| i.serial.clone())
            .collect(),
        (None, None) => bail!("name a serial or --team"),
    };
    let serials: Vec<String> = serials
        .into_iter()
        .filter(|s| !register.revoked.iter().any(|r| &r.serial == s))
        .collect();
    if serials.is_empty() {
        bail!("nothing to revoke: no current, unrevoked certificate matches");
    }
    for serial in &serials {
        register.revoked.push(RevokedEntry {
            serial: serial.clone(),
            reason: reason.as_str().into(),
            revoked_at: now,
        });
    }
    register.save(&args.ca_dir)?;
    let crl = ca_crl(&args.ca_dir, args.days)?;
    Ok((serials, crl))
}

/// Signs a new CRL of every revocation in the register, as `crl.pem`.
pub fn ca_crl(ca_dir: &Path, days: u32) -> anyhow::Result<PathBuf> {
    let ca = load_ca(ca_dir)?;
    let mut register = Register::load(ca_dir)?;
    let revoked = register
        .revoked
        .iter()
        .map(|r| {
            Ok(RevokedCertificate {
                serial_hex: r.serial.clone(),
                revoked_at: r.revoked_at,
                reason: r.reason.parse()?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    register.crl_number += 1;
    let pem = ca.sign_crl(&revoked, register.crl_number, days)?;
    let path = ca_dir.join("crl.pem");
    write_public(&path, &pem)?;
    register.save(ca_dir)?;
    Ok(path)
}

/// Runs a `tatmx node` command.
pub fn run_node(cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Init(args) => {
            let written = node_init(&args)?;
            println!("Node key and CSR created for {}.", written.identity);
            if !written.dns_names.is_empty() {
                println!(
                    "  DNS names asked for (the admin grants each with `tatmx ca sign --dns-name`): {}",
                    joined(&written.dns_names)
                );
            }
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

/// Signs a CSR and writes the certificate; also returns the DNS names the CSR asked for that
/// were not granted, for the admin to see.
pub fn ca_sign(
    args: &CaSignArgs,
) -> anyhow::Result<(PathBuf, tatmx_certs::IssuedCertificate, Vec<String>)> {
    if let Some(role) = &args.role
        && !tatmx_certs::directory::ROLES.contains(&role.as_str())
    {
        bail!(
            "--role must be one of {}",
            tatmx_certs::directory::ROLES.join(", ")
        );
    }
    if let Some(discipline) = &args.discipline
        && !tatmx_certs::directory::DISCIPLINES.contains(&discipline.as_str())
    {
        bail!(
            "--discipline must be one of {}",
            tatmx_certs::directory::DISCIPLINES.join(", ")
        );
    }
    let ca = load_ca(&args.ca_dir)?;
    let team = TeamId::new(args.team.clone())?;
    let csr = std::fs::read_to_string(&args.csr)
        .with_context(|| format!("cannot read the CSR {}", args.csr.display()))?;
    let issued = ca
        .sign_csr_with_dns_names(&csr, team, args.days, &args.dns_names)
        .with_context(|| format!("cannot sign {}", args.csr.display()))?;
    let not_granted: Vec<String> = tatmx_certs::csr_dns_names(&csr)?
        .into_iter()
        .filter(|asked| {
            !issued
                .dns_names
                .iter()
                .any(|granted| granted.as_str().eq_ignore_ascii_case(asked))
        })
        .collect();
    let out = args.out.clone().unwrap_or_else(|| {
        args.csr
            .with_file_name(format!("{}.pem", issued.identity.team))
    });
    write_public(&out, &issued.cert_pem)?;
    let mut register = Register::load(&args.ca_dir)?;
    register.issued.push(IssuedEntry {
        serial: issued.serial_hex.clone(),
        team: issued.identity.team.to_string(),
        not_after: issued.not_after,
        role: args.role.clone(),
        discipline: args.discipline.clone(),
        dns_names: issued.dns_names.iter().map(ToString::to_string).collect(),
    });
    register.save(&args.ca_dir)?;
    Ok((out, issued, not_granted))
}

/// Loads the CA kept in `dir` (ca.pem and ca.key).
pub fn load_ca(dir: &Path) -> anyhow::Result<CertificateAuthority> {
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
    /// The DNS names the CSR asks for.
    pub dns_names: Vec<DnsName>,
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
    let node = NodeKey::generate_with_dns_names(&identity, &args.dns_names)?;
    let files = NodeFiles {
        identity,
        dns_names: args.dns_names.clone(),
        key: args.dir.join("node.key"),
        csr: args.dir.join("node.csr"),
    };
    write_secret(&files.key, &node.key_pem)?;
    write_public(&files.csr, &node.csr_pem)?;
    Ok(files)
}
