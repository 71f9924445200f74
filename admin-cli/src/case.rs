//! `tatmx referral ask|answer|inform|plan|reassess|due`: a case in motion, over the Agency
//! socket, and what `tatmx referral show` prints of a case's messages and merged content.
//!
//! Each command sends one case message on a referral this team holds, to the referral's other
//! team: filtered like a referral, with `--dry-run` showing what would go and why, and nothing
//! sent.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use tatmx_node::category::DataCategory;
use tatmx_node::referral::ReferralContent;
use tatmx_proto::v1 as pb;

use crate::agency::describe_decisions;
use crate::errors::{self, refused};
use crate::output;

/// Arguments of `tatmx referral ask`.
#[derive(Args)]
pub struct AskArgs {
    /// The referral id (one this team received).
    pub id: String,
    /// What you want to know. Free text: it reaches the other team only if the policy lets free
    /// text (NARRATIVE) go there; preview with --dry-run.
    #[arg(long)]
    pub question: String,
    /// A category of information wanted, such as BEHAVIOR or EDUCATION_RECORD; repeat for more.
    /// Always reaches the other team.
    #[arg(long = "want", value_name = "CATEGORY")]
    pub want: Vec<String>,
    /// Show what would go, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx referral answer`.
#[derive(Args)]
pub struct AnswerArgs {
    /// The referral id (one this team sent).
    pub id: String,
    /// The id of the information request this answers (from `tatmx referral show`).
    #[arg(long, value_name = "REQUEST_ID")]
    pub to: Option<String>,
    /// The content, as the [content] sections of a referral file (TOML or .json).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// A free-text answer (NARRATIVE); added to the file's content.
    #[arg(long)]
    pub text: Option<String>,
    /// Show what would go, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx referral inform`.
#[derive(Args)]
pub struct InformArgs {
    /// The referral id (sent or received).
    pub id: String,
    /// tripwire-report, precipitating-event or protective-factor.
    #[arg(long)]
    pub kind: String,
    /// What happened (NARRATIVE).
    #[arg(long)]
    pub text: Option<String>,
    /// Comes first in the other team's inbox.
    #[arg(long)]
    pub urgent: bool,
    /// Case data that goes with it, as the [content] sections of a referral file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Show what would go, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx referral plan`.
#[derive(Args)]
pub struct PlanArgs {
    /// The referral id (one this core team received and accepted).
    pub id: String,
    /// An intervention and the team responsible, as CODE:TEAM (such as
    /// check-ins:lincoln-high); repeat for more. Codes: check-ins, safety-plan,
    /// mental-health-referral, counselling, school-support-plan, supervision, monitoring,
    /// restrict-weapons-access, family-engagement, mentoring, law-enforcement-contact,
    /// target-protection, other.
    #[arg(long = "intervention", value_name = "CODE:TEAM", required = true)]
    pub interventions: Vec<String>,
    /// The next reassessment, YYYY-MM-DD (today or later).
    #[arg(long)]
    pub next: String,
    /// Show what would go, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx referral reassess`.
#[derive(Args)]
pub struct ReassessArgs {
    /// The referral id.
    pub id: String,
    /// The level of concern's scheme, such as CSTAG.
    #[arg(long)]
    pub scheme: String,
    /// The new level of concern, such as "transient".
    #[arg(long)]
    pub level: String,
    /// An intervention of the plan from now on, as CODE:TEAM; repeat for more.
    #[arg(long = "intervention", value_name = "CODE:TEAM", required = true)]
    pub interventions: Vec<String>,
    /// The next reassessment, YYYY-MM-DD (today or later).
    #[arg(long)]
    pub next: String,
    /// Show what would go, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx referral due`.
#[derive(Args)]
pub struct DueArgs {
    /// How many days ahead count as coming due.
    #[arg(long, default_value_t = 14)]
    pub within: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tatmx referral ask`
pub async fn ask(socket: &Path, args: AskArgs) -> anyhow::Result<()> {
    let wanted = args
        .want
        .iter()
        .map(|name| category(name).map(|c| tatmx_node::convert::category_to_proto(c).into()))
        .collect::<anyhow::Result<Vec<i32>>>()?;
    let response = errors::agency(socket)
        .await?
        .request_information(pb::RequestInformationRequest {
            referral_id: args.id,
            question: args.question,
            wanted,
            dry_run: args.dry_run,
        })
        .await
        .map_err(refused)?
        .into_inner();
    sent(&response, "Information request", args.json)
}

/// `tatmx referral answer`
pub async fn answer(socket: &Path, args: AnswerArgs) -> anyhow::Result<()> {
    let content = content(args.file.as_deref(), args.text)?;
    let response = errors::agency(socket)
        .await?
        .send_supplement(pb::SendSupplementRequest {
            referral_id: args.id,
            answers: args.to.unwrap_or_default(),
            content: Some(tatmx_node::convert::content_to_proto(&content)),
            dry_run: args.dry_run,
        })
        .await
        .map_err(refused)?
        .into_inner();
    sent(&response, "Supplement", args.json)
}

/// `tatmx referral inform`
pub async fn inform(socket: &Path, args: InformArgs) -> anyhow::Result<()> {
    let kind = match args.kind.as_str() {
        "tripwire-report" => pb::InformationKind::TripwireReport,
        "precipitating-event" => pb::InformationKind::PrecipitatingEvent,
        "protective-factor" => pb::InformationKind::ProtectiveFactor,
        other => anyhow::bail!(
            "--kind {other:?}: use tripwire-report, precipitating-event or protective-factor"
        ),
    };
    let content = match &args.file {
        Some(file) => content(Some(file), None)?,
        None => ReferralContent::default(),
    };
    let response = errors::agency(socket)
        .await?
        .send_new_information(pb::SendNewInformationRequest {
            referral_id: args.id,
            kind: kind.into(),
            urgent: args.urgent,
            text: args.text.unwrap_or_default(),
            content: Some(tatmx_node::convert::content_to_proto(&content)),
            dry_run: args.dry_run,
        })
        .await
        .map_err(refused)?
        .into_inner();
    sent(&response, "New information", args.json)
}

/// `tatmx referral plan`
pub async fn plan(socket: &Path, args: PlanArgs) -> anyhow::Result<()> {
    let plan = plan_of(&args.interventions, args.next)?;
    let response = errors::agency(socket)
        .await?
        .record_management_plan(pb::RecordManagementPlanRequest {
            referral_id: args.id,
            plan: Some(plan),
            dry_run: args.dry_run,
        })
        .await
        .map_err(refused)?
        .into_inner();
    sent(&response, "Management plan", args.json)
}

/// `tatmx referral reassess`
pub async fn reassess(socket: &Path, args: ReassessArgs) -> anyhow::Result<()> {
    let plan = plan_of(&args.interventions, args.next)?;
    let response = errors::agency(socket)
        .await?
        .record_reassessment(pb::RecordReassessmentRequest {
            referral_id: args.id,
            level_of_concern: Some(pb::LevelOfConcern {
                scheme: args.scheme,
                value: args.level,
            }),
            plan: Some(plan),
            dry_run: args.dry_run,
        })
        .await
        .map_err(refused)?
        .into_inner();
    sent(&response, "Reassessment", args.json)
}

/// `tatmx referral due`
pub async fn due(socket: &Path, args: DueArgs) -> anyhow::Result<()> {
    let due = errors::agency(socket)
        .await?
        .list_due_reassessments(pb::ListDueReassessmentsRequest {
            within_days: args.within,
        })
        .await
        .map_err(refused)?
        .into_inner();
    if args.json {
        let row = |d: &pb::DueReassessment| {
            json!({
                "referral_id": d.referral_id,
                "other_team": d.other_team,
                "status": output::status(d.status),
                "next_reassessment": d.next_reassessment,
                "days": d.days,
                "message_id": d.message_id,
            })
        };
        return output::print_json(&json!({
            "today": due.today,
            "overdue": due.overdue.iter().map(row).collect::<Vec<_>>(),
            "coming_due": due.coming_due.iter().map(row).collect::<Vec<_>>(),
        }));
    }
    if due.overdue.is_empty() && due.coming_due.is_empty() {
        println!(
            "No reassessment is overdue or due in the next {} days (today is {}).",
            args.within, due.today
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = due
        .overdue
        .iter()
        .chain(&due.coming_due)
        .map(|d| {
            vec![
                d.next_reassessment.clone(),
                match d.days {
                    n if n < 0 => format!("{} overdue", -n),
                    0 => "today".into(),
                    n => format!("in {n}"),
                },
                output::status(d.status),
                output::team(&d.other_team).to_owned(),
                d.referral_id.clone(),
            ]
        })
        .collect();
    println!("Today is {}.", due.today);
    print!(
        "{}",
        output::table(&["DUE", "DAYS", "STATUS", "WITH", "REFERRAL"], &rows)
    );
    Ok(())
}

/// A category named on the command line, in any case, with - or _.
fn category(name: &str) -> anyhow::Result<DataCategory> {
    DataCategory::parse(&name.trim().to_ascii_uppercase().replace('-', "_")).with_context(|| {
        format!("--want {name:?}: not a category, such as BEHAVIOR or EDUCATION_RECORD")
    })
}

/// `CODE:TEAM` pairs and a date, as a plan.
fn plan_of(interventions: &[String], next: String) -> anyhow::Result<pb::ManagementPlan> {
    Ok(pb::ManagementPlan {
        interventions: interventions
            .iter()
            .map(|pair| {
                let (code, team) = pair.split_once(':').with_context(|| {
                    format!("--intervention {pair:?}: write it as CODE:TEAM, such as check-ins:lincoln-high")
                })?;
                Ok(pb::Intervention {
                    code: code.trim().to_owned(),
                    responsible_team: team.trim().to_owned(),
                })
            })
            .collect::<anyhow::Result<_>>()?,
        next_reassessment: next,
    })
}

/// Content from a file of referral sections (TOML, or JSON by extension), with a free-text
/// narrative laid over it.
fn content(file: Option<&Path>, text: Option<String>) -> anyhow::Result<ReferralContent> {
    let mut content = match file {
        None => ReferralContent::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let json = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"));
            let invalid = || format!("{} is not valid referral content", path.display());
            if json {
                serde_json::from_str(&text).with_context(invalid)?
            } else {
                toml::from_str(&text).with_context(invalid)?
            }
        }
    };
    if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
        content.narrative = Some(tatmx_node::referral::Narrative { text });
    }
    Ok(content)
}

/// What a sent (or previewed) case message prints.
fn sent(r: &pb::CaseMessageResponse, what: &str, json: bool) -> anyhow::Result<()> {
    if json {
        return output::print_json(&json!({
            "message_id": r.message_id,
            "dry_run": r.dry_run,
            "recipient": r.recipient,
            "categories_disclosed": output::categories(&r.categories_disclosed),
            "outgoing": r.outgoing.as_ref().map(message_json),
            "decisions": r.decisions.iter().map(|d| json!({
                "category": output::categories(&[d.category]).join(""),
                "outcome": decision_outcome(d.outcome),
                "rules": d.rules,
                "reasons": d.reasons,
            })).collect::<Vec<_>>(),
        }));
    }
    if !r.decisions.is_empty() {
        print!("{}", describe_decisions(&r.decisions));
    }
    let team = output::team(&r.recipient);
    if r.dry_run {
        println!("Preview only; nothing was sent. This would go to {team}:");
    } else {
        println!(
            "{what} {} stored and queued for delivery to {team}.",
            r.message_id
        );
    }
    if let Some(outgoing) = &r.outgoing {
        print!("{}", describe_body(outgoing, "  "));
    }
    Ok(())
}

fn decision_outcome(value: i32) -> String {
    pb::DisclosureOutcome::try_from(value)
        .map(|o| {
            o.as_str_name()
                .trim_start_matches("DISCLOSURE_OUTCOME_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// A case message's kind, as the CLI names it.
fn kind_of(message: &pb::CaseMessage) -> &'static str {
    use pb::case_message::Body;
    match &message.body {
        Some(Body::InformationRequest(_)) => "information-request",
        Some(Body::Supplement(_)) => "supplement",
        Some(Body::NewInformation(_)) => "new-information",
        Some(Body::ManagementPlan(_)) => "management-plan",
        Some(Body::Reassessment(_)) => "reassessment",
        None => "unknown",
    }
}

fn information_kind(value: i32) -> String {
    pb::InformationKind::try_from(value)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("INFORMATION_KIND_")
                .to_ascii_lowercase()
                .replace('_', "-")
        })
        .unwrap_or_else(|_| format!("unknown({value})"))
}

fn plan_lines(plan: &pb::ManagementPlan, indent: &str) -> String {
    let mut out = String::new();
    for i in &plan.interventions {
        out.push_str(&format!(
            "{indent}intervention: {} by {}\n",
            i.code,
            output::team(&i.responsible_team)
        ));
    }
    out.push_str(&format!(
        "{indent}next reassessment: {}\n",
        plan.next_reassessment
    ));
    out
}

fn content_lines(content: Option<&pb::ReferralContent>, indent: &str) -> String {
    let content = tatmx_node::convert::content_from_proto(content.cloned());
    let mut out = String::new();
    if let Ok(text) = toml::to_string_pretty(&content) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            out.push_str(&format!("{indent}{line}\n"));
        }
    }
    out
}

/// What a case message says, one fact per line, with the manifest of what was withheld.
pub fn describe_body(message: &pb::CaseMessage, indent: &str) -> String {
    use pb::case_message::Body;
    let mut out = String::new();
    match &message.body {
        Some(Body::InformationRequest(r)) => {
            if !r.question.is_empty() {
                out.push_str(&format!("{indent}question: {}\n", r.question));
            }
            if !r.wanted.is_empty() {
                out.push_str(&format!(
                    "{indent}wanted: {}\n",
                    output::categories(&r.wanted).join(", ")
                ));
            }
        }
        Some(Body::Supplement(s)) => {
            if !s.answers.is_empty() {
                out.push_str(&format!("{indent}answers: {}\n", s.answers));
            }
            out.push_str(&content_lines(s.content.as_ref(), indent));
        }
        Some(Body::NewInformation(n)) => {
            out.push_str(&format!(
                "{indent}kind: {}{}\n",
                information_kind(n.kind),
                if n.urgent { " (URGENT)" } else { "" }
            ));
            if !n.text.is_empty() {
                out.push_str(&format!("{indent}text: {}\n", n.text));
            }
            out.push_str(&content_lines(n.content.as_ref(), indent));
        }
        Some(Body::ManagementPlan(p)) => {
            if let Some(plan) = &p.plan {
                out.push_str(&plan_lines(plan, indent));
            }
        }
        Some(Body::Reassessment(r)) => {
            if let Some(level) = &r.level_of_concern {
                out.push_str(&format!(
                    "{indent}level of concern: {} ({})\n",
                    level.value, level.scheme
                ));
            }
            if let Some(plan) = &r.plan {
                out.push_str(&plan_lines(plan, indent));
            }
        }
        None => {}
    }
    for w in &message.withheld {
        out.push_str(&format!(
            "{indent}withheld: {} ({})\n",
            output::categories(&[w.category]).join(""),
            w.reasons.join("; ")
        ));
    }
    out
}

/// A case's messages and merged content, for `tatmx referral show`.
pub fn describe_case(r: &pb::ReferralRecord) -> String {
    let mut out = String::new();
    if r.case_messages.is_empty() {
        return out;
    }
    out.push_str("\nCase messages\n");
    for record in &r.case_messages {
        let Some(message) = &record.message else {
            continue;
        };
        let received = record.direction == pb::Direction::Inbound as i32;
        out.push_str(&format!(
            "  {}  {:<19} {} {}{}  [{}]\n",
            output::time(message.at.as_ref()),
            kind_of(message),
            if received { "from" } else { "by" },
            output::team(&message.author),
            if received && !record.seen {
                " (new)"
            } else {
                ""
            },
            message.id
        ));
        out.push_str(&describe_body(message, "      "));
    }
    let merged_from_messages = r.content_parts.iter().any(|p| !p.message_id.is_empty());
    if merged_from_messages {
        out.push_str("\nContent as it stands, with where each part came from\n");
        for part in &r.content_parts {
            out.push_str(&format!(
                "  {:<18} {} ({})\n",
                output::categories(&[part.category]).join(""),
                if part.message_id.is_empty() {
                    "the referral".to_owned()
                } else {
                    format!("case message {}", part.message_id)
                },
                output::time(part.at.as_ref())
            ));
        }
        out.push_str(&content_lines(r.merged_content.as_ref(), "  "));
    }
    out
}

/// A case message as JSON.
pub fn message_json(m: &pb::CaseMessage) -> Value {
    use pb::case_message::Body;
    let plan = |p: &pb::ManagementPlan| {
        json!({
            "interventions": p.interventions.iter().map(|i| json!({
                "code": i.code,
                "responsible_team": i.responsible_team,
            })).collect::<Vec<_>>(),
            "next_reassessment": p.next_reassessment,
        })
    };
    let content = |c: Option<&pb::ReferralContent>| {
        serde_json::to_value(tatmx_node::convert::content_from_proto(c.cloned()))
            .unwrap_or(Value::Null)
    };
    let body = match &m.body {
        Some(Body::InformationRequest(r)) => json!({
            "question": (!r.question.is_empty()).then_some(&r.question),
            "wanted": output::categories(&r.wanted),
        }),
        Some(Body::Supplement(s)) => json!({
            "answers": (!s.answers.is_empty()).then_some(&s.answers),
            "content": content(s.content.as_ref()),
        }),
        Some(Body::NewInformation(n)) => json!({
            "kind": information_kind(n.kind),
            "urgent": n.urgent,
            "text": (!n.text.is_empty()).then_some(&n.text),
            "content": content(n.content.as_ref()),
        }),
        Some(Body::ManagementPlan(p)) => json!({ "plan": p.plan.as_ref().map(plan) }),
        Some(Body::Reassessment(r)) => json!({
            "level_of_concern": r.level_of_concern.as_ref().map(|l| json!({"scheme": l.scheme, "value": l.value})),
            "plan": r.plan.as_ref().map(plan),
        }),
        None => Value::Null,
    };
    json!({
        "id": m.id,
        "referral_id": m.referral_id,
        "kind": kind_of(m),
        "author": m.author,
        "at": output::time_json(m.at.as_ref()),
        "body": body,
        "withheld": m.withheld.iter().map(|w| json!({
            "category": output::categories(&[w.category]).join(""),
            "reasons": w.reasons,
            "rules": w.rules,
        })).collect::<Vec<_>>(),
    })
}

/// A case's messages and merged content as JSON, for `tatmx referral show --json`.
pub fn case_json(r: &pb::ReferralRecord) -> (Value, Value, Value) {
    let messages = r
        .case_messages
        .iter()
        .map(|m| {
            json!({
                "message": m.message.as_ref().map(message_json),
                "direction": if m.direction == pb::Direction::Inbound as i32 { "received" } else { "sent" },
                "recorded_at": output::time_json(m.recorded_at.as_ref()),
                "seen": m.seen,
            })
        })
        .collect::<Vec<_>>();
    let merged = serde_json::to_value(tatmx_node::convert::content_from_proto(
        r.merged_content.clone(),
    ))
    .unwrap_or(Value::Null);
    let parts = r
        .content_parts
        .iter()
        .map(|p| {
            json!({
                "category": output::categories(&[p.category]).join(""),
                "message_id": (!p.message_id.is_empty()).then_some(&p.message_id),
                "at": output::time_json(p.at.as_ref()),
            })
        })
        .collect::<Vec<_>>();
    (Value::Array(messages), merged, Value::Array(parts))
}
