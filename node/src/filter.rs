//! The disclosure filter: what of a referral may leave for one recipient, and what this node
//! may accept.
//!
//! Outbound, every category the draft carries gets one decision. A consultation first loses
//! its direct identifiers to a keyed case handle (minimization by purpose, which no policy can
//! switch off except by an explicit, lawful re-identification); every other category is put to
//! the policy with what the consent on file says about it. A withheld category is removed, not
//! blanked, and the message carries a manifest of what was withheld and why, with none of the
//! content. Substance-use records always travel labelled NO_REDISCLOSURE.
//!
//! Inbound, the receiver puts every category it was sent to its own `hold` rules, so a
//! misconfigured or malicious sender cannot make it keep what it may not hold.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::case_message::CaseMessage;
use crate::category::DataCategory;
use crate::consent::Consent;
use crate::policy::{Action, ConsentVerdict, Exchange, Party, Policy};
use crate::referral::{
    MIN_JUSTIFICATION_CHARS, NO_REDISCLOSURE, Purpose, Referral, StatusUpdate, Withheld,
};
use crate::team::{LocalTeam, Peer};
use tatmx_certs::TeamIdentity;

/// The categories a de-identified consultation replaces with the case handle.
pub const IDENTIFYING: [DataCategory; 5] = [
    DataCategory::Identity,
    DataCategory::Contact,
    DataCategory::Narrative,
    DataCategory::ReporterIdentity,
    DataCategory::ThirdParty,
];

/// The rule id quoted when a NO_REDISCLOSURE category is kept back from a forward.
pub const NO_REDISCLOSURE_RULE: &str = "no-redisclosure";

/// The rule id of minimization by purpose, quoted like a policy rule.
pub const MINIMIZATION_RULE: &str = "minimization-consultation-de-identified";

/// What happens to one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It leaves.
    Disclose,
    /// It is removed.
    Withhold,
    /// It is removed and the case handle stands in for it.
    Pseudonymize,
}

impl Outcome {
    /// The stable name used in storage and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disclose => "disclose",
            Self::Withhold => "withhold",
            Self::Pseudonymize => "pseudonymize",
        }
    }

    /// Parses the stable name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "disclose" => Some(Self::Disclose),
            "withhold" => Some(Self::Withhold),
            "pseudonymize" => Some(Self::Pseudonymize),
            _ => None,
        }
    }
}

/// The decision for one category, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDecision {
    /// The category.
    pub category: DataCategory,
    /// What happens to it.
    pub outcome: Outcome,
    /// The rules that decided.
    pub rules: Vec<String>,
    /// Plain-language reasons.
    pub reasons: Vec<String>,
    /// Labels it carries if it leaves.
    pub labels: Vec<String>,
}

/// The filtered referral and every decision behind it.
///
/// Only this module makes one, so a `Disclosure` in hand proves that consent and policy were
/// applied to exactly what it carries; the store's submit takes nothing else.
#[derive(Debug, Clone)]
pub struct Disclosure {
    /// Exactly what leaves.
    outgoing: Referral,
    /// One decision per category the draft carried.
    decisions: Vec<FieldDecision>,
}

impl Disclosure {
    /// Exactly what leaves.
    pub fn outgoing(&self) -> &Referral {
        &self.outgoing
    }

    /// One decision per category the draft carried.
    pub fn decisions(&self) -> &[FieldDecision] {
        &self.decisions
    }

    /// What leaves and the decisions, for showing; what is shown can no longer be submitted.
    pub fn into_parts(self) -> (Referral, Vec<FieldDecision>) {
        (self.outgoing, self.decisions)
    }

    /// Records that `category`, which its sender labelled NO_REDISCLOSURE, was kept back from
    /// a forward before the filter saw the draft: it appears in the manifest as withheld, and
    /// among the decisions with the rule that withheld it.
    pub fn withhold_no_redisclosure(&mut self, category: DataCategory) {
        let reason =
            "labelled NO_REDISCLOSURE by its sender: a recipient may never pass it on".to_owned();
        self.outgoing.withheld.push(Withheld {
            category,
            reasons: vec![reason.clone()],
            rules: vec![NO_REDISCLOSURE_RULE.to_owned()],
            pseudonymized: false,
        });
        self.decisions.push(FieldDecision {
            category,
            outcome: Outcome::Withhold,
            rules: vec![NO_REDISCLOSURE_RULE.to_owned()],
            reasons: vec![reason],
            labels: vec![NO_REDISCLOSURE.to_owned()],
        });
    }
}

