//! A message attached to a shared case after its referral: a question and its answer, new
//! information, a management plan, a reassessment.
//!
//! TATM is not one message each way. Once a referral is shared, the two teams keep talking
//! about the same case: the recipient asks for information and the sender answers with a
//! **supplement**; either team sends **new information** (a tripwire report, a precipitating
//! event, a protective factor), urgent or not; the core team records a **management plan** and
//! later **reassessments**, each with the date of the next one. Each is a [`CaseMessage`]: it
//! names its referral, is made by one of the referral's two teams, passes the filter like the
//! referral did (free text is NARRATIVE, plans and levels of concern are ASSESSMENT, content
//! sections their own categories), travels signed and receipted, and is sealed at the
//! recipient under the referral's data key, so a purge shreds it with the referral.
//!
//! [`check`] says who may send which kind while the case is in which state; both nodes ask it,
//! the sender before it queues and the receiver before it keeps. A forward is a referral of its
//! own, so a team a case was forwarded to talks to the team that forwarded it on the forward's
//! id, with the same rules.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tatmx_certs::TeamIdentity;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::category::DataCategory;
use crate::lifecycle::Side;
use crate::referral::{LevelOfConcern, ReferralContent, ReferralStatus, ValidationError, Withheld};

/// The longest free text a case message carries (a question, new information, a supplement's
/// narrative), in characters. A case note, not a document: longer material belongs in the
/// agency's own records.
pub const MAX_TEXT_CHARS: usize = 4000;

/// The most interventions one plan lists.
pub const MAX_INTERVENTIONS: usize = 32;

/// The most categories a question may ask for: every category there is.
const MAX_WANTED: usize = 12;

/// What kind of case message it is. The stored and CLI name is kebab-case.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::Display,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum CaseMessageKind {
    /// The recipient asks the sender for information.
    InformationRequest,
    /// The sender answers, with more of the case.
    Supplement,
    /// Either team reports something new.
    NewInformation,
    /// The core team's plan: interventions, who does each, when to reassess.
    ManagementPlan,
    /// The core team's new level of concern and plan.
    Reassessment,
}

impl CaseMessageKind {
    /// The stable name used in the store, the audit log and the CLI.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }

    /// Words for people: "a management plan".
    fn described(self) -> &'static str {
        match self {
            Self::InformationRequest => "an information request",
            Self::Supplement => "a supplement",
            Self::NewInformation => "new information",
            Self::ManagementPlan => "a management plan",
            Self::Reassessment => "a reassessment",
        }
    }
}

/// What new information is: a coded kind that always reaches the other team, whatever the
/// policy does with the text.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::Display,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum InformationKind {
    /// A bystander or tripwire saw a concerning change.
    TripwireReport,
    /// Something happened that may push the subject further (a loss, a rejection, a crisis).
    PrecipitatingEvent,
    /// Something that lowers the risk (support, engagement, stability).
    ProtectiveFactor,
}

impl InformationKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

/// An intervention of a management plan, from a fixed vocabulary, so that both teams (and
/// the accounting) read the same thing whatever language the plan was written in.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::Display,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum InterventionCode {
    /// Regular check-ins with the subject by a named adult or officer.
    CheckIns,
    /// A written safety plan with the subject (and family).
    SafetyPlan,
    /// A referral for a mental-health evaluation or treatment.
    MentalHealthReferral,
    /// Counselling in school or in the community.
    Counselling,
    /// A plan of supports at school (schedule, supervision, accommodations).
    SchoolSupportPlan,
    /// Supervision or monitoring of the subject's movements or activities.
    Supervision,
    /// Monitoring of communications or social media, within the law.
    Monitoring,
    /// Steps to restrict access to weapons (safe storage, removal, an order).
    RestrictWeaponsAccess,
    /// Engaging the family or guardians in the plan.
    FamilyEngagement,
    /// A mentor or positive adult connection.
    Mentoring,
    /// Contact by law enforcement (a knock-and-talk, a warning).
    LawEnforcementContact,
    /// Protective steps for a named target.
    TargetProtection,
    /// Anything else; the plan's details stay in the core team's own record.
    Other,
}

