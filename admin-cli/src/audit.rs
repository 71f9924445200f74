//! `tatmx audit ...`: checking the node's audit chain and Merkle tree, proving that one
//! disclosure is in the log the node signed, reading its entries, and the accounting of
//! disclosures about one subject, over the node's Admin socket.
//!
//! A proof of one disclosure is checked here, not by the node: the node hands over the entry,
//! its inclusion proof and the signed tree head, and this command recomputes the entry's leaf,
//! follows the proof to the root and verifies the head's signature with the certificate in it.

use std::path::Path;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use tatmx_proto::v1 as pb;
use time::OffsetDateTime;

use crate::errors::refused;
use crate::{output, trust};

/// `tatmx audit ...`
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the whole audit chain, the Merkle tree and every signed checkpoint and tree head;
    /// with --disclosure, prove one disclosure is in the signed log. Exits non-zero on failure.
    Verify(VerifyArgs),
    /// Audit entries, newest first.
    Log(LogArgs),
    /// The accounting of disclosures about one subject (HIPAA 164.528, FERPA 99.32).
    Disclosures(DisclosuresArgs),
}

/// Arguments of `tatmx audit verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// Prove that one disclosure is in the log the node signed: the number of its audit entry
    /// (AUDIT SEQ in `tatmx audit disclosures`), or the id of the referral or case message.
    #[arg(long, value_name = "ID")]
    pub disclosure: Option<String>,
    /// Print JSON (the exit status still says whether the log is intact, or the proof holds);
    /// with --disclosure, the proof itself, to keep or show to others.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx audit log`.
#[derive(Args)]
pub struct LogArgs {
    /// Only entries at or after this time: YYYY-MM-DD (midnight UTC) or RFC 3339.
    #[arg(long, value_parser = timestamp)]
    pub since: Option<prost_types::Timestamp>,
    /// Only entries of this kind, such as disclosure, receipt, purge, trust-change, case-read.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only entries about this team: a team id or a full spiffe:// identity.
    #[arg(long)]
    pub peer: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx audit disclosures`.
#[derive(Args)]
pub struct DisclosuresArgs {
    /// The agency's own reference for the subject: a referral's case_ref or a consent's subject.
    #[arg(long)]
    pub subject: String,
    /// Only disclosures at or after this time: YYYY-MM-DD (midnight UTC) or RFC 3339.
    #[arg(long, value_parser = timestamp)]
    pub since: Option<prost_types::Timestamp>,
    /// How to print the accounting.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print JSON (the same as `--format json`, as every list command takes it).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// Output format of `tatmx audit disclosures`.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Aligned columns, for reading.
    Table,
    /// JSON, for programs.
    Json,
    /// CSV (RFC 4180), for spreadsheets and records requests.
    Csv,
}

/// A `--since` value: `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time.
fn timestamp(text: &str) -> anyhow::Result<prost_types::Timestamp> {
    let at = match OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        Ok(at) => at,
        Err(_) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(text, format)
                .context("not a date (YYYY-MM-DD) or an RFC 3339 time")?
                .midnight()
                .assume_utc()
        }
    };
    Ok(prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        // Below one second and always non-negative, so it fits.
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    })
}

