//! What is new for a team's staff: an event on a case that came from the other team (a
//! referral, a status change, a case message) or a message of ours that could not be
//! delivered, and how each staff member wants to hear of it.
//!
//! A notification carries only ids, the other team, the kind of event and its code, never
//! personal data, so that it can be shown in a header, listed, and sent by email without
//! disclosing anything about the case: whoever reads it must sign in to learn more.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::case_message::CaseMessageKind;
use crate::referral::ReferralStatus;

/// What happened, as a notification records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The other team sent this team a referral.
    ReferralReceived,
    /// The other team changed a case's status (accepted, declined, asked for information...).
    Status(ReferralStatus),
    /// The other team sent a case message of this kind.
    CaseMessage(CaseMessageKind),
    /// A message of this team's could not be delivered to the other team, for good.
    DeliveryFailed,
}

impl Event {
    /// The kind of event, which a staff member chooses to be emailed about or not.
    pub fn kind(self) -> NotificationKind {
        match self {
            Self::ReferralReceived => NotificationKind::ReferralReceived,
            Self::Status(_) => NotificationKind::StatusUpdate,
            Self::CaseMessage(_) => NotificationKind::CaseMessage,
            Self::DeliveryFailed => NotificationKind::DeliveryFailed,
        }
    }

    /// The code stored beside the kind: the status or the case message kind.
    pub fn detail(self) -> Option<&'static str> {
        match self {
            Self::Status(status) => Some(status.as_str()),
            Self::CaseMessage(kind) => Some(kind.as_str()),
            Self::ReferralReceived | Self::DeliveryFailed => None,
        }
    }

    /// The event a stored kind and detail name; `None` for a pair this node does not know.
    pub fn parse(kind: &str, detail: Option<&str>) -> Option<Self> {
        Some(match NotificationKind::parse(kind)? {
            NotificationKind::ReferralReceived => Self::ReferralReceived,
            NotificationKind::StatusUpdate => Self::Status(ReferralStatus::parse(detail?)?),
            NotificationKind::CaseMessage => Self::CaseMessage(CaseMessageKind::parse(detail?)?),
            NotificationKind::DeliveryFailed => Self::DeliveryFailed,
        })
    }
}

/// The kinds of event a staff member can ask to be emailed about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    /// A new referral arrived.
    ReferralReceived,
    /// The other team changed a case's status.
    StatusUpdate,
    /// The other team sent a case message.
    CaseMessage,
    /// A message of ours could not be delivered.
    DeliveryFailed,
}

impl NotificationKind {
    /// Every kind, in the order the settings page lists them.
    pub const ALL: [Self; 4] = [
        Self::ReferralReceived,
        Self::StatusUpdate,
        Self::CaseMessage,
        Self::DeliveryFailed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReferralReceived => "referral-received",
            Self::StatusUpdate => "status-update",
            Self::CaseMessage => "case-message",
            Self::DeliveryFailed => "delivery-failed",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One notification, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Its place in the order notifications were made; "seen" is counted by it.
    pub seq: i64,
    /// What happened.
    pub event: Event,
    /// The case it is about.
    pub referral_id: Uuid,
    /// The other team, as an identity URI.
    pub team: String,
    /// When this node stored the event.
    pub at: OffsetDateTime,
}

/// A staff member's own settings: where and of what they are emailed, and their time zone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preferences {
    /// Where notifications are emailed. Personal data: never logged.
    pub email: Option<String>,
    /// Whether to email at all.
    pub email_on: bool,
    /// The kinds of event to email about.
    pub email_kinds: Vec<NotificationKind>,
    /// An IANA time zone name the member chose; `None` to use the browser's.
    pub time_zone: Option<String>,
}

impl Preferences {
    /// Whether an event of this kind is to be emailed.
    pub fn emails(&self, kind: NotificationKind) -> bool {
        self.email_on && self.email.is_some() && self.email_kinds.contains(&kind)
    }
}

/// Whether `text` looks like an email address a relay would take: one `@`, something on each
/// side, no spaces or control characters, and at most 254 characters (RFC 5321's limit). The
/// relay is the real judge; this catches typing mistakes before they are saved.
pub fn plausible_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    text.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_back_from_its_kind_and_detail() {
        for event in [
            Event::ReferralReceived,
            Event::Status(ReferralStatus::InfoRequested),
            Event::CaseMessage(CaseMessageKind::NewInformation),
            Event::DeliveryFailed,
        ] {
            assert_eq!(
                Event::parse(event.kind().as_str(), event.detail()),
                Some(event)
            );
        }
        assert_eq!(Event::parse("status-update", None), None);
        assert_eq!(Event::parse("nonsense", None), None);
    }

    #[test]
    fn only_a_plausible_address_is_taken() {
        assert!(plausible_email("chair@county.example"));
        for bad in [
            "",
            "chair",
            "@county.example",
            "chair@county",
            "a b@c.d",
            "a@b@c.d",
        ] {
            assert!(!plausible_email(bad), "{bad}");
        }
    }

    #[test]
    fn nothing_is_emailed_without_an_address_or_the_kind() {
        let mut preferences = Preferences {
            email: Some("chair@county.example".into()),
            email_on: true,
            email_kinds: vec![NotificationKind::ReferralReceived],
            time_zone: None,
        };
        assert!(preferences.emails(NotificationKind::ReferralReceived));
        assert!(!preferences.emails(NotificationKind::CaseMessage));
        preferences.email_on = false;
        assert!(!preferences.emails(NotificationKind::ReferralReceived));
    }
}
