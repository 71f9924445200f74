//! The Agency API: the agency's own staff and case systems talking to their node over gRPC.
//!
//! It listens only on a Unix socket with mode 0600, so the operating system decides who may
//! use it. This file is an adapter and nothing more: each method turns its protobuf request
//! into domain types, builds the caller's [`Actor`] from what the socket proved, calls one use
//! case of the [`App`], and turns the answer back into protobuf. Every refusal is mapped to a
//! gRPC status with a reason code in one place, [`refusal`].

use prost::Message;
use sha2::{Digest, Sha256};
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::agency_server::Agency;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use uuid::Uuid;

use crate::actor::Actor;
use crate::app::consultations::ConsultationRequest;
use crate::app::{
    App, AppError, CaseDisclosed, CaseDraft, CaseRecord, Consultation, Disclosed, Forward,
    Idempotency, StatusChange,
};
use crate::case_message;
use crate::case_message::CaseRefusal;
use crate::convert;
use crate::convert::ConversionError;
use crate::filter::{FieldDecision, Outcome};
use crate::lifecycle::TransitionError;
use crate::referral::Referral;
use crate::refusal::{self, Reason, refuse, refuse_field, refuse_with};
use crate::store::{
    CaseMessageSummary, DeliveryState, Direction, DueReassessment, MessageKind, OutboxEntry,
    StatusEvent, StoredReferral, Unseen,
};
use crate::trust::TrustError;

/// The staff-facing gRPC service.
#[derive(Debug, Clone)]
pub struct AgencyService {
    /// The use cases it adapts.
    app: App,
}

impl AgencyService {
    /// Sends (or, with `dry_run`, previews) a case message on the referral `referral_id`
    /// names: what every case-message method does once it has built its draft.
    async fn send_case(
        &self,
        referral_id: &str,
        draft: CaseDraft,
        dry_run: bool,
        actor: &Actor,
    ) -> Result<Response<pb::CaseMessageResponse>, Status> {
        let id = uuid(referral_id, "referral_id")?;
        let disclosed = self
            .app
            .send_case_message(id, draft, dry_run, actor)
            .await?;
        Ok(Response::new(case_response(&disclosed)))
    }

    /// The gRPC face of `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// The actor of an Agency or Admin API call: the Unix user the socket connection proves
/// (`SO_PEERCRED`), and the staff name a client such as a case system passes in the
/// `x-tatmx-staff` header, which is only as good as that client. (The console does not come
/// through here: it calls the [`App`] with its signed-in user as the actor.)
pub fn caller<T>(request: &Request<T>) -> Actor {
    let uid = request
        .extensions()
        .get::<tonic::transport::server::UdsConnectInfo>()
        .and_then(|info| info.peer_cred)
        .map(|cred| cred.uid());
    let name = request
        .metadata()
        .get("x-tatmx-staff")
        .and_then(|v| v.to_str().ok());
    Actor::staff(uid, name)
}

/// The one mapping from a use case's refusal to a gRPC status, for a request whose fields
/// sit at the top of the message.
impl From<AppError> for Status {
    fn from(e: AppError) -> Self {
        refusal(e, Fields::TOP)
    }
}

/// Where a request keeps the fields a use case names, so that a refusal names them by their
/// path in the proto.
#[derive(Debug, Clone, Copy)]
struct Fields {
    /// Prefixed to a field the use case names (`referral.` when the draft is nested).
    prefix: &'static str,
    /// The field holding the recipient (or recipients) the node may not send to.
    recipient: &'static str,
}

impl Fields {
    const TOP: Fields = Fields {
        prefix: "",
        recipient: "recipient",
    };
    /// A `NewReferral` under `referral`.
    const DRAFT: Fields = Fields {
        prefix: "referral.",
        recipient: "referral.recipient",
    };
    /// A consultation: the draft under `referral`, the recipients in `partners`.
    const CONSULTATION: Fields = Fields {
        prefix: "referral.",
        recipient: "partners",
    };

    fn path(self, field: &str) -> String {
        if field.starts_with(self.prefix) || self.prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{}{field}", self.prefix)
        }
    }
}