/// Runs a `tatmx audit` command.
pub async fn run(socket: &Path, cmd: AuditCommand) -> anyhow::Result<()> {
    let mut admin = trust::client(socket).await?;
    match cmd {
        AuditCommand::Verify(VerifyArgs {
            disclosure: Some(disclosure),
            json,
        }) => {
            let proof = admin
                .prove_disclosure(pb::ProveDisclosureRequest { disclosure })
                .await
                .map_err(refused)?
                .into_inner();
            let status = admin
                .trust_status(pb::TrustStatusRequest {})
                .await
                .map_err(refused)?
                .into_inner();
            let own: Vec<String> = status
                .certificate
                .iter()
                .chain(&status.memberships)
                .map(|c| c.identity.clone())
                .collect();
            let verdict = check_disclosure(&proof, &own);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&proof_json(&proof, &verdict))?
                );
            } else {
                println!("{}", proof_text(&proof, &verdict));
            }
            if verdict.is_err() {
                bail!("the disclosure is not proven to be in the signed audit log");
            }
        }
        AuditCommand::Verify(args) => {
            let v = admin
                .verify_audit(pb::VerifyAuditRequest {})
                .await
                .map_err(refused)?
                .into_inner();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&verification_json(&v))?);
            } else {
                println!("{}", verification_text(&v));
            }
            if !v.ok {
                bail!("the audit chain failed verification");
            }
        }
        AuditCommand::Log(args) => {
            let entries = admin
                .query_audit(pb::QueryAuditRequest {
                    since: args.since,
                    kind: args.kind.unwrap_or_default(),
                    peer: args.peer.unwrap_or_default(),
                    limit: args.limit,
                })
                .await
                .map_err(refused)?
                .into_inner()
                .entries;
            if args.json {
                let rows: Vec<_> = entries.iter().map(entry_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if entries.is_empty() {
                println!("No audit entries match.");
            } else {
                print!("{}", entry_table(&entries));
            }
        }
        AuditCommand::Disclosures(args) => {
            let disclosures = admin
                .account_disclosures(pb::AccountDisclosuresRequest {
                    subject: args.subject.clone(),
                    since: args.since,
                })
                .await
                .map_err(refused)?
                .into_inner()
                .disclosures;
            let format = if args.json { Format::Json } else { args.format };
            match format {
                Format::Json => {
                    let rows: Vec<_> = disclosures.iter().map(disclosure_json).collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                }
                Format::Csv => print!("{}", disclosure_csv(&disclosures)),
                Format::Table => {
                    println!(
                        "Accounting of disclosures about {} recorded on this node \
                         (HIPAA 45 CFR 164.528, FERPA 34 CFR 99.32).",
                        args.subject
                    );
                    if disclosures.is_empty() {
                        println!(
                            "No disclosures about {} are recorded on this node.",
                            args.subject
                        );
                    } else {
                        print!("{}", disclosure_table(&disclosures));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The outcome of a verification as one line.
pub fn verification_text(v: &pb::AuditVerification) -> String {
    if v.ok {
        let last = match &v.last_checkpoint_at {
            Some(at) => format!(" (last at {})", output::time(Some(at))),
            None => String::new(),
        };
        let count =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let last_head = match &v.last_tree_head_at {
            Some(at) => format!(
                " (last over entries 1 to {} at {})",
                v.last_tree_size,
                output::time(Some(at))
            ),
            None => String::new(),
        };
        format!(
            "Audit chain intact: {}, {}{last}; Merkle tree intact: {}{last_head}.",
            count(v.entries, "entry", "entries"),
            count(v.checkpoints, "signed checkpoint", "signed checkpoints"),
            count(v.tree_heads, "signed tree head", "signed tree heads"),
        )
    } else if v.first_bad_seq == 0 {
        format!("Audit chain BROKEN: {}", v.problem)
    } else {
        format!(
            "Audit chain BROKEN at entry {}: {}",
            v.first_bad_seq, v.problem
        )
    }
}

fn verification_json(v: &pb::AuditVerification) -> serde_json::Value {
    json!({
        "ok": v.ok,
        "entries": v.entries,
        "checkpoints": v.checkpoints,
        "last_checkpoint_at": output::time_json(v.last_checkpoint_at.as_ref()),
        "tree_heads": v.tree_heads,
        "last_tree_size": (v.last_tree_size != 0).then_some(v.last_tree_size),
        "last_tree_head_at": output::time_json(v.last_tree_head_at.as_ref()),
        "first_bad_seq": (v.first_bad_seq != 0).then_some(v.first_bad_seq),
        "problem": (!v.problem.is_empty()).then_some(&v.problem),
    })
}

/// What a disclosure's proof showed, checked here.
#[derive(Debug, PartialEq, Eq)]
pub struct Proven {
    /// The entry.
    seq: u64,
    /// How many entries the tree head covers.
    tree_size: u64,
    /// How many hashes the inclusion proof has.
    hashes: usize,
    /// Who signed the head: the node's identity, from its certificate.
    signer: String,
    /// The signing certificate's serial and SHA-256 fingerprint.
    serial: String,
    fingerprint: String,
}

/// Checks a disclosure's proof as the node gave it, trusting none of it: the entry's leaf is
/// recomputed from its columns, the inclusion proof followed to the tree head's root, the
/// head's signature verified with the certificate in it, and that certificate must name the
/// head's team, which must be this node (one of `own`, its identities).
pub fn check_disclosure(proof: &pb::DisclosureProof, own: &[String]) -> Result<Proven, String> {
    let proof = tatmx_node::convert::inclusion_proof_from_proto(proof.clone())
        .map_err(|e| format!("the node's answer is malformed: {e}"))?;
    if !matches!(proof.entry.kind.as_str(), "disclosure" | "status-change") {
        return Err(format!(
            "entry {} records a {}, not a disclosure",
            proof.entry.seq, proof.entry.kind
        ));
    }
    proof.check().map_err(|e| e.to_string())?;
    let summary = tatmx_certs::CertificateSummary::from_der(&proof.head.certificate)
        .map_err(|e| format!("the tree head's certificate cannot be read: {e}"))?;
    let signer = summary.identity.map(|i| i.uri()).unwrap_or_default();
    if signer != proof.head.team {
        return Err(format!(
            "the tree head names {} but its certificate is {}'s",
            proof.head.team,
            if signer.is_empty() { "nobody" } else { &signer }
        ));
    }
    if !own.contains(&signer) {
        return Err(format!(
            "the tree head was signed by {signer}, which is not this node"
        ));
    }
    Ok(Proven {
        seq: proof.entry.seq,
        tree_size: proof.head.tree_size,
        hashes: proof.path.len(),
        signer,
        serial: summary.serial_hex,
        fingerprint: summary.fingerprint_sha256,
    })
}

/// What the entry records, in a few words: the kind of disclosure, to whom, about what.
fn described(entry: &pb::ProvenEntry) -> String {
    let detail = detail(&entry.detail_json);
    let what = match detail["message"].as_str() {
        Some(message) => format!("a disclosure ({message})"),
        None if entry.kind == "status-change" => "a status update sent with case data".into(),
        None => "a disclosure".into(),
    };
    let to = entry
        .peer
        .as_deref()
        .map(|p| format!(" to {}", output::team(p)))
        .unwrap_or_default();
    let about = entry
        .referral_id
        .as_deref()
        .map(|r| format!(", referral {r}"))
        .unwrap_or_default();
    format!("{what}{to}{about}")
}

fn millis_time(at_ms: i64) -> String {
    output::time(Some(&prost_types::Timestamp {
        seconds: at_ms.div_euclid(1000),
        nanos: 0,
    }))
}

/// The outcome of a disclosure's proof, in plain words.
pub fn proof_text(proof: &pb::DisclosureProof, verdict: &Result<Proven, String>) -> String {
    let Some(entry) = &proof.entry else {
        return "NOT PROVEN: the node gave no entry.".into();
    };
    let head = proof.tree_head.as_ref();
    let signed_at = output::time(head.and_then(|h| h.at.as_ref()));
    let written = format!(
        "Entry {}, written {}: {}.",
        entry.seq,
        millis_time(entry.at_ms),
        described(entry)
    );
    match verdict {
        Ok(p) => format!(
            "Proven: audit entry {seq} is in this node's signed audit log.\n  {written}\n  \
             Its leaf, recomputed from the entry, leads through an inclusion proof of {hashes} \
             to the root of the tree head over entries 1 to {size}, signed at {signed_at}.\n  \
             The head's signature verifies with the certificate of {signer} (serial {serial}, \
             SHA-256 {fingerprint}).\n  \
             Keep `tatmx audit verify --disclosure {seq} --json`: anyone holding the federation's \
             CA certificate can check it again later.",
            seq = p.seq,
            hashes = match p.hashes {
                1 => "1 hash".to_owned(),
                n => format!("{n} hashes"),
            },
            size = p.tree_size,
            signer = p.signer,
            serial = p.serial,
            fingerprint = p.fingerprint,
        ),
        Err(problem) => format!(
            "NOT PROVEN: audit entry {} is not shown to be in this node's signed audit log.\n  \
             {written}\n  {problem}.",
            entry.seq
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The proof and its outcome as JSON: everything needed to check it again elsewhere.
fn proof_json(proof: &pb::DisclosureProof, verdict: &Result<Proven, String>) -> serde_json::Value {
    let head = proof.tree_head.clone().unwrap_or_default();
    let signature = head.signature.clone().unwrap_or_default();
    json!({
        "proven": verdict.is_ok(),
        "problem": verdict.as_ref().err(),
        "entry": proof.entry.as_ref().map(|e| json!({
            "seq": e.seq,
            "at_ms": e.at_ms,
            "kind": e.kind,
            "actor": e.actor,
            "peer": e.peer,
            "referral_id": e.referral_id,
            "subject": e.subject,
            "detail_json": e.detail_json,
        })),
        "inclusion_proof": proof.path.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        "tree_head": {
            "team": head.team,
            "tree_size": head.tree_size,
            "root_hash": hex(&head.root_hash),
            "at": output::time_json(head.at.as_ref()),
            "at_ms": head.at.as_ref().map(|t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000)),
            "signature_scheme": signature.scheme,
            "signature": hex(&signature.value),
            "certificate_sha256": hex(&signature.certificate_sha256),
            "certificate_der": hex(&signature.certificate),
        },
    })
}

/// An entry's detail as JSON, or its raw text if it does not parse.
fn detail(text: &str) -> serde_json::Value {
    if text.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

fn entry_json(e: &pb::AuditEntry) -> serde_json::Value {
    json!({
        "seq": e.seq,
        "at": output::time_json(e.at.as_ref()),
        "kind": e.kind,
        "actor": e.actor,
        "peer": (!e.peer.is_empty()).then_some(&e.peer),
        "referral_id": (!e.referral_id.is_empty()).then_some(&e.referral_id),
        "subject": (!e.subject.is_empty()).then_some(&e.subject),
        "detail": detail(&e.detail_json),
        "hash": e.hash,
    })
}

fn entry_table(entries: &[pb::AuditEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                output::time(e.at.as_ref()),
                e.kind.clone(),
                e.actor.clone(),
                or_dash(output::team(&e.peer)),
                or_dash(&e.referral_id),
            ]
        })
        .collect();
    output::table(&["SEQ", "AT", "KIND", "ACTOR", "PEER", "REFERRAL"], &rows)
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".into()
    } else {
        text.to_owned()
    }
}

fn disclosure_json(d: &pb::DisclosureRecord) -> serde_json::Value {
    json!({
        "at": output::time_json(d.at.as_ref()),
        "recipient": d.recipient,
        "kind": d.kind,
        "purpose": output::purpose(d.purpose),
        "legal_basis": output::basis(d.legal_basis),
        "consent_id": (!d.consent_id.is_empty()).then_some(&d.consent_id),
        "categories": output::categories(&d.categories),
        "withheld": output::categories(&d.withheld),
        "rules": d.rules,
        "referral_id": d.referral_id,
        "audit_seq": d.audit_seq,
    })
}

const DISCLOSURE_HEADERS: [&str; 10] = [
    "AT",
    "RECIPIENT",
    "KIND",
    "PURPOSE",
    "BASIS",
    "CONSENT",
    "CATEGORIES",
    "WITHHELD",
    "REFERRAL",
    "AUDIT SEQ",
];

pub fn disclosure_table(disclosures: &[pb::DisclosureRecord]) -> String {
    let rows: Vec<Vec<String>> = disclosures
        .iter()
        .map(|d| {
            vec![
                output::time(d.at.as_ref()),
                output::team(&d.recipient).to_owned(),
                d.kind.clone(),
                output::purpose(d.purpose),
                output::basis(d.legal_basis),
                or_dash(&d.consent_id),
                or_dash(&output::categories(&d.categories).join(",")),
                or_dash(&output::categories(&d.withheld).join(",")),
                d.referral_id.clone(),
                d.audit_seq.to_string(),
            ]
        })
        .collect();
    output::table(&DISCLOSURE_HEADERS, &rows)
}

/// The accounting as CSV: a header line, then one line per disclosure, lines ending in CRLF.
/// Times are RFC 3339 and recipients full identities, so that the file stands on its own.
fn disclosure_csv(disclosures: &[pb::DisclosureRecord]) -> String {
    // Column names a spreadsheet or script can use as field names.
    let mut out = csv_line(
        DISCLOSURE_HEADERS
            .iter()
            .map(|h| h.to_ascii_lowercase().replace(' ', "_")),
    );
    for d in disclosures {
        let at = match output::time_json(d.at.as_ref()) {
            serde_json::Value::String(at) => at,
            _ => String::new(),
        };
        out.push_str(&csv_line([
            at,
            d.recipient.clone(),
            d.kind.clone(),
            output::purpose(d.purpose),
            output::basis(d.legal_basis),
            d.consent_id.clone(),
            output::categories(&d.categories).join(","),
            output::categories(&d.withheld).join(","),
            d.referral_id.clone(),
            d.audit_seq.to_string(),
        ]));
    }
    out
}

fn csv_line(fields: impl IntoIterator<Item = String>) -> String {
    let mut line = fields
        .into_iter()
        .map(|f| csv_field(&f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// One CSV field after RFC 4180: quoted when it holds a comma, a quote or a line break, with
/// each inner quote doubled.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("county-core"), "county-core");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("THREAT,BEHAVIOR"), "\"THREAT,BEHAVIOR\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\r"), "\"cr\r\"");
        assert_eq!(
            csv_line(["a".to_owned(), "b,c".to_owned()]),
            "a,\"b,c\"\r\n"
        );
    }

    #[test]
    fn since_takes_a_date_or_an_rfc3339_time() {
        assert_eq!(timestamp("2026-03-01").unwrap().seconds, 1_772_323_200);
        let t = timestamp("2026-03-01T01:00:00.5+01:00").unwrap();
        assert_eq!((t.seconds, t.nanos), (1_772_323_200, 500_000_000));
        assert!(timestamp("03/01/2026").is_err());
    }

    #[test]
    fn detail_falls_back_to_the_raw_text() {
        assert_eq!(detail(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(detail("not json"), json!("not json"));
        assert_eq!(detail(""), serde_json::Value::Null);
    }
}
