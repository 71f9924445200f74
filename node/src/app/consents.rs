//! Consents as staff record them, and what revoking one sets in motion: every disclosure made
//! on it is retracted, hop by hop, and what was purged leaves a tombstone.

use uuid::Uuid;

use super::{Actor, App, AppError};
use crate::consent::Consent;
use crate::retraction::{RetractionProgress, Tombstone};

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
