//! The referral, as the node's own code sees it: validated domain types, apart from the wire.
//!
//! An affiliate team forwards a concern about a person to a core team as a referral. Staff write
//! a [`NewReferral`]; the node turns it into a [`Referral`] by adding an id, the sender's
//! identity and a time, and from then on the referral is immutable. Its content is split into
//! one section per [`DataCategory`], so the category of every field is known by construction.
//!
//! The same serde shape is the input file of `tatmx referral send`, so field names here are the
//! names staff write.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::category::DataCategory;

pub use crate::purpose::{LegalBasis, MIN_JUSTIFICATION_CHARS, Purpose};

/// Where a referral is in its closed loop.
///
/// Its one name table is derived (strum, the same case as serde): `in-assessment`.
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
pub enum ReferralStatus {
    /// Submitted by the sender and queued for delivery.
    Sent,
    /// Durable at the recipient, which said so.
    Received,
    /// The recipient took the case.
    Accepted,
    /// The recipient declined, with a reason.
    Declined,
    /// The recipient asked for more information.
    InfoRequested,
    /// The recipient is assessing.
    InAssessment,
    /// The assessment ended, with a minimal outcome.
    Completed,
    /// Nothing more will happen.
    Closed,
    /// The sender withdrew the referral.
    Cancelled,
    /// The recipient forwarded it to another team (a fact in the sender's timeline).
    Forwarded,
    /// The assessment is complete and the core team manages the case: a plan is in place and
    /// reassessments follow, until the case is closed.
    UnderManagement,
}

impl ReferralStatus {
    /// Every status, in protocol order.
    pub const ALL: [ReferralStatus; 11] = [
        Self::Sent,
        Self::Received,
        Self::Accepted,
        Self::Declined,
        Self::InfoRequested,
        Self::InAssessment,
        Self::Completed,
        Self::Closed,
        Self::Cancelled,
        Self::Forwarded,
        Self::UnderManagement,
    ];

    /// The stable name used in the store and the CLI.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

/// Category ASSESSMENT: a level of concern in a named scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelOfConcern {
    /// The scheme the value belongs to, such as "NTAC".
    pub scheme: String,
    /// The level in that scheme, such as "moderate".
    pub value: String,
}

/// Category IDENTITY.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubjectIdentity {
    /// The subject's full name.
    pub full_name: String,
    /// ISO 8601 date (YYYY-MM-DD), or empty.
    pub date_of_birth: String,
    /// Identifiers in other systems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<ExternalId>,
}

/// An identifier of the subject in another system.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalId {
    /// The issuing system, such as "student-id".
    pub system: String,
    /// The identifier.
    pub value: String,
}

/// Category CONTACT.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubjectContact {
    /// Postal address.
    pub address: String,
    /// Phone number.
    pub phone: String,
    /// Email address.
    pub email: String,
}

/// Category BEHAVIOR.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Behavior {
    /// Coded observations.
    pub observations: Vec<ObservedBehavior>,
}

/// One coded concerning behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservedBehavior {
    /// A code from the team's behaviour scheme.
    pub code: String,
    /// ISO 8601 date (YYYY-MM-DD), or empty.
    pub observed_on: String,
}

/// Category THREAT.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThreatDetails {
    /// Such as "targeted-violence".
    pub threat_type: String,
    /// Such as "school".
    pub target_type: String,
    /// Whether the subject has access to weapons.
    pub weapons_access: bool,
    /// A coded grievance.
    pub grievance_code: String,
}

/// Category NARRATIVE.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Narrative {
    /// Free text.
    pub text: String,
}

/// Category MENTAL_HEALTH.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MentalHealth {
    /// Diagnoses.
    pub diagnoses: Vec<String>,
    /// Treatment summary.
    pub treatment: String,
}

/// Category SUBSTANCE_USE.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubstanceUse {
    /// Treatment record summary.
    pub treatment_record: String,
}

/// Category EDUCATION_RECORD.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EducationRecord {
    /// School name.
    pub school: String,
    /// Grade.
    pub grade: String,
    /// Whether an IEP or 504 plan is in place.
    pub iep_or_504: bool,
    /// Disciplinary entries.
    pub discipline: Vec<String>,
}

