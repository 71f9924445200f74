//! The staff console end to end: real nodes, the console over real HTTPS (TLS 1.3, a web
//! certificate from the test CA for `localhost`), a client that behaves as a browser does with
//! cookies and forms, and TOTP codes computed as an authenticator app would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tatmx_node::clock::Clock;
use tatmx_proto::v1 as pb;
use tatmx_tests::{TeamSpec, TestFederation, console_section, web_certificate};
use totp_rs::{Algorithm, Secret, TOTP};

/// A console account's credentials, as `tatmx user add` prints them, and the TOTP time steps
/// the test has spent with them.
///
/// The node takes a code for the step just before, at or just after its own
/// (`credentials::check_code`), and only for a step later than the last one the account spent
/// (`store::accounts`). So every code this harness offers is for a step at or after the
/// current one, never the one before: whichever step boundary passes between making the code
/// and the node checking it, the code is still within the node's window. That leaves two codes
/// per step; a third waits for the next step, the only time a test waits on the clock.
pub(crate) struct Login {
    pub(crate) username: String,
    pub(crate) password: String,
    secret: Vec<u8>,
    /// The last step whose code this test spent or will spend (0: none yet).
    spent: std::sync::atomic::AtomicU64,
    /// The clock the authenticator app reads: the node's, so both count the same steps.
    clock: Clock,
}

/// Seconds per TOTP step, as the node and authenticator apps count them (RFC 6238's default).
const STEP: u64 = 30;

impl Login {
    pub(crate) fn new(username: &str, password: String, secret: Vec<u8>) -> Self {
        Self {
            username: username.into(),
            password,
            secret,
            spent: Default::default(),
            clock: Clock::system(),
        }
    }

    /// This login, with an authenticator app that reads `clock` (a node's on tokio time).
    pub(crate) fn reading(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// The same account and secret, with another password (after a change): the steps spent
    /// stay spent.
    fn with_password(&self, password: &str) -> Self {
        Self {
            username: self.username.clone(),
            password: password.into(),
            secret: self.secret.clone(),
            spent: self.spent.load(Relaxed).into(),
            clock: self.clock,
        }
    }

    /// The code an authenticator app shows for time step `step`.
    fn code_at(&self, step: u64) -> String {
        TOTP::new(
            Algorithm::SHA1,
            6,
            1,
            STEP,
            self.secret.clone(),
            None,
            "t".into(),
        )
        .expect("totp")
        .generate(step * STEP)
    }

    /// The earliest step later than the last spent one whose code the node takes however the
    /// clock moves on meanwhile: the current step or the next; waits for the next step when
    /// both are spent.
    async fn next_step(&self) -> u64 {
        loop {
            let now = self.clock.now() - time::OffsetDateTime::UNIX_EPOCH;
            let now = Duration::try_from(now).expect("a time after 1970");
            let current = now.as_secs() / STEP;
            let step = (self.spent.load(Relaxed) + 1).max(current);
            if step <= current + 1 {
                return step;
            }
            let next = Duration::from_secs((current + 1) * STEP);
            tokio::time::sleep(next.saturating_sub(now) + Duration::from_millis(20)).await;
        }
    }

    /// A code for the next step, counted as spent: for a sign-in, unlock or password change
    /// that is to succeed (or to be refused for a reason that does not spend it, when the same
    /// code is then used again).
    pub(crate) async fn fresh_code(&self) -> String {
        let step = self.next_step().await;
        self.spent.store(step, Relaxed);
        self.code_at(step)
    }

    /// A code the node would take now, not counted as spent: for an attempt refused for
    /// another reason (a wrong password), so the refusal is not the code's.
    pub(crate) async fn unspent_code(&self) -> String {
        let step = self.next_step().await;
        self.code_at(step)
    }

    /// The code of the last step spent: one the node has seen.
    fn spent_code(&self) -> String {
        self.code_at(self.spent.load(Relaxed))
    }
}

/// A response, read whole.
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: String,
    /// The body as it came, for downloads.
    pub(crate) bytes: Vec<u8>,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The page's CSRF token, from its hidden form field.
    pub(crate) fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("a form with a CSRF field") + marker.len();
        self.body[start..]
            .split('"')
            .next()
            .unwrap_or("")
            .to_owned()
    }
}

/// A browser, as far as these tests need one: one cookie jar, TLS that trusts the test CA
/// and checks the name `localhost`.
pub(crate) struct Browser {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    cookie: Option<String>,
}

