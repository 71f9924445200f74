//! The console's vocabulary: every code the node uses (a category, a status, a purpose, a
//! legal basis, a reason, a kind of case message, an audit entry's kind) in the words a school
//! counsellor or an MDT chair uses for it.
//!
//! The stable names (`MENTAL_HEALTH`, `in-assessment`) stay what the store, the wire and the
//! CLI speak; the console shows them only behind a "details" control. Every page takes its
//! words from here, so one thing is called one thing everywhere, and a new code that has no
//! words fails to compile rather than showing its name.

use crate::audit::AuditKind;
use crate::case_message::{CaseMessageKind, InformationKind, InterventionCode};
use crate::category::DataCategory;
use crate::notification::{Event, NotificationKind};
use crate::referral::{LegalBasis, Purpose, ReasonCode, ReferralStatus};
use crate::staff::StaffRole;
use crate::store::Direction;

/// A kind of information, as a heading: "Mental health information".
pub fn category(category: DataCategory) -> &'static str {
    match category {
        DataCategory::Identity => "Who the person is (name, date of birth, identifiers)",
        DataCategory::Contact => "How to reach the person (address, phone, email)",
        DataCategory::Behavior => "Behaviours of concern",
        DataCategory::Threat => "The threat (kind, target, access to weapons)",
        DataCategory::Narrative => "The written account, in your own words",
        DataCategory::MentalHealth => "Mental health information",
        DataCategory::SubstanceUse => "Substance use treatment information",
        DataCategory::EducationRecord => "School records",
        DataCategory::CriminalHistory => "Criminal history",
        DataCategory::ReporterIdentity => "Who reported the concern",
        DataCategory::ThirdParty => "Other people involved (targets, witnesses)",
        DataCategory::Assessment => "The team's assessment (level of concern, plan)",
    }
}

/// A kind of information, as a short name for lists and tables: "mental health".
pub fn category_short(category: DataCategory) -> &'static str {
    match category {
        DataCategory::Identity => "identity",
        DataCategory::Contact => "contact details",
        DataCategory::Behavior => "behaviours",
        DataCategory::Threat => "threat",
        DataCategory::Narrative => "written account",
        DataCategory::MentalHealth => "mental health",
        DataCategory::SubstanceUse => "substance use treatment",
        DataCategory::EducationRecord => "school records",
        DataCategory::CriminalHistory => "criminal history",
        DataCategory::ReporterIdentity => "who reported",
        DataCategory::ThirdParty => "other people involved",
        DataCategory::Assessment => "assessment",
    }
}

/// The law that protects a category specially, if one does.
pub fn protecting_law(category: DataCategory) -> Option<&'static str> {
    match category {
        DataCategory::MentalHealth => Some("HIPAA"),
        DataCategory::SubstanceUse => Some("42 CFR Part 2"),
        DataCategory::EducationRecord => Some("FERPA"),
        DataCategory::CriminalHistory => Some("CJIS"),
        _ => None,
    }
}

/// Where a case stands, as the team looking at it reads it: the sender and the recipient of
/// a referral see the same status from opposite sides ("Waiting for more information from
/// you" is the sender's view of `info-requested`).
pub fn status(status: ReferralStatus, direction: Direction) -> &'static str {
    let ours = direction == Direction::Inbound;
    match status {
        ReferralStatus::Sent => "Sent, not yet delivered",
        ReferralStatus::Received if ours => "New: waiting for your team to accept or decline",
        ReferralStatus::Received => "Delivered: waiting for their team to accept or decline",
        ReferralStatus::Accepted if ours => "Accepted by your team",
        ReferralStatus::Accepted => "Accepted by their team",
        ReferralStatus::Declined if ours => "Declined by your team",
        ReferralStatus::Declined => "Declined by their team",
        ReferralStatus::InfoRequested if ours => "Waiting for more information from them",
        ReferralStatus::InfoRequested => "Waiting for more information from you",
        ReferralStatus::InAssessment if ours => "Being assessed by your team",
        ReferralStatus::InAssessment => "Being assessed by their team",
        ReferralStatus::Completed => "Assessment finished",
        ReferralStatus::UnderManagement => "Assessed: the risk is being managed",
        ReferralStatus::Closed => "Closed",
        ReferralStatus::Cancelled if ours => "Withdrawn by the team that sent it",
        ReferralStatus::Cancelled => "Withdrawn by your team",
        ReferralStatus::Forwarded => "Passed on to another team",
    }
}

