//! The audit log as an auditor reads it: whether the chain and the Merkle tree verify, the log
//! with filters, the accounting of disclosures about one subject, and the proof that one
//! disclosure is in the log the node signed.
//!
//! Reading is all this does; the entries themselves are written by the use cases that act.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Actor, App, AppError};
use crate::audit::{AuditEntry, AuditKind, SignedBy, Verification};
use crate::audit_tree::InclusionProof;
use crate::category::DataCategory;
use crate::referral::{LegalBasis, Purpose};
use crate::store::AuditFilter;

/// How many entries a query returns when the caller does not say.
pub const DEFAULT_AUDIT_LIMIT: u32 = 100;
/// The most entries one query returns.
pub const MAX_AUDIT_LIMIT: u32 = 10_000;

/// Which audit entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries written at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only entries of this kind.
    pub kind: Option<AuditKind>,
    /// Only entries written before this time.
    pub until: Option<OffsetDateTime>,
    /// Only entries about this team, as a team id or identity URI.
    pub peer: Option<String>,
    /// Only entries by this actor: a console username, a team (id or identity URI), or an
    /// actor exactly as the log records it (`uid 0`, `node`).
    pub actor: Option<String>,
    /// Skip this many of the newest that match, for paging.
    pub offset: u32,
    /// At most this many; 0 means [`DEFAULT_AUDIT_LIMIT`], and none gets more than
    /// [`MAX_AUDIT_LIMIT`].
    pub limit: u32,
}

/// One line of the accounting of disclosures, read back from the audit entry that recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosureRecord {
    /// When it was disclosed.
    pub at: Option<OffsetDateTime>,
    /// The team it went to, as an identity URI.
    pub recipient: Option<String>,
    /// The referral it belongs to.
    pub referral_id: Option<String>,
    /// What left: `referral`, `forward`, `consultation`, `status-update`, ...
    pub kind: String,
    /// Why, when the entry says.
    pub purpose: Option<Purpose>,
    /// On what basis, when the entry says.
    pub legal_basis: Option<LegalBasis>,
    /// The consent it was made on, if any.
    pub consent_id: Option<String>,
    /// The categories that left.
    pub categories: Vec<DataCategory>,
    /// The categories the filter withheld.
    pub withheld: Vec<DataCategory>,
    /// The rules that decided.
    pub rules: Vec<String>,
    /// The audit entry it was read from.
    pub audit_seq: u64,
}

/// An audit kind by its name; the message lists every kind there is.
pub fn audit_kind(name: &str) -> Result<AuditKind, AppError> {
    AuditKind::parse(name).ok_or_else(|| {
        let names: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
        AppError::invalid("kind", format!("expected one of {}", names.join(", ")))
    })
}

impl App {
    /// Walks the whole audit chain and every signed checkpoint, then the Merkle tree and every
    /// signed tree head. A log that does not verify is an answer, not an error: the first bad
    /// entry and what is wrong with it.
    pub async fn verify_audit(&self) -> Result<Verification, AppError> {
        let found = self
            .store
            .verify_audit(|signed| self.own_certificate(signed))
            .await?;
        if let Some((seq, _)) = &found.first_bad {
            tracing::error!(seq, "the audit chain failed verification");
        }
        Ok(found)
    }

