//! The closed loop of a referral (after ONC 360X and FHIR Task): which status may follow which,
//! and who may move it.
//!
//! ```text
//!   sent ──▶ received ──▶ accepted ──▶ in-assessment ──▶ completed ──▶ under-management ──▶ closed
//!            │  ▲                                           │                                ▲
//!            │  │                                           └────────────────────────────────┘
//!            │  └── info-requested ──▶ accepted | declined
//!            └──▶ declined ──▶ closed
//!   the sender may cancel anything not yet completed, declined, closed or cancelled
//! ```
//!
//! The recipient moves every status but `cancelled`, which only the sender may set. Declining
//! and cancelling need a coded reason (words beside it are optional); completing needs the
//! outcome. Completing ends the assessment, not the case: a case the core team manages is
//! `under-management` (set by hand, or by recording a plan or reassessment on a completed
//! case, [`crate::case_message::moves_to`]) until it is closed, and case messages flow until
//! then.

use crate::category::DataCategory;
use crate::referral::{ReferralStatus, StatusUpdate};

/// Which side of a referral acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The team that sent it.
    Sender,
    /// The team it was sent to.
    Recipient,
}

/// A status change that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The status cannot follow the current one.
    #[error("the referral is {current}; it cannot become {next}")]
    NotFromHere {
        /// Where it is.
        current: ReferralStatus,
        /// Where it was asked to go.
        next: ReferralStatus,
    },
    /// This side may not make this change.
    #[error("only the {allowed} of a referral may set it to {next}")]
    WrongParty {
        /// Who may.
        allowed: &'static str,
        /// The status asked for.
        next: ReferralStatus,
    },
    /// A required detail is missing.
    #[error("{0}")]
    Missing(&'static str),
}

/// Whether recording `next` changes the referral's current status, or only its timeline.
pub fn moves_status(current: ReferralStatus, next: ReferralStatus) -> bool {
    match next {
        ReferralStatus::Received => current == ReferralStatus::Sent,
        ReferralStatus::Forwarded => false,
        _ => true,
    }
}

