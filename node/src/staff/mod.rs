//! Staff: the roles of a team's people and what each may do, and their credentials. Every
//! console page and action asks here, on the server, before it reads or changes anything; the
//! pages only hide what a role may not do. The store keeps accounts by these roles, and the
//! admin API issues these credentials, so neither depends on the console.

use std::fmt;

pub mod credentials;

/// What a console account may do. Deny by default: each capability names the roles that have
/// it, and a role not named does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaffRole {
    /// Creates referrals, reads the team's inbox, records consents.
    CaseWorker,
    /// Everything a case worker does, and accepts, declines, completes, forwards and consults.
    Chair,
    /// Reads the audit log and the accounting of disclosures; sees no case content.
    Auditor,
    /// A read-only view of trust status, and the team's console accounts; sees no case
    /// content.
    Admin,
}

/// One thing a page or action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// The inbox, a referral's content, the outbox, consultations.
    ReadCases,
    /// New referrals and consents.
    CreateReferrals,
    /// Accept, decline, complete, close, forward, consult, answer, revoke, retry.
    DecideReferrals,
    /// The audit log and the accounting of disclosures.
    ReadAudit,
    /// Trust status.
    ReadTrust,
    /// The console's accounts: add, disable, unlock, new credentials.
    ManageAccounts,
}

impl StaffRole {
    /// Every role, for listing and parsing.
    pub const ALL: [Self; 4] = [Self::CaseWorker, Self::Chair, Self::Auditor, Self::Admin];

    /// The stored and typed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CaseWorker => "case-worker",
            Self::Chair => "chair",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }

    /// The role with this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether this role has `capability`.
    pub fn may(self, capability: Capability) -> bool {
        use Capability as C;
        match self {
            Self::CaseWorker => matches!(capability, C::ReadCases | C::CreateReferrals),
            Self::Chair => matches!(
                capability,
                C::ReadCases | C::CreateReferrals | C::DecideReferrals
            ),
            Self::Auditor => matches!(capability, C::ReadAudit),
            Self::Admin => matches!(capability, C::ReadTrust | C::ManageAccounts),
        }
    }

    /// The page a role lands on after signing in.
    pub fn home(self) -> &'static str {
        match self {
            Self::CaseWorker | Self::Chair => "/cases",
            Self::Auditor => "/audit",
            Self::Admin => "/trust",
        }
    }

    /// How the role reads in a sentence.
    pub fn label(self) -> &'static str {
        match self {
            Self::CaseWorker => "case worker",
            Self::Chair => "chair",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for StaffRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_chair_decides_and_no_staff_role_reads_audit_or_trust() {
        assert!(StaffRole::Chair.may(Capability::DecideReferrals));
        assert!(!StaffRole::CaseWorker.may(Capability::DecideReferrals));
        for role in [StaffRole::CaseWorker, StaffRole::Chair] {
            assert!(!role.may(Capability::ReadAudit));
            assert!(!role.may(Capability::ReadTrust));
        }
        for role in [StaffRole::Auditor, StaffRole::Admin] {
            assert!(!role.may(Capability::ReadCases));
        }
        for role in StaffRole::ALL {
            assert_eq!(
                role.may(Capability::ManageAccounts),
                role == StaffRole::Admin,
                "{role}"
            );
        }
        for role in StaffRole::ALL {
            assert_eq!(StaffRole::parse(role.as_str()), Some(role));
        }
    }
}
