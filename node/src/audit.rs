//! The audit log: a tamper-evident record of what this node disclosed, received, changed and
//! refused, for the agency's security officer and counsel.
//!
//! Every entry is written in the same transaction as the action it records (the store calls
//! the constructors here), holds ids, categories, bases and rule ids but never case content,
//! and is hash-chained to the entry before it:
//!
//! ```text
//! leaf_n = SHA-256(canonical JSON [seq, at, kind, actor, peer, referral_id, subject, detail])
//! hash_n = SHA-256(hash_{n-1} || leaf_n)        hash_0 = 32 zero bytes
//! ```
//!
//! The node signs the head (`seq`, `hash_seq`) with its key at an interval and on shutdown:
//! a checkpoint. [`ChainVerifier`] walks the chain and the checkpoints and names the first
//! entry that was changed, deleted, inserted or reordered. Peers keep each other's checkpoints
//! ([`crate::federation::witness`]), so even a rewrite re-signed with the node's own key is caught.
//!
//! The same entries also form an RFC 9162 Merkle tree ([`crate::audit_tree`]), whose signed
//! tree heads protocol version 2 shows peers in place of checkpoints; the chain and its
//! checkpoints stay for peers that speak version 1.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::actor::Actor;
use crate::case_message::{CaseBody, CaseMessage};
use crate::consent::Consent;
use crate::filter::{FieldDecision, Outcome};
use crate::referral::{Referral, StatusUpdate};
use crate::retraction::{Retraction, RetractionAck};
use crate::signing::{self, NodeSigner};

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// Case data left for another team: a referral, forward or consultation copy.
    Disclosure,
    /// Case data arrived from another team and was stored.
    Receipt,
    /// A referral's status changed, here or at the other party.
    StatusChange,
    /// A consent was recorded.
    ConsentRecorded,
    /// A consent was revoked, and its retraction started.
    ConsentRevoked,
    /// Another team asked this node to purge a referral.
    RetractionReceived,
    /// A team reported that it purged a copy.
    RetractionAcknowledged,
    /// A referral was purged (retraction or retention).
    Purge,
    /// An admin, or a signed directory, changed whom this node trusts.
    TrustChange,
    /// Staff read a received referral through the Agency API.
    CaseRead,
    /// Staff listed the inbox.
    InboxRead,
    /// Another node's call was refused.
    InboundRejected,
    /// Audit retention removed entries older than the retention period.
    AuditRetention,
    /// A staff member signed in to the console.
    SignIn,
    /// A console sign-in was refused (wrong password or code, disabled or locked account).
    SignInFailed,
    /// A console account was locked after repeated failed sign-ins.
    AccountLocked,
    /// A console account was added, disabled or given new credentials by an admin, or its
    /// holder changed its password.
    AccountChange,
    /// A consent's signed form was attached (stored sealed at this node, never sent).
    ConsentFormAttached,
    /// Staff downloaded a consent's signed form.
    ConsentFormRead,
}