/// Every reason code of the local APIs is chosen here, one per refusal of a use case; the
/// gRPC code follows from it ([`Reason::code`]).
fn refusal(e: AppError, fields: Fields) -> Status {
    let message = e.to_string();
    let with_id =
        |reason, id: Uuid| refuse_with(reason, message.clone(), [("referral_id", id.to_string())]);
    match e {
        AppError::Invalid(_) | AppError::Transition(TransitionError::Missing(_)) => {
            invalid_fields(&message, fields)
        }
        AppError::NoSuchReferral(id) | AppError::Case(CaseRefusal::NotShared(id)) => {
            with_id(Reason::UnknownReferral, id)
        }
        AppError::Purged(tombstone) => with_id(Reason::ReferralPurged, tombstone.referral_id),
        AppError::NotFound(_) => refuse(Reason::UnknownRecord, message),
        AppError::Precondition(_) => refuse(Reason::NotAllowedNow, message),
        AppError::Recipient(trust) => {
            let (reason, description) = match trust {
                TrustError::Blocked(_) => (Reason::RecipientBlocked, "is blocked on this node"),
                _ => (Reason::UnknownRecipient, "is not a peer of this node"),
            };
            refuse_field(reason, message, fields.recipient, description)
        }
        AppError::Transition(TransitionError::NotFromHere { .. })
        | AppError::Case(
            CaseRefusal::Ended { .. } | CaseRefusal::NotYet { .. } | CaseRefusal::Consultation(_),
        ) => refuse(Reason::TransitionRefused, message),
        AppError::Transition(TransitionError::WrongParty { .. })
        | AppError::Case(CaseRefusal::WrongParty { .. }) => refuse(Reason::WrongParty, message),
        AppError::Case(CaseRefusal::NotCore { .. }) => refuse(Reason::RoleRefused, message),
        AppError::Case(CaseRefusal::UnknownRequest(_)) => refuse_field(
            Reason::UnknownRecord,
            message,
            &fields.path("answers"),
            "names no information request made on this referral",
        ),
        AppError::IdempotencyKeyReused => refuse_field(
            Reason::IdempotencyKeyReused,
            message,
            "idempotency_key",
            "was used before for a different draft",
        ),
        AppError::Store(store) => crate::federation::store_status(&store),
    }
}

/// An `INVALID_MESSAGE` refusal naming every field of `message`, which a use case writes as
/// `field: problem`, several joined by `; ` (the invariant of [`AppError::Invalid`]). A
/// problem that names no field is refused with the code alone.
fn invalid_fields(message: &str, fields: Fields) -> Status {
    let mut details = ErrorDetails::with_error_info(
        Reason::InvalidMessage.as_str(),
        refusal::DOMAIN,
        std::collections::HashMap::new(),
    );
    for problem in message.split("; ") {
        let Some((field, description)) = problem.split_once(": ") else {
            continue;
        };
        // A field path, not a sentence that happens to hold a colon.
        let is_path = !field.is_empty()
            && field
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.[]".contains(c));
        if is_path {
            details.add_bad_request_violation(fields.path(field), description);
        }
    }
    Status::with_error_details(Reason::InvalidMessage.code(), message, details)
}

/// A protobuf request field that did not convert to its domain type.
fn invalid(e: ConversionError) -> Status {
    refuse_field(Reason::InvalidMessage, e.to_string(), &e.field, &e.problem)
}

/// A required message field left out.
fn required(field: &str, message: &str) -> Status {
    refuse_field(Reason::InvalidMessage, message, field, "is required")
}

fn uuid(text: &str, field: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(text).map_err(|_| {
        refuse_field(
            Reason::InvalidMessage,
            format!("{field}: is not a UUID"),
            field,
            "is not a UUID",
        )
    })
}

