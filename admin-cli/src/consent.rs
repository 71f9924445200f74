//! `tatmx consent ...`: recording, listing, showing and revoking consents on the agency's node.
//!
//! A consent file is TOML:
//!
//! ```toml
//! subject = "CASE-2026-0042"          # the agency's reference for the subject
//! grantor = "guardian"                # self | guardian
//! grantor_name = "Pat Example"        # when a guardian consents
//! valid_until = "2027-11-01"          # optional, YYYY-MM-DD
//! [provision]
//! kind = "permit"
//! teams = ["county-core"]             # team ids or spiffe:// identities; empty = any
//! disciplines = []                    # such as "law-enforcement"; empty = any
//! purposes = ["threat-assessment"]    # empty = any
//! categories = []                     # such as "MENTAL_HEALTH"; empty = all
//! [[provision.provisions]]            # exceptions
//! kind = "deny"
//! categories = ["MENTAL_HEALTH"]
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;
use tatmx_proto::v1 as pb;
use time::OffsetDateTime;

use crate::errors::{self, refused};
use crate::output;

/// `tatmx consent ...`
#[derive(Subcommand)]
pub enum ConsentCommand {
    /// Record a consent from a TOML file.
    Record(FileArgs),
    /// Every consent on this node, newest first.
    List(JsonArgs),
    /// One consent.
    Show(IdArgs),
    /// Revoke a consent: from now on it is treated as no consent, and every referral shared
    /// under it is retracted from each team that received it, hop by hop.
    Revoke(IdArgs),
    /// How far the retraction of a revoked consent has got: every copy, and who has purged.
    Retraction(RetractionArgs),
}

/// `tatmx consent retraction`
#[derive(Args)]
pub struct RetractionArgs {
    /// The consent id.
    pub id: String,
    /// Wait up to this many seconds for every copy to be acknowledged; exits non-zero if some
    /// are still outstanding then.
    #[arg(long)]
    pub wait: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A file argument.
#[derive(Args)]
pub struct FileArgs {
    /// The consent file.
    pub file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A `--json` flag.
#[derive(Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A consent id.
#[derive(Args)]
pub struct IdArgs {
    /// The consent id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentFile {
    subject: String,
    grantor: String,
    #[serde(default)]
    grantor_name: String,
    valid_from: Option<String>,
    valid_until: Option<String>,
    provision: ProvisionFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionFile {
    kind: String,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    teams: Vec<String>,
    #[serde(default)]
    disciplines: Vec<String>,
    #[serde(default)]
    purposes: Vec<String>,
    #[serde(default)]
    provisions: Vec<ProvisionFile>,
}

/// A category name such as `MENTAL_HEALTH` on the wire.
pub fn category(name: &str) -> anyhow::Result<i32> {
    pb::DataCategory::from_str_name(&format!("DATA_CATEGORY_{name}"))
        .filter(|c| *c != pb::DataCategory::Unspecified)
        .map(Into::into)
        .with_context(|| format!("unknown category {name:?}"))
}

/// A purpose name such as `threat-assessment` on the wire.
pub fn purpose(name: &str) -> anyhow::Result<i32> {
    pb::Purpose::from_str_name(&format!(
        "PURPOSE_{}",
        name.to_uppercase().replace('-', "_")
    ))
    .filter(|p| *p != pb::Purpose::Unspecified)
    .map(Into::into)
    .with_context(|| format!("unknown purpose {name:?}"))
}

/// A consent valid until a date is valid through that whole day, as a person reads it (and
/// as the console records it): 23:59:59 UTC, not the midnight that begins it. So a consent
/// given today "until today" is in force, rather than refused as ending before it began.
fn through_the_day(start: prost_types::Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: start.seconds + 86_399,
        nanos: 0,
    }
}

fn date(text: &str, field: &str) -> anyhow::Result<prost_types::Timestamp> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(text, format)
        .with_context(|| format!("{field}: not a date in the form YYYY-MM-DD"))?;
    let at = day.midnight().assume_utc();
    Ok(prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: 0,
    })
}

fn provision(p: &ProvisionFile) -> anyhow::Result<pb::Provision> {
    Ok(pb::Provision {
        r#type: match p.kind.as_str() {
            "permit" => pb::ProvisionType::Permit,
            "deny" => pb::ProvisionType::Deny,
            other => bail!("provision kind {other:?}: use permit or deny"),
        }
        .into(),
        categories: p
            .categories
            .iter()
            .map(|c| category(c))
            .collect::<Result<_, _>>()?,
        recipient_teams: p.teams.clone(),
        recipient_disciplines: p.disciplines.clone(),
        purposes: p
            .purposes
            .iter()
            .map(|c| purpose(c))
            .collect::<Result<_, _>>()?,
        provisions: p
            .provisions
            .iter()
            .map(provision)
            .collect::<Result<_, _>>()?,
    })
}