/// Category CRIMINAL_HISTORY.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CriminalHistory {
    /// Arrests.
    pub arrests: Vec<String>,
    /// Protective orders.
    pub protective_orders: Vec<String>,
    /// Firearm records.
    pub firearm_records: Vec<String>,
}

/// Category REPORTER_IDENTITY.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReporterIdentity {
    /// The reporter's name.
    pub name: String,
    /// Relationship to the subject.
    pub relationship: String,
    /// How to reach the reporter.
    pub contact: String,
}

/// Category THIRD_PARTY.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThirdParty {
    /// The person's name.
    pub name: String,
    /// Such as "target" or "witness".
    pub role: String,
}

/// The content of a referral: one optional section per data category.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferralContent {
    /// IDENTITY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<SubjectIdentity>,
    /// CONTACT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<SubjectContact>,
    /// BEHAVIOR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Behavior>,
    /// THREAT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threat: Option<ThreatDetails>,
    /// NARRATIVE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub narrative: Option<Narrative>,
    /// MENTAL_HEALTH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mental_health: Option<MentalHealth>,
    /// SUBSTANCE_USE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substance_use: Option<SubstanceUse>,
    /// EDUCATION_RECORD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub education_record: Option<EducationRecord>,
    /// CRIMINAL_HISTORY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criminal_history: Option<CriminalHistory>,
    /// REPORTER_IDENTITY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<ReporterIdentity>,
    /// THIRD_PARTY.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub third_parties: Vec<ThirdParty>,
}

impl ReferralContent {
    /// The categories of the sections present.
    pub fn categories(&self) -> BTreeSet<DataCategory> {
        use DataCategory as C;
        [
            (self.identity.is_some(), C::Identity),
            (self.contact.is_some(), C::Contact),
            (self.behavior.is_some(), C::Behavior),
            (self.threat.is_some(), C::Threat),
            (self.narrative.is_some(), C::Narrative),
            (self.mental_health.is_some(), C::MentalHealth),
            (self.substance_use.is_some(), C::SubstanceUse),
            (self.education_record.is_some(), C::EducationRecord),
            (self.criminal_history.is_some(), C::CriminalHistory),
            (self.reporter.is_some(), C::ReporterIdentity),
            (!self.third_parties.is_empty(), C::ThirdParty),
        ]
        .into_iter()
        .filter_map(|(present, category)| present.then_some(category))
        .collect()
    }

    /// Removes one category's section; ASSESSMENT is not content, so it removes nothing.
    pub fn remove(&mut self, category: DataCategory) {
        match category {
            DataCategory::Identity => self.identity = None,
            DataCategory::Contact => self.contact = None,
            DataCategory::Behavior => self.behavior = None,
            DataCategory::Threat => self.threat = None,
            DataCategory::Narrative => self.narrative = None,
            DataCategory::MentalHealth => self.mental_health = None,
            DataCategory::SubstanceUse => self.substance_use = None,
            DataCategory::EducationRecord => self.education_record = None,
            DataCategory::CriminalHistory => self.criminal_history = None,
            DataCategory::ReporterIdentity => self.reporter = None,
            DataCategory::ThirdParty => self.third_parties.clear(),
            DataCategory::Assessment => {}
        }
    }

    /// The sections of `newer` laid over these: each category `newer` carries replaces this
    /// one's section of that category.
    pub fn overlay(&mut self, newer: &ReferralContent) {
        let n = newer.clone();
        macro_rules! take {
            ($($field:ident),*) => { $( if n.$field.is_some() { self.$field = n.$field; } )* };
        }
        take!(
            identity,
            contact,
            behavior,
            threat,
            narrative,
            mental_health,
            substance_use,
            education_record,
            criminal_history,
            reporter
        );
        if !n.third_parties.is_empty() {
            self.third_parties = n.third_parties;
        }
    }

    fn check(&self, problems: &mut Problems) {
        if let Some(identity) = &self.identity {
            problems.date("content.identity.date_of_birth", &identity.date_of_birth);
        }
        if let Some(behavior) = &self.behavior {
            for (i, observation) in behavior.observations.iter().enumerate() {
                if observation.code.trim().is_empty() {
                    problems.push(format!("content.behavior.observations[{i}].code: is empty"));
                }
                problems.date(
                    &format!("content.behavior.observations[{i}].observed_on"),
                    &observation.observed_on,
                );
            }
        }
    }
}