/// A peer as the policy sees it.
pub fn party_of_peer(peer: &Peer) -> Party {
    Party {
        team: peer.identity.uri(),
        federation: peer.identity.federation.to_string(),
        role: peer.role,
        discipline: peer.discipline,
        cjis_authorized: peer.cjis_authorized,
    }
}

/// This node as the policy sees it, under its identity in one federation.
pub fn local_party(local: &LocalTeam, identity: &TeamIdentity) -> Party {
    Party {
        team: identity.uri(),
        federation: identity.federation.to_string(),
        role: local.role,
        discipline: local.discipline,
        cjis_authorized: local.cjis_authorized,
    }
}

/// Whether a justification counts as written (about a sentence).
pub fn justified(justification: Option<&str>) -> bool {
    justification.is_some_and(|j| j.trim().chars().count() >= MIN_JUSTIFICATION_CHARS)
}

/// Filters `draft` for `recipient`. `consent` is the record the draft names, if any; `case_ref`
/// keys the case handle.
pub fn filter_outbound(
    policy: &Policy,
    exchange: &Exchange,
    recipient: &Peer,
    consent: Option<&Consent>,
    case_key: &CaseKey,
    case_ref: Option<&str>,
    draft: Referral,
) -> Disclosure {
    // A consent is judged as it stood when the referral was made, by the node's clock.
    let now = draft.created_at;
    let mut decisions = Vec::new();
    for category in draft.categories() {
        let labels: Vec<String> = if category == DataCategory::SubstanceUse {
            vec![NO_REDISCLOSURE.to_owned()]
        } else {
            Vec::new()
        };
        let decision = if exchange.purpose == Purpose::Consultation
            && !exchange.reidentify
            && IDENTIFYING.contains(&category)
        {
            FieldDecision {
                category,
                outcome: Outcome::Pseudonymize,
                rules: vec![MINIMIZATION_RULE.to_owned()],
                reasons: vec![
                    "a consultation is de-identified: the case handle replaces direct identifiers"
                        .to_owned(),
                ],
                labels,
            }
        } else {
            decide(policy, exchange, recipient, consent, now, category, labels)
        };
        decisions.push(decision);
    }

    let mut outgoing = draft;
    let mut pseudonymized = false;
    for decision in &decisions {
        if decision.outcome == Outcome::Disclose {
            if !decision.labels.is_empty() {
                outgoing
                    .labels
                    .insert(decision.category, decision.labels.clone());
            }
            continue;
        }
        pseudonymized |= decision.outcome == Outcome::Pseudonymize;
        crate::metrics::get().count_withheld(decision.category, decision.outcome.as_str());
        if decision.outcome == Outcome::Pseudonymize && decision.category == DataCategory::Identity
        {
            outgoing.case_handle = Some(case_key.handle(
                case_ref.unwrap_or(&outgoing.id.to_string()),
                outgoing.content.identity.as_ref(),
            ));
        }
        remove(&mut outgoing, decision.category);
        outgoing.withheld.push(Withheld {
            category: decision.category,
            reasons: decision.reasons.clone(),
            rules: decision.rules.clone(),
            pseudonymized: decision.outcome == Outcome::Pseudonymize,
        });
    }
    // What the subject agreed to travels with what was disclosed under it, so a recipient can
    // filter a forward against the same scope.
    if exchange.basis == crate::referral::LegalBasis::Consent
        && let Some(consent) = consent
    {
        outgoing.consent_scope = Some(crate::referral::ConsentScope {
            provision: consent.provision.clone(),
            valid_until: consent.valid_until,
        });
    }
    if pseudonymized && outgoing.case_handle.is_none() {
        // Identifiers other than the subject's were removed: the case still needs a handle.
        outgoing.case_handle =
            Some(case_key.handle(case_ref.unwrap_or(&outgoing.id.to_string()), None));
    }
    Disclosure {
        outgoing,
        decisions,
    }
}