impl InterventionCode {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }

    /// Every code's name, for messages that list what is allowed.
    pub fn names() -> String {
        use strum::IntoEnumIterator;
        Self::iter()
            .map(Self::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One intervention and the team that carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intervention {
    /// What is done.
    pub code: InterventionCode,
    /// Who does it: either team of the case, or another team of the federation.
    pub responsible: TeamIdentity,
}

/// A management plan: its interventions and when the case is next reassessed. Category
/// ASSESSMENT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What is done, by whom.
    pub interventions: Vec<Intervention>,
    /// When the core team reassesses next.
    pub next_reassessment: Date,
}

/// A plan as staff write it: each intervention's team as they named it (a team id or URI),
/// which the node resolves before the plan becomes a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDraft {
    /// What is done, and the team named to do it.
    pub interventions: Vec<(InterventionCode, String)>,
    /// When the core team reassesses next.
    pub next_reassessment: Date,
}

/// What a case message says. A part the filter withheld is `None` (or empty) and listed in the
/// message's manifest; the coded parts (what kind of information, whether it is urgent, which
/// categories a question asks for, which question a supplement answers) always travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseBody {
    /// The recipient asks the sender for information.
    InformationRequest {
        /// What is asked. Category NARRATIVE.
        question: Option<String>,
        /// The categories wanted, coded.
        wanted: BTreeSet<DataCategory>,
    },
    /// The sender answers with more of the case.
    Supplement {
        /// The information request it answers, if it answers one.
        answers: Option<Uuid>,
        /// The case data, one section per category, as in a referral.
        content: ReferralContent,
    },
    /// Either team reports something new.
    NewInformation {
        /// What it is.
        kind: InformationKind,
        /// Whether it comes first in the other team's inbox.
        urgent: bool,
        /// What happened. Category NARRATIVE.
        text: Option<String>,
        /// Case data that goes with it, one section per category.
        content: ReferralContent,
    },
    /// The core team's management plan.
    ManagementPlan {
        /// The plan. Category ASSESSMENT.
        plan: Option<Plan>,
    },
    /// The core team's reassessment.
    Reassessment {
        /// The new level of concern. Category ASSESSMENT.
        level_of_concern: Option<LevelOfConcern>,
        /// The plan from now on. Category ASSESSMENT.
        plan: Option<Plan>,
    },
}

impl CaseBody {
    /// Which kind of message this is.
    pub fn kind(&self) -> CaseMessageKind {
        match self {
            Self::InformationRequest { .. } => CaseMessageKind::InformationRequest,
            Self::Supplement { .. } => CaseMessageKind::Supplement,
            Self::NewInformation { .. } => CaseMessageKind::NewInformation,
            Self::ManagementPlan { .. } => CaseMessageKind::ManagementPlan,
            Self::Reassessment { .. } => CaseMessageKind::Reassessment,
        }
    }

    /// The content sections it carries, if it is a kind that carries any.
    pub fn content(&self) -> Option<&ReferralContent> {
        match self {
            Self::Supplement { content, .. } | Self::NewInformation { content, .. } => {
                Some(content)
            }
            _ => None,
        }
    }

    /// The plan it carries, if any.
    pub fn plan(&self) -> Option<&Plan> {
        match self {
            Self::ManagementPlan { plan } | Self::Reassessment { plan, .. } => plan.as_ref(),
            _ => None,
        }
    }
}

/// A message about a shared referral, as it is stored and as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseMessage {
    /// UUIDv7, chosen by the author's node; also its message id in delivery.
    pub id: Uuid,
    /// The referral it is about, as both teams know it.
    pub referral_id: Uuid,
    /// The team that wrote it: one of the referral's two teams.
    pub author: TeamIdentity,
    /// When its author's node accepted it, by that node's clock.
    pub at: OffsetDateTime,
    /// What it says.
    pub body: CaseBody,
    /// Labels per disclosed category, such as NO_REDISCLOSURE.
    pub labels: BTreeMap<DataCategory, Vec<String>>,
    /// The manifest of what the author's filter withheld, with none of the content.
    pub withheld: Vec<Withheld>,
}

