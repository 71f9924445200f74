//! Sessions: a random 256-bit id in a `__Host-` cookie (Secure, HttpOnly, SameSite=Strict),
//! kept in the store by its SHA-256 so replicas share it; the idle lock; the CSRF check of
//! every POST; and the headers every response carries (a strict Content-Security-Policy
//! among them).
//!
//! Deny by default: a page behind [`require_unlocked`] is served only to a live, unlocked
//! session of an enabled account, and a POST only with that session's CSRF token, in the
//! `csrf` form field or the `X-CSRF-Token` header htmx sends.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{Console, page};
use crate::staff::StaffRole;
use crate::staff::credentials::constant_time_eq;

/// The session cookie. `__Host-` makes browsers refuse it unless it is Secure, has Path=/
/// and no Domain, so no other host or path can set or shadow it.
pub const COOKIE: &str = "__Host-tatmx-session";
/// The header htmx sends the CSRF token in (set on `<body hx-headers>`).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends this long after sign-in, however active.
pub const MAX_SESSION: Duration = Duration::from_secs(12 * 3600);
/// The largest form body read while checking a CSRF token. Well above any form whose every
/// text is within its limit (`console::form`), so a text pasted over its limit reaches the
/// page, which refuses it beside its field and keeps what was typed; and below the 2 MB the
/// handlers' own extractors take.
pub const MAX_FORM_BYTES: usize = 1024 * 1024;

/// The policy every response carries: nothing but this node's own scripts, styles and
/// images; no inline script or style, no framing, forms posting only here.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The signed-in staff member a request is made for.
#[derive(Debug, Clone)]
pub struct Staff {
    /// The account's username.
    pub username: String,
    /// What the account may do, as it is now.
    pub role: StaffRole,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
    /// The hash of the session id, which is how the store knows the session.
    pub session: String,
    /// The IANA time zone times are shown in (chosen, or the browser's); `None` for UTC.
    pub time_zone: Option<String>,
}

/// A new random session id (256 bits, hex) or CSRF token.
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// How the store knows a session: the SHA-256 of its id, so the database alone is not enough
/// to act as anyone.
pub fn hash_id(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The `Set-Cookie` value that opens a session.
pub fn set_cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| clear_cookie())
}

/// The `Set-Cookie` value that ends one.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-tatmx-session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
    )
}

/// The session id the browser sent, if any.
pub fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && value.len() == 64)
        .map(|(_, value)| value.to_owned())
}

/// Whether the request came from htmx (which follows `HX-Redirect` instead of a 303).
fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// Sends the browser to `to`: a 303, or for htmx an `HX-Redirect`.
pub fn redirect(headers: &HeaderMap, to: &str) -> Response {
    if is_htmx(headers) {
        let mut response = StatusCode::OK.into_response();
        if let Ok(value) = HeaderValue::from_str(to) {
            response.headers_mut().insert("hx-redirect", value);
        }
        response
    } else {
        axum::response::Redirect::to(to).into_response()
    }
}

/// How a route takes a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// An unlocked session; a request counts as activity and keeps it open.
    Active,
    /// An unlocked session, but the request is the page polling by itself (the notification
    /// count), not the person: it must not keep an idle session open, or a screen left
    /// alone would never lock. A locked or ended session is answered 401, with `HX-Redirect`
    /// to the lock screen or the sign-in page, which htmx follows; the page is not broken.
    Passive,
    /// Any session, locked or not: the lock screen and sign-out.
    Any,
}

/// Serves only unlocked sessions; an idle one is locked and sent to the lock screen.
pub async fn require_unlocked(
    State(console): State<Console>,
    request: Request,
    next: Next,
) -> Response {
    guard(console, request, next, Guard::Active).await
}

/// Serves only unlocked sessions, without counting the request as activity (see
/// [`Guard::Passive`]).
pub async fn require_unlocked_passive(
    State(console): State<Console>,
    request: Request,
    next: Next,
) -> Response {
    guard(console, request, next, Guard::Passive).await
}

/// Serves locked sessions too: the lock screen and sign-out.
pub async fn require_any(State(console): State<Console>, request: Request, next: Next) -> Response {
    guard(console, request, next, Guard::Any).await
}

/// Where a request without a usable session is sent; a passive request is told 401 as well,
/// so that a script polling by itself can tell.
fn turn_away(headers: &HeaderMap, to: &str, mode: Guard) -> Response {
    let mut response = redirect(headers, to);
    if mode == Guard::Passive {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().remove(header::LOCATION);
        if let Ok(value) = HeaderValue::from_str(to) {
            response.headers_mut().insert("hx-redirect", value);
        }
    }
    response
}