/// Reads a consent file into the wire form.
pub fn read_consent_file(path: &Path) -> anyhow::Result<pb::Consent> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: ConsentFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid consent file", path.display()))?;
    Ok(pb::Consent {
        subject: file.subject,
        grantor: match file.grantor.as_str() {
            "self" => pb::Grantor::Self_,
            "guardian" => pb::Grantor::Guardian,
            other => bail!("grantor {other:?}: use self or guardian"),
        }
        .into(),
        grantor_name: file.grantor_name,
        provision: Some(provision(&file.provision)?),
        valid_from: file
            .valid_from
            .as_deref()
            .map(|d| date(d, "valid_from"))
            .transpose()?,
        valid_until: file
            .valid_until
            .as_deref()
            .map(|d| date(d, "valid_until").map(through_the_day))
            .transpose()?,
        ..Default::default()
    })
}

fn provision_json(p: &pb::Provision) -> serde_json::Value {
    json!({
        "kind": if p.r#type == pb::ProvisionType::Deny as i32 { "deny" } else { "permit" },
        "categories": output::categories(&p.categories),
        "teams": p.recipient_teams,
        "disciplines": p.recipient_disciplines,
        "purposes": p.purposes.iter().map(|v| output::purpose(*v)).collect::<Vec<_>>(),
        "provisions": p.provisions.iter().map(provision_json).collect::<Vec<_>>(),
    })
}

/// A consent as JSON.
pub fn consent_json(c: &pb::Consent) -> serde_json::Value {
    json!({
        "id": c.id,
        "subject": c.subject,
        "grantor": if c.grantor == pb::Grantor::Guardian as i32 { "guardian" } else { "self" },
        "grantor_name": (!c.grantor_name.is_empty()).then_some(&c.grantor_name),
        "valid_from": output::time_json(c.valid_from.as_ref()),
        "valid_until": output::time_json(c.valid_until.as_ref()),
        "revoked_at": output::time_json(c.revoked_at.as_ref()),
        "recorded_at": output::time_json(c.recorded_at.as_ref()),
        "state": state(c),
        "provision": c.provision.as_ref().map(provision_json),
    })
}

fn state(c: &pb::Consent) -> &'static str {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if c.revoked_at.is_some() {
        "revoked"
    } else if c.valid_until.as_ref().is_some_and(|t| t.seconds <= now) {
        "expired"
    } else if c.valid_from.as_ref().is_some_and(|t| t.seconds > now) {
        "not yet valid"
    } else {
        "in force"
    }
}

