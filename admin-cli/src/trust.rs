//! `tatmx peer ...`, `tatmx trust ...` and `tatmx cert install`: managing a running node's trust
//! over its Admin socket. Every change takes effect at once, without a restart.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use tatmx_proto::v1 as pb;

use crate::errors::{self, refused};
use crate::output;

/// `tatmx peer ...`
#[derive(Subcommand)]
pub enum PeerCommand {
    /// Every peer, with its source, state and last contact.
    List(JsonArg),
    /// One peer.
    Show(PeerArg),
    /// Add a peer (or change its endpoint, role...); it can connect at once.
    Add(PeerAddArgs),
    /// Remove a peer; it is refused at its next handshake and request.
    Remove(PeerArg),
    /// Block a peer whatever its source (config, directory); `--unblock` lifts it.
    Block(BlockArgs),
}

/// `tatmx trust ...`
#[derive(Subcommand)]
pub enum TrustCommand {
    /// Anchors, CRLs, directories, this node's certificate and every peer, with warnings.
    Status(JsonArg),
    /// Import a signed directory (`tatmx directory sign`) or a CRL (`tatmx ca crl`).
    Import(ImportArgs),
    /// Trust anchors (federation CA certificates).
    #[command(subcommand)]
    Anchors(AnchorsCommand),
}

/// `tatmx trust anchors ...`
#[derive(Subcommand)]
pub enum AnchorsCommand {
    /// Every anchor, by federation.
    List(JsonArg),
    /// Trust a federation CA certificate (PEM file).
    Add(FileArg),
    /// Stop trusting an anchor, by fingerprint (at least 8 hex digits).
    Remove(FingerprintArg),
}

/// `tatmx cert install`
#[derive(Args)]
pub struct InstallArgs {
    /// The new certificate (PEM), as signed by the federation CA.
    pub cert: PathBuf,
    /// The new private key on this host, from `tatmx cert renew`.
    #[arg(long)]
    pub key: PathBuf,
}