impl AuditKind {
    /// Every kind, for listing and parsing.
    pub const ALL: [Self; 19] = [
        Self::Disclosure,
        Self::Receipt,
        Self::StatusChange,
        Self::ConsentRecorded,
        Self::ConsentRevoked,
        Self::RetractionReceived,
        Self::RetractionAcknowledged,
        Self::Purge,
        Self::TrustChange,
        Self::CaseRead,
        Self::InboxRead,
        Self::InboundRejected,
        Self::AuditRetention,
        Self::SignIn,
        Self::SignInFailed,
        Self::AccountLocked,
        Self::AccountChange,
        Self::ConsentFormAttached,
        Self::ConsentFormRead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disclosure => "disclosure",
            Self::Receipt => "receipt",
            Self::StatusChange => "status-change",
            Self::ConsentRecorded => "consent-recorded",
            Self::ConsentRevoked => "consent-revoked",
            Self::RetractionReceived => "retraction-received",
            Self::RetractionAcknowledged => "retraction-acknowledged",
            Self::Purge => "purge",
            Self::TrustChange => "trust-change",
            Self::CaseRead => "case-read",
            Self::InboxRead => "inbox-read",
            Self::InboundRejected => "inbound-rejected",
            Self::AuditRetention => "audit-retention",
            Self::SignIn => "sign-in",
            Self::SignInFailed => "sign-in-failed",
            Self::AccountLocked => "account-locked",
            Self::AccountChange => "account-change",
            Self::ConsentFormAttached => "consent-form-attached",
            Self::ConsentFormRead => "consent-form-read",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// An entry about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// What it records.
    pub kind: AuditKind,
    /// Who acted: a team identity URI, local staff (`uid N (name)`), or `node` for the node's
    /// own jobs.
    pub actor: String,
    /// The other team, when there is one.
    pub peer: Option<String>,
    /// The referral it concerns.
    pub referral_id: Option<Uuid>,
    /// The agency's own reference for the subject, for the accounting of disclosures.
    pub subject: Option<String>,
    /// Ids, categories, bases and rule ids; never content.
    pub detail: Value,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its position; 1, 2, 3, ... without gaps.
    pub seq: u64,
    /// When it was written, Unix milliseconds.
    pub at_ms: i64,
    /// [`AuditKind::as_str`].
    pub kind: String,
    /// Who acted.
    pub actor: String,
    /// The other team.
    pub peer: Option<String>,
    /// The referral.
    pub referral_id: Option<String>,
    /// The subject reference.
    pub subject: Option<String>,
    /// The detail, JSON text exactly as hashed.
    pub detail: String,
    /// The hash of the entry before.
    pub prev_hash: Vec<u8>,
    /// This entry's chain hash.
    pub hash: Vec<u8>,
}

impl AuditEntry {
    /// The hash of this entry's own columns.
    pub fn leaf(&self) -> [u8; 32] {
        leaf_hash(
            self.seq,
            self.at_ms,
            &self.kind,
            &self.actor,
            self.peer.as_deref(),
            self.referral_id.as_deref(),
            self.subject.as_deref(),
            &self.detail,
        )
    }
}

/// The leaf hash of an entry's columns, as a canonical JSON array: the stored text is hashed
/// exactly as stored, so verification never depends on re-serialising JSON the same way.
#[allow(clippy::too_many_arguments)] // one per column, in column order
pub fn leaf_hash(
    seq: u64,
    at_ms: i64,
    kind: &str,
    actor: &str,
    peer: Option<&str>,
    referral_id: Option<&str>,
    subject: Option<&str>,
    detail: &str,
) -> [u8; 32] {
    let canonical = json!([seq, at_ms, kind, actor, peer, referral_id, subject, detail]);
    Sha256::digest(canonical.to_string().as_bytes()).into()
}

/// The chain hash after an entry with leaf `leaf`.
pub fn chain_hash(prev: &[u8], leaf: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// Who signed a checkpoint or a tree head, and when: what the check that the certificate is
/// the node's own needs.
#[derive(Debug, Clone, Copy)]
pub struct SignedBy<'a> {
    /// The team it names, as an identity URI.
    pub team: &'a str,
    /// When it was signed, Unix milliseconds.
    pub at_ms: i64,
    /// The signer's certificate, DER.
    pub certificate: &'a [u8],
}

/// A signed statement of the chain head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The team whose log it is, as an identity URI.
    pub team: String,
    /// The last entry covered.
    pub seq: u64,
    /// The chain hash after it.
    pub head_hash: Vec<u8>,
    /// When it was signed, Unix milliseconds.
    pub at_ms: i64,
    /// [`signing::SCHEME_ECDSA_P256_SHA256`].
    pub scheme: u32,
    /// Over [`signing::checkpoint_payload`].
    pub signature: Vec<u8>,
    /// The signer's certificate, DER.
    pub certificate: Vec<u8>,
}