/// What a status change did, as a line of a case's conversation: "accepted the referral".
pub fn status_change(status: ReferralStatus) -> &'static str {
    match status {
        ReferralStatus::Sent => "sent the referral",
        ReferralStatus::Received => "received the referral",
        ReferralStatus::Accepted => "accepted the referral",
        ReferralStatus::Declined => "declined the referral",
        ReferralStatus::InfoRequested => "asked for more information",
        ReferralStatus::InAssessment => "started the assessment",
        ReferralStatus::Completed => "finished the assessment",
        ReferralStatus::UnderManagement => "is managing the risk",
        ReferralStatus::Closed => "closed the case",
        ReferralStatus::Cancelled => "withdrew the referral",
        ReferralStatus::Forwarded => "passed the referral on to another team",
    }
}

/// Why a referral is made.
pub fn purpose(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::ThreatAssessment => "Ask a team to assess a person of concern",
        Purpose::ThreatManagement => "Work together on an existing plan to manage a risk",
        Purpose::Consultation => "Ask a partner team for advice",
    }
}

/// The legal basis for sharing, with the law it rests on.
pub fn legal_basis(basis: LegalBasis) -> &'static str {
    match basis {
        LegalBasis::Consent => "The person (or their guardian) agreed, in a signed consent",
        LegalBasis::SeriousImminentThreat => {
            "A serious and imminent threat to someone's safety (HIPAA 164.512(j))"
        }
        LegalBasis::HealthSafetyEmergency => "A health or safety emergency at school (FERPA 99.36)",
        LegalBasis::LawEnforcement => "Sharing between law-enforcement agencies (CJIS)",
        LegalBasis::DeIdentified => "Nothing that names the person is shared",
    }
}

/// A coded reason for declining or withdrawing, capitalised as a sentence's start.
pub fn reason(code: ReasonCode) -> String {
    let text = code.describe();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A kind of case message, as the line that introduces it: "asked a question".
pub fn case_message(kind: CaseMessageKind) -> &'static str {
    match kind {
        CaseMessageKind::InformationRequest => "asked for information",
        CaseMessageKind::Supplement => "answered with more information",
        CaseMessageKind::NewInformation => "shared new information",
        CaseMessageKind::ManagementPlan => "shared the plan to manage the risk",
        CaseMessageKind::Reassessment => "reassessed the risk",
    }
}

/// What new information is about.
pub fn information(kind: InformationKind) -> &'static str {
    match kind {
        InformationKind::TripwireReport => "Someone noticed a worrying change",
        InformationKind::PrecipitatingEvent => {
            "Something happened that could make things worse (a loss, a rejection, a crisis)"
        }
        InformationKind::ProtectiveFactor => {
            "Something that lowers the risk (support, engagement, stability)"
        }
    }
}

/// One step of a plan to manage a risk.
pub fn intervention(code: InterventionCode) -> &'static str {
    match code {
        InterventionCode::CheckIns => "Regular check-ins with a named adult or officer",
        InterventionCode::SafetyPlan => "A written safety plan with the person and family",
        InterventionCode::MentalHealthReferral => "A referral for mental-health care",
        InterventionCode::Counselling => "Counselling at school or in the community",
        InterventionCode::SchoolSupportPlan => "A plan of supports at school",
        InterventionCode::Supervision => "Supervision of where the person goes and what they do",
        InterventionCode::Monitoring => "Monitoring of messages or social media, within the law",
        InterventionCode::RestrictWeaponsAccess => "Steps to keep weapons out of reach",
        InterventionCode::FamilyEngagement => "Involving the family or guardians",
        InterventionCode::Mentoring => "A mentor or trusted adult",
        InterventionCode::LawEnforcementContact => "A visit or warning from law enforcement",
        InterventionCode::TargetProtection => "Steps to protect a person who was threatened",
        InterventionCode::Other => "Another step (details kept by the team)",
    }
}

/// A role, as staff call it.
pub fn role(role: StaffRole) -> &'static str {
    match role {
        StaffRole::CaseWorker => "Case worker",
        StaffRole::Chair => "Team chair",
        StaffRole::Auditor => "Auditor",
        StaffRole::Admin => "Administrator",
    }
}

