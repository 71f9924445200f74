//! One email about one notification, and the SMTP relay it goes through (lettre, over the
//! node's rustls with aws-lc-rs).
//!
//! An email says only which team, what kind of event, and a link to the case at the console:
//! it is made from the notification alone, which holds no personal data, so no name, narrative,
//! case number or reference can reach it. The recipient's address is used for the envelope and
//! the `To` header, and never logged.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{EmailSettings, MailTls};
use crate::console::words;
use crate::notification::Notification;

/// How long one conversation with the relay may take.
const RELAY_TIMEOUT: Duration = Duration::from_secs(30);

/// The relay could not be set up, or a mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A file the `[email]` section names could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The relay's CA certificate or the TLS settings were refused.
    #[error("email relay TLS: {0}")]
    Tls(String),
    /// The sender address was refused.
    #[error("email.from is not a usable address")]
    From,
    /// The recipient's address cannot be used (it is not named here: it is personal data).
    #[error("the recipient's address is not usable")]
    Recipient,
    /// The message could not be built.
    #[error("the email could not be built: {0}")]
    Build(String),
    /// The relay refused the mail for good (a 5xx answer). Only the reply code is kept: a
    /// relay's words may repeat the recipient's address.
    #[error("the relay refused the mail ({0})")]
    Refused(String),
    /// The relay could not be reached, or answered "try later" (a 4xx answer); the reply code,
    /// when there was one.
    #[error("the relay did not take the mail ({0})")]
    Unavailable(String),
}

impl MailError {
    /// Whether trying again later cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Recipient | Self::Build(_) | Self::Refused(_))
    }
}

/// What an email about `notification` says: its subject and its text.
pub fn compose(notification: &Notification, console_url: &str) -> (String, String) {
    let what = words::notification(notification.event, &notification.team);
    let subject = format!("tatmx: {what}");
    let text = format!(
        "{what}, on a case your team holds.\r\n\
         \r\n\
         Open the case: {console_url}/referrals/{}\r\n\
         \r\n\
         This email names only the other team and what kind of thing happened. Sign in to the \
         console to read the case.\r\n\
         To choose which emails you get, open your settings: {console_url}/account/settings\r\n",
        notification.referral_id
    );
    (subject, text)
}

/// The agency's SMTP relay.
pub struct Relay {
    /// The connection to it, made per mail.
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// The sender.
    from: Mailbox,
    /// The console's address, for links.
    console_url: String,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

impl Relay {
    /// The relay the settings name; reads the password and CA files now, so a missing one
    /// stops the node at start-up rather than every mail later.
    pub fn new(settings: &EmailSettings) -> Result<Self, MailError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| MailError::File {
                path: path.to_owned(),
                source,
            })
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.relay)
            .port(settings.port)
            .timeout(Some(RELAY_TIMEOUT));
        if settings.tls != MailTls::None {
            let mut parameters = TlsParameters::builder(settings.relay.clone());
            if let Some(ca) = &settings.ca {
                let pem = read(ca)?;
                let certificate =
                    Certificate::from_pem(&pem).map_err(|e| MailError::Tls(e.to_string()))?;
                parameters = parameters.add_root_certificate(certificate);
            }
            let parameters = parameters
                .build_rustls()
                .map_err(|e| MailError::Tls(e.to_string()))?;
            builder = builder.tls(match settings.tls {
                MailTls::Tls => Tls::Wrapper(parameters),
                _ => Tls::Required(parameters),
            });
        } else {
            builder = builder.tls(Tls::None);
        }
        if let Some((username, file)) = &settings.credentials {
            let password = String::from_utf8_lossy(&read(file)?).trim().to_owned();
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        let from = settings.from.parse().map_err(|_| MailError::From)?;
        Ok(Self {
            transport: builder.build(),
            from,
            console_url: settings.console_url.clone(),
        })
    }

    /// Sends one email about `notification` to `address`.
    pub async fn send(&self, notification: &Notification, address: &str) -> Result<(), MailError> {
        let to: Mailbox = address.parse().map_err(|_| MailError::Recipient)?;
        let (subject, text) = compose(notification, &self.console_url);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| MailError::Build(e.to_string()))?;
        let reply = |e: &lettre::transport::smtp::Error| {
            e.status()
                .map_or_else(|| "no reply".to_owned(), |code| format!("reply {code}"))
        };
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Refused(reply(&e))),
            Err(e) if e.is_timeout() => Err(MailError::Unavailable("timed out".into())),
            Err(e) => Err(MailError::Unavailable(reply(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::Event;
    use crate::referral::ReferralStatus;

    #[test]
    fn an_email_names_the_team_the_event_and_the_link_only() {
        let notification = Notification {
            seq: 7,
            event: Event::Status(ReferralStatus::InfoRequested),
            referral_id: uuid::Uuid::nil(),
            team: "spiffe://county-mdt.example/team/county-core".into(),
            at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let (subject, text) = compose(&notification, "https://tatmx.example:8443");
        assert_eq!(subject, "tatmx: County Core asked for more information");
        assert!(text.contains(
            "Open the case: https://tatmx.example:8443/referrals/00000000-0000-0000-0000-000000000000"
        ));
        assert!(!text.contains("spiffe://"));
    }
}