/// Checks that `side` may move a referral from `current` to the status of `update`. A partner
/// answers a consultation (`completed`) straight from `received`: there is no case to accept.
pub fn check(
    current: ReferralStatus,
    update: &StatusUpdate,
    side: Side,
    consultation: bool,
) -> Result<(), TransitionError> {
    use ReferralStatus as S;
    let next = update.status;
    let by_sender = next == S::Cancelled;
    match (side, by_sender) {
        (Side::Recipient, true) => {
            return Err(TransitionError::WrongParty {
                allowed: "sender",
                next,
            });
        }
        (Side::Sender, false) => {
            return Err(TransitionError::WrongParty {
                allowed: "recipient",
                next,
            });
        }
        _ => {}
    }
    let allowed = match next {
        // A receipt is a fact, not a decision: it is recorded whenever it arrives (a cancel
        // may have overtaken it at the sender), but only moves a referral that was just sent.
        S::Received => true,
        S::Accepted | S::Declined => matches!(current, S::Sent | S::Received | S::InfoRequested),
        S::InfoRequested => matches!(current, S::Sent | S::Received),
        S::InAssessment => matches!(current, S::Accepted),
        S::Completed if consultation => matches!(
            current,
            S::Sent | S::Received | S::Accepted | S::InAssessment
        ),
        S::Completed => matches!(current, S::InAssessment),
        S::UnderManagement => !consultation && current == S::Completed,
        S::Closed => matches!(current, S::Completed | S::Declined | S::UnderManagement),
        S::Cancelled => matches!(
            current,
            S::Sent | S::Received | S::InfoRequested | S::Accepted | S::InAssessment
        ),
        // Forwarding is a fact the recipient reports; it does not change the status.
        S::Forwarded => !matches!(current, S::Cancelled | S::Declined),
        S::Sent => false,
    };
    if !allowed {
        return Err(TransitionError::NotFromHere { current, next });
    }
    // A reason or outcome the filter withheld was still given; the manifest says so.
    let withheld = |category| update.withheld.iter().any(|w| w.category == category);
    let has_reason = update.reason_code.is_some();
    let has_outcome = update.outcome.is_some() || withheld(DataCategory::Assessment);
    match next {
        S::Declined if !has_reason => Err(TransitionError::Missing(
            "reason_code: declining needs a coded reason (not-a-threat-assessment-matter, outside-jurisdiction, referred-elsewhere, insufficient-information, duplicate or other)",
        )),
        S::Cancelled if !has_reason => Err(TransitionError::Missing(
            "reason_code: cancelling needs a coded reason (not-a-threat-assessment-matter, outside-jurisdiction, referred-elsewhere, insufficient-information, duplicate or other)",
        )),
        S::Completed if !has_outcome => Err(TransitionError::Missing(
            "outcome: completing needs the level of concern and whether a management plan is in place",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::referral::AssessmentOutcome;
    use tatmx_certs::TeamIdentity;
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn update(status: ReferralStatus) -> StatusUpdate {
        StatusUpdate {
            id: Uuid::now_v7(),
            referral_id: Uuid::now_v7(),
            author: TeamIdentity::parse_uri("spiffe://f.example/team/a").unwrap(),
            status,
            at: OffsetDateTime::now_utc(),
            reason: Some("because".into()),
            reason_code: Some(crate::referral::ReasonCode::Other),
            outcome: Some(AssessmentOutcome {
                level_of_concern: None,
                management_plan: true,
                advice: String::new(),
                recommendations: vec![],
            }),
            withheld: vec![],
            forwarded_to: None,
        }
    }

    #[test]
    fn the_happy_path_is_allowed_in_order() {
        use ReferralStatus as S;
        let path = [
            S::Sent,
            S::Received,
            S::Accepted,
            S::InAssessment,
            S::Completed,
            S::Closed,
        ];
        for pair in path.windows(2) {
            check(pair[0], &update(pair[1]), Side::Recipient, false).unwrap();
        }
        // A managed case goes on after its assessment, until it is closed.
        check(
            S::Completed,
            &update(S::UnderManagement),
            Side::Recipient,
            false,
        )
        .unwrap();
        check(
            S::UnderManagement,
            &update(S::Closed),
            Side::Recipient,
            false,
        )
        .unwrap();
        assert!(
            check(
                S::UnderManagement,
                &update(S::Cancelled),
                Side::Sender,
                false
            )
            .is_err()
        );
        assert!(
            check(
                S::InAssessment,
                &update(S::UnderManagement),
                Side::Recipient,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn every_other_transition_names_the_current_state() {
        use ReferralStatus as S;
        let err = check(S::Received, &update(S::Completed), Side::Recipient, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the referral is received; it cannot become completed"
        );
        assert!(check(S::Closed, &update(S::Accepted), Side::Recipient, false).is_err());
        assert!(check(S::Cancelled, &update(S::Cancelled), Side::Sender, false).is_err());
    }

    #[test]
    fn only_the_sender_cancels_and_only_the_recipient_accepts() {
        use ReferralStatus as S;
        assert!(matches!(
            check(S::Received, &update(S::Cancelled), Side::Recipient, false),
            Err(TransitionError::WrongParty {
                allowed: "sender",
                ..
            })
        ));
        assert!(matches!(
            check(S::Received, &update(S::Accepted), Side::Sender, false),
            Err(TransitionError::WrongParty {
                allowed: "recipient",
                ..
            })
        ));
        check(S::InAssessment, &update(S::Cancelled), Side::Sender, false).unwrap();
    }

    #[test]
    fn declining_needs_a_coded_reason_and_completing_an_outcome() {
        use ReferralStatus as S;
        let mut decline = update(S::Declined);
        decline.reason_code = None;
        assert!(matches!(
            check(S::Received, &decline, Side::Recipient, false),
            Err(TransitionError::Missing(m)) if m.starts_with("reason_code")
        ));
        // Words alone are not a reason the other team can rely on receiving.
        decline.reason = Some("we are not the right team".into());
        assert!(check(S::Received, &decline, Side::Recipient, false).is_err());
        // A code alone is: the words are optional.
        decline.reason_code = Some(crate::referral::ReasonCode::OutsideJurisdiction);
        decline.reason = None;
        check(S::Received, &decline, Side::Recipient, false).unwrap();
        let mut complete = update(S::Completed);
        complete.outcome = None;
        assert!(check(S::InAssessment, &complete, Side::Recipient, false).is_err());
    }
}
