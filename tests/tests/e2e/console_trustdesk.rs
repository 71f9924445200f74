//! The console's trust desk end to end (issue 18, items 5, 8, 9): consents safe by default,
//! the signed consent form sealed at this agency and never sent, the auditor's pages in words,
//! and the admin's accounts page; on real nodes, over the console's real HTTPS.

use tatmx_proto::v1 as pb;
use tatmx_tests::{Logs, TeamSpec};

use super::console::{Browser, Login, Page, add_user, browser, federation};

/// The fields of a consent with the given choices, as the form posts them.
fn consent_fields<'a>(subject: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("subject", subject),
        ("grantor", "guardian"),
        ("grantor_name", "Pat Doe"),
    ];
    fields.extend_from_slice(extra);
    fields
}

/// Records a consent through the console's check and confirm steps; returns its page's
/// address (with its `done` word) and its id.
async fn record_consent(web: &mut Browser, fields: &[(&str, &str)]) -> (String, String) {
    let mut check = fields.to_vec();
    check.push(("step", "check"));
    let checked = web.submit("/consents", "/consents", &check).await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    assert!(checked.body.contains(r#"id="confirm-consent""#));
    let mut record = fields.to_vec();
    record.push(("step", "record"));
    let recorded = web.submit("/consents", "/consents", &record).await;
    assert_eq!(recorded.status, 303, "{}", recorded.body);
    let location = recorded.location().to_owned();
    let id = location
        .trim_start_matches("/consents/")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(location.ends_with("?done=recorded"), "{location}");
    (location, id)
}

/// The text of the element with `id`, as the page renders it (up to its closing tag).
fn element_text<'a>(page: &'a Page, id: &str) -> &'a str {
    let marker = format!(r#"id="{id}">"#);
    let start = page.body.find(&marker).map(|i| i + marker.len());
    let start = start.unwrap_or_else(|| panic!("no #{id} in {}", page.body));
    page.body[start..].split('<').next().unwrap_or_default()
}

/// A multipart body with one file field `form`.
fn multipart(bytes: &[u8], content_type: &str) -> (Vec<u8>, String) {
    let boundary = "tatmx-boundary-5f1c";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"form\"; filename=\"signed.bin\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// Uploads a signed form as htmx does: multipart, with the page's CSRF token in its header.
async fn upload(web: &mut Browser, consent: &str, bytes: &[u8], content_type: &str) -> Page {
    let csrf = web.get(&format!("/consents/{consent}")).await.csrf();
    let (body, header) = multipart(bytes, content_type);
    web.send_bytes(
        "POST",
        &format!("/consents/{consent}/form"),
        Some(body),
        &[("content-type", &header), ("x-csrf-token", &csrf)],
    )
    .await
}

async fn signed_in(
    node: &tatmx_node::RunningNode,
    fed: &tatmx_tests::TestFederation,
    login: &Login,
) -> Browser {
    let mut web = browser(node, fed);
    let page = web.sign_in(login).await;
    assert_eq!(page.status, 303, "{}", page.body);
    web
}

#[tokio::test]
async fn a_consent_with_nothing_chosen_is_refused_next_to_each_choice_and_nothing_is_stored() {
    let (fed, _core, school) = federation("30m");
    let node = tatmx_tests::start(&school).await;
    let worker = add_user(&school, "ivy", "case-worker").await;
    let mut web = signed_in(&node, &fed, &worker).await;

    let form = web.get("/consents").await;
    assert_eq!(form.status, 200);
    assert!(
        !form.body.contains("none ticked"),
        "ticking nothing no longer means anything"
    );
    for step in ["check", "record"] {
        let fields = consent_fields("LHS-2026-0117", &[("valid_until", ""), ("step", step)]);
        let refused = web.submit("/consents", "/consents", &fields).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        for group in ["teams", "purposes", "categories"] {
            assert!(
                refused
                    .body
                    .contains(&format!(r#"id="consent-{group}-error""#)),
                "no error next to the {group}: {}",
                refused.body
            );
            assert!(
                refused
                    .body
                    .contains(&format!(r#"aria-describedby="consent-{group}-error""#)),
                "{group}"
            );
        }
        assert!(
            refused.body.contains(r#"value="LHS-2026-0117""#) && refused.body.contains("Pat Doe"),
            "what was typed is kept"
        );
        assert!(!refused.body.contains("recipient_teams"), "no field paths");
    }
    // "Any" with ticks too is refused as well: the choice must be one or the other.
    let fields = consent_fields(
        "LHS-2026-0117",
        &[
            ("teams", "any"),
            ("team", "spiffe://county-mdt.example/team/county-core"),
            ("purposes", "any"),
            ("categories", "any"),
            ("step", "record"),
        ],
    );
    let both = web.submit("/consents", "/consents", &fields).await;
    assert_eq!(both.status, 422);
    assert!(both.body.contains(r#"id="consent-teams-error""#));

    let list = web.get("/consents").await;
    assert!(
        list.body.contains(r#"id="consents-empty""#),
        "nothing was stored"
    );
    let stored = tatmx_tests::agency(&school)
        .await
        .list_consents(pb::ListConsentsRequest::default())
        .await
        .expect("list consents")
        .into_inner();
    assert!(stored.consents.is_empty(), "{stored:?}");
    node.shutdown().await;
}

#[tokio::test]
async fn a_consent_of_every_kind_warns_of_each_law_and_its_page_shows_its_scope_in_words() {
    let (fed, core, school) = federation("30m");
    let node = tatmx_tests::start(&school).await;
    let worker = add_user(&school, "ivy", "case-worker").await;
    let mut web = signed_in(&node, &fed, &worker).await;
    let core_uri = core.identity.uri();

    // The live warning, as htmx asks for it while the kinds are ticked.
    let csrf = web.get("/consents").await.csrf();
    for (fields, warns) in [
        ("categories=only&category=MENTAL_HEALTH", true),
        ("categories=only&category=THREAT", false),
        ("categories=any", true),
    ] {
        let live = web
            .send(
                "POST",
                "/consents/warning",
                Some(fields.into()),
                &[("x-csrf-token", &csrf)],
            )
            .await;
        assert_eq!(live.status, 200);
        assert_eq!(
            live.body.contains("protected"),
            warns,
            "{fields}: {}",
            live.body
        );
    }

    let fields = consent_fields(
        "LHS-2026-0117",
        &[
            ("teams", "only"),
            ("team", &core_uri),
            ("purposes", "any"),
            ("categories", "any"),
        ],
    );
    let mut check = fields.clone();
    check.push(("step", "check"));
    let confirmation = web.submit("/consents", "/consents", &check).await;
    assert_eq!(confirmation.status, 200, "{}", confirmation.body);
    for law in ["HIPAA", "42 CFR Part 2", "FERPA", "CJIS"] {
        assert!(confirmation.body.contains(law), "no warning naming {law}");
    }
    assert!(confirmation.body.contains(r#"id="protected-warning""#));

    let (location, id) = record_consent(&mut web, &fields).await;
    let page = web.get(&location).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Recorded."), "a confirmation notice");
    assert_eq!(element_text(&page, "scope-subject"), "LHS-2026-0117");
    let scope = page
        .body
        .split(r#"id="consent-scope""#)
        .nth(1)
        .and_then(|rest| rest.split("</dl>").next())
        .unwrap_or_default();
    for words in [
        "County Core",
        "Any purpose",
        "Every kind of information",
        "Pat Doe",
        "ivy (staff member)",
        "Until it is revoked",
    ] {
        assert!(scope.contains(words), "the scope lacks {words}: {scope}");
    }
    assert!(
        page.body.contains("HIPAA"),
        "the warning stays on the consent"
    );
    for code in ["MENTAL_HEALTH", "threat-assessment", "spiffe://"] {
        assert!(!scope.contains(code), "a code in the scope: {code}");
    }
    assert!(page.body.contains(&id));

    // A narrow consent: only the kinds ticked, no warning.
    let narrow = consent_fields(
        "LHS-2026-0118",
        &[
            ("teams", "only"),
            ("team", &core_uri),
            ("purposes", "only"),
            ("purpose", "threat-assessment"),
            ("categories", "only"),
            ("category", "THREAT"),
            ("category", "BEHAVIOR"),
        ],
    );
    let (location, _) = record_consent(&mut web, &narrow).await;
    let page = web.get(&location).await;
    assert!(
        page.body
            .contains("Ask a team to assess a person of concern")
    );
    assert!(page.body.contains("Behaviours of concern"));
    assert!(!page.body.contains(r#"id="protected-warning""#));
    node.shutdown().await;
}

#[test]
fn a_signed_form_round_trips_sealed_audited_and_never_reaches_the_other_node() {
    Logs::run(|logs| async move {
        let (fed, core, school) = federation("30m");
        let core_node = tatmx_tests::start(&core).await;
        let school_node = tatmx_tests::start(&school).await;
        let worker = add_user(&school, "ivy", "case-worker").await;
        let mut web = signed_in(&school_node, &fed, &worker).await;
        let core_uri = core.identity.uri();
        let fields = consent_fields(
            "LHS-2026-0200",
            &[
                ("teams", "only"),
                ("team", &core_uri),
                ("purposes", "any"),
                ("categories", "any"),
            ],
        );
        let (_, consent) = record_consent(&mut web, &fields).await;

        let canary = b"CANARY-SIGNED-FORM-4e1d";
        let mut pdf = b"%PDF-1.7\n% signed consent\n".to_vec();
        pdf.extend_from_slice(canary);
        pdf.extend_from_slice(b"\n%%EOF\n");

        // Refused: no CSRF token; not a PDF, PNG or JPEG whatever the browser says.
        let (body, header) = multipart(&pdf, "application/pdf");
        let forged = web
            .send_bytes(
                "POST",
                &format!("/consents/{consent}/form"),
                Some(body),
                &[("content-type", &header)],
            )
            .await;
        assert_eq!(forged.status, 403);
        let gif = upload(&mut web, &consent, b"GIF89a CANARY", "application/pdf").await;
        assert_eq!(gif.status, 422, "{}", gif.body);
        assert!(gif.body.contains(r#"id="consent-form-error""#));
        assert!(gif.body.contains("not a PDF, PNG or JPEG"));

        let attached = upload(&mut web, &consent, &pdf, "application/pdf").await;
        assert_eq!(attached.status, 303, "{}", attached.body);
        assert_eq!(
            attached.location(),
            format!("/consents/{consent}?done=attached")
        );
        let page = web.get(attached.location()).await;
        assert!(page.body.contains("The signed form is attached"));
        assert!(page.body.contains(r#"id="download-consent-form""#));
        assert!(page.body.contains("PDF document"));

        let download = web.get(&format!("/consents/{consent}/form")).await;
        assert_eq!(download.status, 200);
        assert_eq!(download.bytes, pdf, "the form comes back byte for byte");
        let header = |name: &str| {
            download.headers[name]
                .to_str()
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), "application/pdf");
        assert!(header("content-disposition").starts_with("attachment;"));
        assert!(header("cache-control").contains("no-store"));

        for kind in ["consent-form-attached", "consent-form-read"] {
            let entries = tatmx_tests::audit_entries(&school, kind).await;
            assert_eq!(entries.len(), 1, "{kind}: {entries:?}");
            assert_eq!(entries[0].actor, "console ivy");
            assert!(entries[0].detail_json.contains(&consent));
            assert!(!entries[0].detail_json.contains("CANARY"));
        }
        assert!(
            !tatmx_tests::contains(&tatmx_tests::database_bytes(&school), canary),
            "the form is stored sealed"
        );

        // Share on this consent, so everything about it that may travel does.
        let mut client = tatmx_tests::agency(&school).await;
        let mut draft = tatmx_tests::draft("county-core");
        draft.legal_basis = pb::LegalBasis::Consent.into();
        draft.justification.clear();
        draft.consent_ref = consent.clone();
        draft.subject_ref = "LHS-2026-0200".into();
        let id = tatmx_tests::submit(&mut client, draft).await;
        tatmx_tests::delivered(&school, &id).await;
        assert!(tatmx_tests::inbox_len(&core).await >= 1);

        assert!(
            !tatmx_tests::contains(&tatmx_tests::database_bytes(&core), canary),
            "the signed form reached the other node"
        );
        assert!(
            !tatmx_tests::contains(&logs.text(), canary),
            "the signed form reached a log"
        );
        core_node.shutdown().await;
        school_node.shutdown().await;
    });
}

/// Submits a referral from the school to the core team under `subject_ref`, delivered.
async fn referral_under(school: &TeamSpec, subject_ref: &str) -> String {
    let mut client = tatmx_tests::agency(school).await;
    let mut draft = tatmx_tests::draft("county-core");
    draft.subject_ref = subject_ref.into();
    draft.case_ref = "LHS-CASE-77".into();
    let id = tatmx_tests::submit(&mut client, draft).await;
    tatmx_tests::delivered(school, &id).await;
    id
}

#[tokio::test]
async fn the_auditor_finds_a_disclosure_by_a_local_reference_reads_the_log_in_words_and_exports_it()
{
    let (fed, core, school) = federation("30m");
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let id = referral_under(&school, "LHS-STUDENT-42").await;
    let auditor = add_user(&school, "gina", "auditor").await;
    let mut web = signed_in(&school_node, &fed, &auditor).await;

    let found = web
        .submit(
            "/audit",
            "/audit/disclosures",
            &[("subject", "LHS-STUDENT-42")],
        )
        .await;
    assert_eq!(found.status, 200);
    assert!(
        found.body.contains(r#"id="disclosures-list""#),
        "{}",
        found.body
    );
    assert!(found.body.contains(&id));
    assert!(found.body.contains("A referral"));
    assert!(found.body.contains("County Core"));

    let unknown = web
        .submit(
            "/audit",
            "/audit/disclosures",
            &[("subject", "LHS-NOBODY-9")],
        )
        .await;
    assert_eq!(unknown.status, 200);
    assert_eq!(
        element_text(&unknown, "disclosures-empty"),
        "No disclosure is recorded under the reference “LHS-NOBODY-9”."
    );
    assert!(!unknown.body.contains("Nothing about this subject"));

    let log = web.get("/audit?kind=disclosure").await;
    assert_eq!(log.status, 200);
    assert!(log.body.contains(r#"data-kind="disclosure""#));
    for other in ["sign-in", "account-change"] {
        assert!(
            !log.body.contains(&format!(r#"data-kind="{other}""#)),
            "the kind filter let {other} through"
        );
    }
    assert!(log.body.contains("Information sent to another team"));
    assert!(log.body.contains("with County Core"));
    let everything = web.get("/audit?actor=gina").await;
    assert!(everything.body.contains(r#"data-kind="sign-in""#));
    assert!(everything.body.contains("gina (staff member)"));
    assert!(!everything.body.contains(r#"data-kind="disclosure""#));

    let csv = web.get("/audit/entries.csv?kind=disclosure").await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/csv")
    );
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap_or_default()
            .contains("audit-log.csv")
    );
    let mut lines = csv.body.lines();
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .starts_with("seq,at,kind,what,actor,who")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.contains(",disclosure,")), "{rows:?}");
    assert!(rows.iter().any(|r| r.contains(&id)));
    assert!(!csv.body.contains("CANARY"), "the log carries no content");

    // Nothing so far in the future: the date filter leaves the log empty.
    let later = web.get("/audit?from=2999-01-01").await;
    assert!(later.body.contains(r#"id="audit-empty""#));
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test]
async fn an_admin_unlocks_a_locked_account_from_the_accounts_page_and_its_holder_signs_in() {
    let (fed, _core, school) = federation("30m");
    let node = tatmx_tests::start(&school).await;
    let worker = add_user(&school, "ivy", "case-worker").await;
    let admin = add_user(&school, "hal", "admin").await;

    let mut web = browser(&node, &fed);
    let sign_in = web.get("/sign-in").await;
    assert!(
        sign_in
            .body
            .contains("Sign in to Lincoln High's tatmx console"),
        "{}",
        sign_in.body
    );
    let wrong = Login::new("ivy", "not-the-password".into(), Vec::new());
    for _ in 0..5 {
        let code = worker.unspent_code().await;
        let refused = web.sign_in_with(&wrong, &code).await;
        assert!(matches!(refused.status, 401 | 403), "{}", refused.status);
    }
    let locked = web.sign_in(&worker).await;
    assert_eq!(locked.status, 403, "five wrong passwords lock the account");
    assert!(locked.body.contains("locked"));

    let mut desk = signed_in(&node, &fed, &admin).await;
    let accounts = desk.get("/accounts").await;
    assert_eq!(accounts.status, 200);
    assert!(
        accounts.body.contains(r#"href="/accounts""#),
        "the admin's menu"
    );
    assert!(element_text(&accounts, "account-ivy-state").starts_with("Locked"));
    assert!(accounts.body.contains(r#"id="unlock-ivy""#));
    assert!(
        !accounts.body.contains(r#"id="disable-hal""#),
        "no button to disable one's own account"
    );
    let unlocked = desk
        .submit("/accounts", "/accounts/unlock", &[("username", "ivy")])
        .await;
    assert_eq!(unlocked.status, 303);
    assert_eq!(unlocked.location(), "/accounts?done=unlocked");
    let after = desk.get(unlocked.location()).await;
    assert!(after.body.contains("Unlocked."));
    assert_eq!(element_text(&after, "account-ivy-state"), "Can sign in");

    let mut web = browser(&node, &fed);
    let signed = web.sign_in(&worker).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.location(), "/cases");

    let changes = tatmx_tests::audit_entries(&school, "account-change").await;
    assert!(
        changes
            .iter()
            .any(|e| e.actor == "console hal" && e.detail_json.contains("unlocked")),
        "{changes:?}"
    );

    // The admin cannot disable their own account, whatever the browser sends.
    let own = desk
        .submit("/accounts", "/accounts/disable", &[("username", "hal")])
        .await;
    assert_eq!(own.status, 422);
    assert!(own.body.contains("your own account"));

    // Adding an account shows its credentials once, and they sign in.
    let added = desk
        .submit(
            "/accounts",
            "/accounts/add",
            &[("username", "newbie"), ("role", "chair")],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let password = element_text(&added, "issued-password").to_owned();
    let secret = element_text(&added, "issued-totp-secret").to_owned();
    let newbie = Login::new(
        "newbie",
        password,
        totp_rs::Secret::Encoded(secret)
            .to_bytes()
            .expect("base32 secret"),
    );
    let mut web = browser(&node, &fed);
    assert_eq!(web.sign_in(&newbie).await.location(), "/cases");
    let taken = desk
        .submit(
            "/accounts",
            "/accounts/add",
            &[("username", "newbie"), ("role", "chair")],
        )
        .await;
    assert_eq!(taken.status, 422);
    assert!(taken.body.contains(r#"id="account-username-error""#));
    node.shutdown().await;
}

#[tokio::test]
async fn a_case_worker_cannot_open_or_use_the_accounts_page() {
    let (fed, _core, school) = federation("30m");
    let node = tatmx_tests::start(&school).await;
    let worker = add_user(&school, "ivy", "case-worker").await;
    let _other = add_user(&school, "joe", "case-worker").await;
    let mut web = signed_in(&node, &fed, &worker).await;
    let inbox = web.get("/cases").await;
    assert!(!inbox.body.contains(r#"href="/accounts""#), "no menu entry");
    assert_eq!(web.get("/accounts").await.status, 403);
    for action in ["add", "disable", "unlock", "reset", "authenticator"] {
        let refused = web
            .submit(
                "/cases",
                &format!("/accounts/{action}"),
                &[("username", "joe"), ("role", "admin")],
            )
            .await;
        assert_eq!(refused.status, 403, "{action}");
    }
    let changes = tatmx_tests::audit_entries(&school, "account-change").await;
    assert!(
        changes.iter().all(|e| e.actor != "console ivy"),
        "{changes:?}"
    );
    node.shutdown().await;
}