pub(crate) fn encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Browser {
    fn new(addr: SocketAddr, ca: &std::path::Path) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca).expect("ca.pem");
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.expect("ca cert")).expect("root");
        }
        use rustls_pki_types::pem::PemObject;
        let mut tls = rustls::ClientConfig::builder_with_provider(tatmx_node::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            addr,
            tls: Arc::new(tls),
            cookie: None,
        }
    }

    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<String>,
        extra: &[(&str, &str)],
    ) -> Page {
        self.send_bytes(method, path, body.map(String::into_bytes), extra)
            .await
    }

    /// Sends raw bytes; a `content-type` in `extra` replaces the form's (for a multipart
    /// upload).
    pub(crate) async fn send_bytes(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        extra: &[(&str, &str)],
    ) -> Page {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .expect("TLS handshake with the console");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("http handshake");
        tokio::spawn(connection);
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("localhost:{}", self.addr.port()));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("__Host-tatmx-session={cookie}"));
        }
        if body.is_some() && !extra.iter().any(|(name, _)| *name == "content-type") {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        // As a browser does with every POST, unless the test plays another site.
        if method == "POST" && !extra.iter().any(|(name, _)| *name == "origin") {
            request = request.header("origin", format!("https://localhost:{}", self.addr.port()));
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for value in headers.get_all("set-cookie") {
            let text = value.to_str().unwrap_or("");
            if let Some(rest) = text.strip_prefix("__Host-tatmx-session=") {
                let value = rest.split(';').next().unwrap_or("");
                self.cookie = (!value.is_empty()).then(|| value.to_owned());
            }
        }
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            bytes: body.to_vec(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, None, &[]).await
    }

    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send("POST", path, Some(encode(fields)), &[]).await
    }

    /// Posts a form with the CSRF token of the page at `form_page`.
    pub(crate) async fn submit(
        &mut self,
        form_page: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let csrf = self.get(form_page).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }

    /// Signs in with a fresh code.
    pub(crate) async fn sign_in(&mut self, login: &Login) -> Page {
        let code = login.fresh_code().await;
        self.sign_in_with(login, &code).await
    }

    /// Signs in with `code`.
    pub(crate) async fn sign_in_with(&mut self, login: &Login, code: &str) -> Page {
        self.post(
            "/sign-in",
            &[
                ("username", &login.username),
                ("password", &login.password),
                ("code", code),
            ],
        )
        .await
    }
}

/// A county core team and a school, both with their consoles on.
pub(crate) fn federation(idle_lock: &str) -> (TestFederation, TeamSpec, TeamSpec) {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    for team in [&core, &school] {
        web_certificate(&fed, team);
    }
    fed.write_config(&core, &[&school], &console_section(idle_lock));
    fed.write_config(&school, &[&core], &console_section(idle_lock));
    (fed, core, school)
}

pub(crate) async fn add_user(team: &TeamSpec, username: &str, role: &str) -> Login {
    let issued = tatmx_tests::admin(team)
        .await
        .add_user(pb::AddUserRequest {
            username: username.into(),
            role: role.into(),
        })
        .await
        .expect("account added")
        .into_inner();
    assert!(
        issued.totp_uri.starts_with("otpauth://totp/"),
        "{}",
        issued.totp_uri
    );
    Login::new(
        username,
        issued.password,
        Secret::Encoded(issued.totp_secret)
            .to_bytes()
            .expect("base32 secret"),
    )
}

pub(crate) fn browser(node: &tatmx_node::RunningNode, fed: &TestFederation) -> Browser {
    Browser::new(node.console_addr().expect("console on"), &fed.ca_path)
}

/// Changes the signed-in user's password on the console's page, with its CSRF token.
async fn change_password(
    web: &mut Browser,
    current: &str,
    new: &str,
    again: &str,
    code: &str,
) -> Page {
    web.submit(
        "/account/password",
        "/account/password",
        &[
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", again),
            ("code", code),
        ],
    )
    .await
}

/// The account's consecutive failed sign-ins, as `tatmx user list` shows them.
pub(crate) async fn failed_logins(team: &TeamSpec, username: &str) -> u32 {
    tatmx_tests::admin(team)
        .await
        .list_users(pb::ListUsersRequest {})
        .await
        .expect("list users")
        .into_inner()
        .users
        .into_iter()
        .find(|u| u.username == username)
        .expect("the account")
        .failed_logins
}

/// The `account-change` entries that record a holder changing their own password.
async fn password_changes(team: &TeamSpec) -> Vec<pb::AuditEntry> {
    tatmx_tests::audit_entries(team, "account-change")
        .await
        .into_iter()
        .filter(|e| e.detail_json.contains("password changed by its holder"))
        .collect()
}