impl CaseMessage {
    /// Which kind of message this is.
    pub fn kind(&self) -> CaseMessageKind {
        self.body.kind()
    }

    /// Whether it is urgent new information.
    pub fn urgent(&self) -> bool {
        matches!(self.body, CaseBody::NewInformation { urgent: true, .. })
    }

    /// When the case is next reassessed, by the plan it carries.
    pub fn next_reassessment(&self) -> Option<Date> {
        self.body.plan().map(|p| p.next_reassessment)
    }

    /// Every category of case data it carries. Its coded parts are not case data.
    pub fn categories(&self) -> BTreeSet<DataCategory> {
        let mut categories = self
            .body
            .content()
            .map(ReferralContent::categories)
            .unwrap_or_default();
        let (narrative, assessment) = match &self.body {
            CaseBody::InformationRequest { question, .. } => (question.is_some(), false),
            CaseBody::NewInformation { text, .. } => (text.is_some(), false),
            CaseBody::Supplement { .. } => (false, false),
            CaseBody::ManagementPlan { plan } => (false, plan.is_some()),
            CaseBody::Reassessment {
                level_of_concern,
                plan,
            } => (false, level_of_concern.is_some() || plan.is_some()),
        };
        if narrative {
            categories.insert(DataCategory::Narrative);
        }
        if assessment {
            categories.insert(DataCategory::Assessment);
        }
        categories
    }

    /// Removes every part of one category: what the filter does to a withheld category.
    pub fn remove(&mut self, category: DataCategory) {
        match &mut self.body {
            CaseBody::InformationRequest { question, .. } => {
                if category == DataCategory::Narrative {
                    *question = None;
                }
            }
            CaseBody::Supplement { content, .. } => content.remove(category),
            CaseBody::NewInformation { text, content, .. } => {
                if category == DataCategory::Narrative {
                    *text = None;
                }
                content.remove(category);
            }
            CaseBody::ManagementPlan { plan } => {
                if category == DataCategory::Assessment {
                    *plan = None;
                }
            }
            CaseBody::Reassessment {
                level_of_concern,
                plan,
            } => {
                if category == DataCategory::Assessment {
                    *level_of_concern = None;
                    *plan = None;
                }
            }
        }
    }