/// A `--json` flag.
#[derive(Args)]
pub struct JsonArg {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A peer named on the command line.
#[derive(Args)]
pub struct PeerArg {
    /// Team id in this node's federation, or a full spiffe:// identity.
    pub team: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx peer block`.
#[derive(Args)]
pub struct BlockArgs {
    /// Team id, or a full spiffe:// identity.
    pub team: String,
    /// Lift the block instead.
    #[arg(long)]
    pub unblock: bool,
}

/// Arguments of `tatmx peer add`.
#[derive(Args)]
pub struct PeerAddArgs {
    /// Team id in this node's federation, or a full spiffe:// identity.
    #[arg(long)]
    pub team: String,
    /// Its Federation API, https://host:port.
    #[arg(long)]
    pub endpoint: String,
    /// core, affiliate or partner.
    #[arg(long)]
    pub role: String,
    /// Its discipline, such as education.
    #[arg(long)]
    pub discipline: String,
    /// The jurisdiction it serves.
    #[arg(long, default_value = "")]
    pub jurisdiction: String,
    /// It may hold criminal-justice information.
    #[arg(long)]
    pub cjis_authorized: bool,
}

/// A file argument.
#[derive(Args)]
pub struct FileArg {
    /// The file.
    pub file: PathBuf,
}

/// Arguments of `tatmx trust import`.
#[derive(Args)]
pub struct ImportArgs {
    /// A signed directory (JSON) or a CRL (PEM).
    pub file: PathBuf,
}

/// A fingerprint argument.
#[derive(Args)]
pub struct FingerprintArg {
    /// SHA-256 fingerprint, or a unique prefix of at least 8 hex digits.
    pub fingerprint: String,
}

/// Connects to the node's Admin socket.
pub async fn client(
    socket: &Path,
) -> anyhow::Result<pb::admin_client::AdminClient<tonic::transport::Channel>> {
    Ok(errors::admin(socket).await?)
}

fn role(text: &str) -> anyhow::Result<pb::Role> {
    match text {
        "core" => Ok(pb::Role::Core),
        "affiliate" => Ok(pb::Role::Affiliate),
        "partner" => Ok(pb::Role::Partner),
        _ => anyhow::bail!("role must be core, affiliate or partner"),
    }
}

fn role_name(value: i32) -> String {
    pb::Role::try_from(value)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("ROLE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn peer_json(p: &pb::PeerInfo) -> serde_json::Value {
    json!({
        "identity": p.identity,
        "endpoint": p.endpoint,
        "role": role_name(p.role),
        "discipline": p.discipline,
        "jurisdiction": p.jurisdiction,
        "cjis_authorized": p.cjis_authorized,
        "source": p.source,
        "blocked": p.blocked,
        "last_contact": output::time_json(p.last_contact.as_ref()),
        "last_error": (!p.last_error.is_empty()).then_some(&p.last_error),
        "last_error_at": output::time_json(p.last_error_at.as_ref()),
    })
}

fn peer_table(peers: &[pb::PeerInfo]) -> String {
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                output::team(&p.identity).to_owned(),
                role_name(p.role),
                p.discipline.clone(),
                p.endpoint.clone(),
                p.source.clone(),
                if p.blocked { "blocked" } else { "allowed" }.into(),
                output::time(p.last_contact.as_ref()),
                p.last_error.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "TEAM",
            "ROLE",
            "DISCIPLINE",
            "ENDPOINT",
            "SOURCE",
            "STATE",
            "LAST CONTACT",
            "LAST ERROR",
        ],
        &rows,
    )
}

fn anchor_json(a: &pb::AnchorInfo) -> serde_json::Value {
    json!({
        "federation": a.federation,
        "fingerprint_sha256": a.fingerprint_sha256,
        "not_after": output::time_json(a.not_after.as_ref()),
        "source": a.source,
    })
}

fn anchor_table(anchors: &[pb::AnchorInfo]) -> String {
    let rows: Vec<Vec<String>> = anchors
        .iter()
        .map(|a| {
            vec![
                a.federation.clone(),
                a.fingerprint_sha256.clone(),
                output::time(a.not_after.as_ref()),
                a.source.clone(),
            ]
        })
        .collect();
    output::table(
        &["FEDERATION", "FINGERPRINT (SHA-256)", "EXPIRES", "SOURCE"],
        &rows,
    )
}

/// Runs a `tatmx peer` command.
pub async fn run_peer(socket: &Path, cmd: PeerCommand) -> anyhow::Result<()> {
    let mut admin = client(socket).await?;
    match cmd {
        PeerCommand::List(args) => {
            let peers = admin
                .list_peers(pb::ListPeersRequest {})
                .await
                .map_err(refused)?
                .into_inner()
                .peers;
            if args.json {
                let rows: Vec<_> = peers.iter().map(peer_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if peers.is_empty() {
                println!("This node has no peers.");
            } else {
                print!("{}", peer_table(&peers));
            }
        }
        PeerCommand::Show(args) => {
            let peer = admin
                .show_peer(pb::PeerRef { team: args.team })
                .await
                .map_err(refused)?
                .into_inner();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&peer_json(&peer))?);
            } else {
                print!("{}", peer_table(std::slice::from_ref(&peer)));
            }
        }
        PeerCommand::Add(args) => {
            let peer = admin
                .add_peer(pb::AddPeerRequest {
                    team: args.team,
                    endpoint: args.endpoint,
                    role: role(&args.role)?.into(),
                    discipline: args.discipline,
                    jurisdiction: args.jurisdiction,
                    cjis_authorized: args.cjis_authorized,
                })
                .await
                .map_err(refused)?
                .into_inner();
            println!("Peer {} added; it can connect now.", peer.identity);
        }
        PeerCommand::Remove(args) => {
            let peer = admin
                .remove_peer(pb::PeerRef { team: args.team })
                .await
                .map_err(refused)?
                .into_inner();
            println!(
                "Peer {} removed; it is refused from its next request on.",
                peer.identity
            );
        }
        PeerCommand::Block(args) => {
            let peer = admin
                .block_peer(pb::BlockPeerRequest {
                    team: args.team,
                    blocked: !args.unblock,
                })
                .await
                .map_err(refused)?
                .into_inner();
            if peer.blocked {
                println!(
                    "Peer {} blocked; it is refused from its next request on.",
                    peer.identity
                );
            } else {
                println!("Peer {} unblocked.", peer.identity);
            }
        }
    }
    Ok(())
}

/// Runs a `tatmx trust` command.
pub async fn run_trust(socket: &Path, cmd: TrustCommand) -> anyhow::Result<()> {
    let mut admin = client(socket).await?;
    match cmd {
        TrustCommand::Status(args) => {
            let status = admin
                .trust_status(pb::TrustStatusRequest {})
                .await
                .map_err(refused)?
                .into_inner();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status_json(&status))?);
            } else {
                print!("{}", describe_status(&status));
            }
        }
        TrustCommand::Import(args) => {
            println!("{}", import(&mut admin, &args.file).await?);
        }
        TrustCommand::Anchors(AnchorsCommand::List(args)) => {
            let anchors = admin
                .list_anchors(pb::ListAnchorsRequest {})
                .await
                .map_err(refused)?
                .into_inner()
                .anchors;
            if args.json {
                let rows: Vec<_> = anchors.iter().map(anchor_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", anchor_table(&anchors));
            }
        }
        TrustCommand::Anchors(AnchorsCommand::Add(args)) => {
            let pem = std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            let anchor = admin
                .add_anchor(pb::AddAnchorRequest {
                    certificate_pem: pem,
                })
                .await
                .map_err(refused)?
                .into_inner();
            println!(
                "Anchor {} of {} is trusted now.",
                anchor.fingerprint_sha256, anchor.federation
            );
        }
        TrustCommand::Anchors(AnchorsCommand::Remove(args)) => {
            let anchor = admin
                .remove_anchor(pb::RemoveAnchorRequest {
                    fingerprint: args.fingerprint,
                })
                .await
                .map_err(refused)?
                .into_inner();
            println!(
                "Anchor {} of {} is no longer trusted.",
                anchor.fingerprint_sha256, anchor.federation
            );
        }
    }
    Ok(())
}

/// Imports a signed directory or a CRL file into the node; returns what to tell the admin.
pub async fn import(
    admin: &mut pb::admin_client::AdminClient<tonic::transport::Channel>,
    file: &Path,
) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    if text.contains("-----BEGIN X509 CRL-----") {
        let crl = admin
            .import_crl(pb::ImportCrlRequest { crl_pem: text })
            .await
            .map_err(refused)?
            .into_inner();
        return Ok(format!(
            "CRL number {} of {} imported: {} certificate(s) revoked, refused from now on.",
            crl.crl_number, crl.federation, crl.revoked
        ));
    }
    let reply = admin
        .import_directory(pb::ImportDirectoryRequest { document: text })
        .await
        .map_err(refused)?
        .into_inner();
    let d = reply.directory.unwrap_or_default();
    Ok(if reply.unchanged {
        format!(
            "Directory of {} sequence {} is already the current one; nothing changed.",
            d.federation, d.sequence
        )
    } else {
        format!(
            "Directory of {} sequence {} imported: {} member(s). It applies now.",
            d.federation, d.sequence, d.members
        )
    })
}

/// Runs `tatmx cert install`.
pub async fn install(socket: &Path, args: InstallArgs) -> anyhow::Result<()> {
    let cert = std::fs::read_to_string(&args.cert)
        .with_context(|| format!("cannot read {}", args.cert.display()))?;
    let key = std::fs::canonicalize(&args.key)
        .with_context(|| format!("cannot find {}", args.key.display()))?;
    let info = client(socket)
        .await?
        .install_certificate(pb::InstallCertificateRequest {
            certificate_pem: cert,
            key_path: key.display().to_string(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    println!(
        "Certificate {} installed for {}; new connections use it now, open ones finish on the old one.",
        info.serial, info.identity
    );
    println!(
        "It expires {} ({} days).",
        output::time(info.not_after.as_ref()),
        info.days_until_expiry
    );
    Ok(())
}

fn status_json(s: &pb::TrustStatusResponse) -> serde_json::Value {
    json!({
        "certificate": s.certificate.as_ref().map(|c| json!({
            "identity": c.identity,
            "serial": c.serial,
            "not_after": output::time_json(c.not_after.as_ref()),
            "days_until_expiry": c.days_until_expiry,
        })),
        "anchors": s.anchors.iter().map(anchor_json).collect::<Vec<_>>(),
        "crls": s.crls.iter().map(|c| json!({
            "federation": c.federation,
            "crl_number": c.crl_number,
            "this_update": output::time_json(c.this_update.as_ref()),
            "next_update": output::time_json(c.next_update.as_ref()),
            "revoked": c.revoked,
        })).collect::<Vec<_>>(),
        "directories": s.directories.iter().map(|d| json!({
            "federation": d.federation,
            "sequence": d.sequence,
            "issued_at": output::time_json(d.issued_at.as_ref()),
            "imported_at": output::time_json(d.imported_at.as_ref()),
            "members": d.members,
            "stale": d.stale,
        })).collect::<Vec<_>>(),
        "peers": s.peers.iter().map(peer_json).collect::<Vec<_>>(),
        "warnings": s.warnings,
        "witness_conflicts": s.witness_conflicts.iter().map(|w| json!({
            "peer": w.peer,
            "held_seq": w.held_seq,
            "shown_seq": w.shown_seq,
            "problem": w.problem,
            "detected_at": output::time_json(w.detected_at.as_ref()),
        })).collect::<Vec<_>>(),
    })
}

fn describe_status(s: &pb::TrustStatusResponse) -> String {
    let mut out = String::new();
    if let Some(c) = &s.certificate {
        out.push_str(&format!(
            "This node: {}\n  certificate {} expires {} ({} days)\n\n",
            c.identity,
            c.serial,
            output::time(c.not_after.as_ref()),
            c.days_until_expiry
        ));
    }
    out.push_str("Trust anchors\n");
    for line in anchor_table(&s.anchors).lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("\nRevocation lists\n");
    if s.crls.is_empty() {
        out.push_str("  none imported\n");
    }
    for c in &s.crls {
        out.push_str(&format!(
            "  {}: number {}, issued {}, next update {}, {} revoked\n",
            c.federation,
            c.crl_number,
            output::time(c.this_update.as_ref()),
            output::time(c.next_update.as_ref()),
            c.revoked
        ));
    }
    out.push_str("\nFederation directories\n");
    if s.directories.is_empty() {
        out.push_str("  none imported (peers come from the config file and admins)\n");
    }
    for d in &s.directories {
        out.push_str(&format!(
            "  {}: sequence {}, issued {}, imported {}, {} members{}\n",
            d.federation,
            d.sequence,
            output::time(d.issued_at.as_ref()),
            output::time(d.imported_at.as_ref()),
            d.members,
            if d.stale { " (STALE)" } else { "" }
        ));
    }
    out.push_str("\nPeers\n");
    for line in peer_table(&s.peers).lines() {
        out.push_str(&format!("  {line}\n"));
    }
    if !s.warnings.is_empty() {
        out.push_str("\nWarnings\n");
        for w in &s.warnings {
            out.push_str(&format!("  ! {w}\n"));
        }
    }
    if !s.witness_conflicts.is_empty() {
        out.push_str(&witness_conflicts_text(&s.witness_conflicts));
    }
    out
}

/// Peers whose audit history contradicts a checkpoint this node holds, set apart so that no
/// one reads past it.
fn witness_conflicts_text(conflicts: &[pb::WitnessConflict]) -> String {
    let mut out = format!(
        "\n!! Audit witnessing: {} peer(s) showed a history that contradicts a checkpoint this \
         node holds\n",
        conflicts.len()
    );
    let rows: Vec<Vec<String>> = conflicts
        .iter()
        .map(|w| {
            vec![
                output::team(&w.peer).to_owned(),
                w.held_seq.to_string(),
                w.shown_seq.to_string(),
                output::time(w.detected_at.as_ref()),
                w.problem.clone(),
            ]
        })
        .collect();
    let table = output::table(
        &["PEER", "HELD SEQ", "SHOWN SEQ", "DETECTED AT", "PROBLEM"],
        &rows,
    );
    for line in table.lines() {
        out.push_str(&format!("   {line}\n"));
    }
    out
}
