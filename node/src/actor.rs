//! Who did something at this node: a staff member on the Agency or Admin socket, a console
//! user, a peer team, or the node's own jobs.
//!
//! An [`Actor`] is built once, at the edge that authenticated the caller, and every layer below
//! takes it as it is: the application layer records it in the audit log and the referral's
//! timeline, and nothing below the edge can make one up from a string a caller sent.

use std::fmt;

use tatmx_certs::TeamIdentity;

/// The most characters of a staff name a local client may pass; longer names are dropped.
pub const MAX_STAFF_NAME: usize = 64;

/// Who is acting.
///
/// Invariant: a staff name or console username holds only printable ASCII and spaces, at most
/// [`MAX_STAFF_NAME`] characters, so it can be written to logs and the audit as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(Kind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A caller on the Agency or Admin socket: the Unix user the kernel proved, if any, and
    /// the staff name its client passed, which is only as good as that client.
    Staff {
        /// The Unix user, from `SO_PEERCRED`.
        uid: Option<u32>,
        /// The name the client gave.
        name: Option<String>,
    },
    /// A user signed in to the node's own console.
    Console {
        /// The account's username.
        username: String,
    },
    /// A peer team, as its certificate proved.
    Team(TeamIdentity),
    /// The node itself: retention, retraction and the other jobs nobody starts by hand.
    Node,
    /// One of the node's jobs, saying what it was doing (`directory refresh from <team>`).
    NodeJob(String),
}

impl Actor {
    /// A caller on a local socket. A name with anything but printable ASCII and spaces, or
    /// longer than [`MAX_STAFF_NAME`], is dropped rather than recorded.
    pub fn staff(uid: Option<u32>, name: Option<&str>) -> Self {
        let name = name
            .filter(|n| !n.is_empty() && is_plain(n))
            .map(str::to_owned);
        Self(Kind::Staff { uid, name })
    }

    /// A signed-in console user. Usernames are checked when the account is made
    /// (`store::accounts`), so they are plain already; an odd one is still not recorded raw.
    pub fn console(username: &str) -> Self {
        let username = if is_plain(username) {
            username.to_owned()
        } else {
            "(unprintable username)".to_owned()
        };
        Self(Kind::Console { username })
    }

    /// A peer team.
    pub fn team(identity: TeamIdentity) -> Self {
        Self(Kind::Team(identity))
    }

    /// The node's own jobs.
    pub fn node() -> Self {
        Self(Kind::Node)
    }

    /// One of the node's jobs, saying what it does; `what` names teams and jobs, never people.
    pub fn node_job(what: impl Into<String>) -> Self {
        Self(Kind::NodeJob(what.into()))
    }

    /// The console username, when a console user is acting.
    pub fn console_username(&self) -> Option<&str> {
        match &self.0 {
            Kind::Console { username } => Some(username),
            _ => None,
        }
    }
}

fn is_plain(text: &str) -> bool {
    text.len() <= MAX_STAFF_NAME && text.chars().all(|c| c.is_ascii_graphic() || c == ' ')
}

/// The form the audit log and timelines have always recorded: `uid 1000 (j.doe)`,
/// `console alice`, a team's identity URI, or `node`.
impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Staff { uid, name } => {
                match uid {
                    Some(uid) => write!(f, "uid {uid}")?,
                    None => f.write_str("uid ?")?,
                }
                match name {
                    Some(name) => write!(f, " ({name})"),
                    None => Ok(()),
                }
            }
            Kind::Console { username } => write!(f, "console {username}"),
            Kind::Team(identity) => f.write_str(&identity.uri()),
            Kind::Node => f.write_str("node"),
            Kind::NodeJob(what) => write!(f, "node ({what})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_read_as_the_audit_log_has_always_recorded_them() {
        assert_eq!(Actor::staff(Some(0), None).to_string(), "uid 0");
        assert_eq!(
            Actor::staff(Some(1000), Some("j.doe")).to_string(),
            "uid 1000 (j.doe)"
        );
        assert_eq!(Actor::staff(None, Some("")).to_string(), "uid ?");
        assert_eq!(Actor::console("alice").to_string(), "console alice");
        assert_eq!(Actor::node().to_string(), "node");
    }

    #[test]
    fn a_staff_name_that_is_not_plain_text_is_not_recorded() {
        assert_eq!(
            Actor::staff(Some(5), Some("bad\nname")).to_string(),
            "uid 5"
        );
        assert_eq!(
            Actor::staff(Some(5), Some(&"x".repeat(65))).to_string(),
            "uid 5"
        );
        assert_eq!(
            Actor::console("a\u{7}b").to_string(),
            "console (unprintable username)"
        );
    }
}