    /// The rules every case message meets, as it travels and as it is stored: each required
    /// part is present or listed as withheld, nothing listed as withheld is present, and no
    /// text or list is over its limit. Messages name fields, never their values.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut problems = Vec::new();
        let withheld = |category| self.withheld.iter().any(|w| w.category == category);
        let present = self.categories();
        for w in &self.withheld {
            if present.contains(&w.category) {
                problems.push(format!(
                    "withheld: {} is listed as withheld but is present",
                    w.category
                ));
            }
        }
        let mut text = |field: &str, value: Option<&str>| {
            if let Some(value) = value {
                if value.trim().is_empty() {
                    problems.push(format!("{field}: is empty"));
                } else if value.chars().count() > MAX_TEXT_CHARS {
                    problems.push(format!("{field}: at most {MAX_TEXT_CHARS} characters"));
                }
            }
        };
        match &self.body {
            CaseBody::InformationRequest { question, .. } => {
                text("question", question.as_deref());
            }
            CaseBody::NewInformation { text: t, .. } => text("text", t.as_deref()),
            _ => {}
        }
        if let Some(narrative) = self.body.content().and_then(|c| c.narrative.as_ref()) {
            text("content.narrative.text", Some(&narrative.text));
        }
        match &self.body {
            CaseBody::InformationRequest { question, wanted } => {
                if question.is_none() && wanted.is_empty() && !withheld(DataCategory::Narrative) {
                    problems
                        .push("question: give a question, the categories wanted, or both".into());
                }
                if wanted.len() > MAX_WANTED {
                    problems.push(format!("wanted: at most {MAX_WANTED} categories"));
                }
            }
            CaseBody::Supplement { content, .. } => {
                if content.categories().is_empty() && self.withheld.is_empty() {
                    problems.push("content: a supplement must carry at least one section".into());
                }
            }
            CaseBody::NewInformation { .. } => {}
            CaseBody::ManagementPlan { plan } => {
                check_plan(
                    plan.as_ref(),
                    withheld(DataCategory::Assessment),
                    &mut problems,
                );
            }
            CaseBody::Reassessment {
                level_of_concern,
                plan,
            } => {
                let kept_back = withheld(DataCategory::Assessment);
                match level_of_concern {
                    Some(level)
                        if level.scheme.trim().is_empty() || level.value.trim().is_empty() =>
                    {
                        problems.push("level_of_concern: needs both scheme and value".into());
                    }
                    None if !kept_back => {
                        problems.push("level_of_concern: a reassessment needs one".into());
                    }
                    _ => {}
                }
                check_plan(plan.as_ref(), kept_back, &mut problems);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { problems })
        }
    }

    /// What staff may write, over [`Self::validate`]: a new plan's next reassessment is not
    /// before `today`, and a new message carries something. Checked by the author's node
    /// only: the recipient's date may be a day apart.
    pub fn validate_draft(&self, today: Date) -> Result<(), ValidationError> {
        let mut problems = match self.validate() {
            Ok(()) => Vec::new(),
            Err(e) => e.problems,
        };
        if let Some(plan) = self.body.plan()
            && plan.next_reassessment < today
        {
            problems.push(format!(
                "next_reassessment: is in the past; give today ({today}) or a later date"
            ));
        }
        if let CaseBody::NewInformation { text, content, .. } = &self.body
            && text.is_none()
            && content.categories().is_empty()
        {
            problems.push("text: new information needs a text, content, or both".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { problems })
        }
    }
}

fn check_plan(plan: Option<&Plan>, withheld: bool, problems: &mut Vec<String>) {
    match plan {
        None if !withheld => problems.push("plan: needs interventions and a date".into()),
        None => {}
        Some(plan) => {
            if plan.interventions.is_empty() {
                problems.push("interventions: a plan needs at least one".into());
            }
            if plan.interventions.len() > MAX_INTERVENTIONS {
                problems.push(format!(
                    "interventions: at most {MAX_INTERVENTIONS} in one plan"
                ));
            }
        }
    }
}

/// Why a case message may not be sent, or kept, on this referral now. Messages name the
/// referral, its state and the parties, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseRefusal {
    /// No referral with this id is shared between the two teams.
    #[error("no referral {0} is shared with that team on this node")]
    NotShared(Uuid),
    /// A consultation's copy takes no case messages; the partner answers it.
    #[error("referral {0} is a consultation; a partner answers it with its advice")]
    Consultation(Uuid),
    /// The case is over: declined, cancelled or closed.
    #[error("the referral is {state}; {} can no longer be sent on it", .kind.described())]
    Ended {
        /// What was to be sent.
        kind: CaseMessageKind,
        /// Where the case is.
        state: ReferralStatus,
    },
    /// The case has not got that far: a plan needs the case accepted.
    #[error("the referral is {state}; {} needs the case accepted first", .kind.described())]
    NotYet {
        /// What was to be sent.
        kind: CaseMessageKind,
        /// Where the case is.
        state: ReferralStatus,
    },
    /// This side of the referral may not send this kind.
    #[error("only the {allowed} of a referral may send {}", .kind.described())]
    WrongParty {
        /// Who may.
        allowed: &'static str,
        /// What was to be sent.
        kind: CaseMessageKind,
    },
    /// Only a core team manages a case.
    #[error("only a core team records {}", .kind.described())]
    NotCore {
        /// What was to be sent.
        kind: CaseMessageKind,
    },
    /// A supplement names a question that was never asked on this referral.
    #[error("answers: no information request {0} was made on this referral")]
    UnknownRequest(Uuid),
}

