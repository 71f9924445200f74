//! Consents as staff record them, the signed form attached to one, and what revoking one sets
//! in motion: every disclosure made on it is retracted, hop by hop, and what was purged leaves
//! a tombstone.
//!
//! Two ways in: [`App::record_consent`] takes a whole consent as the Agency API sends it
//! (where an empty list means "any", as the wire has always said), and
//! [`App::record_consent_draft`] takes a person's explicit choices ([`ConsentScope`]), where
//! "any" must be chosen as such and a choice left empty is refused.
//!
//! A signed form is this agency's own evidence: it is stored sealed and never sent to any
//! peer; only a PDF, PNG or JPEG (by its first bytes, not by what the browser says) of at most
//! [`MAX_CONSENT_FORM_BYTES`] is taken.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Actor, App, AppError};
use crate::consent::{Consent, ConsentScope, Grantor};
use crate::retraction::{RetractionProgress, Tombstone};
use crate::store::{ConsentForm, ConsentFormInfo};

/// The largest signed form taken: a scanned page or two, with room to spare.
pub const MAX_CONSENT_FORM_BYTES: usize = 10 * 1024 * 1024;

/// A consent as a person filled it in: who it is about, who gave it, what it permits (each
/// choice explicit), and until when. The node sets the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentDraft {
    /// The agency's own reference for the subject.
    pub subject: String,
    /// Who gave it.
    pub grantor: Grantor,
    /// What it permits.
    pub scope: ConsentScope,
    /// When it ends, if ever.
    pub valid_until: Option<OffsetDateTime>,
}

/// A consent on file with what the node knows about it beyond the consent itself.
#[derive(Debug, Clone)]
pub struct ConsentRecord {
    /// The consent.
    pub consent: Consent,
    /// Who recorded it, as the audit log records actors; `None` for one recorded before this
    /// was kept.
    pub recorded_by: Option<String>,
    /// Its signed form, if one is attached.
    pub form: Option<ConsentFormInfo>,
}

/// The content type of a signed form, by its first bytes: a PDF, a PNG or a JPEG; anything
/// else (whatever its name or the browser's word for it) is `None`.
pub fn consent_form_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else {
        None
    }
}

impl App {
    /// Records a consent. The node assigns its id and the time it was recorded, so a client
    /// cannot backdate a record, and a new record is never already revoked.
    pub async fn record_consent(
        &self,
        mut consent: Consent,
        actor: &Actor,
    ) -> Result<Consent, AppError> {
        consent.id = Uuid::now_v7();
        consent.recorded_at = self.now();
        consent.revoked_at = None;
        consent.validate()?;
        self.store.put_consent(&consent, actor).await?;
        tracing::info!(consent_id = %consent.id, "consent recorded");
        Ok(consent)
    }

    /// Records a consent from a person's explicit choices: refused, naming each choice, when
    /// teams, purposes or kinds of information were left with nothing chosen.
    pub async fn record_consent_draft(
        &self,
        draft: ConsentDraft,
        actor: &Actor,
    ) -> Result<Consent, AppError> {
        let provision = draft.scope.permit()?;
        let now = self.now();
        let consent = Consent {
            // The node assigns the id and the time it was recorded.
            id: Uuid::nil(),
            subject: draft.subject,
            grantor: draft.grantor,
            provision,
            valid_from: now,
            valid_until: draft.valid_until,
            revoked_at: None,
            recorded_at: now,
        };
        self.record_consent(consent, actor).await
    }

    /// One consent on file, with who recorded it and its signed form's description.
    pub async fn consent_record(&self, id: Uuid) -> Result<ConsentRecord, AppError> {
        let consent = self.consent(id).await?;
        Ok(ConsentRecord {
            recorded_by: self.store.consent_recorded_by(id).await?,
            form: self.store.consent_form_info(id).await?,
            consent,
        })
    }