async fn guard(console: Console, request: Request, next: Next, mode: Guard) -> Response {
    let headers = request.headers().clone();
    let Some(id) = cookie_id(&headers) else {
        return turn_away(&headers, "/sign-in", mode);
    };
    let id_hash = hash_id(&id);
    let session = match console.store().console_session(&id_hash).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            let mut response = turn_away(&headers, "/sign-in", mode);
            response
                .headers_mut()
                .insert(header::SET_COOKIE, clear_cookie());
            return response;
        }
        Err(e) => return page::store_failure(&e),
    };
    let now = console.now();
    let max = time::Duration::try_from(MAX_SESSION).unwrap_or(time::Duration::MAX);
    if now - session.created_at > max {
        if let Err(e) = console.store().end_session(&id_hash).await {
            return page::store_failure(&e);
        }
        let mut response = turn_away(&headers, "/sign-in", mode);
        response
            .headers_mut()
            .insert(header::SET_COOKIE, clear_cookie());
        return response;
    }
    let idle = now - session.last_seen;
    let idle_lock =
        time::Duration::try_from(console.settings().idle_lock).unwrap_or(time::Duration::MAX);
    let locked = session.locked || idle > idle_lock;
    if locked && !session.locked {
        if let Err(e) = console.store().lock_session(&id_hash).await {
            return page::store_failure(&e);
        }
        tracing::info!(role = %session.role, "console session locked after idling");
    }
    if locked && mode != Guard::Any {
        return turn_away(&headers, "/unlock", mode);
    }
    let zone = session
        .time_zone
        .as_deref()
        .and_then(page::zone_named)
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let staff = Staff {
        username: session.username,
        role: session.role,
        csrf: session.csrf,
        session: id_hash.clone(),
        time_zone: session.time_zone,
    };
    let request = if request.method() == Method::POST {
        match check_csrf(request, &console, &staff).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    } else {
        request
    };
    // Activity keeps the session open. Written at most every tenth of the idle limit (and at
    // least every 30 s), so that reading pages does not mean a commit per request. A passive
    // request (the page polling by itself) is not activity.
    let refresh = std::cmp::min(idle_lock / 10_i32, time::Duration::seconds(30));
    if !locked
        && mode != Guard::Passive
        && idle > refresh
        && let Err(e) = console.store().touch_session(&id_hash).await
    {
        return page::store_failure(&e);
    }
    let mut request = request;
    request.extensions_mut().insert(staff);
    page::in_zone(zone, next.run(request)).await
}

/// Checks a POST's CSRF token, from the header or the `csrf` form field, and hands the
/// request on with its body intact.
async fn check_csrf(
    request: Request,
    console: &Console,
    staff: &Staff,
) -> Result<Request, Response> {
    let expected = staff.csrf.as_str();
    let refused = || {
        page::plain(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this console. Go back, reload the page, and try again.",
        )
    };
    if let Some(token) = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
            Ok(request)
        } else {
            Err(refused())
        };
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            // Past this size nothing of it is read, so nothing of it can be shown again; the
            // browser still holds it on the page before.
            page::error_page(
                console,
                staff,
                StatusCode::PAYLOAD_TOO_LARGE,
                "This form is too large to send, so nothing was saved or sent. Go back: your browser still has what you typed. Shorten the longest text (each field shows its limit) and try again.",
            )
        })?;
    let token = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        return Err(refused());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Adds the security headers to every response, and refuses a POST another site's page sent
/// (by `Origin` or `Sec-Fetch-Site`), sign-in included, before any handler runs.
pub async fn secure_headers(request: Request, next: Next) -> Response {
    if request.method() == Method::POST && !same_origin(request.headers()) {
        let mut response = page::plain(
            StatusCode::FORBIDDEN,
            "This form was sent from another site, so it was refused. Open the console's own page and try again.",
        );
        add_headers(response.headers_mut());
        return response;
    }
    let mut response = next.run(request).await;
    add_headers(response.headers_mut());
    response
}

fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin == format!("https://{host}"),
        // A browser always sends Origin with a POST; other clients (and tests) carry the
        // CSRF token check alone.
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn add_headers(headers: &mut HeaderMap) {
    let mut set = |name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set("content-security-policy", CSP);
    // The console is served only over HTTPS; a browser that has seen it never tries plain
    // HTTP for it again, for a year.
    set("strict-transport-security", "max-age=31536000");
    set("x-content-type-options", "nosniff");
    set("x-frame-options", "DENY");
    // Not no-referrer: under it browsers send `Origin: null` with a form POST, and the origin
    // check above would refuse the console's own forms. Same-origin sends nothing elsewhere.
    set("referrer-policy", "same-origin");
    set("cross-origin-opener-policy", "same-origin");
    set(
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages carry case data: never kept in a cache or the back-forward history.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_session_cookie_of_the_right_shape_is_read() {
        let id = new_secret();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={id}")).unwrap(),
        );
        assert_eq!(cookie_id(&headers), Some(id));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-tatmx-session=short"),
        );
        assert_eq!(cookie_id(&headers), None);
        let set = set_cookie(&new_secret());
        let set = set.to_str().unwrap();
        for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attribute), "{set}");
        }
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("localhost:8443"));
        headers.insert("origin", HeaderValue::from_static("https://localhost:8443"));
        assert!(same_origin(&headers));
        headers.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&headers));
        headers.insert("origin", HeaderValue::from_static("https://localhost:8443"));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers));
    }
}