/// The policy's decision on one category, with what the consent on file says about it as it
/// stood at `at`.
fn decide(
    policy: &Policy,
    exchange: &Exchange,
    recipient: &Peer,
    consent: Option<&Consent>,
    at: time::OffsetDateTime,
    category: DataCategory,
    labels: Vec<String>,
) -> FieldDecision {
    let verdict = consent
        .map(|c| c.verdict(category, recipient, exchange.purpose, at))
        .unwrap_or_default();
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let decided = policy.decide(Action::Disclose, category, exchange, verdict, &label_refs);
    FieldDecision {
        category,
        outcome: if decided.permitted {
            Outcome::Disclose
        } else {
            Outcome::Withhold
        },
        rules: decided.rules,
        reasons: decided.reasons,
        labels,
    }
}

/// A case message filtered for the other team of its referral, with every decision behind it.
///
/// As with [`Disclosure`], only this module makes one, so holding a `CaseDisclosure` proves that
/// consent and policy were applied to exactly what it sends; the store's send takes nothing
/// else. It also keeps the message as its author wrote it: the author's own record.
#[derive(Debug, Clone)]
pub struct CaseDisclosure {
    /// The message as its author wrote it, before the filter.
    written: CaseMessage,
    /// Exactly what leaves.
    outgoing: CaseMessage,
    /// One decision per category the message carried.
    decisions: Vec<FieldDecision>,
}

impl CaseDisclosure {
    /// The message as its author wrote it: the author's own record of it.
    pub fn written(&self) -> &CaseMessage {
        &self.written
    }

    /// Exactly what leaves.
    pub fn outgoing(&self) -> &CaseMessage {
        &self.outgoing
    }

    /// One decision per category the message carried.
    pub fn decisions(&self) -> &[FieldDecision] {
        &self.decisions
    }
}

/// Filters a case message for `recipient`, the other team of its referral, on the referral's
/// purpose and basis (`exchange`) and with the consent that covers the case, if any. Each
/// category it carries gets one decision, exactly as a referral's would: free text is
/// NARRATIVE, a plan or level of concern ASSESSMENT, and content sections their own
/// categories. A withheld part is removed and listed; substance-use records travel labelled
/// NO_REDISCLOSURE. The coded parts are not case data and always go.
pub fn filter_case_message(
    policy: &Policy,
    exchange: &Exchange,
    recipient: &Peer,
    consent: Option<&Consent>,
    written: CaseMessage,
) -> CaseDisclosure {
    let mut outgoing = written.clone();
    let mut decisions = Vec::new();
    for category in written.categories() {
        let labels: Vec<String> = if category == DataCategory::SubstanceUse {
            vec![NO_REDISCLOSURE.to_owned()]
        } else {
            Vec::new()
        };
        let decision = decide(
            policy, exchange, recipient, consent, written.at, category, labels,
        );
        if decision.outcome == Outcome::Disclose {
            if !decision.labels.is_empty() {
                outgoing.labels.insert(category, decision.labels.clone());
            }
        } else {
            crate::metrics::get().count_withheld(category, decision.outcome.as_str());
            outgoing.remove(category);
            outgoing.withheld.push(Withheld {
                category,
                reasons: decision.reasons.clone(),
                rules: decision.rules.clone(),
                pseudonymized: false,
            });
        }
        decisions.push(decision);
    }
    CaseDisclosure {
        written,
        outgoing,
        decisions,
    }
}

