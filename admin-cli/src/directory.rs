//! `tatmx directory ...`: the federation admin's draft of the membership list, and signing it.
//!
//! The draft (`directory.draft.json` beside the CA, or `--draft`) is plain JSON the admin edits
//! through these commands. `sign` turns it into the signed document every node imports, with
//! the next sequence number, the signing CA (plus any `--also-anchor` during a CA rotation) as
//! anchors, and the CA's current CRL.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use tatmx_certs::directory::{Directory, Member, SignedDirectory};
use tatmx_certs::files::write_public;
use tatmx_certs::{FederationId, TeamId};
use time::OffsetDateTime;

use crate::pki::load_ca;

/// `tatmx directory ...`
#[derive(Subcommand)]
pub enum DirectoryCommand {
    /// Add or update a member in the draft.
    Add(AddArgs),
    /// Remove a member from the draft.
    Remove(RemoveArgs),
    /// Show the draft, or a signed directory file.
    Show(ShowArgs),
    /// Sign the draft as the next directory.
    Sign(SignArgs),
}

/// Where the CA and the draft are.
#[derive(Args, Clone)]
pub struct Location {
    /// The directory holding the CA (ca.pem, ca.key).
    #[arg(long, default_value = ".")]
    pub ca_dir: PathBuf,
    /// The draft file; defaults to directory.draft.json in the CA directory.
    #[arg(long)]
    pub draft: Option<PathBuf>,
}

impl Location {
    fn draft_path(&self) -> PathBuf {
        self.draft
            .clone()
            .unwrap_or_else(|| self.ca_dir.join("directory.draft.json"))
    }
}

/// Arguments of `tatmx directory add`.
#[derive(Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub location: Location,
    /// The member's team id.
    #[arg(long)]
    pub team: String,
    /// Its Federation API, https://host:port.
    #[arg(long)]
    pub endpoint: String,
    /// core, affiliate or partner.
    #[arg(long)]
    pub role: String,
    /// Its discipline, such as education or law-enforcement.
    #[arg(long)]
    pub discipline: String,
    /// The jurisdiction it serves.
    #[arg(long)]
    pub jurisdiction: String,
    /// It may hold criminal-justice information.
    #[arg(long)]
    pub cjis_authorized: bool,
    /// Pin the member to this certificate (SHA-256 fingerprint, hex).
    #[arg(long)]
    pub fingerprint: Option<String>,
}

/// Arguments of `tatmx directory remove`.
#[derive(Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub location: Location,
    /// The member's team id.
    #[arg(long)]
    pub team: String,
}