impl Checkpoint {
    /// Signs the head `(seq, head_hash)` of `team`'s chain as it stands `at`.
    pub fn sign(
        signer: &NodeSigner,
        team: &str,
        seq: u64,
        head_hash: &[u8],
        at: OffsetDateTime,
    ) -> Result<Self, signing::SignatureError> {
        let at_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
        let signature = signer.sign(&signing::checkpoint_payload(team, seq, head_hash, at_ms))?;
        Ok(Self {
            team: team.to_owned(),
            seq,
            head_hash: head_hash.to_vec(),
            at_ms,
            scheme: signing::SCHEME_ECDSA_P256_SHA256,
            signature,
            certificate: signer.certificate().to_vec(),
        })
    }

    /// Whether the signature holds for the certificate it carries. Whose certificate that is,
    /// the caller checks.
    pub fn signature_holds(&self) -> Result<(), signing::SignatureError> {
        signing::verify(
            &self.certificate,
            self.scheme,
            &signing::checkpoint_payload(&self.team, self.seq, &self.head_hash, self.at_ms),
            &self.signature,
        )
    }

    /// Who signed it, and when, for the check that the certificate is the node's own.
    pub fn signed_by(&self) -> SignedBy<'_> {
        SignedBy {
            team: &self.team,
            at_ms: self.at_ms,
            certificate: &self.certificate,
        }
    }
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verification {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// The first bad entry, and what is wrong; `None` when the chain (and the Merkle tree) is
    /// intact.
    pub first_bad: Option<(u64, String)>,
    /// When the newest checkpoint was signed.
    pub last_checkpoint_at_ms: Option<i64>,
    /// Signed tree heads checked.
    pub tree_heads: u64,
    /// The newest signed tree head: its size and when it was signed.
    pub last_tree_head: Option<(u64, i64)>,
}

/// Walks the chain entry by entry, in seq order, checking each link and every checkpoint.
#[derive(Debug)]
pub struct ChainVerifier {
    /// The seq the next entry must have.
    expected: u64,
    /// The chain hash so far.
    head: Vec<u8>,
    /// Checkpoints by seq, not yet reached.
    checkpoints: BTreeMap<u64, Checkpoint>,
    /// The last checkpoint that matched, to say where a rewrite must have started.
    last_good_checkpoint: u64,
    /// What was found so far.
    found: Verification,
}

