//! Consultations: a core team asks one or more partner teams for advice on a case, and each
//! partner answers on its own copy.
//!
//! A consultation is all or nothing: every partner's copy is prepared and checked before any
//! is stored, and then all copies are stored in one transaction, so a refusal for any partner,
//! or a failure while storing, leaves no partner's copy sent.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Actor, App, AppError, Disclosed};
use crate::referral::{
    AssessmentOutcome, ConsultationDetails, LegalBasis, NewReferral, Purpose, Referral,
    ReferralStatus,
};
use crate::store::{Direction, StatusEvent, StoredReferral, Submission};
use crate::trust::Role;

/// A consultation asked for by staff.
#[derive(Debug, Clone)]
pub struct ConsultationRequest {
    /// The partner teams, as team ids or identity URIs.
    pub partners: Vec<String>,
    /// What the core team asks.
    pub question: String,
    /// When an answer is needed.
    pub due: Option<OffsetDateTime>,
    /// The case to consult on; its recipient is ignored (each partner is one), and its purpose
    /// is always consultation.
    pub case: NewReferral,
}

/// One consultation this node asked for, with every partner's answer so far.
#[derive(Debug, Clone)]
pub struct Consultation {
    /// The consultation's id, shared by every partner's copy.
    pub id: Uuid,
    /// What was asked.
    pub question: String,
    /// When an answer is needed.
    pub due: Option<OffsetDateTime>,
    /// Each partner's copy and where it stands.
    pub answers: Vec<PartnerAnswer>,
    /// The partners that have not answered or declined yet, as identity URIs.
    pub awaiting: Vec<String>,
}

/// One partner's copy of a consultation.
#[derive(Debug, Clone)]
pub struct PartnerAnswer {
    /// The partner, as an identity URI.
    pub partner: String,
    /// Its copy's referral id.
    pub referral_id: Uuid,
    /// Where its copy stands.
    pub status: ReferralStatus,
    /// Its advice, once it completed its consultation.
    pub answer: Option<AssessmentOutcome>,
    /// Its reason, if it declined (and the reason was not withheld).
    pub decline_reason: Option<String>,
}

impl Consultation {
    /// The view of one consultation from every partner's copy.
    fn of(id: Uuid, copies: &[(StoredReferral, Vec<StatusEvent>)]) -> Self {
        use ReferralStatus as S;
        let details = copies
            .iter()
            .find_map(|(stored, _)| stored.referral.consultation.clone());
        let answers = copies
            .iter()
            .map(|(stored, events)| PartnerAnswer {
                partner: stored.referral.recipient.uri(),
                referral_id: stored.referral.id,
                status: stored.status,
                answer: events
                    .iter()
                    .rev()
                    .find(|e| e.status == S::Completed)
                    .and_then(|e| e.outcome.clone()),
                // The code always arrived; the words only where the policy let them.
                decline_reason: events
                    .iter()
                    .rev()
                    .find(|e| e.status == S::Declined)
                    .and_then(|e| match (e.reason_code, e.reason.as_deref()) {
                        (Some(code), Some(words)) => Some(format!("{}: {words}", code.describe())),
                        (Some(code), None) => Some(code.describe().to_owned()),
                        (None, words) => words.map(str::to_owned),
                    }),
            })
            .collect();
        let awaiting = copies
            .iter()
            .filter(|(stored, _)| {
                !matches!(
                    stored.status,
                    S::Completed | S::Declined | S::Closed | S::Cancelled
                )
            })
            .map(|(stored, _)| stored.referral.recipient.uri())
            .collect();
        Self {
            id,
            question: details
                .as_ref()
                .map(|d| d.question.clone())
                .unwrap_or_default(),
            due: details.and_then(|d| d.due),
            answers,
            awaiting,
        }
    }
}

/// The case a consultation on a received referral asks about: its content and level of
/// concern, with the subject replaced by a case handle derived from the referral's id
/// (de-identified), for advice.
pub fn deidentified(referral: &Referral) -> NewReferral {
    NewReferral {
        recipient: String::new(),
        purpose: Purpose::Consultation,
        level_of_concern: referral.level_of_concern.clone(),
        legal_basis: LegalBasis::DeIdentified,
        justification: None,
        consent_ref: None,
        content: referral.content.clone(),
        case_ref: Some(referral.id.to_string()),
        reidentify: false,
        subject_ref: None,
    }
}

