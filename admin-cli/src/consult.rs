//! `tatmx consult ...`: asking partner teams for advice, and answering as a partner.
//!
//! A request is a referral file (its case, de-identified before it leaves) plus a question,
//! fanned out to every partner named. Partners answer with advice and structured
//! recommendations, or decline; the requester sees every answer and who has not answered yet.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use tatmx_proto::v1 as pb;

use crate::agency;
use crate::errors::{self, refused};
use crate::output;

/// `tatmx consult ...`
#[derive(Subcommand)]
pub enum ConsultCommand {
    /// Ask one or more partner teams, de-identified.
    Request(RequestArgs),
    /// Answer a consultation this team received (its referral id), with advice.
    Respond(RespondArgs),
    /// Decline a consultation this team received.
    Decline(agency::ReasonArgs),
    /// Every consultation this team asked for.
    List(JsonArgs),
    /// One consultation: each partner's answer, and who has not answered.
    Show(ShowArgs),
}

/// Arguments of `tatmx consult request`.
#[derive(Args)]
pub struct RequestArgs {
    /// The case, as a referral file (.toml or .json); its recipient is ignored.
    pub file: PathBuf,
    /// A partner team (repeat for several).
    #[arg(long = "partner", required = true)]
    pub partners: Vec<String>,
    /// The question, without identifiers.
    #[arg(long)]
    pub question: String,
    /// When an answer is wanted, YYYY-MM-DD.
    #[arg(long)]
    pub due: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx consult respond`.
#[derive(Args)]
pub struct RespondArgs {
    /// This team's copy of the request (a referral id in `tatmx inbox`).
    pub id: String,
    /// The advice.
    #[arg(long)]
    pub advice: String,
    /// A structured recommendation, such as MH-EVAL (repeat for several).
    #[arg(long = "recommend")]
    pub recommendations: Vec<String>,
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

/// Arguments of `tatmx consult show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The consultation id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn consultation_json(c: &pb::Consultation) -> serde_json::Value {
    json!({
        "consultation_id": c.consultation_id,
        "question": c.question,
        "due": output::time_json(c.due.as_ref()),
        "answers": c.answers.iter().map(|a| json!({
            "partner": a.partner,
            "referral_id": a.referral_id,
            "status": output::status(a.status),
            "advice": a.answer.as_ref().map(|o| o.advice.clone()),
            "recommendations": a.answer.as_ref().map(|o| o.recommendations.clone()).unwrap_or_default(),
            "decline_reason": (!a.decline_reason.is_empty()).then_some(&a.decline_reason),
        })).collect::<Vec<_>>(),
        "awaiting": c.awaiting,
    })
}

fn describe(c: &pb::Consultation) -> String {
    let mut out = format!(
        "Consultation {}\n  question: {}\n  due:      {}\n",
        c.consultation_id,
        c.question,
        output::time(c.due.as_ref())
    );
    for a in &c.answers {
        out.push_str(&format!(
            "  {:<20} {}",
            output::team(&a.partner),
            output::status(a.status)
        ));
        if let Some(answer) = &a.answer {
            out.push_str(&format!(": {}", answer.advice));
            if !answer.recommendations.is_empty() {
                out.push_str(&format!(" [{}]", answer.recommendations.join(", ")));
            }
        }
        if !a.decline_reason.is_empty() {
            out.push_str(&format!(": {}", a.decline_reason));
        }
        out.push('\n');
    }
    if !c.awaiting.is_empty() {
        let waiting: Vec<&str> = c.awaiting.iter().map(|p| output::team(p)).collect();
        out.push_str(&format!("  not answered yet: {}\n", waiting.join(", ")));
    }
    out
}

/// Asks partners; returns the consultation.
pub async fn request(
    socket: &Path,
    case: &tatmx_node::NewReferral,
    partners: Vec<String>,
    question: String,
    due: Option<prost_types::Timestamp>,
) -> anyhow::Result<pb::Consultation> {
    let mut client = errors::agency(socket).await?;
    Ok(client
        .request_consultation(pb::RequestConsultationRequest {
            partners,
            question,
            due,
            referral: Some(tatmx_node::convert::new_referral_to_proto(case)),
        })
        .await
        .map_err(refused)?
        .into_inner())
}

/// One consultation this team asked for.
pub async fn show(socket: &Path, id: &str) -> anyhow::Result<pb::Consultation> {
    let mut client = errors::agency(socket).await?;
    Ok(client
        .get_consultation(pb::GetConsultationRequest {
            consultation_id: id.to_owned(),
        })
        .await
        .map_err(refused)?
        .into_inner())
}

/// Runs a `tatmx consult` command.
pub async fn run(socket: &Path, cmd: ConsultCommand) -> anyhow::Result<()> {
    match cmd {
        ConsultCommand::Request(args) => {
            let case = agency::read_referral_file(&args.file)?;
            let due = args
                .due
                .as_deref()
                .map(|d| {
                    let format = time::macros::format_description!("[year]-[month]-[day]");
                    time::Date::parse(d, format)
                        .context("--due: not a date in the form YYYY-MM-DD")
                        .map(|day| prost_types::Timestamp {
                            seconds: day.midnight().assume_utc().unix_timestamp(),
                            nanos: 0,
                        })
                })
                .transpose()?;
            let consultation = request(socket, &case, args.partners, args.question, due).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&consultation_json(&consultation))?
                );
            } else {
                println!(
                    "Consultation {} sent, de-identified, to {} partner(s).",
                    consultation.consultation_id,
                    consultation.answers.len()
                );
                print!("{}", describe(&consultation));
            }
        }
        ConsultCommand::Respond(args) => {
            let outcome = pb::AssessmentOutcome {
                advice: args.advice,
                recommendations: args.recommendations,
                ..Default::default()
            };
            let record = agency::update_status(
                socket,
                &args.id,
                pb::ReferralStatus::Completed,
                None,
                Some(outcome),
            )
            .await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"referral_id": args.id, "status": output::status(record.status)})
                    )?
                );
            } else {
                println!("Answer sent for {}.", args.id);
            }
        }
        ConsultCommand::Decline(args) => {
            agency::decide(socket, pb::ReferralStatus::Declined, args).await?;
        }
        ConsultCommand::List(args) => {
            let mut client = errors::agency(socket).await?;
            let all = client
                .list_consultations(pb::ListConsultationsRequest {})
                .await
                .map_err(refused)?
                .into_inner()
                .consultations;
            if args.json {
                let rows: Vec<_> = all.iter().map(consultation_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if all.is_empty() {
                println!("This team has asked for no consultations.");
            } else {
                for c in &all {
                    print!("{}", describe(c));
                }
            }
        }
        ConsultCommand::Show(args) => {
            let consultation = show(socket, &args.id).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&consultation_json(&consultation))?
                );
            } else {
                print!("{}", describe(&consultation));
            }
        }
    }
    Ok(())
}