#[tokio::test]
async fn sign_in_takes_password_and_code_and_five_failures_lock_the_account_audited() {
    let (fed, _core, school) = federation("30m");
    let node = tatmx_tests::start(&school).await;
    let alice = add_user(&school, "alice", "case-worker").await;
    let mut web = browser(&node, &fed);

    let page = web.get("/sign-in").await;
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert_eq!(csp, tatmx_node::console::CSP_HEADER);
    assert_eq!(
        page.headers["strict-transport-security"].to_str().unwrap(),
        "max-age=31536000"
    );
    assert!(page.body.contains(r#"<label for="code">"#), "{}", page.body);
    assert_eq!(web.get("/assets/htmx.min.js").await.status, 200);
    // Not signed in: every page sends the browser to sign in.
    assert_eq!(web.get("/cases").await.location(), "/sign-in");

    // The right password with a wrong code is refused, and so is the reverse.
    let wrong_code = web
        .post(
            "/sign-in",
            &[
                ("username", "alice"),
                ("password", &alice.password),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong_code.status, 401);
    let code = alice.unspent_code().await;
    for attempt in 2..=5 {
        let page = web
            .post(
                "/sign-in",
                &[
                    ("username", "alice"),
                    ("password", "guess-CANARY-PW"),
                    ("code", &code),
                ],
            )
            .await;
        if attempt < 5 {
            assert_eq!(page.status, 401, "attempt {attempt}");
        } else {
            assert_eq!(page.status, 403, "the fifth failure locks: {}", page.body);
            assert!(page.body.contains("locked"), "{}", page.body);
        }
    }
    // Locked: even the right password and code are refused now.
    let page = web.sign_in_with(&alice, &alice.unspent_code().await).await;
    assert_eq!(page.status, 403);
    assert!(web.cookie.is_none());

    let locked = tatmx_tests::audit_entries(&school, "account-locked").await;
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0].actor, "console alice");
    let failed = tatmx_tests::audit_entries(&school, "sign-in-failed").await;
    assert!(failed.len() >= 6, "{failed:?}");
    let unknown = web
        .post(
            "/sign-in",
            &[
                ("username", "CANARY-TYPED-NAME"),
                ("password", "x"),
                ("code", "123456"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 401);
    let failed = tatmx_tests::audit_entries(&school, "sign-in-failed").await;
    let all = format!("{failed:?}");
    assert!(
        !all.contains("CANARY"),
        "a typed password or unknown name reached the audit: {all}"
    );
    assert!(
        failed
            .iter()
            .any(|e| e.actor == "console (unknown account)")
    );

    // An admin's reset clears the lock; the new credentials sign in, with a proper cookie.
    let issued = tatmx_tests::admin(&school)
        .await
        .reset_user(pb::UserRef {
            username: "alice".into(),
        })
        .await
        .expect("reset")
        .into_inner();
    let alice = Login::new(
        "alice",
        issued.password,
        Secret::Encoded(issued.totp_secret)
            .to_bytes()
            .expect("secret"),
    );
    let used = alice.fresh_code().await;
    let page = web
        .post(
            "/sign-in",
            &[
                ("username", "alice"),
                ("password", &alice.password),
                ("code", &used),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/cases");
    let cookie = page.headers["set-cookie"].to_str().unwrap();
    for attribute in [
        "__Host-tatmx-session=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert_eq!(web.get("/cases").await.status, 200);
    // The same code a second time is refused: a code works once.
    let mut other = browser(&node, &fed);
    let replay = other
        .post(
            "/sign-in",
            &[
                ("username", "alice"),
                ("password", &alice.password),
                ("code", &used),
            ],
        )
        .await;
    assert_ne!(replay.status, 303, "a used code signed in again");
    assert_eq!(
        tatmx_tests::audit_entries(&school, "sign-in").await.len(),
        1
    );

    // Disabling ends the session at once.
    tatmx_tests::admin(&school)
        .await
        .disable_user(pb::UserRef {
            username: "alice".into(),
        })
        .await
        .expect("disable");
    assert_eq!(web.get("/cases").await.location(), "/sign-in");
    let users = tatmx_tests::admin(&school)
        .await
        .list_users(pb::ListUsersRequest {})
        .await
        .expect("list")
        .into_inner()
        .users;
    assert!(users[0].disabled);
    node.shutdown().await;
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_a_case_worker_cannot_accept() {
    let (fed, core, school) = federation("30m");
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let mut client = tatmx_tests::agency(&school).await;
    let id = tatmx_tests::submit(&mut client, tatmx_tests::draft("county-core")).await;
    tatmx_tests::referral_when(&core, &id, "receipt", |r| {
        r.status == pb::ReferralStatus::Received as i32
    })
    .await;

    let worker = add_user(&core, "bob", "case-worker").await;
    let chair = add_user(&core, "carol", "chair").await;
    let mut web = browser(&core_node, &fed);
    assert_eq!(web.sign_in(&worker).await.status, 303);
    let page = web.get(&format!("/referrals/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("CANARY-NARRATIVE-91bc"),
        "the content is shown"
    );
    assert!(
        !page.body.contains("action-accept"),
        "a case worker is offered accept"
    );
    // Forced with a crafted request carrying a valid token: refused on the server.
    let forced = web
        .submit(
            &format!("/referrals/{id}"),
            &format!("/referrals/{id}/status"),
            &[("status", "accepted")],
        )
        .await;
    assert_eq!(forced.status, 403, "{}", forced.body);
    // The read was audited with the user.
    let reads = tatmx_tests::audit_entries(&core, "case-read").await;
    assert!(
        reads
            .iter()
            .any(|e| e.actor == "console bob" && e.referral_id == id),
        "{reads:?}"
    );

    let mut chair_web = browser(&core_node, &fed);
    assert_eq!(chair_web.sign_in(&chair).await.status, 303);
    let page = chair_web.get(&format!("/referrals/{id}")).await;
    assert!(
        page.body.contains("action-accept"),
        "a chair is offered accept"
    );
    // No token: refused with a plain sentence, and nothing changed.
    let no_token = chair_web
        .post(
            &format!("/referrals/{id}/status"),
            &[("status", "accepted")],
        )
        .await;
    assert_eq!(no_token.status, 403);
    assert!(
        no_token.body.contains("did not come from this console"),
        "{}",
        no_token.body
    );
    let wrong_token = chair_web
        .post(
            &format!("/referrals/{id}/status"),
            &[("csrf", "0000"), ("status", "accepted")],
        )
        .await;
    assert_eq!(wrong_token.status, 403);
    // From another site's page: refused before anything else.
    let cross = chair_web
        .send(
            "POST",
            &format!("/referrals/{id}/status"),
            Some("status=accepted".into()),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status, 403);
    let record = tatmx_tests::referral_when(&core, &id, "still received", |_| true).await;
    assert_eq!(record.status, pb::ReferralStatus::Received as i32);

    let accepted = chair_web
        .submit(
            &format!("/referrals/{id}"),
            &format!("/referrals/{id}/status"),
            &[("status", "accepted")],
        )
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    tatmx_tests::referral_when(&school, &id, "accepted at the school", |r| {
        r.status == pb::ReferralStatus::Accepted as i32
    })
    .await;
    let changes = tatmx_tests::audit_entries(&core, "status-change").await;
    assert!(
        changes.iter().any(|e| e.actor == "console carol"),
        "{changes:?}"
    );
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test]
async fn a_referral_made_in_the_console_previews_its_filter_and_reaches_the_core_team() {
    let (fed, core, school) = federation("30m");
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let worker = add_user(&school, "dana", "case-worker").await;
    let chair = add_user(&core, "erin", "chair").await;
    let mut web = browser(&school_node, &fed);
    assert_eq!(web.sign_in(&worker).await.status, 303);
    let form = web.get("/referrals/new").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains(r#"id="preview""#));
    let csrf = form.csrf();
    let key = uuid::Uuid::now_v7().to_string();
    let recipient = core.identity.uri();
    let fields = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", key.as_str()),
        ("recipient", recipient.as_str()),
        ("purpose", "threat-assessment"),
        ("legal_basis", "health-safety-emergency"),
        (
            "justification",
            "A student described a specific plan to harm classmates this week.",
        ),
        ("case_ref", "LHS-CONSOLE-1"),
        ("identity_name", "CANARY-CONSOLE-NAME"),
        ("threat_type", "targeted-violence"),
        ("target_type", "school"),
        ("mh_diagnoses", "CANARY-DIAGNOSIS"),
        ("reporter_name", "A teacher"),
    ];
    // The live preview, as htmx asks for it.
    let preview = web
        .send(
            "POST",
            "/referrals/preview",
            Some(encode(&fields)),
            &[("hx-request", "true"), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(
        preview
            .body
            .contains(r#"data-category="MENTAL_HEALTH" data-outcome="withhold""#),
        "{}",
        preview.body
    );
    assert!(
        preview
            .body
            .contains(r#"data-category="THREAT" data-outcome="disclose""#),
        "{}",
        preview.body
    );
    // A dry run stores nothing.
    assert_eq!(tatmx_tests::inbox_len(&core).await, 0);

    // "Check and send" shows what will reach the county once more and sends nothing.
    let check = web.post("/referrals", &fields).await;
    assert_eq!(check.status, 200, "{}", check.body);
    assert!(
        check.body.contains(r#"id="confirm-send""#),
        "{}",
        check.body
    );
    assert!(
        check.body.contains("Will reach County Core"),
        "{}",
        check.body
    );
    assert_eq!(tatmx_tests::inbox_len(&core).await, 0);
    let fields = [fields.as_slice(), &[("confirmed", "yes")]].concat();
    let sent = web.post("/referrals", &fields).await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let id = sent
        .location()
        .trim_start_matches("/referrals/")
        .trim_end_matches("?done=referral-sent")
        .to_owned();
    // Sending the same form again (a double click) sends nothing new.
    let again = web.post("/referrals", &fields).await;
    assert_eq!(again.location(), sent.location());
    tatmx_tests::delivered(&school, &id).await;

    let mut core_web = browser(&core_node, &fed);
    assert_eq!(core_web.sign_in(&chair).await.status, 303);
    let inbox = core_web.get("/cases").await;
    assert!(
        inbox.body.contains(&id),
        "the referral is in the core team's inbox"
    );
    let detail = core_web.get(&format!("/referrals/{id}")).await;
    assert!(detail.body.contains("CANARY-CONSOLE-NAME"));
    assert!(
        !detail.body.contains("CANARY-DIAGNOSIS"),
        "withheld content reached the core team"
    );
    assert!(
        detail.body.contains(r#"data-category="MENTAL_HEALTH""#),
        "the manifest names what was withheld"
    );
    let accepted = core_web
        .submit(
            &format!("/referrals/{id}"),
            &format!("/referrals/{id}/status"),
            &[("status", "accepted")],
        )
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    tatmx_tests::referral_when(&school, &id, "accepted at the school", |r| {
        r.status == pb::ReferralStatus::Accepted as i32
    })
    .await;
    let school_view = web.get(&format!("/referrals/{id}")).await;
    assert!(
        school_view
            .body
            .contains(r#"id="referral-status" data-status="accepted""#),
        "{}",
        school_view.body
    );
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test]
async fn an_idle_session_locks_and_unlocks_with_the_password_and_a_new_code() {
    let (fed, _core, school) = federation("15m");
    let clock = Clock::tokio(time::OffsetDateTime::now_utc());
    let node = tatmx_tests::start_with_clock(&school, clock).await;
    let worker = add_user(&school, "frank", "case-worker")
        .await
        .reading(clock);
    let mut web = browser(&node, &fed);
    assert_eq!(web.sign_in(&worker).await.status, 303);
    assert_eq!(web.get("/cases").await.status, 200);
    // Fourteen minutes away from the desk: still open.
    tatmx_tests::skip_ahead(Duration::from_secs(14 * 60)).await;
    assert_eq!(web.get("/cases").await.status, 200);
    // Then sixteen minutes more without a click: past the fifteen-minute idle lock.
    tatmx_tests::skip_ahead(Duration::from_secs(16 * 60)).await;
    let locked = web.get("/cases").await;
    assert_eq!(locked.status, 303);
    assert_eq!(locked.location(), "/unlock");
    // Still locked, whatever page is asked for.
    assert_eq!(web.get("/referrals/new").await.location(), "/unlock");
    let unlock_page = web.get("/unlock").await;
    let csrf = unlock_page.csrf();
    let wrong = web
        .post(
            "/unlock",
            &[
                ("csrf", &csrf),
                ("password", "wrong"),
                ("code", &worker.unspent_code().await),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let unlocked = web
        .post(
            "/unlock",
            &[
                ("csrf", &csrf),
                ("password", &worker.password),
                ("code", &worker.fresh_code().await),
            ],
        )
        .await;
    assert_eq!(unlocked.status, 303, "{}", unlocked.body);
    assert_eq!(web.get("/cases").await.status, 200);
    node.shutdown().await;
}

#[tokio::test]
async fn an_auditor_exports_the_accounting_and_each_role_sees_only_its_pages() {
    let (fed, core, school) = federation("30m");
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let mut client = tatmx_tests::agency(&school).await;
    let mut draft = tatmx_tests::draft("county-core");
    draft.case_ref = "LHS-AUDIT-1".into();
    let id = tatmx_tests::submit(&mut client, draft).await;
    tatmx_tests::delivered(&school, &id).await;

    let auditor = add_user(&school, "gina", "auditor").await;
    let admin = add_user(&school, "hal", "admin").await;
    let worker = add_user(&school, "ivy", "case-worker").await;

    let mut web = browser(&school_node, &fed);
    let signed_in = web.sign_in(&auditor).await;
    assert_eq!(signed_in.location(), "/audit");
    let audit = web.get("/audit").await;
    assert_eq!(audit.status, 200);
    assert!(
        audit.body.contains("The audit log is intact"),
        "{}",
        audit.body
    );
    assert!(audit.body.contains(r#"id="audit-list""#));
    assert_eq!(
        web.get("/cases").await.status,
        403,
        "an auditor reads no case data"
    );
    assert_eq!(web.get(&format!("/referrals/{id}")).await.status, 403);
    let accounting = web
        .submit(
            "/audit",
            "/audit/disclosures",
            &[("subject", "LHS-AUDIT-1")],
        )
        .await;
    assert_eq!(accounting.status, 200);
    assert!(accounting.body.contains(&id), "{}", accounting.body);
    let csv = web
        .submit(
            "/audit",
            "/audit/disclosures.csv",
            &[("subject", "LHS-AUDIT-1")],
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let mut lines = csv.body.lines();
    assert!(lines.next().unwrap_or("").starts_with("at,recipient,kind"));
    let row = lines.next().expect("one disclosure");
    assert!(
        row.contains(&id) && row.contains(&core.identity.uri()),
        "{row}"
    );
    assert!(
        !csv.body.contains("CANARY"),
        "the accounting carries no content"
    );

    let mut web = browser(&school_node, &fed);
    assert_eq!(web.sign_in(&admin).await.location(), "/trust");
    let trust = web.get("/trust").await;
    assert_eq!(trust.status, 200);
    assert!(
        trust.body.contains(r#"id="peers-table""#) && trust.body.contains(&core.identity.uri())
    );
    for page in ["/cases", "/audit", "/referrals/new", "/consents", "/outbox"] {
        assert_eq!(web.get(page).await.status, 403, "an admin opened {page}");
    }

    let mut web = browser(&school_node, &fed);
    assert_eq!(web.sign_in(&worker).await.location(), "/cases");
    for page in ["/audit", "/trust"] {
        assert_eq!(
            web.get(page).await.status,
            403,
            "a case worker opened {page}"
        );
    }
    let outbox = web.get("/outbox").await;
    assert!(outbox.body.contains(&id) && !outbox.body.contains(">Retry<"));
    let refused = web
        .send(
            "POST",
            "/audit/disclosures",
            Some(encode(&[("subject", "LHS-AUDIT-1")])),
            &[("x-csrf-token", &outbox.csrf())],
        )
        .await;
    assert_eq!(refused.status, 403);
    core_node.shutdown().await;
    school_node.shutdown().await;
}

/// Accepts exactly one server certificate, the node's own, whatever name it carries.
#[derive(Debug)]
struct Pinned(Vec<u8>);

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the node's certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &tatmx_node::tls::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        tatmx_node::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tokio::test]
async fn without_a_web_certificate_the_console_presents_the_nodes_own_over_tls_1_3() {
    use rustls_pki_types::pem::PemObject;
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    fed.write_config(&core, &[&school], "[console]\nlisten = \"127.0.0.1:0\"\n");
    let node = tatmx_tests::start(&core).await;
    let addr = node.console_addr().expect("console on");
    assert!(addr.ip().is_loopback());
    let pem = std::fs::read(core.dir.join("node.pem")).expect("node.pem");
    let own = rustls_pki_types::CertificateDer::from_pem_slice(&pem).expect("certificate");
    let mut tls = rustls::ClientConfig::builder_with_provider(tatmx_node::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(own.as_ref().to_vec())))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut web = Browser {
        addr,
        tls: Arc::new(tls),
        cookie: None,
    };
    let page = web.get("/sign-in").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["cache-control"], "no-store");
    node.shutdown().await;
}

#[tokio::test]
async fn a_holder_changes_their_password_and_only_the_new_one_signs_in() {
    let (fed, _core, school) = federation("30m");
    let node = tatmx_tests::start(&school).await;
    let alice = add_user(&school, "alice", "case-worker").await;
    let mut web = browser(&node, &fed);
    assert_eq!(web.sign_in(&alice).await.status, 303);
    let inbox = web.get("/cases").await;
    assert!(
        inbox.body.contains(r#"href="/account/password""#),
        "the header links to the page: {}",
        inbox.body
    );
    let form = web.get("/account/password").await;
    assert_eq!(form.status, 200);
    for id in [
        "current-password",
        "new-password",
        "confirm-password",
        "code",
    ] {
        assert!(
            form.body.contains(&format!(r#"<label for="{id}">"#)),
            "{id}: {}",
            form.body
        );
    }
    assert!(form.body.contains(r#"id="change-password""#));

    let new_password = "CANARY-NEW-PW correct horse battery";
    let changed = change_password(
        &mut web,
        &alice.password,
        new_password,
        new_password,
        &alice.fresh_code().await,
    )
    .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(changed.location(), "/account/password?changed=1");
    let shown = web.get(changed.location()).await;
    assert!(
        shown.body.contains("Your password was changed"),
        "{}",
        shown.body
    );
    // The session it was changed in goes on.
    assert_eq!(web.get("/cases").await.status, 200);

    // The old password signs in no more; the new one does.
    let mut other = browser(&node, &fed);
    // The same code for both: the old password's refusal is not the code's.
    let code = alice.fresh_code().await;
    let old = other.sign_in_with(&alice, &code).await;
    assert_eq!(old.status, 401, "the old password still signs in");
    let renewed = alice.with_password(new_password);
    let signed_in = other.sign_in_with(&renewed, &code).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(other.get("/cases").await.status, 200);

    // Audited as the holder's own change, with neither password anywhere in the log.
    let changes = password_changes(&school).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].actor, "console alice");
    let everything = format!("{:?}", tatmx_tests::audit_entries(&school, "").await);
    assert!(!everything.contains("CANARY-NEW-PW"), "{everything}");
    assert!(!everything.contains(&alice.password), "{everything}");
    node.shutdown().await;
}

#[tokio::test]
async fn every_other_session_of_the_account_ends_when_its_password_changes() {
    let (fed, _core, school) = federation("30m");
    let node = tatmx_tests::start(&school).await;
    let bob = add_user(&school, "bob", "chair").await;
    let carol = add_user(&school, "carol", "auditor").await;
    let mut here = browser(&node, &fed);
    let mut elsewhere = browser(&node, &fed);
    let mut colleague = browser(&node, &fed);
    assert_eq!(here.sign_in(&bob).await.status, 303);
    assert_eq!(elsewhere.sign_in(&bob).await.status, 303);
    assert_eq!(colleague.sign_in(&carol).await.status, 303);
    assert_eq!(elsewhere.get("/cases").await.status, 200);
    // An auditor has the page too: it is every role's.
    assert_eq!(colleague.get("/account/password").await.status, 200);

    let new_password = "a long new passphrase for bob";
    let changed = change_password(
        &mut here,
        &bob.password,
        new_password,
        new_password,
        &bob.fresh_code().await,
    )
    .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(
        here.get("/cases").await.status,
        200,
        "the holder's session ended"
    );
    let ended = elsewhere.get("/cases").await;
    assert_eq!(ended.status, 303);
    assert_eq!(
        ended.location(),
        "/sign-in",
        "another session of bob goes on"
    );
    assert_eq!(
        colleague.get("/audit").await.status,
        200,
        "another account's session ended"
    );
    let changes = password_changes(&school).await;
    assert_eq!(changes.len(), 1);
    assert!(
        changes[0]
            .detail_json
            .contains(r#""other_sessions_ended":1"#),
        "{}",
        changes[0].detail_json
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_new_password_that_breaks_a_rule_is_refused_with_the_reason() {
    let (fed, _core, school) = federation("30m");
    let node = tatmx_tests::start(&school).await;
    let dana = add_user(&school, "dana.mcallister", "case-worker").await;
    let mut web = browser(&node, &fed);
    assert_eq!(web.sign_in(&dana).await.status, 303);
    let code = dana.fresh_code().await;
    let too_long = "x".repeat(257);
    let cases = [
        ("eleven char", "eleven char", "too short"),
        (too_long.as_str(), too_long.as_str(), "too long"),
        (
            "correct horse battery",
            "correct horse batterY",
            "are not the same",
        ),
        (
            "Dana.McAllister",
            "Dana.McAllister",
            "cannot be your username",
        ),
        (
            dana.password.as_str(),
            dana.password.as_str(),
            "same as the current one",
        ),
    ];
    for (new, again, reason) in cases {
        let page = change_password(&mut web, &dana.password, new, again, &code).await;
        assert_eq!(page.status, 422, "{reason}: {}", page.body);
        assert!(page.body.contains(reason), "{reason}: {}", page.body);
        assert!(page.body.contains(r#"role="alert""#), "{}", page.body);
    }
    // Breaking a rule is no failed sign-in, and did not spend the code: the same code
    // changes the password now that the rules are kept.
    assert_eq!(failed_logins(&school, "dana.mcallister").await, 0);
    assert!(password_changes(&school).await.is_empty());
    let kept = "twelve chars";
    let changed = change_password(&mut web, &dana.password, kept, kept, &code).await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(password_changes(&school).await.len(), 1);
    node.shutdown().await;
}

#[tokio::test]
async fn a_wrong_current_password_or_code_is_refused_and_counts_towards_the_lockout() {
    let (fed, _core, school) = federation("30m");
    let node = tatmx_tests::start(&school).await;
    let eve = add_user(&school, "eve", "case-worker").await;
    let mut web = browser(&node, &fed);
    assert_eq!(web.sign_in(&eve).await.status, 303);
    let signed_in_with = eve.spent_code();
    let new_password = "CANARY-WANTED-PW long enough";
    let next = eve.unspent_code().await;

    let wrong_password = change_password(
        &mut web,
        "CANARY-GUESS-PW",
        new_password,
        new_password,
        &next,
    )
    .await;
    assert_eq!(wrong_password.status, 401, "{}", wrong_password.body);
    assert!(
        wrong_password
            .body
            .contains("The current password or code is not right"),
        "{}",
        wrong_password.body
    );
    assert_eq!(failed_logins(&school, "eve").await, 1);
    let wrong_code = change_password(
        &mut web,
        &eve.password,
        new_password,
        new_password,
        "000000",
    )
    .await;
    assert_eq!(wrong_code.status, 401, "{}", wrong_code.body);
    assert_eq!(failed_logins(&school, "eve").await, 2);
    // The code that signed in is spent: offered again, it is refused, and counts.
    let spent = change_password(
        &mut web,
        &eve.password,
        new_password,
        new_password,
        &signed_in_with,
    )
    .await;
    assert_eq!(spent.status, 401, "{}", spent.body);
    assert!(spent.body.contains("used already"), "{}", spent.body);
    assert_eq!(failed_logins(&school, "eve").await, 3);
    let failures = tatmx_tests::audit_entries(&school, "sign-in-failed").await;
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(
        failures.iter().all(|e| e.actor == "console eve"),
        "{failures:?}"
    );

    // The fifth failure in a row locks the account and ends this session.
    for attempt in 4..=5 {
        let page = change_password(
            &mut web,
            "CANARY-GUESS-PW",
            new_password,
            new_password,
            &next,
        )
        .await;
        if attempt < 5 {
            assert_eq!(page.status, 401, "attempt {attempt}: {}", page.body);
        } else {
            assert_eq!(page.status, 403, "the fifth failure locks: {}", page.body);
            assert!(page.body.contains("locked"), "{}", page.body);
        }
    }
    assert!(web.cookie.is_none(), "the session was not ended");
    let locked = tatmx_tests::audit_entries(&school, "account-locked").await;
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0].actor, "console eve");
    // Locked: the right password and code sign in no more, and nothing was changed.
    let mut again = browser(&node, &fed);
    let right = eve.unspent_code().await;
    assert_eq!(again.sign_in_with(&eve, &right).await.status, 403);
    assert!(password_changes(&school).await.is_empty());
    let everything = format!("{:?}", tatmx_tests::audit_entries(&school, "").await);
    assert!(!everything.contains("CANARY"), "{everything}");
    node.shutdown().await;
}

#[tokio::test]
async fn a_password_change_without_the_csrf_token_is_refused() {
    let (fed, _core, school) = federation("30m");
    let node = tatmx_tests::start(&school).await;
    let frank = add_user(&school, "frank", "admin").await;
    let mut web = browser(&node, &fed);
    assert_eq!(web.sign_in(&frank).await.status, 303);
    let new_password = "a long new passphrase for frank";
    let code = frank.fresh_code().await;
    let fields = [
        ("current_password", frank.password.as_str()),
        ("new_password", new_password),
        ("confirm_password", new_password),
        ("code", code.as_str()),
    ];
    let no_token = web.post("/account/password", &fields).await;
    assert_eq!(no_token.status, 403);
    assert!(
        no_token.body.contains("did not come from this console"),
        "{}",
        no_token.body
    );
    let mut wrong = vec![("csrf", "0000")];
    wrong.extend_from_slice(&fields);
    assert_eq!(web.post("/account/password", &wrong).await.status, 403);
    // Another site's page, even with this session's token: refused by its origin.
    let csrf = web.get("/account/password").await.csrf();
    let mut with_token = vec![("csrf", csrf.as_str())];
    with_token.extend_from_slice(&fields);
    let cross = web
        .send(
            "POST",
            "/account/password",
            Some(encode(&with_token)),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status, 403);

    // Nothing changed and nothing was spent: the old password and the same code sign in.
    assert!(password_changes(&school).await.is_empty());
    assert_eq!(failed_logins(&school, "frank").await, 0);
    let mut other = browser(&node, &fed);
    let signed_in = other.sign_in_with(&frank, &code).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    node.shutdown().await;
}

#[tokio::test]
async fn a_text_over_its_limit_comes_back_beside_its_field_and_an_oversized_form_gets_a_page() {
    let (fed, core, school) = federation("30m");
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let worker = add_user(&school, "dana", "case-worker").await;
    let mut web = browser(&school_node, &fed);
    assert_eq!(web.sign_in(&worker).await.status, 303);
    let csrf = web.get("/referrals/new").await.csrf();
    let recipient = core.identity.uri();
    // A narrative pasted over its limit: refused beside the field, with every word kept.
    let long = format!("CANARY-KEPT {}", "word ".repeat(1000));
    let fields = [
        ("csrf", csrf.as_str()),
        ("recipient", recipient.as_str()),
        ("purpose", "threat-assessment"),
        ("legal_basis", "de-identified"),
        ("narrative", long.as_str()),
    ];
    let refused = web.post("/referrals", &fields).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains(r#"id="narrative-error""#),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("it can be at most 4000"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains(long.trim_end()),
        "the text was not kept"
    );
    assert!(refused.body.contains(r#"nav aria-label="Main""#));
    // A body past what the console reads at all: a page with the menu that says what to do,
    // and nothing stored.
    let huge = "x".repeat(1024 * 1024 + 1);
    let fields = [
        ("csrf", csrf.as_str()),
        ("recipient", recipient.as_str()),
        ("narrative", huge.as_str()),
    ];
    let oversized = web.post("/referrals", &fields).await;
    assert_eq!(oversized.status, 413);
    assert!(oversized.body.contains(r#"nav aria-label="Main""#));
    assert!(
        oversized
            .body
            .contains("your browser still has what you typed")
    );
    assert_eq!(tatmx_tests::inbox_len(&core).await, 0);
    // The console goes on serving.
    assert_eq!(web.get("/cases").await.status, 200);
    core_node.shutdown().await;
    school_node.shutdown().await;
}