/// What an audit entry records, as an auditor reads it.
pub fn audit_kind(kind: AuditKind) -> &'static str {
    match kind {
        AuditKind::Disclosure => "Information sent to another team",
        AuditKind::Receipt => "Information received from another team",
        AuditKind::StatusChange => "A case's status changed",
        AuditKind::ConsentRecorded => "A consent was recorded",
        AuditKind::ConsentRevoked => "A consent was withdrawn",
        AuditKind::RetractionReceived => "Another team asked us to delete a case",
        AuditKind::RetractionAcknowledged => "Another team confirmed it deleted a case",
        AuditKind::Purge => "A case was deleted",
        AuditKind::TrustChange => "The list of trusted teams changed",
        AuditKind::CaseRead => "A staff member read a received case",
        AuditKind::InboxRead => "A staff member opened the list of cases",
        AuditKind::InboundRejected => "Another node's message was refused",
        AuditKind::AuditRetention => "Old audit entries were removed as the retention rules say",
        AuditKind::SignIn => "A staff member signed in",
        AuditKind::SignInFailed => "A sign-in was refused",
        AuditKind::AccountLocked => "An account was locked after failed sign-ins",
        AuditKind::AccountChange => "A staff account was changed",
        AuditKind::ConsentFormAttached => "A signed consent form was attached",
        AuditKind::ConsentFormRead => "A staff member downloaded a signed consent form",
    }
}

/// A team's id in words, as a name: `county-core` reads "County Core". Team ids are all the
/// federation knows a team by; written as a name they read as one in a sentence.
pub fn team(id: &str) -> String {
    id.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A behaviour of concern the forms offer: its code (what travels, and what the other
/// team's system reads), a short name, and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BehaviorWord {
    /// The code on the wire: `LEAKAGE`.
    pub code: &'static str,
    /// A short name: "Told others".
    pub name: &'static str,
    /// What it means, for someone who has not read the research.
    pub meaning: &'static str,
}

/// The warning behaviours the forms offer, with their meanings: the eight proximal warning
/// behaviours threat assessment teams commonly code (Meloy's typology, as in TRAP-18). A code
/// not in this list (from another system, or an older form) still travels and still shows,
/// as its code, beside the text "a behaviour this console has no words for".
pub const BEHAVIORS: [BehaviorWord; 8] = [
    BehaviorWord {
        code: "PATHWAY",
        name: "Planning or preparing",
        meaning: "Research, planning, preparation or steps toward an attack.",
    },
    BehaviorWord {
        code: "FIXATION",
        name: "Fixed on a person or cause",
        meaning: "Growing preoccupation with a person or cause, with worsening work or school life.",
    },
    BehaviorWord {
        code: "IDENTIFICATION",
        name: "Sees themself as a warrior",
        meaning: "Identifies with earlier attackers, weapons or a 'warrior' role.",
    },
    BehaviorWord {
        code: "NOVEL_AGGRESSION",
        name: "New violent act",
        meaning: "An act of violence unlike their past behaviour, as if testing themself.",
    },
    BehaviorWord {
        code: "ENERGY_BURST",
        name: "Sudden rush of activity",
        meaning: "A sudden rise in activity related to the target, often days or weeks before.",
    },
    BehaviorWord {
        code: "LEAKAGE",
        name: "Told others",
        meaning: "Told someone other than the target about an intent to harm.",
    },
    BehaviorWord {
        code: "LAST_RESORT",
        name: "Feels out of options",
        meaning: "Says or shows that violence is the only way left.",
    },
    BehaviorWord {
        code: "DIRECT_THREAT",
        name: "Threatened the target",
        meaning: "Communicated a threat directly to the target or the police.",
    },
];

/// The words for a behaviour code, if the console has them.
pub fn behavior(code: &str) -> Option<&'static BehaviorWord> {
    BEHAVIORS.iter().find(|b| b.code.eq_ignore_ascii_case(code))
}

