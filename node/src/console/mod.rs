//! The staff console: the node's own web pages for school counsellors, clinicians, detectives
//! and MDT chairs, who will not write TOML files.
//!
//! It is an adapter over the node's application layer ([`crate::app`]), not a second
//! implementation: every page turns its form into domain values, calls one use case of the
//! same [`App`] the Agency API adapts, as the signed-in user (a console
//! [`crate::actor::Actor`]), and renders the domain answer; so the filter, the lifecycle and
//! the audit apply exactly as they do to the CLI. No protobuf type reaches it. Staff sign in with a password (argon2id) and a TOTP
//! code; each role sees only its pages, and the server refuses anything else whatever the
//! browser sends. Pages are rendered on the server with maud; htmx (served by the node, no
//! CDN) does the few live parts, such as the disclosure preview beside a new referral.
//!
//! # Layout
//! - [`listener`]: HTTPS (TLS 1.3 from the node's own stack) and the connection loop.
//! - [`session`]: cookies, sessions in the store, the idle lock, CSRF, security headers.
//! - [`signin`]: sign-in, the lock screen, sign-out, and the per-address limit.
//! - [`account`]: the signed-in user's own account: changing their password.
//! - [`settings`]: the signed-in user's own settings: emails about what is new, time zone.
//! - [`notifications`]: what is new, listed, and counted in every page's header.
//! - [`accounts`]: the admin's page of the team's console accounts.
//! - [`page`]: the layout every page shares, and how refusals read (the one mapping from
//!   [`crate::app::AppError`] to a response).
//! - [`words`]: the vocabulary: every code the node uses, in the words staff use.
//! - [`referral`]: what a referral or case message carries, in words, and the filter's
//!   decisions, as every page shows them.
//! - [`cases`]: "My cases", the start page of case workers and chairs, with a case's print
//!   view and the team's own references.
//! - [`case`]: one case as a conversation; [`case_actions`]: the actions open on it now, each
//!   with its preview and its "Check and send" step; [`once`]: a form sent twice acts once.
//! - [`form`]: fields, limits and problems beside their fields; [`disclosure`]: what will
//!   reach the other team, and why, in words.
//! - [`compose`], [`consultations`], [`consents`], [`outbox`], [`audit`], [`trust`]: the
//!   other pages.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::ConsoleSettings;
use crate::store::Store;
use crate::trust::Trust;

mod account;
mod accounts;
mod audit;
mod case;
mod case_actions;
mod cases;
mod compose;
mod consents;
mod consultations;
mod disclosure;
mod form;
mod listener;
mod notifications;
mod once;
mod outbox;
mod page;
mod referral;
mod session;
mod settings;
mod signin;
mod trust;
// The email job (crate::notify) says what a notification reports in the same words as the
// console's list, so one event reads the same in both.
pub(crate) mod words;

pub use session::CSP as CSP_HEADER;

/// The console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The configured web certificate or key could not be used.
    #[error("console certificate {path}: {problem}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the configuration.
    #[error("console TLS: {0}")]
    Tls(String),
    /// The address could not be bound.
    #[error("the console cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The node's services the console works through.
#[derive(Debug, Clone)]
pub struct Services {
    /// Accounts, sessions and sign-in audit entries.
    pub store: Store,
    /// This node's team, its peers, and its certificate.
    pub trust: Trust,
    /// Referrals, inbox, outbox, consents, consultations and the audit: the same use cases
    /// the Agency and Admin APIs adapt.
    pub app: App,
    /// Whether the node emails notifications (an `[email]` relay is configured), so the
    /// settings page can say so.
    pub email: bool,
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub(crate) struct Console {
    /// The shared state.
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The node's services.
    services: Services,
    /// The `[console]` settings.
    settings: ConsoleSettings,
    /// Failed sign-ins by source address.
    limiter: signin::SourceLimiter,
    /// The action forms being acted on, so one sent twice acts once.
    once: once::Once,
}

impl Console {
    fn store(&self) -> &Store {
        &self.inner.services.store
    }

    fn app(&self) -> &App {
        &self.inner.services.app
    }

    fn trust(&self) -> &Trust {
        &self.inner.services.trust
    }

    fn once(&self) -> &once::Once {
        &self.inner.once
    }

    /// Now, by the node's clock: sessions lock, sign-ins lock out and codes step by it.
    fn now(&self) -> OffsetDateTime {
        self.store().clock().now()
    }

    /// Whether the node emails notifications.
    fn email_enabled(&self) -> bool {
        self.inner.services.email
    }

    fn settings(&self) -> &ConsoleSettings {
        &self.inner.settings
    }

