//! `tatmx referral ...`, `tatmx inbox` and `tatmx outbox`: staff commands over the Agency socket.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use tatmx_node::NewReferral;
use tatmx_proto::v1 as pb;

use crate::errors::{self, refused};
use crate::{case, output};

/// `tatmx referral ...`
#[derive(Subcommand)]
pub enum ReferralCommand {
    /// Send a referral described in a TOML or JSON file.
    Send(SendArgs),
    /// Show, field by field, what would go to the recipient and which rule decided; send nothing.
    Preview(PreviewArgs),
    /// Show one referral, sent or received, with its timeline.
    Show(ShowArgs),
    /// Accept a referral this team received.
    Accept(IdArgs),
    /// Decline a referral this team received, with a coded reason.
    Decline(ReasonArgs),
    /// Set another status of the closed loop: info-requested, in-assessment or
    /// under-management.
    Status(StatusArgs),
    /// Complete the assessment, with its minimal outcome.
    Complete(CompleteArgs),
    /// Close a completed or declined referral.
    Close(IdArgs),
    /// Cancel a referral this team sent, with a coded reason.
    Cancel(ReasonArgs),
    /// Forward a referral this team received to another team, filtered again.
    Forward(ForwardArgs),
    /// Ask the team that sent a referral for information: a question, and the categories
    /// wanted.
    Ask(case::AskArgs),
    /// Answer a question (or add to a referral this team sent) with a supplement.
    Answer(case::AnswerArgs),
    /// Send new information on a case: a tripwire report, a precipitating event, a
    /// protective factor; --urgent puts it first in the other team's inbox.
    Inform(case::InformArgs),
    /// Record the management plan of a case this core team accepted.
    Plan(case::PlanArgs),
    /// Record a reassessment: a new level of concern and plan.
    Reassess(case::ReassessArgs),
    /// The reassessments overdue and coming due.
    Due(case::DueArgs),
}

