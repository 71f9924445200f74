//! Consent records, after FHIR Consent, and what they say about one disclosure.
//!
//! A consent names its subject (by the agency's own reference), who granted it (the subject, or
//! a guardian), and a tree of provisions. Each provision permits or denies, for the categories,
//! recipients and purposes it lists (an empty list means any); a nested provision is an
//! exception to its parent, so "permit everything to the county team, except MENTAL_HEALTH" is
//! a permit with one nested deny. The deepest provision that applies decides. A consent that is
//! not yet valid, has expired or has been revoked says nothing: it is treated as no consent.

use serde::{Deserialize, Serialize};
use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::category::DataCategory;
use crate::policy::ConsentVerdict;
use crate::purpose::Purpose;
use crate::team::{Discipline, Peer};

/// Who granted a consent.
///
/// Its one name table is derived (strum, the same names as serde's `kind` tag): `self` or
/// `guardian`; a guardian parsed from its name alone has an empty name, to be filled in.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case", tag = "kind")]
#[strum(serialize_all = "kebab-case")]
pub enum Grantor {
    /// The subject.
    #[serde(rename = "self")]
    #[strum(serialize = "self")]
    Subject,
    /// A parent or legal guardian, named.
    Guardian {
        /// The guardian's name.
        name: String,
    },
}

/// Permit or deny.
///
/// Its one name table is derived (strum, the same case as serde): `permit` or `deny`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum ProvisionKind {
    /// Allows what it covers.
    Permit,
    /// Refuses what it covers.
    Deny,
}

/// Who a provision is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recipient {
    /// One team, named.
    Team(TeamIdentity),
    /// Every team of a discipline.
    Discipline(Discipline),
}

/// One rule of a consent, with its exceptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provision {
    /// Permit or deny.
    pub kind: ProvisionKind,
    /// The categories it covers; empty means all.
    #[serde(default)]
    pub categories: Vec<DataCategory>,
    /// The recipients it covers; empty means any.
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    /// The purposes it covers; empty means any.
    #[serde(default)]
    pub purposes: Vec<Purpose>,
    /// Exceptions, which override this provision where they apply.
    #[serde(default)]
    pub provisions: Vec<Provision>,
}

/// A consent record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// Assigned by the node.
    pub id: Uuid,
    /// The agency's reference for the subject.
    pub subject: String,
    /// Who granted it.
    pub grantor: Grantor,
    /// What it permits and denies.
    pub provision: Provision,
    /// When it starts.
    pub valid_from: OffsetDateTime,
    /// When it ends, if ever.
    pub valid_until: Option<OffsetDateTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// When the node recorded it.
    pub recorded_at: OffsetDateTime,
}

/// Why a consent record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConsentError(pub String);

impl Consent {
    /// Whether the consent is in force at `at`.
    pub fn in_force(&self, at: OffsetDateTime) -> bool {
        self.revoked_at.is_none_or(|revoked| revoked > at)
            && self.valid_from <= at
            && self.valid_until.is_none_or(|until| until > at)
    }

    /// Checks the record's own rules; messages name fields, never values.
    pub fn validate(&self) -> Result<(), ConsentError> {
        if self.subject.trim().is_empty() {
            return Err(ConsentError("subject: is required".into()));
        }
        if let Grantor::Guardian { name } = &self.grantor
            && name.trim().is_empty()
        {
            return Err(ConsentError(
                "grantor_name: a guardian must be named".into(),
            ));
        }
        if self
            .valid_until
            .is_some_and(|until| until <= self.valid_from)
        {
            return Err(ConsentError(
                "valid_until: must be after valid_from (when none is given, the moment the consent is recorded): a consent cannot end before it begins".into(),
            ));
        }
        Ok(())
    }

    /// What this consent says about disclosing `category` to `recipient` for `purpose` at `at`.
    pub fn verdict(
        &self,
        category: DataCategory,
        recipient: &Peer,
        purpose: Purpose,
        at: OffsetDateTime,
    ) -> ConsentVerdict {
        if !self.in_force(at) {
            return ConsentVerdict::default();
        }
        let request = Asked {
            category,
            recipient,
            purpose,
        };
        match decide(&self.provision, &request, false) {
            Some((ProvisionKind::Permit, names_recipient)) => ConsentVerdict {
                permits: true,
                names_recipient,
            },
            _ => ConsentVerdict::default(),
        }
    }
}

struct Asked<'a> {
    category: DataCategory,
    recipient: &'a Peer,
    purpose: Purpose,
}

/// Whether `provision` covers the request, and whether it named the recipient team itself.
fn covers(provision: &Provision, asked: &Asked<'_>) -> Option<bool> {
    let category =
        provision.categories.is_empty() || provision.categories.contains(&asked.category);
    let purpose = provision.purposes.is_empty() || provision.purposes.contains(&asked.purpose);
    let names_team = provision
        .recipients
        .iter()
        .any(|r| matches!(r, Recipient::Team(team) if *team == asked.recipient.identity));
    let recipient = provision.recipients.is_empty()
        || names_team
        || provision
            .recipients
            .iter()
            .any(|r| matches!(r, Recipient::Discipline(d) if *d == asked.recipient.discipline));
    (category && purpose && recipient).then_some(names_team)
}