/// A referral as staff write it: the node adds id, sender and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReferral {
    /// The recipient: a team id in this node's federation, or a full team identity URI.
    pub recipient: String,
    /// Why it is shared.
    pub purpose: Purpose,
    /// Category ASSESSMENT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_of_concern: Option<LevelOfConcern>,
    /// The legal basis of the disclosure.
    pub legal_basis: LegalBasis,
    /// Written justification, required for the exception bases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// The consent record, required for [`LegalBasis::Consent`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_ref: Option<String>,
    /// The case data.
    #[serde(default)]
    pub content: ReferralContent,
    /// The agency's case number; a consultation's case handle is derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_ref: Option<String>,
    /// For a consultation: disclose direct identifiers instead of the case handle.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reidentify: bool,
    /// The agency's own reference for the subject, as its consents name it. Kept here, never
    /// sent; when the draft names a consent it must be that consent's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_ref: Option<String>,
}

/// A category the sender's filter removed, and why; never any of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    /// The category.
    pub category: DataCategory,
    /// Plain-language reasons.
    pub reasons: Vec<String>,
    /// The rules that decided.
    pub rules: Vec<String>,
    /// Replaced by the case handle rather than simply removed.
    pub pseudonymized: bool,
}

/// The label that forbids a recipient to pass a category on.
pub const NO_REDISCLOSURE: &str = "NO_REDISCLOSURE";

/// A referral with its identity fixed: what is stored and what travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    /// UUIDv7, chosen by the sender's node; also the message id of its delivery.
    pub id: Uuid,
    /// The sending team, as proven by its certificate.
    pub sender: TeamIdentity,
    /// The receiving team.
    pub recipient: TeamIdentity,
    /// When the sender's node accepted it.
    pub created_at: OffsetDateTime,
    /// Why it is shared.
    pub purpose: Purpose,
    /// Category ASSESSMENT.
    pub level_of_concern: Option<LevelOfConcern>,
    /// The legal basis of the disclosure.
    pub legal_basis: LegalBasis,
    /// Written justification for an exception basis.
    pub justification: Option<String>,
    /// The sender's consent record id.
    pub consent_ref: Option<String>,
    /// The case data.
    pub content: ReferralContent,
    /// Labels per disclosed category, such as [`NO_REDISCLOSURE`].
    pub labels: std::collections::BTreeMap<DataCategory, Vec<String>>,
    /// The manifest of what the sender's filter withheld.
    pub withheld: Vec<Withheld>,
    /// The subject's keyed pseudonym within one case, when identifiers were replaced.
    pub case_handle: Option<String>,
    /// Present when this is one partner's copy of a consultation request. Category ASSESSMENT.
    pub consultation: Option<ConsultationDetails>,
    /// The teams it passed through before its sender, original sender first.
    pub provenance: Vec<Hop>,
    /// The consent's provisions, when the basis is consent, for filtering a forward.
    pub consent_scope: Option<ConsentScope>,
}

/// One earlier hop of a forwarded referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The team that sent it on.
    pub team: TeamIdentity,
    /// When.
    pub at: OffsetDateTime,
}

/// What the subject agreed to, as it travels: provisions only, no subject data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentScope {
    /// The consent's provisions.
    pub provision: crate::consent::Provision,
    /// When the consent stops being valid.
    pub valid_until: Option<OffsetDateTime>,
}

/// What a core team asks its partners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsultationDetails {
    /// Shared by every partner's copy of the same request.
    pub id: Uuid,
    /// The question, without identifiers.
    pub question: String,
    /// When an answer is wanted.
    pub due: Option<OffsetDateTime>,
}