    /// This team's id, for page titles.
    fn team(&self) -> String {
        self.trust().state().local.identity.team.to_string()
    }
}

/// Binds the console's address and starts serving it until `shutdown`; returns the bound
/// address and the server task. Once `shutdown` fires, requests in flight get `grace` to
/// finish.
pub async fn start(
    settings: ConsoleSettings,
    services: Services,
    shutdown: CancellationToken,
    grace: std::time::Duration,
) -> Result<(SocketAddr, JoinHandle<()>), ConsoleError> {
    let tls = listener::server_config(&services.trust, settings.certificate.as_ref())?;
    let tcp = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ConsoleError::Bind {
            addr: settings.listen,
            source,
        })?;
    let addr = tcp.local_addr().map_err(|source| ConsoleError::Bind {
        addr: settings.listen,
        source,
    })?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the console is reachable beyond this host; keep it behind the agency's firewall");
    }
    let console = Console {
        inner: Arc::new(Inner {
            services,
            settings,
            limiter: signin::SourceLimiter::default(),
            once: once::Once::default(),
        }),
    };
    let app = router(console);
    let task = tokio::spawn(listener::serve(tcp, tls, app, shutdown, grace));
    tracing::info!(%addr, "console serving");
    Ok((addr, task))
}

/// Every route. Pages behind a session go through [`session::require`], which also checks
/// the CSRF token of every POST; the lock screen and sign-out accept a locked session.
fn router(console: Console) -> Router {
    let pages = Router::new()
        .route("/", get(home))
        .route("/inbox", get(cases::inbox))
        .route(cases::CASES, get(cases::page).post(cases::search))
        .route(
            "/cases/{id}/references",
            get(cases::references_page).post(cases::set_references),
        )
        .route("/cases/{id}/print", get(cases::print))
        .route("/referrals/new", get(compose::page))
        .route("/referrals/preview", post(compose::preview))
        .route("/referrals", post(compose::submit))
        .route("/referrals/{id}", get(case::page))
        .route("/cases/{id}", get(case::page))
        .route("/referrals/{id}/status", post(case_actions::change_status))
        .route("/referrals/{id}/{action}", post(case_actions::act))
        .route(
            "/referrals/{id}/preview/{action}",
            post(case_actions::preview),
        )
        .route("/consultations", get(consultations::page))
        .route("/consents", get(consents::page).post(consents::record))
        .route("/consents/warning", post(consents::live_warning))
        .route("/consents/{id}", get(consents::show))
        .route(
            "/consents/{id}/form",
            get(consents::download)
                .post(consents::attach)
                // The signed form may be up to 10 MiB; multipart framing adds a little.
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::app::consents::MAX_CONSENT_FORM_BYTES + 64 * 1024,
                )),
        )
        .route("/consents/{id}/revoke", post(consents::revoke))
        .route("/outbox", get(outbox::page))
        .route("/outbox/{id}/retry", post(outbox::retry))
        .route("/audit", get(audit::page))
        .route("/audit/entries.csv", get(audit::entries_csv))
        .route("/audit/disclosures", post(audit::disclosures))
        .route("/audit/disclosures.csv", post(audit::disclosures_csv))
        .route("/trust", get(trust::page))
        .route(accounts::ACCOUNTS, get(accounts::page))
        .route("/accounts/add", post(accounts::add))
        .route("/accounts/disable", post(accounts::disable))
        .route("/accounts/unlock", post(accounts::unlock))
        .route("/accounts/reset", post(accounts::reset))
        .route("/accounts/authenticator", post(accounts::authenticator))
        .route(
            account::PASSWORD_PAGE,
            get(account::password_page).post(account::change_password),
        )
        .route(
            settings::SETTINGS_PAGE,
            get(settings::page).post(settings::save),
        )
        .route(notifications::NOTIFICATIONS_PAGE, get(notifications::page))
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            session::require_unlocked,
        ));
    // Asked for by the page itself, not the person: it must not keep an idle session open.
    let polled = Router::new()
        .route(notifications::NOTIFICATION_COUNT, get(notifications::count))
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            session::require_unlocked_passive,
        ));
    let locked = Router::new()
        .route("/unlock", get(signin::unlock_page).post(signin::unlock))
        .route("/sign-out", post(signin::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            session::require_any,
        ));
    Router::new()
        .route("/sign-in", get(signin::page).post(signin::submit))
        .route("/assets/htmx.min.js", get(page::htmx))
        .route("/assets/console.css", get(page::stylesheet))
        .route("/assets/limits.js", get(page::limits))
        .route("/assets/zone.js", get(page::zone_script))
        // Browsers ask for it unbidden; answered empty rather than with a 404 in their console.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .merge(pages)
        .merge(polled)
        .merge(locked)
        .fallback(page::not_found)
        .layer(axum::middleware::from_fn(session::secure_headers))
        .with_state(console)
}

/// `/`: the signed-in user's own start page.
async fn home(axum::Extension(staff): axum::Extension<session::Staff>) -> axum::response::Redirect {
    axum::response::Redirect::to(staff.role.home())
}