    /// Attaches the signed form to a consent, replacing any attached before: sealed at this
    /// node, never sent, audited. Refused when it is empty, too large, or not a PDF, PNG or
    /// JPEG.
    pub async fn attach_consent_form(
        &self,
        consent_id: Uuid,
        bytes: &[u8],
        actor: &Actor,
    ) -> Result<ConsentFormInfo, AppError> {
        if bytes.is_empty() {
            return Err(AppError::invalid("form", "no file was chosen"));
        }
        if bytes.len() > MAX_CONSENT_FORM_BYTES {
            return Err(AppError::invalid("form", "is larger than 10 MiB"));
        }
        let content_type = consent_form_type(bytes)
            .ok_or_else(|| AppError::invalid("form", "is not a PDF, PNG or JPEG file"))?;
        let info = self
            .store
            .attach_consent_form(consent_id, content_type, bytes, actor)
            .await?
            .ok_or_else(|| no_consent(consent_id))?;
        tracing::info!(%consent_id, size = info.size, "consent form attached");
        Ok(info)
    }

    /// A consent's signed form, for `actor` to download; the read is audited.
    pub async fn consent_form(
        &self,
        consent_id: Uuid,
        actor: &Actor,
    ) -> Result<ConsentForm, AppError> {
        self.store
            .read_consent_form(consent_id, actor)
            .await?
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "no signed form is attached to consent {consent_id}"
                ))
            })
    }

    /// The newest consents on file, at most `limit`.
    pub async fn consents(&self, limit: u32) -> Result<Vec<Consent>, AppError> {
        let federation = self.trust.state().local.identity.federation.clone();
        Ok(self
            .store
            .consents(super::list_limit(limit), &federation)
            .await?)
    }

    /// One consent on file.
    pub async fn consent(&self, id: Uuid) -> Result<Consent, AppError> {
        let federation = self.trust.state().local.identity.federation.clone();
        self.store
            .consent(id, &federation)
            .await?
            .ok_or_else(|| no_consent(id))
    }

    /// Revokes a consent and, in the same transaction, starts retracting every disclosure made
    /// on it; wakes delivery to each team a retraction goes to.
    pub async fn revoke_consent(&self, id: Uuid, actor: &Actor) -> Result<Consent, AppError> {
        let federation = self.trust.state().local.identity.federation.clone();
        let (consent, notify) = self
            .store
            .revoke_consent(id, self.now(), &federation, actor)
            .await?
            .ok_or_else(|| no_consent(id))?;
        for peer in &notify {
            self.outbox.notify(peer);
        }
        tracing::info!(consent_id = %id, retracted = notify.len(), "consent revoked");
        Ok(consent)
    }

    /// How far the retraction a revoked consent started has come.
    pub async fn retraction(&self, consent_id: Uuid) -> Result<RetractionProgress, AppError> {
        self.store
            .retraction_progress(consent_id)
            .await?
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "consent {consent_id} has not been revoked on this node, so nothing is being retracted"
                ))
            })
    }

    /// The newest tombstones of purged referrals, at most `limit`.
    pub async fn tombstones(&self, limit: u32) -> Result<Vec<Tombstone>, AppError> {
        Ok(self.store.tombstones(super::list_limit(limit)).await?)
    }
}

fn no_consent(id: Uuid) -> AppError {
    AppError::NotFound(format!("no consent {id} on this node"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_known_by_its_first_bytes_only() {
        assert_eq!(consent_form_type(b"%PDF-1.7\n..."), Some("application/pdf"));
        assert_eq!(
            consent_form_type(b"\x89PNG\r\n\x1a\n\0\0"),
            Some("image/png")
        );
        assert_eq!(
            consent_form_type(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some("image/jpeg")
        );
        for other in [&b"<html>%PDF-"[..], b"GIF89a", b"", b"PK\x03\x04"] {
            assert_eq!(consent_form_type(other), None);
        }
    }
}
