//! The signed consent forms' SQL: attaching one to a consent (sealed under a data key of its
//! own) and reading it back, each with its audit entry in the same transaction.
//!
//! A form never leaves this node: nothing that builds a message for a peer reads this table.
//! Its key's id is `consent-form/<consent id>` and the sealed body is bound to the same
//! context, so a form moved to another consent's row fails to open.

use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use super::codec::{digest, from_ms, ms};
use super::{Store, StoreError, audit_log};
use crate::actor::Actor;
use crate::audit;
use crate::vault;

/// What is known of a consent's signed form without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentFormInfo {
    /// `application/pdf`, `image/png` or `image/jpeg`.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of the form as attached, hex: what the audit entry names.
    pub digest: String,
    /// When it was attached.
    pub attached_at: OffsetDateTime,
    /// Who attached it, as the audit log records actors.
    pub attached_by: String,
}

/// A consent's signed form, opened.
#[derive(Clone)]
pub struct ConsentForm {
    /// What is known of it.
    pub info: ConsentFormInfo,
    /// The form, as attached.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for ConsentForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentForm")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The data key's id, and the sealing context, of a consent's form.
fn context(consent_id: Uuid) -> String {
    format!("consent-form/{consent_id}")
}

fn info_row(row: &sqlx::any::AnyRow) -> Result<ConsentFormInfo, StoreError> {
    Ok(ConsentFormInfo {
        content_type: row.try_get("content_type")?,
        size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
        digest: row.try_get("digest")?,
        attached_at: from_ms(row.try_get("attached_at")?),
        attached_by: row.try_get("attached_by")?,
    })
}

impl Store {
    /// Attaches `bytes` (already checked to be a PDF, PNG or JPEG of `content_type`) to a
    /// consent as its signed form, replacing any form attached before, sealed under a fresh
    /// data key; the old key is deleted with the old form. `None`, and nothing written, when
    /// there is no such consent.
    pub async fn attach_consent_form(
        &self,
        consent_id: Uuid,
        content_type: &str,
        bytes: &[u8],
        actor: &Actor,
    ) -> Result<Option<ConsentFormInfo>, StoreError> {
        let id = consent_id.to_string();
        let context = context(consent_id);
        let key = vault::new_key()?;
        let sealed = vault::seal(&key, &context, bytes)?;
        let digest = digest(bytes);
        let mut tx = self.write().await?;
        let now = tx.now();
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM consents WHERE id = $1")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let replaced = sqlx::query("DELETE FROM consent_forms WHERE consent_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        sqlx::query("DELETE FROM data_keys WHERE id = $1")
            .bind(&context)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO data_keys (id, key, created_at) VALUES ($1, $2, $3)")
            .bind(&context)
            .bind(key)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO consent_forms (consent_id, content_type, size, digest, data_key, body,
                                        attached_at, attached_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(content_type)
        .bind(size)
        .bind(&digest)
        .bind(&context)
        .bind(sealed)
        .bind(ms(now))
        .bind(actor.to_string())
        .execute(&mut *tx)
        .await?;
        audit_log::append(
            &mut tx,
            &audit::consent_form_attached(consent_id, content_type, size, &digest, replaced, actor),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(ConsentFormInfo {
            content_type: content_type.to_owned(),
            size: u64::try_from(size).unwrap_or(0),
            digest,
            attached_at: now,
            attached_by: actor.to_string(),
        }))
    }

    /// What is known of a consent's signed form, without opening it or auditing a read.
    pub async fn consent_form_info(
        &self,
        consent_id: Uuid,
    ) -> Result<Option<ConsentFormInfo>, StoreError> {
        sqlx::query(
            "SELECT content_type, size, digest, attached_at, attached_by FROM consent_forms
             WHERE consent_id = $1",
        )
        .bind(consent_id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(info_row)
        .transpose()
    }

    /// Opens a consent's signed form for `actor`, and records that they read it, in one
    /// transaction: the form is handed out exactly when the read is on the record.
    pub async fn read_consent_form(
        &self,
        consent_id: Uuid,
        actor: &Actor,
    ) -> Result<Option<ConsentForm>, StoreError> {
        let context = context(consent_id);
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "SELECT f.content_type, f.size, f.digest, f.attached_at, f.attached_by, f.body,
                    k.key
             FROM consent_forms f JOIN data_keys k ON k.id = f.data_key
             WHERE f.consent_id = $1",
        )
        .bind(consent_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let info = info_row(&row)?;
        let key: Vec<u8> = row.try_get("key")?;
        let sealed: Vec<u8> = row.try_get("body")?;
        let bytes = vault::open(&key, &context, &sealed)?;
        audit_log::append(
            &mut tx,
            &audit::consent_form_read(consent_id, &info.digest, actor),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(ConsentForm { info, bytes }))
    }

    /// Who recorded a consent, as the audit log records actors; `None` for a consent recorded
    /// before this was kept, or no such consent.
    pub async fn consent_recorded_by(
        &self,
        consent_id: Uuid,
    ) -> Result<Option<String>, StoreError> {
        let recorded_by: Option<Option<String>> =
            sqlx::query_scalar("SELECT recorded_by FROM consents WHERE id = $1")
                .bind(consent_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(recorded_by.flatten())
    }
}