/// Arguments of `tatmx referral forward`.
#[derive(Args)]
pub struct ForwardArgs {
    /// The referral id (one this team received).
    pub id: String,
    /// The team to forward to.
    #[arg(long)]
    pub to: String,
    /// Show what would go, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A referral id.
#[derive(Args)]
pub struct IdArgs {
    /// The referral id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A referral id and why: a code, and words if wanted.
#[derive(Args)]
pub struct ReasonArgs {
    /// The referral id.
    pub id: String,
    /// Why, as a code the other team always receives: not-a-threat-assessment-matter,
    /// outside-jurisdiction, referred-elsewhere, insufficient-information, duplicate or other.
    #[arg(long, value_parser = reason_code)]
    pub code: pb::ReasonCode,
    /// Why, in your words (optional). They go to the other team only if the policy lets free
    /// text go to it; --preview shows whether it would.
    #[arg(long)]
    pub reason: Option<String>,
    /// Show what the other team would receive, and change nothing.
    #[arg(long)]
    pub preview: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A reason code by its name (`referred-elsewhere`).
fn reason_code(name: &str) -> Result<pb::ReasonCode, String> {
    tatmx_node::referral::ReasonCode::parse(name)
        .map(tatmx_node::convert::reason_code_to_proto)
        .ok_or_else(|| {
            let names: Vec<&str> = tatmx_node::referral::ReasonCode::all()
                .map(tatmx_node::referral::ReasonCode::as_str)
                .collect();
            format!("not a reason code; use one of {}", names.join(", "))
        })
}

/// Arguments of `tatmx referral status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The referral id.
    pub id: String,
    /// info-requested, in-assessment or under-management.
    pub status: String,
    /// Why (optional).
    #[arg(long)]
    pub reason: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx referral complete`.
#[derive(Args)]
pub struct CompleteArgs {
    /// The referral id.
    pub id: String,
    /// The final level of concern's scheme, such as CSTAG.
    #[arg(long)]
    pub scheme: String,
    /// The final level of concern, such as "low".
    #[arg(long)]
    pub level: String,
    /// A management plan is in place.
    #[arg(long)]
    pub management_plan: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx referral preview`.
#[derive(Args)]
pub struct PreviewArgs {
    /// The referral file (.toml or .json).
    pub file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx referral send`.
#[derive(Args)]
pub struct SendArgs {
    /// The referral file (.toml or .json).
    pub file: PathBuf,
    /// Show what would be sent, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A key of your choosing for this submission. If the command fails and you run it again
    /// with the same key and file, the referral is not sent twice.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx referral show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The referral id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx outbox`.
#[derive(Args)]
pub struct OutboxArgs {
    /// Retry a dead letter instead of listing.
    #[command(subcommand)]
    pub action: Option<OutboxAction>,
    /// Only dead letters (undelivered past the maximum age, or refused by the peer).
    #[arg(long)]
    pub dead: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// At most this many rows, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// `tatmx outbox retry`
#[derive(Subcommand)]
pub enum OutboxAction {
    /// Send a dead letter again.
    Retry {
        /// The message id.
        id: String,
    },
}

/// Arguments of the list commands.
#[derive(Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// At most this many rows, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// Runs a `tatmx referral` command.
pub async fn run_referral(socket: &Path, cmd: ReferralCommand) -> anyhow::Result<()> {
    match cmd {
        ReferralCommand::Send(args) => {
            let draft = read_referral_file(&args.file)?;
            let response = submit(
                socket,
                &draft,
                args.dry_run,
                args.idempotency_key.as_deref(),
            )
            .await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&submit_json(&response))?);
            } else {
                print!("{}", describe_submission(&response));
            }
            Ok(())
        }
        ReferralCommand::Preview(args) => {
            let draft = read_referral_file(&args.file)?;
            let response = submit(socket, &draft, true, None).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&submit_json(&response))?);
            } else {
                print!("{}", describe_decisions(&response.decisions));
                print!("{}", describe_submission(&response));
            }
            Ok(())
        }
        ReferralCommand::Accept(args) => {
            change(
                socket,
                &args.id,
                pb::ReferralStatus::Accepted,
                None,
                None,
                args.json,
            )
            .await
        }
        ReferralCommand::Decline(args) => decide(socket, pb::ReferralStatus::Declined, args).await,
        ReferralCommand::Cancel(args) => decide(socket, pb::ReferralStatus::Cancelled, args).await,
        ReferralCommand::Close(args) => {
            change(
                socket,
                &args.id,
                pb::ReferralStatus::Closed,
                None,
                None,
                args.json,
            )
            .await
        }
        ReferralCommand::Status(args) => {
            let status = match args.status.as_str() {
                "info-requested" => pb::ReferralStatus::InfoRequested,
                "in-assessment" => pb::ReferralStatus::InAssessment,
                "under-management" => pb::ReferralStatus::UnderManagement,
                other => anyhow::bail!(
                    "status {other:?}: use info-requested, in-assessment or under-management (accept, decline, complete, close and cancel have their own commands)"
                ),
            };
            change(socket, &args.id, status, args.reason, None, args.json).await
        }
        ReferralCommand::Complete(args) => {
            let outcome = pb::AssessmentOutcome {
                level_of_concern: Some(pb::LevelOfConcern {
                    scheme: args.scheme,
                    value: args.level,
                }),
                management_plan: args.management_plan,
                ..Default::default()
            };
            change(
                socket,
                &args.id,
                pb::ReferralStatus::Completed,
                None,
                Some(outcome),
                args.json,
            )
            .await
        }
        ReferralCommand::Forward(args) => {
            let mut client = errors::agency(socket).await?;
            let response = client
                .forward_referral(pb::ForwardReferralRequest {
                    referral_id: args.id,
                    recipient: args.to,
                    dry_run: args.dry_run,
                    ..Default::default()
                })
                .await
                .map_err(refused)?
                .into_inner();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&submit_json(&response))?);
            } else {
                print!("{}", describe_decisions(&response.decisions));
                print!("{}", describe_submission(&response));
            }
            Ok(())
        }
        ReferralCommand::Ask(args) => case::ask(socket, args).await,
        ReferralCommand::Answer(args) => case::answer(socket, args).await,
        ReferralCommand::Inform(args) => case::inform(socket, args).await,
        ReferralCommand::Plan(args) => case::plan(socket, args).await,
        ReferralCommand::Reassess(args) => case::reassess(socket, args).await,
        ReferralCommand::Due(args) => case::due(socket, args).await,
        ReferralCommand::Show(args) => {
            let record = show(socket, &args.id).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&record_json(&record))?);
            } else {
                print!("{}", describe_record(&record));
            }
            Ok(())
        }
    }
}