/// A referral with its timeline, as staff see it.
fn referral_record(stored: &StoredReferral, events: &[StatusEvent]) -> pb::ReferralRecord {
    pb::ReferralRecord {
        referral: Some(convert::referral_to_proto(&stored.referral)),
        direction: match stored.direction {
            Direction::Outbound => pb::Direction::Outbound,
            Direction::Inbound => pb::Direction::Inbound,
        }
        .into(),
        status: convert::status_to_proto(stored.status).into(),
        timeline: events
            .iter()
            .map(|e| pb::StatusEvent {
                status: convert::status_to_proto(e.status).into(),
                at: Some(convert::timestamp_to_proto(e.at)),
                actor: e.actor.clone(),
                reason: e.reason.clone().unwrap_or_default(),
                outcome: e.outcome.as_ref().map(convert::outcome_to_proto),
                forwarded_to: e.forwarded_to.clone().unwrap_or_default(),
                reason_code: e
                    .reason_code
                    .map_or(pb::ReasonCode::Unspecified, convert::reason_code_to_proto)
                    .into(),
                withheld: e
                    .withheld
                    .iter()
                    .map(|c| pb::WithheldCategory {
                        category: convert::category_to_proto(*c).into(),
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect(),
        categories: categories(&stored.referral),
        decisions: stored.decisions.iter().map(decision_to_proto).collect(),
        retain_until: stored.retain_until.map(convert::timestamp_to_proto),
        case_messages: Vec::new(),
        merged_content: None,
        content_parts: Vec::new(),
    }
}

/// A case as staff read it: the referral and its timeline, every case message, and the merged
/// content with where each section came from.
fn case_record(case: &CaseRecord) -> pb::ReferralRecord {
    let (stored, events) = &case.held;
    pb::ReferralRecord {
        case_messages: case
            .messages
            .iter()
            .map(|m| pb::CaseMessageRecord {
                message: Some(convert::case_message_to_proto(&m.message)),
                direction: direction_to_proto(m.direction).into(),
                recorded_at: Some(convert::timestamp_to_proto(m.recorded_at)),
                decisions: m.decisions.iter().map(decision_to_proto).collect(),
                seen: m.seen,
            })
            .collect(),
        merged_content: Some(convert::content_to_proto(&case.merged)),
        content_parts: case
            .parts
            .iter()
            .map(|p| pb::ContentPart {
                category: convert::category_to_proto(p.category).into(),
                message_id: p.message_id.map(|id| id.to_string()).unwrap_or_default(),
                at: Some(convert::timestamp_to_proto(p.at)),
            })
            .collect(),
        ..referral_record(stored, events)
    }
}

fn direction_to_proto(direction: Direction) -> pb::Direction {
    match direction {
        Direction::Outbound => pb::Direction::Outbound,
        Direction::Inbound => pb::Direction::Inbound,
    }
}

/// What sending a case message tells staff: exactly what goes, and every decision.
fn case_response(disclosed: &CaseDisclosed) -> pb::CaseMessageResponse {
    pb::CaseMessageResponse {
        message_id: disclosed.outgoing.id.to_string(),
        dry_run: disclosed.dry_run,
        outgoing: Some(convert::case_message_to_proto(&disclosed.outgoing)),
        categories_disclosed: disclosed
            .outgoing
            .categories()
            .into_iter()
            .map(|c| convert::category_to_proto(c).into())
            .collect(),
        decisions: disclosed.decisions.iter().map(decision_to_proto).collect(),
        recipient: disclosed.recipient.uri(),
    }
}

fn summary_to_proto(m: &CaseMessageSummary) -> pb::CaseMessageSummary {
    pb::CaseMessageSummary {
        message_id: m.id.to_string(),
        referral_id: m.referral_id.to_string(),
        author: m.author.clone(),
        kind: convert::case_kind_to_proto(m.kind).into(),
        information_kind: m
            .information_kind
            .map(|k| convert::information_kind_to_proto(k).into())
            .unwrap_or_default(),
        urgent: m.urgent,
        received_at: Some(convert::timestamp_to_proto(m.received_at)),
        categories: m
            .categories
            .iter()
            .map(|c| convert::category_to_proto(*c).into())
            .collect(),
        seen: m.seen,
    }
}

fn due_to_proto(d: &DueReassessment, today: time::Date) -> pb::DueReassessment {
    pb::DueReassessment {
        referral_id: d.referral_id.to_string(),
        other_team: d.other_team.clone(),
        direction: direction_to_proto(d.direction).into(),
        status: convert::status_to_proto(d.status).into(),
        next_reassessment: case_message::format_date(d.next_reassessment),
        days: i32::try_from((d.next_reassessment - today).whole_days()).unwrap_or(i32::MIN),
        message_id: d.message_id.to_string(),
    }
}

/// A content section from a request: absent means none.
fn content_of(content: Option<pb::ReferralContent>) -> crate::referral::ReferralContent {
    convert::content_from_proto(content)
}

/// What a submission or forward tells staff: exactly what goes, and every decision.
fn submission(disclosed: &Disclosed) -> pb::SubmitReferralResponse {
    pb::SubmitReferralResponse {
        referral_id: disclosed.referral.id.to_string(),
        dry_run: disclosed.dry_run,
        categories_disclosed: categories(&disclosed.referral),
        outgoing: Some(convert::referral_to_proto(&disclosed.referral)),
        decisions: disclosed.decisions.iter().map(decision_to_proto).collect(),
    }
}

/// A filter decision on the wire.
fn decision_to_proto(d: &FieldDecision) -> pb::FieldDecision {
    pb::FieldDecision {
        category: convert::category_to_proto(d.category).into(),
        outcome: match d.outcome {
            Outcome::Disclose => pb::DisclosureOutcome::Disclose,
            Outcome::Withhold => pb::DisclosureOutcome::Withhold,
            Outcome::Pseudonymize => pb::DisclosureOutcome::Pseudonymize,
        }
        .into(),
        rules: d.rules.clone(),
        reasons: d.reasons.clone(),
        labels: d.labels.clone(),
    }
}

fn categories(referral: &Referral) -> Vec<i32> {
    referral
        .categories()
        .into_iter()
        .map(|c| convert::category_to_proto(c).into())
        .collect()
}

/// The status change a request asks for, as the application takes it.
fn status_change(r: pb::UpdateReferralStatusRequest) -> Result<StatusChange, Status> {
    Ok(StatusChange {
        referral_id: uuid(&r.referral_id, "referral_id")?,
        status: convert::status_from_proto(r.status, "status").map_err(invalid)?,
        reason_code: convert::reason_code_from_proto(r.reason_code, "reason_code")
            .map_err(invalid)?,
        reason: Some(r.reason),
        outcome: r.outcome.map(convert::outcome_from_proto),
    })
}

fn inbox_item(stored: &StoredReferral, unseen: Unseen) -> pb::InboxItem {
    let r = &stored.referral;
    pb::InboxItem {
        referral_id: r.id.to_string(),
        sender: r.sender.uri(),
        received_at: Some(convert::timestamp_to_proto(stored.recorded_at)),
        purpose: convert::purpose_to_proto(r.purpose).into(),
        level_of_concern: r.level_of_concern.as_ref().map(|l| pb::LevelOfConcern {
            scheme: l.scheme.clone(),
            value: l.value.clone(),
        }),
        status: convert::status_to_proto(stored.status).into(),
        categories: categories(r),
        urgent: unseen.urgent,
        unseen_messages: unseen.count,
        question: r
            .consultation
            .as_ref()
            .map(|c| c.question.clone())
            .unwrap_or_default(),
    }
}

fn outbox_entry(entry: &OutboxEntry) -> pb::OutboxEntry {
    pb::OutboxEntry {
        message_id: entry.message_id.to_string(),
        kind: match entry.kind {
            MessageKind::Referral => pb::MessageKind::Referral,
            MessageKind::StatusUpdate => pb::MessageKind::StatusUpdate,
            MessageKind::Retraction => pb::MessageKind::Retraction,
            MessageKind::RetractionAck => pb::MessageKind::RetractionAck,
            MessageKind::CaseMessage => pb::MessageKind::CaseMessage,
        }
        .into(),
        referral_id: entry.referral_id.to_string(),
        peer: entry.peer.clone(),
        state: match entry.state {
            DeliveryState::Pending => pb::DeliveryState::Pending,
            DeliveryState::Delivered => pb::DeliveryState::Delivered,
            DeliveryState::Dead => pb::DeliveryState::Dead,
            DeliveryState::Cancelled => pb::DeliveryState::Cancelled,
        }
        .into(),
        attempts: entry.attempts,
        created_at: Some(convert::timestamp_to_proto(entry.created_at)),
        next_attempt_at: (entry.state == DeliveryState::Pending)
            .then(|| convert::timestamp_to_proto(entry.next_attempt_at)),
        delivered_at: entry.delivered_at.map(convert::timestamp_to_proto),
        last_error: entry.last_error.clone().unwrap_or_default(),
    }
}

/// The wire view of one consultation: every partner's answer, and who has not answered.
fn consultation(c: &Consultation) -> pb::Consultation {
    pb::Consultation {
        consultation_id: c.id.to_string(),
        question: c.question.clone(),
        due: c.due.map(convert::timestamp_to_proto),
        answers: c
            .answers
            .iter()
            .map(|a| pb::ConsultationAnswer {
                partner: a.partner.clone(),
                referral_id: a.referral_id.to_string(),
                status: convert::status_to_proto(a.status).into(),
                answer: a.answer.as_ref().map(convert::outcome_to_proto),
                decline_reason: a.decline_reason.clone().unwrap_or_default(),
            })
            .collect(),
        awaiting: c.awaiting.clone(),
    }
}

#[tonic::async_trait]
impl Agency for AgencyService {
    async fn submit_referral(
        &self,
        request: Request<pb::SubmitReferralRequest>,
    ) -> Result<Response<pb::SubmitReferralResponse>, Status> {
        let actor = caller(&request);
        let request = request.into_inner();
        let draft = request
            .referral
            .ok_or_else(|| required("referral", "referral: is required"))?;
        // Exactly as the client sent it, so a retry with the same key can be told apart from
        // another draft under a reused key.
        let draft_digest = hex::encode(Sha256::digest(draft.encode_to_vec()));
        let draft = convert::new_referral_from_proto(draft).map_err(invalid)?;
        let disclosed = if request.dry_run {
            self.app
                .preview(draft)
                .await
                .map_err(|e| refusal(e, Fields::DRAFT))?
        } else {
            let idempotency = Idempotency {
                key: request.idempotency_key,
                draft_digest,
            };
            self.app
                .submit(draft, Some(idempotency), &actor)
                .await
                .map_err(|e| refusal(e, Fields::DRAFT))?
        };
        Ok(Response::new(submission(&disclosed)))
    }

    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        let actor = caller(&request);
        let limit = request.into_inner().limit;
        let (stored, case) = self.app.inbox_with_case_messages(limit, &actor).await?;
        Ok(Response::new(pb::ListInboxResponse {
            items: stored
                .iter()
                .map(|s| {
                    let unseen = case.unseen.get(&s.referral.id).copied().unwrap_or_default();
                    inbox_item(s, unseen)
                })
                .collect(),
            messages: case.messages.iter().map(summary_to_proto).collect(),
        }))
    }

    async fn get_referral(
        &self,
        request: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::ReferralRecord>, Status> {
        let actor = caller(&request);
        let id = uuid(&request.into_inner().referral_id, "referral_id")?;
        let case = self.app.read_case(id, &actor).await?;
        Ok(Response::new(case_record(&case)))
    }

    async fn list_outbox(
        &self,
        request: Request<pb::ListOutboxRequest>,
    ) -> Result<Response<pb::ListOutboxResponse>, Status> {
        let request = request.into_inner();
        let entries = self.app.outbox(request.limit, request.dead_only).await?;
        Ok(Response::new(pb::ListOutboxResponse {
            entries: entries.iter().map(outbox_entry).collect(),
        }))
    }

    type WatchOutboxStream = ReceiverStream<Result<pb::OutboxEntry, Status>>;

    async fn watch_outbox(
        &self,
        _request: Request<pb::WatchOutboxRequest>,
    ) -> Result<Response<Self::WatchOutboxStream>, Status> {
        let (mut settled, stopping) = self.app.watch_deliveries();
        let (tx, rx) = mpsc::channel(64);
        // Ends when the caller goes away, the node stops, or the caller falls too far behind.
        tokio::spawn(async move {
            tokio::pin!(stopping);
            loop {
                let event = tokio::select! {
                    _ = &mut stopping => break,
                    _ = tx.closed() => break,
                    event = settled.recv() => event,
                };
                let item = match event {
                    Ok(entry) => Ok(outbox_entry(&entry)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => Err(refuse(
                        Reason::WatcherBehind,
                        format!(
                            "this watcher fell {missed} messages behind; list the outbox, then watch again"
                        ),
                    )),
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::Consent>, Status> {
        let actor = caller(&request);
        let wire = request
            .into_inner()
            .consent
            .ok_or_else(|| required("consent", "consent: is required"))?;
        let federation = self.app.trust().state().local.identity.federation.clone();
        let consent = convert::consent_from_proto(wire, &federation).map_err(invalid)?;
        let consent = self.app.record_consent(consent, &actor).await?;
        Ok(Response::new(convert::consent_to_proto(&consent)))
    }

    async fn list_consents(
        &self,
        request: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let consents = self.app.consents(request.into_inner().limit).await?;
        Ok(Response::new(pb::ListConsentsResponse {
            consents: consents.iter().map(convert::consent_to_proto).collect(),
        }))
    }

    async fn get_consent(
        &self,
        request: Request<pb::GetConsentRequest>,
    ) -> Result<Response<pb::Consent>, Status> {
        let id = uuid(&request.into_inner().consent_id, "consent_id")?;
        let consent = self.app.consent(id).await?;
        Ok(Response::new(convert::consent_to_proto(&consent)))
    }

    async fn revoke_consent(
        &self,
        request: Request<pb::RevokeConsentRequest>,
    ) -> Result<Response<pb::Consent>, Status> {
        let actor = caller(&request);
        let id = uuid(&request.into_inner().consent_id, "consent_id")?;
        let consent = self.app.revoke_consent(id, &actor).await?;
        Ok(Response::new(convert::consent_to_proto(&consent)))
    }

    async fn get_retraction(
        &self,
        request: Request<pb::GetRetractionRequest>,
    ) -> Result<Response<pb::RetractionProgress>, Status> {
        let id = uuid(&request.into_inner().consent_id, "consent_id")?;
        let progress = self.app.retraction(id).await?;
        Ok(Response::new(convert::retraction_progress_to_proto(
            &progress,
        )))
    }

    async fn list_tombstones(
        &self,
        request: Request<pb::ListTombstonesRequest>,
    ) -> Result<Response<pb::ListTombstonesResponse>, Status> {
        let tombstones = self.app.tombstones(request.into_inner().limit).await?;
        Ok(Response::new(pb::ListTombstonesResponse {
            tombstones: tombstones.iter().map(convert::tombstone_to_proto).collect(),
        }))
    }

    async fn update_referral_status(
        &self,
        request: Request<pb::UpdateReferralStatusRequest>,
    ) -> Result<Response<pb::ReferralRecord>, Status> {
        let actor = caller(&request);
        let change = status_change(request.into_inner())?;
        let (stored, events) = self.app.change_status(change, &actor).await?;
        Ok(Response::new(referral_record(&stored, &events)))
    }

    async fn preview_status_change(
        &self,
        request: Request<pb::UpdateReferralStatusRequest>,
    ) -> Result<Response<pb::StatusUpdate>, Status> {
        let change = status_change(request.into_inner())?;
        let update = self.app.preview_status_change(change).await?;
        Ok(Response::new(convert::status_update_to_proto(&update)))
    }

    async fn retry_message(
        &self,
        request: Request<pb::RetryMessageRequest>,
    ) -> Result<Response<pb::OutboxEntry>, Status> {
        let id = uuid(&request.into_inner().message_id, "message_id")?;
        let entry = self.app.retry_dead_letter(id).await?;
        Ok(Response::new(outbox_entry(&entry)))
    }

    async fn request_consultation(
        &self,
        request: Request<pb::RequestConsultationRequest>,
    ) -> Result<Response<pb::Consultation>, Status> {
        let actor = caller(&request);
        let r = request.into_inner();
        let due = r
            .due
            .map(|d| convert::timestamp_from_proto(Some(d), "due"))
            .transpose()
            .map_err(invalid)?;
        // The recipients are the partners; the draft's own recipient field is not used.
        let case = r
            .referral
            .map(|d| {
                convert::new_referral_from_proto(pb::NewReferral {
                    recipient: "-".into(),
                    ..d
                })
            })
            .transpose()
            .map_err(invalid)?
            .ok_or_else(|| required("referral", "referral: the case to consult on is required"))?;
        let request = ConsultationRequest {
            partners: r.partners,
            question: r.question,
            due,
            case,
        };
        let found = self
            .app
            .request_consultation(request, &actor)
            .await
            .map_err(|e| refusal(e, Fields::CONSULTATION))?;
        Ok(Response::new(consultation(&found)))
    }

    async fn list_consultations(
        &self,
        _request: Request<pb::ListConsultationsRequest>,
    ) -> Result<Response<pb::ListConsultationsResponse>, Status> {
        let all = self.app.consultations().await?;
        Ok(Response::new(pb::ListConsultationsResponse {
            consultations: all.iter().map(consultation).collect(),
        }))
    }

    async fn get_consultation(
        &self,
        request: Request<pb::GetConsultationRequest>,
    ) -> Result<Response<pb::Consultation>, Status> {
        let id = uuid(&request.into_inner().consultation_id, "consultation_id")?;
        let found = self.app.consultation(id).await?;
        Ok(Response::new(consultation(&found)))
    }

    async fn forward_referral(
        &self,
        request: Request<pb::ForwardReferralRequest>,
    ) -> Result<Response<pb::SubmitReferralResponse>, Status> {
        let actor = caller(&request);
        let r = request.into_inner();
        let forward = Forward {
            referral_id: uuid(&r.referral_id, "referral_id")?,
            recipient: r.recipient,
            purpose: match r.purpose {
                0 => None,
                p => Some(convert::purpose_from_proto(p, "purpose").map_err(invalid)?),
            },
            legal_basis: match r.legal_basis {
                0 => None,
                b => Some(convert::basis_from_proto(b, "legal_basis").map_err(invalid)?),
            },
            justification: Some(r.justification),
        };
        let disclosed = self.app.forward(forward, r.dry_run, &actor).await?;
        Ok(Response::new(submission(&disclosed)))
    }

    async fn request_information(
        &self,
        request: Request<pb::RequestInformationRequest>,
    ) -> Result<Response<pb::CaseMessageResponse>, Status> {
        let actor = caller(&request);
        let r = request.into_inner();
        let draft = CaseDraft::Ask {
            question: r.question,
            wanted: convert::categories_from_proto(&r.wanted, "wanted").map_err(invalid)?,
        };
        self.send_case(&r.referral_id, draft, r.dry_run, &actor)
            .await
    }

    async fn send_supplement(
        &self,
        request: Request<pb::SendSupplementRequest>,
    ) -> Result<Response<pb::CaseMessageResponse>, Status> {
        let actor = caller(&request);
        let r = request.into_inner();
        let answers = if r.answers.trim().is_empty() {
            None
        } else {
            Some(uuid(&r.answers, "answers")?)
        };
        let draft = CaseDraft::Answer {
            answers,
            content: content_of(r.content),
        };
        self.send_case(&r.referral_id, draft, r.dry_run, &actor)
            .await
    }

    async fn send_new_information(
        &self,
        request: Request<pb::SendNewInformationRequest>,
    ) -> Result<Response<pb::CaseMessageResponse>, Status> {
        let actor = caller(&request);
        let r = request.into_inner();
        let draft = CaseDraft::Inform {
            kind: convert::information_kind_from_proto(r.kind, "kind").map_err(invalid)?,
            urgent: r.urgent,
            text: r.text,
            content: content_of(r.content),
        };
        self.send_case(&r.referral_id, draft, r.dry_run, &actor)
            .await
    }

    async fn record_management_plan(
        &self,
        request: Request<pb::RecordManagementPlanRequest>,
    ) -> Result<Response<pb::CaseMessageResponse>, Status> {
        let actor = caller(&request);
        let r = request.into_inner();
        let draft =
            CaseDraft::Plan(convert::plan_draft_from_proto(r.plan, "plan").map_err(invalid)?);
        self.send_case(&r.referral_id, draft, r.dry_run, &actor)
            .await
    }

    async fn record_reassessment(
        &self,
        request: Request<pb::RecordReassessmentRequest>,
    ) -> Result<Response<pb::CaseMessageResponse>, Status> {
        let actor = caller(&request);
        let r = request.into_inner();
        let draft = CaseDraft::Reassess {
            level_of_concern: convert::level_of_concern_from_proto(r.level_of_concern),
            plan: convert::plan_draft_from_proto(r.plan, "plan").map_err(invalid)?,
        };
        self.send_case(&r.referral_id, draft, r.dry_run, &actor)
            .await
    }

    async fn list_due_reassessments(
        &self,
        request: Request<pb::ListDueReassessmentsRequest>,
    ) -> Result<Response<pb::ListDueReassessmentsResponse>, Status> {
        let due = self
            .app
            .due_reassessments(request.into_inner().within_days)
            .await?;
        Ok(Response::new(pb::ListDueReassessmentsResponse {
            today: case_message::format_date(due.today),
            overdue: due
                .overdue
                .iter()
                .map(|d| due_to_proto(d, due.today))
                .collect(),
            coming_due: due
                .coming_due
                .iter()
                .map(|d| due_to_proto(d, due.today))
                .collect(),
        }))
    }
}