/// Checks every category of an inbound case message against this node's `hold` rules, as a
/// referral's are checked.
pub fn check_inbound_case(
    policy: &Policy,
    exchange: &Exchange,
    message: &CaseMessage,
) -> Result<(), HoldRefusal> {
    for category in message.categories() {
        let labels: Vec<&str> = message
            .labels
            .get(&category)
            .map(|l| l.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let decision = policy.decide(
            Action::Hold,
            category,
            exchange,
            ConsentVerdict::default(),
            &labels,
        );
        if !decision.permitted {
            return Err(HoldRefusal {
                category,
                rules: decision.rules,
                reasons: decision.reasons,
            });
        }
    }
    Ok(())
}

/// Filters a status update: its reason is NARRATIVE and its outcome ASSESSMENT, so each leaves
/// only if the policy lets that category go to the other party; a withheld part is removed
/// and listed, like any withheld category.
pub fn filter_status_update(policy: &Policy, exchange: &Exchange, update: &mut StatusUpdate) {
    let parts = [
        (DataCategory::Narrative, update.reason.is_some()),
        (DataCategory::Assessment, update.outcome.is_some()),
    ];
    for (category, present) in parts {
        if !present {
            continue;
        }
        let decided = policy.decide(
            Action::Disclose,
            category,
            exchange,
            ConsentVerdict::default(),
            &[],
        );
        if decided.permitted {
            continue;
        }
        crate::metrics::get().count_withheld(category, Outcome::Withhold.as_str());
        match category {
            DataCategory::Narrative => update.reason = None,
            _ => update.outcome = None,
        }
        update.withheld.push(Withheld {
            category,
            reasons: decided.reasons,
            rules: decided.rules,
            pseudonymized: false,
        });
    }
}

/// Removes one category's section from a referral.
pub fn remove(referral: &mut Referral, category: DataCategory) {
    if category == DataCategory::Assessment {
        referral.level_of_concern = None;
        referral.consultation = None;
    } else {
        referral.content.remove(category);
    }
}

/// Why this node refuses to hold an inbound message: the category and the rule, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this team may not hold {category}: {}", .reasons.join("; "))]
pub struct HoldRefusal {
    /// The category refused.
    pub category: DataCategory,
    /// The rules that refused it.
    pub rules: Vec<String>,
    /// Their reasons.
    pub reasons: Vec<String>,
}

/// Checks every category of an inbound referral against this node's `hold` rules.
pub fn check_inbound(
    policy: &Policy,
    exchange: &Exchange,
    referral: &Referral,
) -> Result<(), HoldRefusal> {
    for category in referral.categories() {
        let decision = policy.decide(
            Action::Hold,
            category,
            exchange,
            ConsentVerdict::default(),
            &referral.labels_of(category),
        );
        if !decision.permitted {
            return Err(HoldRefusal {
                category,
                rules: decision.rules,
                reasons: decision.reasons,
            });
        }
    }
    Ok(())
}

/// The node's secret for case handles. A handle is an HMAC of the case reference and the
/// subject's identifiers, so the same subject gets the same handle within one case, different
/// handles across cases, and nobody without this key can link them.
pub struct CaseKey {
    /// 32 random bytes, kept in the data directory with mode 0600.
    key: [u8; 32],
}

impl std::fmt::Debug for CaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaseKey(..)")
    }
}

impl CaseKey {
    /// Loads the key, creating it on first start.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the case-handle key must be exactly 32 bytes",
                    )
                })?;
                Ok(Self { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                file.write_all(&key)?;
                file.sync_all()?;
                Ok(Self { key })
            }
            Err(e) => Err(e),
        }
    }

    /// A key for tests and benchmarks.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The handle of the subject of `case_ref`.
    pub fn handle(
        &self,
        case_ref: &str,
        identity: Option<&crate::referral::SubjectIdentity>,
    ) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            // HMAC takes keys of any length; this branch cannot be reached.
            return String::new();
        };
        mac.update(b"tatmx-case-handle-v1\0");
        mac.update(case_ref.as_bytes());
        if let Some(identity) = identity {
            mac.update(b"\0");
            mac.update(identity.full_name.trim().to_lowercase().as_bytes());
            mac.update(b"\0");
            mac.update(identity.date_of_birth.trim().as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        format!("case-{}", hex::encode(&digest[..16]))
    }

    /// The keyed digest of a piece of a team's own reference (its case number, its reference
    /// for a person), already normalised: what the search of "My cases" matches instead of
    /// the sealed text. Keyed by this file-held key, so a copy of the database alone cannot
    /// test guesses; domain-separated from case handles, so neither stands for the other.
    pub fn reference_digest(&self, normalised: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            // HMAC takes keys of any length; this branch cannot be reached.
            return String::new();
        };
        mac.update(b"tatmx-local-reference-v1\0");
        mac.update(normalised.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::referral::SubjectIdentity;

    #[test]
    fn case_handles_are_stable_within_a_case_and_differ_across_cases() {
        let key = CaseKey::from_bytes([7; 32]);
        let subject = SubjectIdentity {
            full_name: "Jordan Example".into(),
            date_of_birth: "2010-03-14".into(),
            identifiers: vec![],
        };
        let a = key.handle("CASE-1", Some(&subject));
        assert_eq!(a, key.handle("CASE-1", Some(&subject)));
        assert_ne!(a, key.handle("CASE-2", Some(&subject)));
        assert_ne!(
            a,
            CaseKey::from_bytes([8; 32]).handle("CASE-1", Some(&subject))
        );
        assert!(!a.contains("Jordan"));
    }
}