/// The decision of the deepest applicable provision, and whether the chain that led to it named
/// the recipient team.
fn decide(
    provision: &Provision,
    asked: &Asked<'_>,
    named_above: bool,
) -> Option<(ProvisionKind, bool)> {
    let names_team = covers(provision, asked)?;
    let named = named_above || names_team;
    let mut outcome = (provision.kind, named);
    for exception in &provision.provisions {
        if let Some(deeper) = decide(exception, asked, named) {
            outcome = deeper;
        }
    }
    Some(outcome)
}

/// One of the three things a consent covers (teams, purposes, kinds of information), as a
/// person chose it: any, or only the ones named.
///
/// The wire, the store and the Agency API keep the older form, where an empty list in a
/// [`Provision`] means "any"; that stays as it is for the clients that speak it. A form that
/// builds a consent from a person's choices (the console) says [`Scope::Any`] only when
/// "any" was chosen, and [`ConsentScope::permit`] refuses an `Only` that names nothing, so
/// ticking nothing can never silently mean everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope<T> {
    /// Any: chosen as such.
    Any,
    /// Only these; at least one.
    Only(Vec<T>),
}

impl<T> Scope<T> {
    /// Whether this is an `Only` that names nothing.
    pub fn is_empty_choice(&self) -> bool {
        matches!(self, Self::Only(items) if items.is_empty())
    }

    /// The list a [`Provision`] stores: empty for any.
    fn into_list(self) -> Vec<T> {
        match self {
            Self::Any => Vec::new(),
            Self::Only(items) => items,
        }
    }
}

/// Which of a consent's three choices was left without anything chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeField {
    /// The teams it permits sharing with.
    Teams,
    /// The purposes.
    Purposes,
    /// The kinds of information.
    Categories,
}

impl ScopeField {
    /// The field's name, as the Agency API names the provision's fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Teams => "recipient_teams",
            Self::Purposes => "purposes",
            Self::Categories => "categories",
        }
    }
}

/// What a consent permits, chosen explicitly: the teams, the purposes and the kinds of
/// information, each "any" or "only these".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentScope {
    /// The teams it permits sharing with.
    pub teams: Scope<TeamIdentity>,
    /// What for.
    pub purposes: Scope<Purpose>,
    /// Which kinds of information.
    pub categories: Scope<DataCategory>,
}

impl ConsentScope {
    /// The choices left without anything chosen, in the form's order.
    pub fn problems(&self) -> Vec<ScopeField> {
        let mut problems = Vec::new();
        if self.teams.is_empty_choice() {
            problems.push(ScopeField::Teams);
        }
        if self.purposes.is_empty_choice() {
            problems.push(ScopeField::Purposes);
        }
        if self.categories.is_empty_choice() {
            problems.push(ScopeField::Categories);
        }
        problems
    }

