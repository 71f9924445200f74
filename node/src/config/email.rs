//! The `[email]` section: the agency's SMTP relay, through which the node emails staff about
//! what is new (see [`crate::notify`]). Off unless the section is present.
//!
//! ```toml
//! [email]
//! relay = "smtp.agency.example"
//! port = 587                      # default: 587 for starttls, 465 for tls, 25 for none
//! tls = "starttls"                # none, starttls (default) or tls
//! username = "tatmx"              # optional; with password_file
//! password_file = "smtp.password" # relative to the config file
//! ca = "relay-ca.pem"             # optional: a private CA the relay's certificate is from
//! from = "tatmx@agency.example"
//! console_url = "https://tatmx.agency.example:8443"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Problems, parse_duration};
use crate::notification::plausible_email;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTls {
    /// Plain SMTP: only for a relay on this host or a network the agency trusts.
    None,
    /// Plain SMTP upgraded with STARTTLS, which the relay must offer (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl MailTls {
    /// The port a relay listens on for this mode, unless the config says otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::StartTls => 587,
            Self::Tls => 465,
        }
    }
}

/// The relay and what the emails say about where they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// The relay's host name (checked against its certificate) or address.
    pub relay: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub tls: MailTls,
    /// A username, and the file its password is read from at start-up (so the secret need
    /// not sit in the config file).
    pub credentials: Option<(String, PathBuf)>,
    /// A CA certificate (PEM) to trust for the relay besides the public roots.
    pub ca: Option<PathBuf>,
    /// The sender address.
    pub from: String,
    /// The console's address as staff reach it, without a trailing slash: the links in emails
    /// start with it.
    pub console_url: String,
    /// How often the mail job looks for something to send; a failed mail is retried later.
    pub interval: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    relay: String,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    ca: Option<PathBuf>,
    from: String,
    console_url: String,
    interval: Option<String>,
}

impl Problems {
    /// The `[email]` section; relative paths are taken from `base`.
    pub(super) fn email(&mut self, raw: &RawEmail, base: &Path) -> Option<EmailSettings> {
        let relay = raw.relay.trim();
        if relay.is_empty() || relay.contains(char::is_whitespace) || relay.contains('/') {
            self.push(
                "email.relay",
                "expected a host name or address, such as smtp.agency.example",
            );
        }
        let tls = match raw.tls.as_deref().unwrap_or("starttls") {
            "none" => Some(MailTls::None),
            "starttls" => Some(MailTls::StartTls),
            "tls" => Some(MailTls::Tls),
            _ => {
                self.push("email.tls", "expected none, starttls or tls");
                None
            }
        };
        let credentials = match (&raw.username, &raw.password_file) {
            (Some(user), Some(file)) => Some((user.clone(), base.join(file))),
            (None, None) => None,
            _ => {
                self.push("email", "set both username and password_file, or neither");
                None
            }
        };
        if !plausible_email(raw.from.trim()) {
            self.push(
                "email.from",
                "expected an address, such as tatmx@agency.example",
            );
        }
        let console_url = raw.console_url.trim().trim_end_matches('/');
        let after_scheme = console_url.strip_prefix("https://");
        if after_scheme.is_none_or(|rest| rest.is_empty() || rest.contains(char::is_whitespace)) {
            self.push(
                "email.console_url",
                "expected the console's https:// address, such as https://tatmx.agency.example:8443",
            );
        }
        let interval = self.parse(
            "email.interval",
            raw.interval.as_deref().unwrap_or("10s"),
            parse_duration,
        );
        let tls = tls?;
        Some(EmailSettings {
            relay: relay.to_owned(),
            port: raw.port.unwrap_or(tls.default_port()),
            tls,
            credentials,
            ca: raw.ca.as_ref().map(|ca| base.join(ca)),
            from: raw.from.trim().to_owned(),
            console_url: console_url.to_owned(),
            interval: interval?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::VALID;
    use super::super::{Config, ParseFailure};
    use super::*;

    #[test]
    fn email_is_off_unless_configured_and_defaults_to_starttls() {
        let config = Config::from_toml(VALID, Path::new("/etc/tatmx")).unwrap();
        assert_eq!(config.email, None);
        let text = format!(
            "{VALID}\n[email]\nrelay = \"smtp.agency.example\"\nfrom = \"tatmx@agency.example\"\n\
             console_url = \"https://tatmx.agency.example:8443/\"\n\
             username = \"tatmx\"\npassword_file = \"smtp.password\"\n"
        );
        let email = Config::from_toml(&text, Path::new("/etc/tatmx"))
            .unwrap()
            .email
            .unwrap();
        assert_eq!(email.tls, MailTls::StartTls);
        assert_eq!(email.port, 587);
        assert_eq!(email.console_url, "https://tatmx.agency.example:8443");
        assert_eq!(
            email.credentials,
            Some(("tatmx".into(), PathBuf::from("/etc/tatmx/smtp.password")))
        );
    }

    #[test]
    fn every_invalid_email_key_is_named() {
        let text = format!(
            "{VALID}\n[email]\nrelay = \"smtp agency\"\ntls = \"maybe\"\nfrom = \"nobody\"\n\
             console_url = \"http://tatmx\"\nusername = \"tatmx\"\n"
        );
        let Err(ParseFailure::Invalid(problems)) = Config::from_toml(&text, Path::new(".")) else {
            panic!("expected invalid values");
        };
        let joined = problems.join("\n");
        for key in [
            "email.relay",
            "email.tls",
            "email: set both",
            "email.from",
            "email.console_url",
        ] {
            assert!(joined.contains(key), "{key} missing from {joined}");
        }
    }
}