/// Arguments of `tatmx directory show`.
#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub location: Location,
    /// A signed directory file to show (verified against the CA) instead of the draft.
    #[arg(long)]
    pub signed: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx directory sign`.
#[derive(Args)]
pub struct SignArgs {
    #[command(flatten)]
    pub location: Location,
    /// Another CA certificate of this federation to list as an anchor (CA rotation).
    #[arg(long)]
    pub also_anchor: Vec<PathBuf>,
    /// Where to write the signed directory; defaults to directory.json in the CA directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The unsigned membership list the admin edits.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    /// The federation.
    pub federation: FederationId,
    /// The sequence of the last signed directory; the next one gets this plus one.
    pub last_sequence: u64,
    /// The members.
    pub members: Vec<Member>,
}

impl Draft {
    fn load_or_new(path: &Path, federation: &FederationId) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let draft: Draft = serde_json::from_str(&text).with_context(|| {
                    format!("{} is not a valid directory draft", path.display())
                })?;
                if &draft.federation != federation {
                    bail!(
                        "{} is a draft for {}, not {federation}",
                        path.display(),
                        draft.federation
                    );
                }
                Ok(draft)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                federation: federation.clone(),
                last_sequence: 0,
                members: Vec::new(),
            }),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        write_public(path, &serde_json::to_string_pretty(self)?)?;
        Ok(())
    }
}

/// Runs a `tatmx directory` command.
pub fn run(cmd: DirectoryCommand) -> anyhow::Result<()> {
    match cmd {
        DirectoryCommand::Add(args) => {
            add(&args)?;
            println!(
                "{} is in the draft; sign it with `tatmx directory sign`.",
                args.team
            );
            Ok(())
        }
        DirectoryCommand::Remove(args) => {
            remove(&args)?;
            println!(
                "{} was removed from the draft; sign it with `tatmx directory sign`.",
                args.team
            );
            Ok(())
        }
        DirectoryCommand::Show(args) => show(&args),
        DirectoryCommand::Sign(args) => {
            let (path, directory) = sign(&args)?;
            println!(
                "Directory of {} signed: sequence {}, {} members, {} anchor(s){}.",
                directory.federation,
                directory.sequence,
                directory.members.len(),
                directory.anchors.len(),
                if directory.crl.is_some() {
                    ", with the CRL"
                } else {
                    ""
                }
            );
            println!("  file: {}", path.display());
            println!(
                "Give it to every member: `tatmx trust import {}`",
                path.display()
            );
            Ok(())
        }
    }
}

/// Adds or replaces a member in the draft.
pub fn add(args: &AddArgs) -> anyhow::Result<()> {
    let ca = load_ca(&args.location.ca_dir)?;
    let path = args.location.draft_path();
    let mut draft = Draft::load_or_new(&path, ca.federation())?;
    let team = TeamId::new(args.team.clone())?;
    let member = Member {
        team: team.clone(),
        endpoint: args.endpoint.clone(),
        role: args.role.clone(),
        discipline: args.discipline.clone(),
        jurisdiction: args.jurisdiction.clone(),
        cjis_authorized: args.cjis_authorized,
        cert_fingerprint_sha256: args.fingerprint.clone(),
    };
    draft.members.retain(|m| m.team != team);
    draft.members.push(member);
    draft.members.sort_by(|a, b| a.team.cmp(&b.team));
    // Validate now, so a typo is caught here rather than at signing.
    let probe = Directory {
        federation: draft.federation.clone(),
        sequence: draft.last_sequence + 1,
        issued_at: OffsetDateTime::now_utc(),
        members: draft.members.clone(),
        anchors: vec![ca.cert_pem().to_owned()],
        crl: None,
    };
    probe.validate()?;
    draft.save(&path)
}

/// Removes a member from the draft.
pub fn remove(args: &RemoveArgs) -> anyhow::Result<()> {
    let ca = load_ca(&args.location.ca_dir)?;
    let path = args.location.draft_path();
    let mut draft = Draft::load_or_new(&path, ca.federation())?;
    let team = TeamId::new(args.team.clone())?;
    let before = draft.members.len();
    draft.members.retain(|m| m.team != team);
    if draft.members.len() == before {
        bail!("{team} is not in the draft");
    }
    draft.save(&path)
}

/// Signs the draft as the next directory.
pub fn sign(args: &SignArgs) -> anyhow::Result<(PathBuf, Directory)> {
    let ca_dir = &args.location.ca_dir;
    let ca = load_ca(ca_dir)?;
    let path = args.location.draft_path();
    let mut draft = Draft::load_or_new(&path, ca.federation())?;
    let mut anchors = vec![ca.cert_pem().to_owned()];
    for extra in &args.also_anchor {
        anchors.push(
            std::fs::read_to_string(extra)
                .with_context(|| format!("cannot read {}", extra.display()))?,
        );
    }
    let crl_path = ca_dir.join("crl.pem");
    let crl = match std::fs::read_to_string(&crl_path) {
        Ok(pem) => Some(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", crl_path.display())),
    };
    let directory = Directory {
        federation: draft.federation.clone(),
        sequence: draft.last_sequence + 1,
        issued_at: OffsetDateTime::now_utc(),
        members: draft.members.clone(),
        anchors,
        crl,
    };
    let signed = ca.sign_directory(&directory)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| ca_dir.join("directory.json"));
    write_public(&out, &signed.to_json())?;
    draft.last_sequence = directory.sequence;
    draft.save(&path)?;
    Ok((out, directory))
}

fn show(args: &ShowArgs) -> anyhow::Result<()> {
    let ca = load_ca(&args.location.ca_dir)?;
    // Besides the title, what `--json` says about the document: which kind, whose, and when.
    let (title, members, sequence, federation, issued_at) = match &args.signed {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let directory = SignedDirectory::from_json(&text)?
                .verify(&[ca.cert_pem().to_owned()])
                .with_context(|| format!("{} does not verify against this CA", file.display()))?;
            (
                format!(
                    "Signed directory of {}, sequence {}, issued {} (signature verified)",
                    directory.federation, directory.sequence, directory.issued_at
                ),
                directory.members,
                directory.sequence,
                directory.federation,
                Some(directory.issued_at),
            )
        }
        None => {
            let draft = Draft::load_or_new(&args.location.draft_path(), ca.federation())?;
            (
                format!(
                    "Draft directory of {} (next sequence {})",
                    draft.federation,
                    draft.last_sequence + 1
                ),
                draft.members,
                0,
                draft.federation,
                None,
            )
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "kind": if args.signed.is_some() { "signed" } else { "draft" },
                "federation": federation,
                "sequence": sequence,
                "issued_at": issued_at.map(crate::output::datetime_json),
                "members": members,
            }))?
        );
        return Ok(());
    }
    println!("{title}");
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.team.to_string(),
                m.role.clone(),
                m.discipline.clone(),
                m.endpoint.clone(),
                if m.cjis_authorized { "yes" } else { "no" }.into(),
                m.jurisdiction.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::output::table(
            &[
                "TEAM",
                "ROLE",
                "DISCIPLINE",
                "ENDPOINT",
                "CJIS",
                "JURISDICTION"
            ],
            &rows
        )
    );
    Ok(())
}