impl Referral {
    /// The labels of one category.
    pub fn labels_of(&self, category: DataCategory) -> Vec<&str> {
        self.labels
            .get(&category)
            .map(|l| l.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Every category this referral carries, ASSESSMENT included.
    pub fn categories(&self) -> BTreeSet<DataCategory> {
        let mut categories = self.content.categories();
        if self.level_of_concern.is_some() || self.consultation.is_some() {
            categories.insert(DataCategory::Assessment);
        }
        categories
    }

    /// Checks the rules every referral must meet, whoever built it, and names every field that
    /// breaks one. Messages name fields, never their values.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut problems = Problems::default();
        check_basis(
            self.legal_basis,
            self.justification.as_deref(),
            self.consent_ref.as_deref(),
            &mut problems,
        );
        if let Some(level) = &self.level_of_concern
            && (level.scheme.trim().is_empty() || level.value.trim().is_empty())
        {
            problems.push("level_of_concern: needs both scheme and value".into());
        }
        if self.categories().is_empty() && self.case_handle.is_none() {
            problems.push("content: a referral must carry at least one section".into());
        }
        for withheld in &self.withheld {
            if self.categories().contains(&withheld.category) {
                problems.push(format!(
                    "withheld: {} is listed as withheld but is present",
                    withheld.category
                ));
            }
        }
        self.content.check(&mut problems);
        problems.into_result()
    }
}

fn check_basis(
    basis: LegalBasis,
    justification: Option<&str>,
    consent_ref: Option<&str>,
    problems: &mut Problems,
) {
    let justification_len = justification.map_or(0, |j| j.trim().chars().count());
    if basis.needs_justification() && justification_len < MIN_JUSTIFICATION_CHARS {
        problems.push(format!(
            "justification: the {basis:?} basis needs a written justification of at least \
             {MIN_JUSTIFICATION_CHARS} characters"
        ));
    }
    if basis == LegalBasis::Consent && consent_ref.is_none_or(|c| c.trim().is_empty()) {
        problems.push("consent_ref: the consent basis must name the consent record".into());
    }
}

/// A referral broke one or more rules; each entry names a field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct ValidationError {
    /// One line per problem, `field: what is wrong`.
    pub problems: Vec<String>,
}

#[derive(Default)]
struct Problems(Vec<String>);

impl ReferralContent {
    /// Checks a content's dates and codes, as a referral's are checked; for content that
    /// travels on its own, in a case message.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut problems = Problems::default();
        self.check(&mut problems);
        problems.into_result()
    }
}

impl Problems {
    fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    fn date(&mut self, field: &str, value: &str) {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        if !value.is_empty() && time::Date::parse(value, format).is_err() {
            self.push(format!("{field}: not a date in the form YYYY-MM-DD"));
        }
    }

    fn into_result(self) -> Result<(), ValidationError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { problems: self.0 })
        }
    }
}

/// A change of a referral's status, made by the party allowed to make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// UUIDv7 of this update; also its message id.
    pub id: Uuid,
    /// The referral it is about.
    pub referral_id: Uuid,
    /// The team that made the change.
    pub author: TeamIdentity,
    /// The new status.
    pub status: ReferralStatus,
    /// When the change was made.
    pub at: OffsetDateTime,
    /// Why, in the author's words. Category NARRATIVE: the filter may withhold it.
    pub reason: Option<String>,
    /// Why, as a code; required to decline or cancel. Not about the person, so not filtered.
    pub reason_code: Option<ReasonCode>,
    /// The minimal outcome of a completed assessment. Category ASSESSMENT.
    pub outcome: Option<AssessmentOutcome>,
    /// What the filter withheld from this update.
    pub withheld: Vec<Withheld>,
    /// For a forward: the team it went to.
    pub forwarded_to: Option<TeamIdentity>,
}

/// Why a team declined or cancelled a referral, from a fixed vocabulary that every team's
/// node knows. A code says nothing about the person, so the policy never withholds it: the
/// other team always learns why, even when the free text beside it stays behind.
///
/// Its one name table is derived (strum, the same case as serde): `outside-jurisdiction`.
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
pub enum ReasonCode {
    /// The concern is not one for threat assessment.
    NotAThreatAssessmentMatter,
    /// The subject or the concern is outside the team's jurisdiction.
    OutsideJurisdiction,
    /// Another team or service is taking it.
    ReferredElsewhere,
    /// There is not enough to act on.
    InsufficientInformation,
    /// The same concern was referred already.
    Duplicate,
    /// None of these; the free text says more.
    Other,
}

impl ReasonCode {
    /// The code's name: `referred-elsewhere`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The code named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }

    /// Every code, in the order forms offer them.
    pub fn all() -> impl Iterator<Item = Self> {
        <Self as strum::IntoEnumIterator>::iter()
    }

    /// What the code means, in words a case worker uses.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NotAThreatAssessmentMatter => "not a threat assessment matter",
            Self::OutsideJurisdiction => "outside our jurisdiction",
            Self::ReferredElsewhere => "referred elsewhere",
            Self::InsufficientInformation => "not enough information to act on",
            Self::Duplicate => "already referred (a duplicate)",
            Self::Other => "another reason",
        }
    }
}

/// The minimal outcome a core team reports when an assessment is completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssessmentOutcome {
    /// The final level of concern.
    pub level_of_concern: Option<LevelOfConcern>,
    /// Whether a management plan is in place.
    pub management_plan: bool,
    /// A partner's advice, in answer to a consultation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub advice: String,
    /// A partner's structured recommendations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommendations: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referral() -> Referral {
        let id =
            |t: &str| TeamIdentity::parse_uri(&format!("spiffe://f.example/team/{t}")).unwrap();
        Referral {
            id: Uuid::now_v7(),
            sender: id("school"),
            recipient: id("core"),
            created_at: OffsetDateTime::now_utc(),
            purpose: Purpose::ThreatAssessment,
            level_of_concern: None,
            legal_basis: LegalBasis::Consent,
            justification: None,
            consent_ref: Some("C-1".into()),
            content: ReferralContent {
                threat: Some(ThreatDetails::default()),
                ..Default::default()
            },
            labels: Default::default(),
            withheld: vec![],
            case_handle: None,
            consultation: None,
            provenance: vec![],
            consent_scope: None,
        }
    }

    #[test]
    fn a_complete_referral_is_valid() {
        referral().validate().unwrap();
        assert_eq!(
            referral().categories().into_iter().collect::<Vec<_>>(),
            vec![DataCategory::Threat]
        );
    }

    #[test]
    fn exception_bases_need_a_justification() {
        let mut r = referral();
        r.legal_basis = LegalBasis::SeriousImminentThreat;
        let err = r.validate().unwrap_err();
        assert!(err.to_string().contains("justification"), "{err}");
        r.justification = Some("Stated a plan and a date to a counsellor today.".into());
        r.validate().unwrap();
    }

    #[test]
    fn every_problem_is_named_and_no_value_is_echoed() {
        let mut r = referral();
        r.consent_ref = None;
        r.content = ReferralContent {
            identity: Some(SubjectIdentity {
                full_name: "Canary Person".into(),
                date_of_birth: "31/12/2010".into(),
                identifiers: vec![],
            }),
            ..Default::default()
        };
        let err = r.validate().unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(!err.to_string().contains("31/12/2010"));
        assert!(!err.to_string().contains("Canary"));
    }

    #[test]
    fn an_empty_referral_is_refused() {
        let mut r = referral();
        r.content = ReferralContent::default();
        assert!(r.validate().is_err());
    }

    #[test]
    fn each_enum_has_one_name_table_and_it_is_the_serde_names() {
        use strum::IntoEnumIterator;
        fn same<T: Serialize + Copy>(all: impl Iterator<Item = T>, name: fn(T) -> &'static str) {
            for v in all {
                assert_eq!(serde_json::to_value(v).ok(), Some(name(v).into()));
            }
        }
        same(Purpose::iter(), Purpose::as_str);
        same(LegalBasis::iter(), LegalBasis::as_str);
        same(ReferralStatus::iter(), ReferralStatus::as_str);
        assert_eq!(
            ReferralStatus::iter().collect::<Vec<_>>(),
            ReferralStatus::ALL
        );
        let names: Vec<&str> = Purpose::iter().map(Purpose::as_str).collect();
        assert_eq!(
            names,
            ["threat-assessment", "threat-management", "consultation"]
        );
        assert_eq!(
            LegalBasis::parse("serious-imminent-threat"),
            Some(LegalBasis::SeriousImminentThreat)
        );
        assert_eq!(
            ReferralStatus::parse("in-assessment"),
            Some(ReferralStatus::InAssessment)
        );
        assert_eq!(ReferralStatus::InfoRequested.to_string(), "info-requested");
        assert_eq!(Purpose::parse("ThreatAssessment"), None);
    }
}