/// Where a case stands, whichever team is looking: for a choice that covers cases sent and
/// received alike (the status filter of "My cases").
pub fn status_any(status: ReferralStatus) -> &'static str {
    match status {
        ReferralStatus::Sent => "Sent, not yet delivered",
        ReferralStatus::Received => "Delivered, waiting to be accepted or declined",
        ReferralStatus::Accepted => "Accepted",
        ReferralStatus::Declined => "Declined",
        ReferralStatus::InfoRequested => "Waiting for more information",
        ReferralStatus::InAssessment => "Being assessed",
        ReferralStatus::Completed => "Assessment finished",
        ReferralStatus::UnderManagement => "Assessed: the risk is being managed",
        ReferralStatus::Closed => "Closed",
        ReferralStatus::Cancelled => "Withdrawn by the team that sent it",
        ReferralStatus::Forwarded => "Passed on to another team",
    }
}

/// What a notification reports, as a sentence that names only the other team and the kind
/// of event: "County core asked for more information". It is what the list shows and what an
/// email says, so it must never carry anything of the case itself.
pub fn notification(event: Event, team_uri: &str) -> String {
    let id = team_uri.rsplit('/').next().unwrap_or(team_uri);
    let other = team(id);
    let sentence = match event {
        Event::ReferralReceived => format!("{other} sent your team a new referral"),
        Event::Status(status) => format!("{other} {}", status_change(status)),
        Event::CaseMessage(kind) => format!("{other} {}", case_message(kind)),
        Event::DeliveryFailed => {
            return format!("A message for {other} could not be delivered");
        }
    };
    let mut letters = sentence.chars();
    letters
        .next()
        .map(|first| first.to_uppercase().chain(letters).collect())
        .unwrap_or_default()
}

/// A kind of notification, as a choice on the settings page.
pub fn notification_kind(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::ReferralReceived => "A new referral arrives for your team",
        NotificationKind::StatusUpdate => {
            "The other team accepts, declines, asks for information or otherwise changes a case"
        }
        NotificationKind::CaseMessage => {
            "The other team sends a question, an answer, new information or a plan"
        }
        NotificationKind::DeliveryFailed => "A message of your team's could not be delivered",
    }
}

/// Who did something, as the audit log records it (`console alice`, `uid 0`, a team's
/// identity URI, `node`), in words: the staff member's username, "another team: county core",
/// "an administrator at the node's command line" or "this node, on its own". Never a uid or
/// a URI; the raw form stays behind the audit entry's "Details".
pub fn actor(recorded: &str) -> String {
    if let Some(username) = recorded.strip_prefix("console ") {
        return match username {
            "(unknown account)" => "Someone who typed a username that has no account".into(),
            "(unprintable username)" => "Someone whose username cannot be shown".into(),
            name => format!("{name} (staff member)"),
        };
    }
    if recorded.starts_with("uid ") {
        // `uid 1000 (j.doe)`: the name the command line gave, if any.
        return match recorded.split_once(" (") {
            Some((_, name)) => format!(
                "{} (at the node's command line)",
                name.trim_end_matches(')')
            ),
            None => "An administrator at the node's command line".into(),
        };
    }
    if recorded.starts_with("spiffe://") {
        let id = recorded.rsplit('/').next().unwrap_or(recorded);
        return format!("Another team: {}", team(id));
    }
    if recorded == "node" || recorded.starts_with("node (") {
        return "This node, on its own".into();
    }
    "Someone this console has no words for (see the details)".into()
}

/// What a consent covers, for one of its three choices, when it covers everything: the
/// words for "any team", "any purpose", "every kind of information".
pub const ANY_TEAM: &str = "Any team this node trusts, now or later";
/// See [`ANY_TEAM`].
pub const ANY_PURPOSE: &str = "Any purpose";
/// See [`ANY_TEAM`].
pub const EVERY_KIND: &str = "Every kind of information, including the specially protected kinds";

/// The warning a consent's scope deserves: one sentence per specially protected kind of
/// information it covers, naming the law; "every kind" covers them all.
pub fn protected_warnings(categories: &[DataCategory]) -> Vec<String> {
    let covered: Vec<DataCategory> = if categories.is_empty() {
        DataCategory::ALL.to_vec()
    } else {
        categories.to_vec()
    };
    covered
        .into_iter()
        .filter_map(|c| {
            protecting_law(c).map(|law| {
                format!(
                    "{} is protected by {law}: share it only if the signed consent names it.",
                    category(c)
                )
            })
        })
        .collect()
}