impl App {
    /// Asks every partner in `request` for a consultation, all or nothing.
    pub async fn request_consultation(
        &self,
        request: ConsultationRequest,
        actor: &Actor,
    ) -> Result<Consultation, AppError> {
        if request.partners.is_empty() {
            return Err(AppError::invalid(
                "partners",
                "name at least one partner team",
            ));
        }
        if self.trust.state().local.role != Role::Core {
            return Err(AppError::Precondition(
                "only a core team asks partners for consultations; this node's team is not one"
                    .into(),
            ));
        }
        if request.question.trim().is_empty() {
            return Err(AppError::invalid("question", "is required"));
        }
        let mut case = request.case;
        case.purpose = Purpose::Consultation;
        let details = ConsultationDetails {
            id: Uuid::now_v7(),
            question: request.question,
            due: request.due,
        };
        // Every partner's copy is prepared and checked before any is stored, so one unknown
        // partner, or one the policy would send nothing to, leaves nothing half-sent.
        let mut prepared = Vec::new();
        for partner in &request.partners {
            let draft = NewReferral {
                recipient: partner.clone(),
                ..case.clone()
            };
            let (disclosure, subject) = self
                .prepare(draft, Some(details.clone()), None, Vec::new())
                .await?;
            Self::refuse_if_empty(&disclosure, Some(partner))?;
            // The question travels as ASSESSMENT. A copy without it is one the partner cannot
            // answer, so it is not sent, and neither is any other partner's.
            if disclosure.outgoing().consultation.is_none() {
                return Err(AppError::Precondition(format!(
                    "the policy withholds the question (ASSESSMENT) from {partner}, so it could not answer; nothing was sent to any team"
                )));
            }
            prepared.push((disclosure, subject));
        }
        let copies: Vec<_> = prepared
            .iter()
            .map(|(disclosure, subject)| {
                let submission = Submission {
                    forwarded_from: None,
                    subject: subject.as_deref(),
                    actor,
                    idempotency: None,
                    references: None,
                };
                (disclosure, submission)
            })
            .collect();
        self.store.submit_consultation(&copies).await?;
        for (disclosure, _) in &prepared {
            self.queued(disclosure);
        }
        tracing::info!(consultation_id = %details.id, partners = prepared.len(), "consultation fanned out");
        self.consultation(details.id).await
    }

    /// Asks `partners` about the received referral `referral_id`, de-identified
    /// ([`deidentified`]). Reading the case to do so is on record, as any read of it is.
    pub async fn consult_on(
        &self,
        referral_id: Uuid,
        partners: Vec<String>,
        question: String,
        actor: &Actor,
    ) -> Result<Consultation, AppError> {
        let (stored, _) = self.held(referral_id).await?;
        if stored.direction != Direction::Inbound {
            return Err(AppError::Precondition(
                "only a referral this team received can be consulted on".into(),
            ));
        }
        self.record_read(&stored.referral, actor).await?;
        let request = ConsultationRequest {
            partners,
            question,
            due: None,
            case: deidentified(&stored.referral),
        };
        self.request_consultation(request, actor).await
    }

    /// What [`Self::consult_on`] would send each partner, and why: one dry run per partner.
    /// Stores nothing; shows only the filter's decisions, never the case's content.
    pub async fn preview_consultation(
        &self,
        referral_id: Uuid,
        partners: &[String],
    ) -> Result<Vec<(String, Disclosed)>, AppError> {
        if partners.is_empty() {
            return Err(AppError::invalid(
                "partners",
                "name at least one partner team",
            ));
        }
        let (stored, _) = self.held(referral_id).await?;
        let case = deidentified(&stored.referral);
        let mut previews = Vec::new();
        for partner in partners {
            let draft = NewReferral {
                recipient: partner.clone(),
                ..case.clone()
            };
            previews.push((partner.clone(), self.preview(draft).await?));
        }
        Ok(previews)
    }

    /// Every consultation this node asked for.
    pub async fn consultations(&self) -> Result<Vec<Consultation>, AppError> {
        let all = self.store.consultations(None).await?;
        Ok(all
            .iter()
            .map(|(id, copies)| Consultation::of(*id, copies))
            .collect())
    }

    /// One consultation this node asked for.
    pub async fn consultation(&self, id: Uuid) -> Result<Consultation, AppError> {
        let found = self.store.consultations(Some(id)).await?;
        let (id, copies) = found
            .into_iter()
            .next()
            .ok_or_else(|| AppError::NotFound(format!("no consultation {id} on this node")))?;
        Ok(Consultation::of(id, &copies))
    }
}