impl ChainVerifier {
    /// Starts after `anchor` (the last entry audit retention removed, if any), with every
    /// checkpoint to check, and `own_certificate` deciding whether a checkpoint's certificate is
    /// one of this node's.
    pub fn new(
        anchor: Option<(u64, Vec<u8>)>,
        checkpoints: Vec<Checkpoint>,
        own_certificate: impl Fn(SignedBy<'_>) -> Result<(), String>,
    ) -> Self {
        let (after, head) = anchor.unwrap_or((0, GENESIS.to_vec()));
        let mut found = Verification {
            last_checkpoint_at_ms: checkpoints.iter().map(|c| c.at_ms).max(),
            ..Default::default()
        };
        let mut kept = BTreeMap::new();
        for checkpoint in checkpoints {
            found.checkpoints += 1;
            let problem = match checkpoint.signature_holds() {
                Err(e) => Some(format!(
                    "its signature {e}: the checkpoint was forged or altered"
                )),
                Ok(()) => own_certificate(checkpoint.signed_by()).err(),
            };
            if let Some(problem) = problem {
                if found.first_bad.is_none() {
                    found.first_bad = Some((
                        checkpoint.seq,
                        format!(
                            "the checkpoint signed over entry {}: {problem}",
                            checkpoint.seq
                        ),
                    ));
                }
                continue;
            }
            if checkpoint.seq > after {
                kept.insert(checkpoint.seq, checkpoint);
            }
        }
        Self {
            expected: after + 1,
            head,
            checkpoints: kept,
            last_good_checkpoint: after,
            found,
        }
    }

    /// Checks the next entry; returns false once something is wrong, after which further
    /// entries are not needed.
    pub fn feed(&mut self, entry: &AuditEntry) -> bool {
        if self.found.first_bad.is_some() {
            return false;
        }
        let bad = |seq: u64, problem: String| Some((seq, problem));
        self.found.first_bad = if entry.seq > self.expected {
            bad(
                self.expected,
                format!(
                    "entry {} is missing: it was deleted, or later entries were renumbered",
                    self.expected
                ),
            )
        } else if entry.seq < self.expected {
            bad(
                entry.seq,
                format!("entry {} appears twice or out of order", entry.seq),
            )
        } else if entry.prev_hash != self.head {
            bad(
                entry.seq,
                format!(
                    "entry {} does not follow entry {}: an entry was inserted, reordered or changed here",
                    entry.seq,
                    entry.seq - 1
                ),
            )
        } else if chain_hash(&self.head, &entry.leaf()).as_slice() != entry.hash.as_slice() {
            bad(
                entry.seq,
                format!("entry {} was changed after it was written", entry.seq),
            )
        } else {
            None
        };
        if self.found.first_bad.is_some() {
            return false;
        }
        self.found.entries += 1;
        self.head = entry.hash.clone();
        self.expected = entry.seq + 1;
        if let Some(checkpoint) = self.checkpoints.remove(&entry.seq) {
            if checkpoint.head_hash != entry.hash {
                // The links all hold, so the whole chain up to here was recomputed: a rewrite.
                self.found.first_bad = Some((
                    self.last_good_checkpoint + 1,
                    format!(
                        "the chain was rewritten between entries {} and {}: it no longer matches the checkpoint signed over entry {}",
                        self.last_good_checkpoint + 1,
                        entry.seq,
                        entry.seq
                    ),
                ));
                return false;
            }
            self.last_good_checkpoint = entry.seq;
        }
        true
    }

    /// The verdict, once every entry was fed.
    pub fn finish(mut self) -> Verification {
        if self.found.first_bad.is_none()
            && let Some((&seq, _)) = self.checkpoints.iter().next()
        {
            self.found.first_bad = Some((
                self.expected,
                format!(
                    "entries {} to {seq} are missing: a checkpoint covers them but the log ends before",
                    self.expected
                ),
            ));
        }
        self.found
    }
}

/// A console sign-in, refused sign-in or lockout. `username` is the account's name when the
/// account exists; for an unknown name it is `None`, because what was typed may be anything,
/// even a password typed into the wrong field. The detail holds the reason and counts only.
pub fn sign_in(kind: AuditKind, username: Option<&str>, detail: Value) -> AuditRecord {
    AuditRecord {
        kind,
        actor: username.map_or_else(
            || "console (unknown account)".to_owned(),
            |u| Actor::console(u).to_string(),
        ),
        peer: None,
        referral_id: None,
        subject: None,
        detail,
    }
}

/// An admin added, disabled or reset a console account, or its holder changed its password
/// (`actor` is then the holder). Never the password or secret.
pub fn account_change(action: &str, username: &str, role: &str, actor: &Actor) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::AccountChange,
        actor: actor.to_string(),
        peer: None,
        referral_id: None,
        subject: None,
        detail: json!({ "action": action, "account": username, "role": role }),
    }
}

fn categories_of(referral: &Referral) -> Vec<&'static str> {
    referral.categories().iter().map(|c| c.as_str()).collect()
}

/// A disclosure: exactly what left, what stayed, on what basis, and which rules decided.
pub fn disclosure(
    referral: &Referral,
    decisions: &[FieldDecision],
    forwarded_from: Option<Uuid>,
    subject: Option<&str>,
    actor: &Actor,
) -> AuditRecord {
    let withheld: Vec<Value> = decisions
        .iter()
        .filter(|d| d.outcome != Outcome::Disclose)
        .map(|d| {
            json!({
                "category": d.category.as_str(),
                "outcome": d.outcome.as_str(),
                "rules": d.rules,
                "reasons": d.reasons,
            })
        })
        .collect();
    let mut rules: Vec<&str> = decisions
        .iter()
        .flat_map(|d| d.rules.iter().map(String::as_str))
        .collect();
    rules.sort_unstable();
    rules.dedup();
    let kind = if forwarded_from.is_some() {
        "forward"
    } else if referral.consultation.is_some() {
        "consultation"
    } else {
        "referral"
    };
    AuditRecord {
        kind: AuditKind::Disclosure,
        actor: actor.to_string(),
        peer: Some(referral.recipient.uri()),
        referral_id: Some(referral.id),
        subject: subject.map(str::to_owned),
        detail: json!({
            "message": kind,
            "recipient": referral.recipient.uri(),
            "purpose": referral.purpose,
            "legal_basis": referral.legal_basis,
            "consent_id": referral.consent_ref,
            "categories": categories_of(referral),
            "withheld": withheld,
            "rules": rules,
            "consultation_id": referral.consultation.as_ref().map(|c| c.id),
            "forwarded_from": forwarded_from,
        }),
    }
}