    /// The newest audit entries that match `query`.
    pub async fn audit_entries(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, AppError> {
        let peer = match query.peer.as_deref().filter(|p| !p.is_empty()) {
            None => None,
            Some(team) => Some(
                self.trust
                    .state()
                    .identity_of(team)
                    .map_err(|e| AppError::Invalid(e.to_string()))?
                    .uri(),
            ),
        };
        let limit = match query.limit {
            0 => DEFAULT_AUDIT_LIMIT,
            n => n.min(MAX_AUDIT_LIMIT),
        };
        let actors = match query.actor.as_deref().map(str::trim) {
            None | Some("") => Vec::new(),
            Some(actor) => self.actor_forms(actor),
        };
        Ok(self
            .store
            .audit_entries(&AuditFilter {
                since: query.since,
                until: query.until,
                kind: query.kind.map(AuditKind::as_str),
                peer,
                actors,
                offset: query.offset,
                limit,
            })
            .await?)
    }

    /// The forms an actor a person typed may take in the log: as typed, as a console
    /// username (`console alice`), and as a team's identity URI when it names a known team.
    fn actor_forms(&self, actor: &str) -> Vec<String> {
        let mut forms = vec![actor.to_owned()];
        if !actor.contains(' ') {
            forms.push(Actor::console(actor).to_string());
        }
        if let Ok(identity) = self.trust.state().identity_of(actor) {
            forms.push(identity.uri());
        }
        forms.dedup();
        forms
    }

    /// Every disclosure under `subject` (any of the agency's own references for a case: the
    /// subject reference its referral and consent carry) since a time, oldest first: the
    /// accounting a subject may ask for.
    pub async fn disclosures(
        &self,
        subject: &str,
        since: Option<OffsetDateTime>,
    ) -> Result<Vec<DisclosureRecord>, AppError> {
        if subject.trim().is_empty() {
            return Err(AppError::invalid(
                "subject",
                "give the agency's own reference for the subject",
            ));
        }
        let entries = self
            .store
            .disclosure_entries(subject, &self.cases_under(subject).await?, since)
            .await?;
        Ok(entries.iter().map(disclosure_record).collect())
    }

    /// One disclosure's audit entry with its inclusion proof under the newest signed tree
    /// head. `disclosure` is the entry's number, or the id of the referral or case message it
    /// disclosed. The caller checks the proof; this only finds it.
    pub async fn prove_disclosure(&self, disclosure: &str) -> Result<InclusionProof, AppError> {
        let entry = self.disclosure_entry(disclosure.trim()).await?;
        let head = self.store.latest_tree_head().await?.ok_or_else(|| {
            AppError::Precondition(
                "this node has not signed an audit tree head yet; it signs one within its \
                 checkpoint interval of a new entry: ask again then"
                    .into(),
            )
        })?;
        if entry.seq > head.tree_size {
            return Err(AppError::Precondition(format!(
                "entry {} was written after the newest signed tree head, which covers entries 1 \
                 to {}; the node signs the next within its checkpoint interval: ask again then",
                entry.seq, head.tree_size
            )));
        }
        let path = self
            .store
            .audit_inclusion_proof(entry.seq, head.tree_size)
            .await?
            .ok_or_else(|| {
                AppError::Precondition(format!(
                    "the audit log's Merkle tree does not hold the proof of entry {}; \
                     `tatmx audit verify` says what is wrong with it",
                    entry.seq
                ))
            })?;
        Ok(InclusionProof { entry, path, head })
    }

    /// The disclosure entry a security officer named: by its number, or by the referral or
    /// case message it disclosed.
    async fn disclosure_entry(&self, named: &str) -> Result<AuditEntry, AppError> {
        if let Ok(seq) = named.parse::<u64>() {
            let entry = self.store.audit_entry(seq).await?.ok_or_else(|| {
                AppError::NotFound(format!(
                    "there is no audit entry {seq} on this node (audit retention may have removed it)"
                ))
            })?;
            if !is_disclosure(&entry) {
                return Err(AppError::invalid(
                    "disclosure",
                    format!(
                        "entry {seq} records a {}, not a disclosure; `tatmx audit disclosures` \
                         lists disclosures with their AUDIT SEQ",
                        entry.kind
                    ),
                ));
            }
            return Ok(entry);
        }
        let Ok(id) = Uuid::parse_str(named) else {
            return Err(AppError::invalid(
                "disclosure",
                "give the number of its audit entry, or the id of the referral or case message it disclosed",
            ));
        };
        let mut found: Vec<AuditEntry> = self
            .store
            .disclosure_entries_naming(id)
            .await?
            .into_iter()
            .filter(|e| discloses(e, id))
            .collect();
        match found.len() {
            0 => Err(AppError::NotFound(format!(
                "no disclosure of a referral or case message {id} is in this node's audit log"
            ))),
            1 => Ok(found.remove(0)),
            _ => Err(AppError::invalid(
                "disclosure",
                format!(
                    "{id} was disclosed in entries {}; give the number of one",
                    found
                        .iter()
                        .map(|e| e.seq.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Whether the certificate of a checkpoint or tree head is one of this node's own, issued
    /// by an anchor it trusts, and valid when it was signed.
    fn own_certificate(&self, signed: SignedBy<'_>) -> Result<(), String> {
        let state = self.trust.state();
        let at = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(signed.at_ms / 1000).unwrap_or(0),
        ));
        let identity = state
            .check_presented(signed.certificate, at, webpki::KeyUsage::client_auth())
            .map_err(|e| format!("its certificate is not trusted: {e}"))?;
        if state.own_identity_in(&identity.federation) != Some(&identity)
            || identity.uri() != signed.team
        {
            return Err(format!("it was signed by {identity}, not by this node"));
        }
        Ok(())
    }
}

/// An audit entry's time, from its Unix milliseconds.
pub fn entry_time(at_ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000).ok()
}

/// Whether an entry records a disclosure, as the accounting of disclosures lists them: case
/// data sent to another team, or a status update sent with case data.
fn is_disclosure(entry: &AuditEntry) -> bool {
    if entry.kind == AuditKind::Disclosure.as_str() {
        return true;
    }
    let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap_or_default();
    entry.kind == AuditKind::StatusChange.as_str()
        && detail["direction"] == "sent"
        && detail["categories"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
}

/// Whether a disclosure entry disclosed the referral or case message `id` itself: a case
/// message's entry names its id in the detail; a referral's (or a forward's, or a consultation
/// copy's) names the referral and no case message.
fn discloses(entry: &AuditEntry, id: Uuid) -> bool {
    let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap_or_default();
    let id = id.to_string();
    match detail["case_message_id"].as_str() {
        Some(message) => message == id,
        None => entry.referral_id.as_deref() == Some(id.as_str()),
    }
}

/// One line of the accounting, read back from the entry that recorded it. A field the entry
/// does not carry is left empty rather than guessed.
fn disclosure_record(e: &AuditEntry) -> DisclosureRecord {
    let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
    let categories = |value: &serde_json::Value| -> Vec<DataCategory> {
        value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().or_else(|| c["category"].as_str()))
                    .filter_map(DataCategory::parse)
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = |key: &str| detail[key].as_str().map(str::to_owned);
    DisclosureRecord {
        at: entry_time(e.at_ms),
        recipient: e.peer.clone(),
        referral_id: e.referral_id.clone(),
        kind: if e.kind == "status-change" {
            "status-update".into()
        } else {
            text("message").unwrap_or_default()
        },
        purpose: serde_json::from_value(detail["purpose"].clone()).ok(),
        legal_basis: serde_json::from_value(detail["legal_basis"].clone()).ok(),
        consent_id: text("consent_id"),
        categories: categories(&detail["categories"]),
        withheld: categories(&detail["withheld"]),
        rules: detail["rules"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        audit_seq: e.seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, detail: &str) -> AuditEntry {
        AuditEntry {
            seq: 7,
            at_ms: 1_764_000_000_000,
            kind: kind.into(),
            actor: "console alice".into(),
            peer: Some("spiffe://f.example/team/core".into()),
            referral_id: Some("r".into()),
            subject: Some("case-1".into()),
            detail: detail.into(),
            prev_hash: Vec::new(),
            hash: Vec::new(),
        }
    }

    #[test]
    fn a_disclosure_is_read_back_from_its_entry() {
        let record = disclosure_record(&entry(
            "disclosure",
            r#"{"message":"referral","purpose":"threat-assessment","legal_basis":"consent",
                "consent_id":"c","categories":["IDENTITY","THREAT"],
                "withheld":[{"category":"MENTAL_HEALTH"}],"rules":["r1","r2"]}"#,
        ));
        assert_eq!(record.kind, "referral");
        assert_eq!(record.purpose, Some(Purpose::ThreatAssessment));
        assert_eq!(record.legal_basis, Some(LegalBasis::Consent));
        assert_eq!(record.consent_id.as_deref(), Some("c"));
        assert_eq!(
            record.categories,
            [DataCategory::Identity, DataCategory::Threat]
        );
        assert_eq!(record.withheld, [DataCategory::MentalHealth]);
        assert_eq!(record.rules, ["r1", "r2"]);
        assert_eq!(record.audit_seq, 7);
        assert!(record.at.is_some());
    }

    #[test]
    fn a_status_change_reads_as_a_status_update_and_missing_fields_stay_empty() {
        let record = disclosure_record(&entry("status-change", "{}"));
        assert_eq!(record.kind, "status-update");
        assert_eq!(record.purpose, None);
        assert_eq!(record.legal_basis, None);
        assert_eq!(record.consent_id, None);
        assert!(record.categories.is_empty() && record.rules.is_empty());
    }

    #[test]
    fn an_unknown_kind_is_refused_with_every_kind_named() {
        assert_eq!(audit_kind("disclosure").ok(), Some(AuditKind::Disclosure));
        let refused = audit_kind("nonsense").unwrap_err().to_string();
        assert!(
            refused.starts_with("kind: expected one of disclosure"),
            "{refused}"
        );
    }
}