/// Declines or cancels a referral with its reason, or with `--preview` shows what the other
/// team would receive: the code always, the words only as far as the policy lets them go.
pub async fn decide(
    socket: &Path,
    status: pb::ReferralStatus,
    args: ReasonArgs,
) -> anyhow::Result<()> {
    let request = pb::UpdateReferralStatusRequest {
        referral_id: args.id.clone(),
        status: status.into(),
        reason: args.reason.unwrap_or_default(),
        reason_code: args.code.into(),
        outcome: None,
    };
    let mut client = errors::agency(socket).await?;
    if args.preview {
        let update = client
            .preview_status_change(request)
            .await
            .map_err(refused)?
            .into_inner();
        if args.json {
            println!("{}", serde_json::to_string_pretty(&update_json(&update))?);
        } else {
            print!("{}", describe_update(&update));
        }
        return Ok(());
    }
    let record = client
        .update_referral_status(request)
        .await
        .map_err(refused)?
        .into_inner();
    print_changed(&args.id, &record, args.json)
}

/// What a previewed status change would send, for people.
fn describe_update(u: &pb::StatusUpdate) -> String {
    let mut out = format!("The other team would receive: {}", output::status(u.status));
    if let Ok(code) = pb::ReasonCode::try_from(u.reason_code)
        && code != pb::ReasonCode::Unspecified
    {
        out.push_str(&format!(
            ", because: {}",
            output::reason_code(u.reason_code)
        ));
    }
    out.push('\n');
    if !u.reason.is_empty() {
        out.push_str(&format!("Your words would go with it: {}\n", u.reason));
    }
    for w in &u.withheld {
        out.push_str(&format!(
            "Kept back: {} ({})\n",
            output::categories(&[w.category]).join(""),
            w.reasons.join("; ")
        ));
    }
    out.push_str("Nothing was changed or sent.\n");
    out
}

/// A previewed status change, for scripts.
fn update_json(u: &pb::StatusUpdate) -> serde_json::Value {
    json!({
        "status": output::status(u.status),
        "reason_code": output::reason_code(u.reason_code),
        "reason": (!u.reason.is_empty()).then_some(&u.reason),
        "withheld": u.withheld.iter().map(|w| json!({
            "category": output::categories(&[w.category]).join(""),
            "reasons": w.reasons,
            "rules": w.rules,
        })).collect::<Vec<_>>(),
    })
}

/// Moves a referral along its closed loop and prints the new timeline.
async fn change(
    socket: &Path,
    id: &str,
    status: pb::ReferralStatus,
    reason: Option<String>,
    outcome: Option<pb::AssessmentOutcome>,
    json: bool,
) -> anyhow::Result<()> {
    let record = update_status(socket, id, status, reason, outcome).await?;
    print_changed(id, &record, json)
}

/// What a status change prints: the referral's new status and timeline, or its JSON.
fn print_changed(id: &str, record: &pb::ReferralRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&record_json(record))?);
    } else {
        println!(
            "Referral {id} is now {}; the other team is told through its node.",
            output::status(record.status)
        );
        print!("{}", describe_timeline(record));
    }
    Ok(())
}

/// Asks the node to move a referral along its closed loop.
pub async fn update_status(
    socket: &Path,
    id: &str,
    status: pb::ReferralStatus,
    reason: Option<String>,
    outcome: Option<pb::AssessmentOutcome>,
) -> anyhow::Result<pb::ReferralRecord> {
    let mut client = errors::agency(socket).await?;
    Ok(client
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: id.to_owned(),
            status: status.into(),
            reason: reason.unwrap_or_default(),
            outcome,
            ..Default::default()
        })
        .await
        .map_err(refused)?
        .into_inner())
}

/// Reads a referral file; the format follows the extension (`.json`, else TOML).
pub fn read_referral_file(path: &Path) -> anyhow::Result<NewReferral> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid referral", path.display()))
    } else {
        toml::from_str(&text).with_context(|| format!("{} is not a valid referral", path.display()))
    }
}