/// A receipt: what arrived from whom, and the digest of exactly what arrived.
pub fn receipt(referral: &Referral, digest: &str) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::Receipt,
        actor: referral.sender.uri(),
        peer: Some(referral.sender.uri()),
        referral_id: Some(referral.id),
        subject: None,
        detail: json!({
            "purpose": referral.purpose,
            "legal_basis": referral.legal_basis,
            "consent_id": referral.consent_ref,
            "categories": categories_of(referral),
            "withheld_by_sender": referral.withheld.iter().map(|w| w.category.as_str()).collect::<Vec<_>>(),
            "provenance": referral.provenance.iter().map(|h| h.team.uri()).collect::<Vec<_>>(),
            "digest": digest,
        }),
    }
}

/// A case message sent to the other team of its referral: a disclosure, as a referral is one,
/// with what left (`outgoing`), what the filter withheld and the rules that decided. The
/// basis and consent are the referral's, on which the message is shared.
pub fn case_disclosure(
    outgoing: &CaseMessage,
    decisions: &[FieldDecision],
    referral: &Referral,
    recipient: &tatmx_certs::TeamIdentity,
    subject: Option<&str>,
    actor: &Actor,
) -> AuditRecord {
    let withheld: Vec<Value> = decisions
        .iter()
        .filter(|d| d.outcome != Outcome::Disclose)
        .map(|d| {
            json!({
                "category": d.category.as_str(),
                "outcome": d.outcome.as_str(),
                "rules": d.rules,
                "reasons": d.reasons,
            })
        })
        .collect();
    let mut rules: Vec<&str> = decisions
        .iter()
        .flat_map(|d| d.rules.iter().map(String::as_str))
        .collect();
    rules.sort_unstable();
    rules.dedup();
    let categories: Vec<&str> = outgoing.categories().iter().map(|c| c.as_str()).collect();
    AuditRecord {
        kind: AuditKind::Disclosure,
        actor: actor.to_string(),
        peer: Some(recipient.uri()),
        referral_id: Some(outgoing.referral_id),
        subject: subject.map(str::to_owned),
        detail: json!({
            "message": outgoing.kind().as_str(),
            "case_message_id": outgoing.id,
            "recipient": recipient.uri(),
            "purpose": referral.purpose,
            "legal_basis": referral.legal_basis,
            "consent_id": referral.consent_ref,
            "categories": categories,
            "withheld": withheld,
            "rules": rules,
            "urgent": outgoing.urgent(),
            "information_kind": match &outgoing.body {
                CaseBody::NewInformation { kind, .. } => Some(kind.as_str()),
                _ => None,
            },
        }),
    }
}

/// A case message received: what kind from whom, the categories it carried, and the digest of
/// exactly what arrived.
pub fn case_receipt(message: &CaseMessage, digest: &str) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::Receipt,
        actor: message.author.uri(),
        peer: Some(message.author.uri()),
        referral_id: Some(message.referral_id),
        subject: None,
        detail: json!({
            "message": message.kind().as_str(),
            "case_message_id": message.id,
            "categories": message.categories().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "withheld_by_sender": message.withheld.iter().map(|w| w.category.as_str()).collect::<Vec<_>>(),
            "urgent": message.urgent(),
            "digest": digest,
        }),
    }
}