/// Whether `side` of a referral in state `current` may send a message of `kind`. Both nodes
/// ask: the author's before it queues the message, the recipient's before it keeps it.
///
/// - The recipient asks, at any time before the case ends; the sender answers, while the case
///   is open (not declined, cancelled or closed).
/// - Either team sends new information while the case is open or under management.
/// - Only the recipient (a core team, which the caller checks) records a plan or a
///   reassessment, once the case was accepted.
pub fn check(
    kind: CaseMessageKind,
    side: Side,
    current: ReferralStatus,
    consultation: bool,
    referral_id: Uuid,
) -> Result<(), CaseRefusal> {
    use CaseMessageKind as K;
    use ReferralStatus as S;
    if consultation {
        return Err(CaseRefusal::Consultation(referral_id));
    }
    let allowed = match kind {
        K::InformationRequest | K::ManagementPlan | K::Reassessment => Some(Side::Recipient),
        K::Supplement => Some(Side::Sender),
        K::NewInformation => None,
    };
    if let Some(allowed) = allowed
        && allowed != side
    {
        return Err(CaseRefusal::WrongParty {
            allowed: match allowed {
                Side::Sender => "sender",
                Side::Recipient => "recipient",
            },
            kind,
        });
    }
    if matches!(current, S::Declined | S::Cancelled | S::Closed) {
        return Err(CaseRefusal::Ended {
            kind,
            state: current,
        });
    }
    if matches!(kind, K::ManagementPlan | K::Reassessment)
        && !matches!(
            current,
            S::Accepted | S::InAssessment | S::Completed | S::UnderManagement
        )
    {
        return Err(CaseRefusal::NotYet {
            kind,
            state: current,
        });
    }
    Ok(())
}

/// The status a message moves its referral to, at both nodes: a plan or reassessment recorded
/// on a completed case puts it under management.
pub fn moves_to(kind: CaseMessageKind, current: ReferralStatus) -> Option<ReferralStatus> {
    (matches!(
        kind,
        CaseMessageKind::ManagementPlan | CaseMessageKind::Reassessment
    ) && current == ReferralStatus::Completed)
        .then_some(ReferralStatus::UnderManagement)
}

/// A date as `YYYY-MM-DD`, the form plans are written and carried in.
pub fn format_date(date: Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    date.format(&format).unwrap_or_else(|_| date.to_string())
}