/// Submits a referral through the Agency API.
pub async fn submit(
    socket: &Path,
    draft: &NewReferral,
    dry_run: bool,
    idempotency_key: Option<&str>,
) -> anyhow::Result<pb::SubmitReferralResponse> {
    let mut client = errors::agency(socket).await?;
    let response = client
        .submit_referral(pb::SubmitReferralRequest {
            referral: Some(tatmx_node::convert::new_referral_to_proto(draft)),
            dry_run,
            idempotency_key: idempotency_key.unwrap_or_default().to_owned(),
        })
        .await
        .map_err(refused)?;
    Ok(response.into_inner())
}

/// Fetches one referral with its timeline.
pub async fn show(socket: &Path, id: &str) -> anyhow::Result<pb::ReferralRecord> {
    let mut client = errors::agency(socket).await?;
    let record = client
        .get_referral(pb::GetReferralRequest {
            referral_id: id.to_owned(),
        })
        .await
        .map_err(refused)?;
    Ok(record.into_inner())
}

/// Lists the inbox.
pub async fn list_inbox(socket: &Path, limit: u32) -> anyhow::Result<Vec<pb::InboxItem>> {
    let mut client = errors::agency(socket).await?;
    let inbox = client
        .list_inbox(pb::ListInboxRequest { limit })
        .await
        .map_err(refused)?;
    Ok(inbox.into_inner().items)
}

/// Lists the outbox.
pub async fn list_outbox(
    socket: &Path,
    limit: u32,
    dead_only: bool,
) -> anyhow::Result<Vec<pb::OutboxEntry>> {
    let mut client = errors::agency(socket).await?;
    let outbox = client
        .list_outbox(pb::ListOutboxRequest { limit, dead_only })
        .await
        .map_err(refused)?;
    Ok(outbox.into_inner().entries)
}