/// A kind of file staff attach, by its content type: "PDF document".
pub fn file_kind(content_type: &str) -> &'static str {
    match content_type {
        "application/pdf" => "PDF document",
        "image/png" => "PNG picture",
        "image/jpeg" => "JPEG picture",
        _ => "file",
    }
}

/// Every team of a discipline, as a consent may name them: "every law-enforcement team".
pub fn discipline(discipline: crate::team::Discipline) -> &'static str {
    use crate::team::Discipline as D;
    match discipline {
        D::LawEnforcement => "Every law-enforcement team",
        D::MentalHealth => "Every mental-health team",
        D::SubstanceUse => "Every substance-use treatment team",
        D::Education => "Every school team",
        D::SocialServices => "Every social-services team",
        D::FederalPartner => "Every federal partner team",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    /// No word may be a code: a page that shows these never shows `MENTAL_HEALTH` or
    /// `in-assessment`.
    fn is_words(text: &str) -> bool {
        !text.contains('_')
            && !text.chars().all(|c| c.is_uppercase() || !c.is_alphabetic())
            && !text.starts_with(char::is_lowercase)
    }

    #[test]
    fn every_code_has_words_that_are_not_the_code() {
        for c in DataCategory::ALL {
            assert!(is_words(category(c)), "{c:?}");
            assert_ne!(category_short(c), c.as_str());
        }
        for s in ReferralStatus::ALL {
            for d in [Direction::Inbound, Direction::Outbound] {
                assert!(is_words(status(s, d)), "{s:?}");
            }
        }
        for s in ReferralStatus::ALL {
            assert!(is_words(status_any(s)), "{s:?}");
        }
        for p in Purpose::iter() {
            assert!(is_words(purpose(p)));
        }
        for b in LegalBasis::iter() {
            assert!(is_words(legal_basis(b)));
        }
        for r in ReasonCode::all() {
            assert!(is_words(&reason(r)));
        }
        for k in InformationKind::iter() {
            assert!(is_words(information(k)));
        }
        for i in InterventionCode::iter() {
            assert!(is_words(intervention(i)));
        }
        for k in AuditKind::ALL {
            assert!(is_words(audit_kind(k)));
        }
    }

    #[test]
    fn actors_read_as_people_and_teams_never_as_uids_or_uris() {
        assert_eq!(actor("console alice"), "alice (staff member)");
        assert_eq!(
            actor("uid 0"),
            "An administrator at the node's command line"
        );
        assert_eq!(
            actor("uid 1000 (j.doe)"),
            "j.doe (at the node's command line)"
        );
        assert_eq!(
            actor("spiffe://county-mdt.example/team/county-core"),
            "Another team: County Core"
        );
        assert_eq!(actor("node (directory refresh)"), "This node, on its own");
        for recorded in ["uid 0", "spiffe://f/team/x", "node", "x"] {
            let words = actor(recorded);
            assert!(
                !words.contains("uid") && !words.contains("spiffe"),
                "{words}"
            );
        }
    }

    #[test]
    fn every_kind_of_information_warns_of_each_protecting_law() {
        let all = protected_warnings(&[]).join(" ");
        for law in ["HIPAA", "42 CFR Part 2", "FERPA", "CJIS"] {
            assert!(all.contains(law), "{all}");
        }
        assert!(protected_warnings(&[DataCategory::Threat]).is_empty());
        assert_eq!(protected_warnings(&[DataCategory::MentalHealth]).len(), 1);
    }

    #[test]
    fn the_two_sides_of_a_request_for_information_read_differently() {
        assert_eq!(
            status(ReferralStatus::InfoRequested, Direction::Outbound),
            "Waiting for more information from you"
        );
        assert_ne!(
            status(ReferralStatus::InfoRequested, Direction::Inbound),
            status(ReferralStatus::InfoRequested, Direction::Outbound)
        );
    }

    #[test]
    fn the_specially_protected_categories_name_their_law() {
        let protected: Vec<_> = DataCategory::ALL
            .into_iter()
            .filter(|c| protecting_law(*c).is_some())
            .collect();
        assert_eq!(
            protected,
            [
                DataCategory::MentalHealth,
                DataCategory::SubstanceUse,
                DataCategory::EducationRecord,
                DataCategory::CriminalHistory
            ]
        );
        assert_eq!(
            protecting_law(DataCategory::SubstanceUse),
            Some("42 CFR Part 2")
        );
    }
}