/// Runs a `tatmx consent` command.
pub async fn run(socket: &Path, cmd: ConsentCommand) -> anyhow::Result<()> {
    let mut client = errors::agency(socket).await?;
    match cmd {
        ConsentCommand::Record(args) => {
            let consent = read_consent_file(&args.file)?;
            let recorded = client
                .record_consent(pb::RecordConsentRequest {
                    consent: Some(consent),
                })
                .await
                .map_err(refused)?
                .into_inner();
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&consent_json(&recorded))?
                );
            } else {
                println!("Consent {} recorded.", recorded.id);
                println!(
                    "Name it in a referral with consent_ref = \"{}\" and subject_ref = \"{}\".",
                    recorded.id, recorded.subject
                );
            }
        }
        ConsentCommand::List(args) => {
            let consents = client
                .list_consents(pb::ListConsentsRequest { limit: 0 })
                .await
                .map_err(refused)?
                .into_inner()
                .consents;
            if args.json {
                let rows: Vec<_> = consents.iter().map(consent_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if consents.is_empty() {
                println!("No consents are recorded on this node.");
            } else {
                let rows: Vec<Vec<String>> = consents
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            c.subject.clone(),
                            state(c).into(),
                            output::time(c.valid_until.as_ref()),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    output::table(&["CONSENT", "SUBJECT", "STATE", "VALID UNTIL"], &rows)
                );
            }
        }
        ConsentCommand::Show(args) => {
            let consent = client
                .get_consent(pb::GetConsentRequest {
                    consent_id: args.id,
                })
                .await
                .map_err(refused)?
                .into_inner();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&consent_json(&consent))?);
            } else {
                println!("Consent {} ({})", consent.id, state(&consent));
                println!("{}", serde_json::to_string_pretty(&consent_json(&consent))?);
                if consent.revoked_at.is_some() {
                    let progress = retraction(&mut client, &consent.id).await?;
                    print!("{}", progress_text(&progress));
                }
            }
        }
        ConsentCommand::Retraction(args) => {
            let deadline =
                std::time::Instant::now() + std::time::Duration::from_secs(args.wait.unwrap_or(0));
            let progress = loop {
                let progress = retraction(&mut client, &args.id).await?;
                if progress.complete || std::time::Instant::now() >= deadline {
                    break progress;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            };
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&progress_json(&progress))?
                );
            } else {
                print!("{}", progress_text(&progress));
            }
            if args.wait.is_some() && !progress.complete {
                bail!("the retraction is not complete yet");
            }
        }
        ConsentCommand::Revoke(args) => {
            let consent = client
                .revoke_consent(pb::RevokeConsentRequest {
                    consent_id: args.id,
                })
                .await
                .map_err(refused)?
                .into_inner();
            let progress = retraction(&mut client, &consent.id).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "consent": consent_json(&consent),
                        "retraction": progress_json(&progress),
                    }))?
                );
            } else {
                println!(
                    "Consent {} revoked at {}; from now on it is treated as no consent.",
                    consent.id,
                    output::time(consent.revoked_at.as_ref())
                );
                print!("{}", progress_text(&progress));
                if !progress.complete {
                    println!(
                        "Follow it with: tatmx consent retraction {} --wait 60",
                        consent.id
                    );
                }
            }
        }
    }
    Ok(())
}

async fn retraction(
    client: &mut tatmx_proto::v1::agency_client::AgencyClient<tonic::transport::Channel>,
    consent_id: &str,
) -> anyhow::Result<pb::RetractionProgress> {
    Ok(client
        .get_retraction(pb::GetRetractionRequest {
            consent_id: consent_id.to_owned(),
        })
        .await
        .map_err(refused)?
        .into_inner())
}

/// A retraction's progress as lines for staff.
pub fn progress_text(progress: &pb::RetractionProgress) -> String {
    let acknowledged = progress.targets.iter().filter(|t| t.acknowledged).count();
    let mut out = format!(
        "Retraction {}: {acknowledged} of {} copies purged and acknowledged{}.\n",
        progress.retraction_id,
        progress.targets.len(),
        if progress.complete { "; complete" } else { "" }
    );
    if progress.targets.is_empty() {
        out.push_str("Nothing had been shared under this consent.\n");
        return out;
    }
    let rows: Vec<Vec<String>> = progress
        .targets
        .iter()
        .map(|t| {
            let target = t.target.clone().unwrap_or_default();
            vec![
                output::team(&target.team).to_owned(),
                target.referral_id,
                output::team(&t.reported_by).to_owned(),
                match (t.acknowledged, t.held) {
                    (false, _) => "waiting".into(),
                    (true, true) => format!("purged {}", output::time(t.purged_at.as_ref())),
                    (true, false) => "nothing held".into(),
                },
            ]
        })
        .collect();
    out.push_str(&output::table(
        &["TEAM", "REFERRAL", "REPORTED BY", "STATE"],
        &rows,
    ));
    out
}

fn progress_json(progress: &pb::RetractionProgress) -> serde_json::Value {
    json!({
        "retraction_id": progress.retraction_id,
        "consent_id": progress.consent_id,
        "started_at": output::time_json(progress.started_at.as_ref()),
        "complete": progress.complete,
        "targets": progress.targets.iter().map(|t| {
            let target = t.target.clone().unwrap_or_default();
            json!({
                "team": target.team,
                "referral_id": target.referral_id,
                "reported_by": t.reported_by,
                "acknowledged": t.acknowledged,
                "held": t.held,
                "purged_at": output::time_json(t.purged_at.as_ref()),
            })
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consent_until_a_date_is_in_force_through_that_day() {
        let until = date("2027-11-30", "valid_until")
            .map(through_the_day)
            .expect("a date");
        let end = time::OffsetDateTime::from_unix_timestamp(until.seconds).expect("a time");
        assert_eq!(end.to_string(), "2027-11-30 23:59:59.0 +00:00:00");
        assert!(date("30/11/2027", "valid_until").is_err());
    }
}