/// `tatmx inbox`
pub async fn inbox(socket: &Path, args: &ListArgs) -> anyhow::Result<()> {
    let mut client = errors::agency(socket).await?;
    let inbox = client
        .list_inbox(pb::ListInboxRequest { limit: args.limit })
        .await
        .map_err(refused)?
        .into_inner();
    let items = &inbox.items;
    if args.json {
        let rows: Vec<_> = items.iter().map(inbox_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if items.is_empty() {
        println!("The inbox is empty.");
    } else {
        print!("{}", inbox_table(items));
    }
    if !args.json {
        let unread: Vec<&pb::CaseMessageSummary> =
            inbox.messages.iter().filter(|m| !m.seen).collect();
        if !unread.is_empty() {
            println!("\nCase messages not read yet (urgent first)");
            print!("{}", case_messages_table(&unread));
        }
    }
    Ok(())
}

/// `tatmx purged`
pub async fn purged(socket: &Path, args: &ListArgs) -> anyhow::Result<()> {
    let mut client = errors::agency(socket).await?;
    let tombstones = client
        .list_tombstones(pb::ListTombstonesRequest { limit: args.limit })
        .await
        .map_err(refused)?
        .into_inner()
        .tombstones;
    if args.json {
        let rows: Vec<_> = tombstones
            .iter()
            .map(|t| {
                json!({
                    "referral_id": t.referral_id,
                    "sender": t.sender,
                    "recipient": t.recipient,
                    "categories": output::categories(&t.categories),
                    "recorded_at": output::time_json(t.recorded_at.as_ref()),
                    "purged_at": output::time_json(t.purged_at.as_ref()),
                    "cause": purge_cause(t),
                    "retraction_id": t.retraction_id,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if tombstones.is_empty() {
        println!("Nothing has been purged on this node.");
    } else {
        print!("{}", tombstone_table(&tombstones));
    }
    Ok(())
}

fn purge_cause(t: &pb::Tombstone) -> &'static str {
    match pb::PurgeCause::try_from(t.cause) {
        Ok(pb::PurgeCause::ConsentRevoked) => "consent revoked",
        Ok(pb::PurgeCause::Retention) => "retention",
        _ => "unknown",
    }
}

/// Tombstones as a table: ids, teams, categories, when and why.
pub fn tombstone_table(tombstones: &[pb::Tombstone]) -> String {
    let rows: Vec<Vec<String>> = tombstones
        .iter()
        .map(|t| {
            vec![
                t.referral_id.clone(),
                output::team(&t.sender).to_owned(),
                output::team(&t.recipient).to_owned(),
                output::categories(&t.categories).join(","),
                output::time(t.purged_at.as_ref()),
                purge_cause(t).to_owned(),
            ]
        })
        .collect();
    output::table(
        &["REFERRAL", "FROM", "TO", "CATEGORIES", "PURGED", "WHY"],
        &rows,
    )
}

/// `tatmx outbox`
pub async fn outbox(socket: &Path, args: OutboxArgs) -> anyhow::Result<()> {
    if let Some(OutboxAction::Retry { id }) = args.action {
        let mut client = errors::agency(socket).await?;
        let entry = client
            .retry_message(pb::RetryMessageRequest { message_id: id })
            .await
            .map_err(refused)?
            .into_inner();
        if args.json {
            return output::print_json(&outbox_json(&entry));
        }
        println!(
            "Message {} to {} is queued again.",
            entry.message_id,
            output::team(&entry.peer)
        );
        return Ok(());
    }
    let entries = list_outbox(socket, args.limit, args.dead).await?;
    if args.json {
        let rows: Vec<_> = entries.iter().map(outbox_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if entries.is_empty() {
        println!("The outbox is empty.");
    } else {
        print!("{}", outbox_table(&entries));
    }
    Ok(())
}

fn level(level: Option<&pb::LevelOfConcern>) -> String {
    level.map_or_else(|| "-".into(), |l| format!("{} ({})", l.value, l.scheme))
}

/// The inbox as a table.
pub fn inbox_table(items: &[pb::InboxItem]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                output::time(i.received_at.as_ref()),
                output::team(&i.sender).to_owned(),
                asked(i),
                match (i.urgent, i.unseen_messages) {
                    (true, _) => format!("{} (URGENT news)", output::status(i.status)),
                    (false, 0) => output::status(i.status),
                    (false, n) => format!("{} ({n} new)", output::status(i.status)),
                },
                level(i.level_of_concern.as_ref()),
                output::categories(&i.categories).join(", "),
                i.referral_id.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "RECEIVED",
            "FROM",
            "PURPOSE",
            "STATUS",
            "CONCERN",
            "CATEGORIES",
            "REFERRAL",
        ],
        &rows,
    )
}

/// Received case messages as a table: what and from whom, never their content.
pub fn case_messages_table(messages: &[&pb::CaseMessageSummary]) -> String {
    let rows: Vec<Vec<String>> = messages
        .iter()
        .map(|m| {
            let kind = pb::CaseMessageKind::try_from(m.kind)
                .map(|k| {
                    k.as_str_name()
                        .trim_start_matches("CASE_MESSAGE_KIND_")
                        .to_ascii_lowercase()
                        .replace('_', "-")
                })
                .unwrap_or_default();
            vec![
                output::time(m.received_at.as_ref()),
                output::team(&m.author).to_owned(),
                if m.urgent {
                    format!("{kind} URGENT")
                } else {
                    kind
                },
                output::categories(&m.categories).join(", "),
                m.referral_id.clone(),
            ]
        })
        .collect();
    output::table(
        &["RECEIVED", "FROM", "MESSAGE", "CATEGORIES", "REFERRAL"],
        &rows,
    )
}

/// The purpose of an inbox item; for a consultation request, the start of its question, so a
/// partner sees at a glance what is asked (`referral show` prints it whole).
fn asked(i: &pb::InboxItem) -> String {
    let purpose = output::purpose(i.purpose);
    if i.question.trim().is_empty() {
        return purpose;
    }
    const SHOWN: usize = 40;
    let question = i.question.trim();
    match question.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{purpose}: {}…", &question[..end]),
        None => format!("{purpose}: {question}"),
    }
}

/// The outbox as a table.
pub fn outbox_table(entries: &[pb::OutboxEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let detail = if e.state == pb::DeliveryState::Delivered as i32 {
                format!("acknowledged {}", output::time(e.delivered_at.as_ref()))
            } else if e.state == pb::DeliveryState::Dead as i32 {
                format!("dead letter: {}", e.last_error)
            } else if e.last_error.is_empty() {
                "waiting".to_owned()
            } else {
                format!(
                    "retry at {}: {}",
                    output::time(e.next_attempt_at.as_ref()),
                    e.last_error
                )
            };
            vec![
                output::message_kind(e.kind),
                output::team(&e.peer).to_owned(),
                output::delivery_state(e.state),
                e.attempts.to_string(),
                detail,
                e.referral_id.clone(),
            ]
        })
        .collect();
    output::table(
        &["MESSAGE", "TO", "STATE", "ATTEMPTS", "DETAIL", "REFERRAL"],
        &rows,
    )
}

fn inbox_json(i: &pb::InboxItem) -> serde_json::Value {
    json!({
        "referral_id": i.referral_id,
        "sender": i.sender,
        "received_at": output::time_json(i.received_at.as_ref()),
        "purpose": output::purpose(i.purpose),
        "level_of_concern": i.level_of_concern.as_ref().map(|l| json!({"scheme": l.scheme, "value": l.value})),
        "status": output::status(i.status),
        "categories": output::categories(&i.categories),
        "question": (!i.question.is_empty()).then_some(&i.question),
        "urgent": i.urgent,
        "unseen_messages": i.unseen_messages,
    })
}

fn outbox_json(e: &pb::OutboxEntry) -> serde_json::Value {
    json!({
        "message_id": e.message_id,
        "kind": output::message_kind(e.kind),
        "referral_id": e.referral_id,
        "peer": e.peer,
        "state": output::delivery_state(e.state),
        "attempts": e.attempts,
        "created_at": output::time_json(e.created_at.as_ref()),
        "next_attempt_at": output::time_json(e.next_attempt_at.as_ref()),
        "delivered_at": output::time_json(e.delivered_at.as_ref()),
        "last_error": (!e.last_error.is_empty()).then_some(&e.last_error),
    })
}

fn submit_json(r: &pb::SubmitReferralResponse) -> serde_json::Value {
    json!({
        "referral_id": r.referral_id,
        "dry_run": r.dry_run,
        "recipient": r.outgoing.as_ref().map(|o| o.recipient.clone()),
        "categories_disclosed": output::categories(&r.categories_disclosed),
        "decisions": decisions_json(&r.decisions),
        "outgoing": r.outgoing.as_ref().map(referral_json),
    })
}

fn decisions_json(decisions: &[pb::FieldDecision]) -> serde_json::Value {
    decisions
        .iter()
        .map(|d| {
            json!({
                "category": output::categories(&[d.category]).join(""),
                "outcome": outcome_name(d.outcome),
                "rules": d.rules,
                "reasons": d.reasons,
                "labels": d.labels,
            })
        })
        .collect()
}

fn record_json(r: &pb::ReferralRecord) -> serde_json::Value {
    let (case_messages, merged_content, content_parts) = case::case_json(r);
    json!({
        "case_messages": case_messages,
        "merged_content": merged_content,
        "content_parts": content_parts,
        "referral": r.referral.as_ref().map(referral_json),
        "direction": pb::Direction::try_from(r.direction).map(|d| d.as_str_name().trim_start_matches("DIRECTION_").to_ascii_lowercase()).unwrap_or_default(),
        "status": output::status(r.status),
        "categories": output::categories(&r.categories),
        "decisions": decisions_json(&r.decisions),
        "retain_until": output::time_json(r.retain_until.as_ref()),
        "timeline": r.timeline.iter().map(|e| json!({
            "status": output::status(e.status),
            "at": output::time_json(e.at.as_ref()),
            "actor": e.actor,
            "reason": (!e.reason.is_empty()).then_some(&e.reason),
            "reason_code": (e.reason_code != pb::ReasonCode::Unspecified as i32)
                .then(|| output::reason_code(e.reason_code)),
            "outcome": e.outcome.as_ref().map(|o| json!({
                "level_of_concern": o.level_of_concern.as_ref().map(|l| json!({"scheme": l.scheme, "value": l.value})),
                "management_plan": o.management_plan,
            })),
        })).collect::<Vec<_>>(),
    })
}

/// A referral as JSON in the same shape as the input file, plus its envelope.
fn referral_json(r: &pb::Referral) -> serde_json::Value {
    let content = tatmx_node::convert::content_from_proto(r.content.clone());
    json!({
        "id": r.id,
        "sender": r.sender,
        "recipient": r.recipient,
        "created_at": output::time_json(r.created_at.as_ref()),
        "purpose": output::purpose(r.purpose),
        "level_of_concern": r.level_of_concern.as_ref().map(|l| json!({"scheme": l.scheme, "value": l.value})),
        "legal_basis": output::basis(r.legal_basis),
        "justification": (!r.justification.is_empty()).then_some(&r.justification),
        "consent_ref": (!r.consent_ref.is_empty()).then_some(&r.consent_ref),
        "case_handle": (!r.case_handle.is_empty()).then_some(&r.case_handle),
        "withheld": r.withheld.iter().map(|w| json!({
            "category": output::categories(&[w.category]).join(""),
            "reasons": w.reasons,
            "rules": w.rules,
            "pseudonymized": w.pseudonymized,
        })).collect::<Vec<_>>(),
        "labels": r.labels.iter().map(|l| json!({
            "category": output::categories(&[l.category]).join(""),
            "labels": l.labels,
        })).collect::<Vec<_>>(),
        "content": content,
    })
}

fn outcome_name(value: i32) -> String {
    pb::DisclosureOutcome::try_from(value)
        .map(|o| {
            o.as_str_name()
                .trim_start_matches("DISCLOSURE_OUTCOME_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// The filter's decisions, one line per category with the rule and reason.
pub fn describe_decisions(decisions: &[pb::FieldDecision]) -> String {
    let mut out = String::from("Field by field:\n");
    for d in decisions {
        let category = output::categories(&[d.category]).join("");
        let rules = if d.rules.is_empty() {
            "no rule permits it (deny by default)".to_owned()
        } else {
            d.rules.join(", ")
        };
        out.push_str(&format!(
            "  {:<18} {:<12} [{rules}]\n",
            category,
            outcome_name(d.outcome)
        ));
        for reason in &d.reasons {
            out.push_str(&format!("  {:<18} {:<12}   {reason}\n", "", ""));
        }
        if !d.labels.is_empty() {
            out.push_str(&format!(
                "  {:<18} {:<12}   labels: {}\n",
                "",
                "",
                d.labels.join(", ")
            ));
        }
    }
    out.push('\n');
    out
}

/// What `referral send` prints.
pub fn describe_submission(r: &pb::SubmitReferralResponse) -> String {
    let recipient = r.outgoing.as_ref().map_or("?", |o| o.recipient.as_str());
    let categories = output::categories(&r.categories_disclosed).join(", ");
    if r.dry_run {
        let mut out = format!(
            "Preview only; nothing was sent.\nWould send referral to {recipient}.\nCategories that would leave this node: {categories}\n\n"
        );
        if let Some(outgoing) = &r.outgoing
            && let Ok(text) = serde_json::to_string_pretty(&referral_json(outgoing))
        {
            out.push_str(&text);
            out.push('\n');
        }
        out
    } else {
        let withheld: Vec<String> = r
            .decisions
            .iter()
            .filter(|d| d.outcome != pb::DisclosureOutcome::Disclose as i32)
            .map(|d| {
                format!(
                    "{} ({})",
                    output::categories(&[d.category]).join(""),
                    d.reasons.first().cloned().unwrap_or_default()
                )
            })
            .collect();
        let mut out = format!(
            "Referral {} stored and queued for delivery to {recipient}.\nCategories disclosed: {categories}\n",
            r.referral_id
        );
        if !withheld.is_empty() {
            out.push_str(&format!("Withheld: {}\n", withheld.join("; ")));
        }
        out.push_str(&format!(
            "Follow it with: tatmx outbox, or tatmx referral show {}\n",
            r.referral_id
        ));
        out
    }
}

/// What `referral show` prints.
pub fn describe_record(r: &pb::ReferralRecord) -> String {
    let Some(referral) = &r.referral else {
        return "The node returned no referral.\n".into();
    };
    let direction = if r.direction == pb::Direction::Inbound as i32 {
        format!("received from {}", referral.sender)
    } else {
        format!("sent to {}", referral.recipient)
    };
    let mut out = format!(
        "Referral {}\n  {direction}\n  status:      {}\n  purpose:     {}\n  concern:     {}\n  legal basis: {}\n",
        referral.id,
        output::status(r.status),
        output::purpose(referral.purpose),
        level(referral.level_of_concern.as_ref()),
        output::basis(referral.legal_basis),
    );
    if !referral.justification.is_empty() {
        out.push_str(&format!("  justification: {}\n", referral.justification));
    }
    if !referral.consent_ref.is_empty() {
        out.push_str(&format!("  consent:     {}\n", referral.consent_ref));
    }
    out.push_str(&format!(
        "  categories:  {}\n",
        output::categories(&r.categories).join(", ")
    ));
    if !referral.case_handle.is_empty() {
        out.push_str(&format!("  case handle: {}\n", referral.case_handle));
    }
    if let Some(consultation) = &referral.consultation {
        out.push_str(&format!(
            "\nConsultation requested by {}\n",
            output::team(&referral.sender)
        ));
        out.push_str(&format!("  question:    {}\n", consultation.question));
        if consultation.due.is_some() {
            out.push_str(&format!(
                "  answer by:   {}\n",
                output::time(consultation.due.as_ref())
            ));
        }
        if referral.case_handle.is_empty() {
            out.push_str("  the case:    identified (re-identification was allowed)\n");
        } else {
            out.push_str(&format!(
                "  the case:    de-identified, known here only as {}\n",
                referral.case_handle
            ));
        }
    }
    if r.retain_until.is_some() {
        out.push_str(&format!(
            "  kept until:  {} (then purged by retention)\n",
            output::time(r.retain_until.as_ref())
        ));
    }
    for hop in &referral.provenance {
        out.push_str(&format!(
            "  came via:    {} ({})\n",
            hop.team,
            output::time(hop.at.as_ref())
        ));
    }
    for w in &referral.withheld {
        out.push_str(&format!(
            "  withheld:    {} ({})\n",
            output::categories(&[w.category]).join(""),
            w.reasons.join("; ")
        ));
    }
    for l in &referral.labels {
        out.push_str(&format!(
            "  labels:      {} {}\n",
            output::categories(&[l.category]).join(""),
            l.labels.join(", ")
        ));
    }
    let content = tatmx_node::convert::content_from_proto(referral.content.clone());
    if let Ok(text) = toml::to_string_pretty(&content)
        && !text.trim().is_empty()
    {
        out.push_str("\nContent\n");
        for line in text.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push('\n');
    out.push_str(&describe_timeline(r));
    out.push_str(&case::describe_case(r));
    out
}

/// A referral's timeline, one status per line.
pub fn describe_timeline(r: &pb::ReferralRecord) -> String {
    let mut out = String::from("Timeline\n");
    for event in &r.timeline {
        out.push_str(&format!(
            "  {}  {:<14} by {}",
            output::time(event.at.as_ref()),
            output::status(event.status),
            output::team(&event.actor)
        ));
        if event.reason_code != pb::ReasonCode::Unspecified as i32 {
            out.push_str(&format!(
                ", because: {}",
                output::reason_code(event.reason_code)
            ));
        }
        if !event.reason.is_empty() {
            out.push_str(&format!(": {}", event.reason));
        }
        if event
            .withheld
            .iter()
            .any(|w| w.category == pb::DataCategory::Narrative as i32)
        {
            out.push_str(" (the words were kept back by the policy)");
        }
        if !event.forwarded_to.is_empty() {
            out.push_str(&format!(" to {}", output::team(&event.forwarded_to)));
        }
        if let Some(outcome) = &event.outcome {
            out.push_str(&format!(
                " (concern {}, management plan: {})",
                level(outcome.level_of_concern.as_ref()),
                if outcome.management_plan { "yes" } else { "no" }
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_referral_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/referral.toml");
        let draft = read_referral_file(&path).unwrap();
        assert_eq!(draft.recipient, "county-core");
        assert!(draft.content.narrative.is_some());
    }

    #[test]
    fn a_misspelt_key_in_a_referral_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            "recipient = \"x\"\npurpose = \"threat-assessment\"\nlegal_basis = \"consent\"\n[content.narative]\ntext = \"t\"\n",
        )
        .unwrap();
        let err = format!("{:#}", read_referral_file(&path).unwrap_err());
        assert!(err.contains("narative"), "{err}");
    }
}