    /// The permit this scope describes, or a refusal naming every choice left empty.
    pub fn permit(self) -> Result<Provision, ConsentError> {
        let problems = self.problems();
        if !problems.is_empty() {
            let names: Vec<&str> = problems.iter().map(|p| p.as_str()).collect();
            return Err(ConsentError(format!(
                "{}: nothing was chosen; choose some, or choose any explicitly",
                names.join(", ")
            )));
        }
        Ok(Provision {
            kind: ProvisionKind::Permit,
            categories: self.categories.into_list(),
            recipients: self
                .teams
                .into_list()
                .into_iter()
                .map(Recipient::Team)
                .collect(),
            purposes: self.purposes.into_list(),
            provisions: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::team::Role;

    fn peer(team: &str, discipline: Discipline) -> Peer {
        Peer {
            identity: TeamIdentity::parse_uri(&format!("spiffe://f.example/team/{team}")).unwrap(),
            endpoint: "https://127.0.0.1:1".parse().unwrap(),
            role: Role::Core,
            discipline,
            jurisdiction: String::new(),
            cjis_authorized: true,
        }
    }

    fn consent(provision: Provision) -> Consent {
        let now = OffsetDateTime::now_utc();
        Consent {
            id: Uuid::now_v7(),
            subject: "CASE-1".into(),
            grantor: Grantor::Subject,
            provision,
            valid_from: now - time::Duration::days(1),
            valid_until: Some(now + time::Duration::days(30)),
            revoked_at: None,
            recorded_at: now,
        }
    }

    fn provision(kind: ProvisionKind) -> Provision {
        Provision {
            kind,
            categories: vec![],
            recipients: vec![],
            purposes: vec![],
            provisions: vec![],
        }
    }

    #[test]
    fn a_nested_deny_is_an_exception_to_its_permit() {
        let core = peer("core", Discipline::LawEnforcement);
        let mut base = provision(ProvisionKind::Permit);
        base.recipients = vec![Recipient::Team(core.identity.clone())];
        let mut except = provision(ProvisionKind::Deny);
        except.categories = vec![DataCategory::MentalHealth];
        base.provisions = vec![except];
        let c = consent(base);
        let now = OffsetDateTime::now_utc();
        let threat = c.verdict(DataCategory::Threat, &core, Purpose::ThreatAssessment, now);
        assert!(threat.permits && threat.names_recipient);
        let mh = c.verdict(
            DataCategory::MentalHealth,
            &core,
            Purpose::ThreatAssessment,
            now,
        );
        assert!(!mh.permits);
        let other = peer("other", Discipline::LawEnforcement);
        assert!(
            !c.verdict(DataCategory::Threat, &other, Purpose::ThreatAssessment, now)
                .permits
        );
    }

    #[test]
    fn a_discipline_permits_without_naming_the_team() {
        let core = peer("core", Discipline::LawEnforcement);
        let mut base = provision(ProvisionKind::Permit);
        base.recipients = vec![Recipient::Discipline(Discipline::LawEnforcement)];
        let v = consent(base).verdict(
            DataCategory::SubstanceUse,
            &core,
            Purpose::ThreatAssessment,
            OffsetDateTime::now_utc(),
        );
        assert!(v.permits && !v.names_recipient);
    }

    #[test]
    fn expired_revoked_or_future_consent_says_nothing() {
        let core = peer("core", Discipline::LawEnforcement);
        let now = OffsetDateTime::now_utc();
        let mut c = consent(provision(ProvisionKind::Permit));
        assert!(
            c.verdict(DataCategory::Threat, &core, Purpose::ThreatAssessment, now)
                .permits
        );
        c.revoked_at = Some(now - time::Duration::seconds(1));
        assert!(
            !c.verdict(DataCategory::Threat, &core, Purpose::ThreatAssessment, now)
                .permits
        );
        let mut c = consent(provision(ProvisionKind::Permit));
        c.valid_until = Some(now - time::Duration::seconds(1));
        assert!(
            !c.verdict(DataCategory::Threat, &core, Purpose::ThreatAssessment, now)
                .permits
        );
        let mut c = consent(provision(ProvisionKind::Permit));
        c.valid_from = now + time::Duration::days(1);
        c.valid_until = None;
        assert!(
            !c.verdict(DataCategory::Threat, &core, Purpose::ThreatAssessment, now)
                .permits
        );
    }

    #[test]
    fn a_scope_with_nothing_chosen_is_refused_and_any_is_only_what_was_chosen() {
        let core = peer("core", Discipline::LawEnforcement);
        let nothing = ConsentScope {
            teams: Scope::Only(vec![]),
            purposes: Scope::Any,
            categories: Scope::Only(vec![]),
        };
        assert_eq!(
            nothing.problems(),
            [ScopeField::Teams, ScopeField::Categories]
        );
        let refused = nothing.permit().unwrap_err().to_string();
        assert!(
            refused.starts_with("recipient_teams, categories: nothing was chosen"),
            "{refused}"
        );
        let narrow = ConsentScope {
            teams: Scope::Only(vec![core.identity.clone()]),
            purposes: Scope::Only(vec![Purpose::ThreatAssessment]),
            categories: Scope::Only(vec![DataCategory::Threat]),
        }
        .permit()
        .unwrap();
        assert_eq!(narrow.recipients, [Recipient::Team(core.identity.clone())]);
        let c = consent(narrow);
        let now = OffsetDateTime::now_utc();
        assert!(
            c.verdict(DataCategory::Threat, &core, Purpose::ThreatAssessment, now)
                .permits
        );
        assert!(
            !c.verdict(
                DataCategory::MentalHealth,
                &core,
                Purpose::ThreatAssessment,
                now
            )
            .permits
        );
        let wide = ConsentScope {
            teams: Scope::Any,
            purposes: Scope::Any,
            categories: Scope::Any,
        }
        .permit()
        .unwrap();
        assert!(wide.recipients.is_empty() && wide.categories.is_empty());
    }

    #[test]
    fn grantor_and_provision_kind_names_are_their_serde_names() {
        use strum::IntoEnumIterator;
        let guardian = Grantor::Guardian { name: "G".into() };
        for grantor in [Grantor::Subject, guardian] {
            let name: &'static str = (&grantor).into();
            let json = serde_json::to_value(&grantor).unwrap();
            assert_eq!(json["kind"].as_str(), Some(name));
        }
        assert_eq!("self".parse::<Grantor>(), Ok(Grantor::Subject));
        assert_eq!(
            "guardian".parse::<Grantor>(),
            Ok(Grantor::Guardian {
                name: String::new()
            })
        );
        assert!("subject".parse::<Grantor>().is_err());
        for kind in ProvisionKind::iter() {
            let name: &'static str = kind.into();
            assert_eq!(serde_json::to_value(kind).ok(), Some(name.into()));
        }
    }
}