/// A `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.trim(), format).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::referral::Narrative;

    fn team(name: &str) -> TeamIdentity {
        TeamIdentity::parse_uri(&format!("spiffe://f.example/team/{name}")).unwrap()
    }

    fn message(body: CaseBody) -> CaseMessage {
        CaseMessage {
            id: Uuid::now_v7(),
            referral_id: Uuid::now_v7(),
            author: team("core"),
            at: OffsetDateTime::UNIX_EPOCH,
            body,
            labels: BTreeMap::new(),
            withheld: Vec::new(),
        }
    }

    fn plan(on: Date) -> Plan {
        Plan {
            interventions: vec![Intervention {
                code: InterventionCode::CheckIns,
                responsible: team("school"),
            }],
            next_reassessment: on,
        }
    }

    #[test]
    fn who_may_send_what_and_when() {
        use CaseMessageKind as K;
        use ReferralStatus as S;
        let id = Uuid::nil();
        check(
            K::InformationRequest,
            Side::Recipient,
            S::Received,
            false,
            id,
        )
        .unwrap();
        check(K::Supplement, Side::Sender, S::InAssessment, false, id).unwrap();
        check(
            K::NewInformation,
            Side::Sender,
            S::UnderManagement,
            false,
            id,
        )
        .unwrap();
        check(K::NewInformation, Side::Recipient, S::Completed, false, id).unwrap();
        check(K::ManagementPlan, Side::Recipient, S::Completed, false, id).unwrap();
        assert!(matches!(
            check(K::Supplement, Side::Recipient, S::Received, false, id),
            Err(CaseRefusal::WrongParty {
                allowed: "sender",
                ..
            })
        ));
        assert!(matches!(
            check(K::Reassessment, Side::Sender, S::Completed, false, id),
            Err(CaseRefusal::WrongParty {
                allowed: "recipient",
                ..
            })
        ));
        let ended = check(K::Supplement, Side::Sender, S::Closed, false, id).unwrap_err();
        assert_eq!(
            ended.to_string(),
            "the referral is closed; a supplement can no longer be sent on it"
        );
        assert!(matches!(
            check(K::ManagementPlan, Side::Recipient, S::Received, false, id),
            Err(CaseRefusal::NotYet { .. })
        ));
        assert!(matches!(
            check(K::NewInformation, Side::Sender, S::Received, true, id),
            Err(CaseRefusal::Consultation(_))
        ));
        assert_eq!(
            moves_to(K::Reassessment, S::Completed),
            Some(S::UnderManagement)
        );
        assert_eq!(moves_to(K::ManagementPlan, S::InAssessment), None);
        assert_eq!(moves_to(K::NewInformation, S::Completed), None);
    }

    #[test]
    fn a_withheld_part_is_allowed_to_be_missing_and_only_then() {
        let mut m = message(CaseBody::ManagementPlan { plan: None });
        assert!(m.validate().is_err());
        m.withheld.push(Withheld {
            category: DataCategory::Assessment,
            reasons: vec![],
            rules: vec![],
            pseudonymized: false,
        });
        m.validate().unwrap();
        let mut listed_but_present = message(CaseBody::ManagementPlan {
            plan: Some(plan(Date::MIN)),
        });
        listed_but_present.withheld = m.withheld.clone();
        assert!(listed_but_present.validate().is_err());
    }

    #[test]
    fn limits_and_dates_are_named_without_echoing_values() {
        let long = "CANARY ".repeat(MAX_TEXT_CHARS);
        let m = message(CaseBody::NewInformation {
            kind: InformationKind::TripwireReport,
            urgent: true,
            text: Some(long),
            content: ReferralContent::default(),
        });
        let err = m.validate().unwrap_err().to_string();
        assert!(err.contains("at most 4000 characters"), "{err}");
        assert!(!err.contains("CANARY"));
        let today = Date::from_calendar_date(2026, time::Month::November, 28).unwrap();
        let past = message(CaseBody::Reassessment {
            level_of_concern: Some(LevelOfConcern {
                scheme: "CSTAG".into(),
                value: "low".into(),
            }),
            plan: Some(plan(today.previous_day().unwrap())),
        });
        let err = past.validate_draft(today).unwrap_err().to_string();
        assert!(err.contains("next_reassessment: is in the past"), "{err}");
        let fine = message(CaseBody::ManagementPlan {
            plan: Some(plan(today)),
        });
        fine.validate_draft(today).unwrap();
    }

    #[test]
    fn categories_follow_the_parts_present() {
        let mut m = message(CaseBody::NewInformation {
            kind: InformationKind::ProtectiveFactor,
            urgent: false,
            text: Some("joined a team".into()),
            content: ReferralContent {
                narrative: Some(Narrative { text: "n".into() }),
                ..Default::default()
            },
        });
        assert_eq!(
            m.categories().into_iter().collect::<Vec<_>>(),
            [DataCategory::Narrative]
        );
        m.remove(DataCategory::Narrative);
        assert!(m.categories().is_empty());
        assert!(!m.urgent());
        assert_eq!(
            InterventionCode::parse("restrict-weapons-access"),
            Some(InterventionCode::RestrictWeaponsAccess)
        );
        assert_eq!(CaseMessageKind::ManagementPlan.as_str(), "management-plan");
        assert_eq!(
            parse_date("2026-12-01").map(format_date).as_deref(),
            Some("2026-12-01")
        );
    }
}