/// A status change, sent (`outbound`, with the categories it disclosed) or received.
pub fn status_change(
    update: &StatusUpdate,
    outbound: bool,
    peer: &str,
    subject: Option<&str>,
    actor: &Actor,
) -> AuditRecord {
    let mut categories = Vec::new();
    if update.reason.is_some() {
        categories.push("NARRATIVE");
    }
    if update.outcome.is_some() {
        categories.push("ASSESSMENT");
    }
    AuditRecord {
        kind: AuditKind::StatusChange,
        actor: actor.to_string(),
        peer: Some(peer.to_owned()),
        referral_id: Some(update.referral_id),
        subject: subject.map(str::to_owned),
        detail: json!({
            "direction": if outbound { "sent" } else { "received" },
            "status": update.status.as_str(),
            "reason_code": update.reason_code.map(|c| c.as_str()),
            "update_id": update.id,
            "categories": categories,
            "withheld": update.withheld.iter().map(|w| w.category.as_str()).collect::<Vec<_>>(),
            "forwarded_to": update.forwarded_to.as_ref().map(|t| t.uri()),
        }),
    }
}

/// A consent recorded.
pub fn consent_recorded(consent: &Consent, actor: &Actor) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::ConsentRecorded,
        actor: actor.to_string(),
        peer: None,
        referral_id: None,
        subject: Some(consent.subject.clone()),
        detail: json!({
            "consent_id": consent.id,
            "grantor": match consent.grantor {
                crate::consent::Grantor::Subject => "subject",
                crate::consent::Grantor::Guardian { .. } => "guardian",
            },
            "valid_until": consent.valid_until.map(|t| t.unix_timestamp()),
        }),
    }
}

/// A consent's signed form attached: which consent, what kind of file, its size and digest
/// (never its content or name), and whether it replaced one attached before.
pub fn consent_form_attached(
    consent_id: Uuid,
    content_type: &str,
    size: i64,
    digest: &str,
    replaced: bool,
    actor: &Actor,
) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::ConsentFormAttached,
        actor: actor.to_string(),
        peer: None,
        referral_id: None,
        subject: None,
        detail: json!({
            "consent_id": consent_id,
            "content_type": content_type,
            "size": size,
            "digest": digest,
            "replaced": replaced,
        }),
    }
}

/// A consent's signed form downloaded, by whom, and which version (its digest).
pub fn consent_form_read(consent_id: Uuid, digest: &str, actor: &Actor) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::ConsentFormRead,
        actor: actor.to_string(),
        peer: None,
        referral_id: None,
        subject: None,
        detail: json!({ "consent_id": consent_id, "digest": digest }),
    }
}

/// A consent revoked, with the copies its retraction must reach.
pub fn consent_revoked(
    consent: &Consent,
    retraction_id: Uuid,
    targets: &[(String, Uuid)],
    actor: &Actor,
) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::ConsentRevoked,
        actor: actor.to_string(),
        peer: None,
        referral_id: None,
        subject: Some(consent.subject.clone()),
        detail: json!({
            "consent_id": consent.id,
            "retraction_id": retraction_id,
            "retracted_from": targets.iter().map(|(team, id)| json!({"team": team, "referral_id": id})).collect::<Vec<_>>(),
        }),
    }
}

/// A retraction received from a referral's sender.
pub fn retraction_received(retraction: &Retraction, held: bool, onward: usize) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::RetractionReceived,
        actor: retraction.author.uri(),
        peer: Some(retraction.author.uri()),
        referral_id: Some(retraction.referral_id),
        subject: None,
        detail: json!({
            "retraction_id": retraction.retraction_id,
            "held": held,
            "retracted_onward": onward,
        }),
    }
}

/// A report that a copy was purged.
pub fn retraction_acknowledged(ack: &RetractionAck, from: &str) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::RetractionAcknowledged,
        actor: from.to_owned(),
        peer: Some(from.to_owned()),
        referral_id: Some(ack.purged.referral_id),
        subject: None,
        detail: json!({
            "retraction_id": ack.retraction_id,
            "holder": ack.purged.team.uri(),
            "held": ack.held,
            "downstream": ack.downstream.iter().map(|c| json!({"team": c.team.uri(), "referral_id": c.referral_id})).collect::<Vec<_>>(),
        }),
    }
}

