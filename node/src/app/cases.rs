//! "My cases", as staff use it: every case this team sent or received, one page at a time,
//! searched by this team's own case number or reference for the person; those references,
//! kept here and never sent; and which cases have news for the staff member reading.
//!
//! The references are sealed in the store, so the search matches keyed digests: this layer
//! normalises a reference (spaces and letter case do not matter) and digests every prefix of
//! it of [`MIN_PREFIX`] characters and more, with the node's case key, which never reaches
//! the store. A search then finds every case whose case number or reference starts with what
//! was typed, without the database ever holding a readable number.

use uuid::Uuid;

use super::{Actor, App, AppError};
use crate::audit;
use crate::referral::ReferralStatus;
use crate::store::{CasePage, CaseQuery, CaseReferences, CaseSort, Direction, IndexedReferences};

/// Cases on one page of "My cases".
pub const PER_PAGE: u32 = 25;
/// The longest case number or reference kept, in characters.
pub const MAX_REFERENCE: usize = 64;
/// The shortest prefix a search finds a reference by; a shorter search text finds only a
/// reference that is exactly that.
pub const MIN_PREFIX: usize = 3;

/// What a page of "My cases" shows.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// A case number or local reference, or the start of one, as typed.
    pub search: Option<String>,
    /// Only open (`true`) or only closed (`false`) cases.
    pub open: Option<bool>,
    /// Only cases this team sent, or only those it received.
    pub direction: Option<Direction>,
    /// Only cases in this status.
    pub status: Option<ReferralStatus>,
    /// The order.
    pub sort: CaseSort,
    /// The page, from 1.
    pub page: u32,
}

/// A reference as the search compares it: trimmed, inner runs of spaces as one, lower case.
pub fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A reference as typed, trimmed; `None` when empty. Refused when longer than
/// [`MAX_REFERENCE`]; `field` names it.
fn reference(text: Option<&str>, field: &str) -> Result<Option<String>, AppError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_REFERENCE {
        return Err(AppError::invalid(
            field,
            format!("is longer than {MAX_REFERENCE} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(AppError::invalid(field, "holds a control character"));
    }
    Ok(Some(text.to_owned()))
}

impl App {
    /// A case's references, checked, with the digests its search matches.
    pub(super) fn indexed_references(
        &self,
        case_number: Option<&str>,
        local_reference: Option<&str>,
    ) -> Result<IndexedReferences, AppError> {
        let references = CaseReferences {
            case_number: reference(case_number, "case_ref")?,
            local_reference: reference(local_reference, "subject_ref")?,
        };
        let mut digests = Vec::new();
        for text in [&references.case_number, &references.local_reference]
            .into_iter()
            .flatten()
        {
            let chars: Vec<char> = normalise(text).chars().collect();
            for end in MIN_PREFIX.min(chars.len())..=chars.len() {
                let prefix: String = chars[..end].iter().collect();
                digests.push(self.case_key.reference_digest(&prefix));
            }
        }
        digests.sort();
        digests.dedup();
        Ok(IndexedReferences {
            references,
            digests,
        })
    }

    /// The cases whose case number or local reference is exactly `reference` (as the search
    /// compares them: spaces and letter case aside), for the accounting of disclosures. The
    /// index holds every prefix, so each candidate is read to keep only exact matches.
    pub(super) async fn cases_under(&self, reference: &str) -> Result<Vec<Uuid>, AppError> {
        let wanted = normalise(reference);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let digest = self.case_key.reference_digest(&wanted);
        let mut exact = Vec::new();
        for id in self.store.referrals_with_reference_digest(&digest).await? {
            let references = self.store.case_references(id).await?;
            if [&references.case_number, &references.local_reference]
                .into_iter()
                .flatten()
                .any(|r| normalise(r) == wanted)
            {
                exact.push(id);
            }
        }
        Ok(exact)
    }

    /// One page of the cases this team sent or received, for `actor`: what is unread is
    /// unread for them. The listing is on record, as an inbox read is.
    pub async fn cases(&self, filter: CaseFilter, actor: &Actor) -> Result<CasePage, AppError> {
        let search = filter
            .search
            .as_deref()
            .map(normalise)
            .filter(|s| !s.is_empty())
            .map(|s| self.case_key.reference_digest(&s));
        let page = self
            .store
            .cases(&CaseQuery {
                reader: actor.to_string(),
                search,
                open: filter.open,
                direction: filter.direction,
                status: filter.status,
                sort: filter.sort,
                page: filter.page.max(1),
                per_page: PER_PAGE,
            })
            .await?;
        self.store
            .record_audit(&audit::inbox_read(page.rows.len(), actor))
            .await?;
        Ok(page)
    }

    /// Records that `actor` opened case `id` now: it is no longer unread for them, and its
    /// received case messages are seen. Opening a case is never refused for want of this
    /// mark: a failure is logged (by id) and the case is shown all the same.
    pub async fn mark_case_opened(&self, id: Uuid, actor: &Actor) {
        if let Err(e) = self.store.mark_case_opened(&actor.to_string(), id).await {
            tracing::warn!(referral_id = %id, error = %e, "could not record that a case was opened");
        }
    }

    /// This team's own references for a case this node holds.
    pub async fn case_references(&self, id: Uuid) -> Result<CaseReferences, AppError> {
        self.held(id).await?;
        Ok(self.store.case_references(id).await?)
    }

    /// Sets (or clears, when both are empty) this team's own case number and reference for
    /// the person on a case this node holds. They stay here; nothing is sent.
    pub async fn set_case_references(
        &self,
        id: Uuid,
        case_number: &str,
        local_reference: &str,
    ) -> Result<(), AppError> {
        let indexed = self.indexed_references(Some(case_number), Some(local_reference))?;
        if !self.store.set_case_references(id, &indexed).await? {
            return Err(AppError::NoSuchReferral(id));
        }
        tracing::info!(
            referral_id = %id,
            case_number = indexed.references.case_number.is_some(),
            local_reference = indexed.references.local_reference.is_some(),
            "this team's references for a case changed"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_compared_without_spaces_or_letter_case() {
        assert_eq!(normalise("  LHS  2026-0042 "), "lhs 2026-0042");
    }

    #[test]
    fn a_reference_too_long_or_with_control_characters_is_refused() {
        assert_eq!(reference(Some("  "), "case_ref").unwrap(), None);
        assert_eq!(
            reference(Some(" LHS-1 "), "case_ref").unwrap().as_deref(),
            Some("LHS-1")
        );
        assert!(reference(Some(&"x".repeat(MAX_REFERENCE + 1)), "case_ref").is_err());
        assert!(reference(Some("a\u{0}b"), "case_ref").is_err());
    }
}