/// A referral purged.
pub fn purge(
    referral_id: Uuid,
    categories: &str,
    cause: crate::retraction::PurgeCause,
    retraction_id: Option<Uuid>,
) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::Purge,
        actor: Actor::node().to_string(),
        peer: None,
        referral_id: Some(referral_id),
        subject: None,
        detail: json!({
            "cause": cause.as_str(),
            "categories": categories.split(',').filter(|c| !c.is_empty()).collect::<Vec<_>>(),
            "retraction_id": retraction_id,
            "method": "data key deleted (crypto-shredding)",
        }),
    }
}

/// A change to whom this node trusts.
pub fn trust_change(action: &str, object: Value, actor: &Actor) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::TrustChange,
        actor: actor.to_string(),
        peer: None,
        referral_id: None,
        subject: None,
        detail: json!({ "action": action, "object": object }),
    }
}

/// Staff read a received referral.
pub fn case_read(referral: &Referral, actor: &Actor) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::CaseRead,
        actor: actor.to_string(),
        peer: Some(referral.sender.uri()),
        referral_id: Some(referral.id),
        subject: None,
        detail: json!({ "categories": categories_of(referral) }),
    }
}

/// Staff listed the inbox.
pub fn inbox_read(count: usize, actor: &Actor) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::InboxRead,
        actor: actor.to_string(),
        peer: None,
        referral_id: None,
        subject: None,
        detail: json!({ "referrals_listed": count }),
    }
}

/// Another node's call refused: which method, and the status it got.
pub fn inbound_rejected(
    peer: Option<&str>,
    method: &str,
    code: tonic::Code,
    message: &str,
) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::InboundRejected,
        actor: peer.unwrap_or("unauthenticated").to_owned(),
        peer: peer.map(str::to_owned),
        referral_id: None,
        subject: None,
        detail: json!({ "method": method, "code": format!("{code:?}"), "reason": message }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut head = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let mut entry = AuditEntry {
                    seq,
                    at_ms: 1_700_000_000_000 + seq as i64,
                    kind: "disclosure".into(),
                    actor: "uid 1000".into(),
                    peer: Some("spiffe://f.example/team/core".into()),
                    referral_id: None,
                    subject: Some("CASE-1".into()),
                    detail: format!("{{\"n\":{seq}}}"),
                    prev_hash: head.clone(),
                    hash: Vec::new(),
                };
                entry.hash = chain_hash(&head, &entry.leaf()).to_vec();
                head = entry.hash.clone();
                entry
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry]) -> Verification {
        let mut verifier = ChainVerifier::new(None, Vec::new(), |_| Ok(()));
        for entry in entries {
            if !verifier.feed(entry) {
                break;
            }
        }
        verifier.finish()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let found = verify(&chain(5));
        assert_eq!(found.first_bad, None);
        assert_eq!(found.entries, 5);
    }

    #[test]
    fn the_first_changed_deleted_inserted_or_reordered_entry_is_named() {
        let mut changed = chain(5);
        changed[2].detail = "{\"n\":99}".into();
        assert_eq!(verify(&changed).first_bad.map(|b| b.0), Some(3));

        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(verify(&deleted).first_bad.map(|b| b.0), Some(2));

        // Swapping the contents of entries 2 and 4 keeps the numbering but not the links.
        let mut swapped = chain(5);
        let two = swapped[1].clone();
        swapped[1] = AuditEntry {
            seq: 2,
            ..swapped[3].clone()
        };
        swapped[3] = AuditEntry { seq: 4, ..two };
        assert_eq!(verify(&swapped).first_bad.map(|b| b.0), Some(2));

        let mut inserted = chain(5);
        let mut fake = inserted[2].clone();
        fake.detail = "{\"n\":3.5}".into();
        inserted.insert(3, fake);
        for (i, e) in inserted.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        assert_eq!(verify(&inserted).first_bad.map(|b| b.0), Some(4));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
    }
}
