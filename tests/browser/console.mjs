// The staff console in a real browser: Debian's headless Chromium driven by playwright-core's
// library API, against the real nodes that tests/tests/browser.rs starts. Each scenario of
// issue 10's "Tests" section is one function below; each can fail on its own, and the run
// fails if any did. Later scenarios build on the referral the earlier ones made, so one that
// is missing what an earlier one should have made fails with that reason.
//
// Run it through `cargo test -p tatmx-tests --test browser -- --nocapture`, which starts the
// nodes and sets the variables read below (see README.md beside this file).

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

// A variable the Rust test sets; without it nothing can run.
function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`console.mjs: ${name} is not set; run it through tests/tests/browser.rs`);
    process.exit(2);
  }
  return value;
}

const SCHOOL = need('TATMX_SCHOOL_CONSOLE');
const CORE = need('TATMX_CORE_CONSOLE');
const CORE_TEAM = need('TATMX_CORE_TEAM');
const CORE_IDLE_LOCK_MS = Number(need('TATMX_CORE_IDLE_LOCK_MS'));
const ACCOUNTS = JSON.parse(need('TATMX_ACCOUNTS'));
const SHOTS = need('TATMX_SCREENSHOTS');
const CHROMIUM = process.env.TATMX_CHROMIUM || '/usr/bin/chromium';
const CERTIFICATES = need('TATMX_CONSOLE_CERTS').split(path.delimiter);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// Each wait for the page is at most this long, so a failure is reported quickly.
const STEP_MS = 10_000;
// How long a referral or a status change may take to cross from one node to the other.
const DELIVERY_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// TOTP (RFC 6238: HMAC-SHA-1 over the 30-second step, 6 digits), as an authenticator app
// computes it from the base32 secret `tatmx user add` prints.

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const char of text.toUpperCase().replace(/=+$/, '')) {
    const index = alphabet.indexOf(char);
    if (index < 0) throw new Error(`not base32: ${JSON.stringify(char)}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// The code for the raw `key` at `seconds` since the epoch, with `digits` digits.
function hotpAt(key, seconds, digits = 6) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(seconds / 30)));
  const mac = crypto.createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const number = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return String(number).padStart(digits, '0');
}

// The code an authenticator app shows `ahead` seconds from now. A code works once, so a
// second sign-in of the same account within one step uses the next step's code (the node
// accepts one step of clock drift either way).
function totp(account, ahead = 0) {
  return hotpAt(base32Decode(account.totp_secret), Date.now() / 1000 + ahead);
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

// A team's id as the console names it: `county-core` reads "County Core".
function teamName(id) {
  return id.split(/[-_]/).filter((w) => w).map((w) => w[0].toUpperCase() + w.slice(1)).join(' ');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// The SHA-256 of a certificate's public key (SPKI), base64, as Chromium's
// --ignore-certificate-errors-spki-list takes it.
function spkiHash(pemPath) {
  const certificate = new crypto.X509Certificate(fs.readFileSync(pemPath));
  const der = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

// Everything the run found wrong outside a scenario's own checks: accessibility violations,
// and Content-Security-Policy refusals and script errors, by page.
const findings = { axe: [], csp: [], checkedPages: [], screenshots: [] };
// What the scenarios share: the referral's id and the like.
const state = {};

function needState(key, madeBy) {
  assert(state[key] !== undefined, `needs ${key}, which "${madeBy}" did not make`);
  return state[key];
}

// A page in `context` that reports every CSP refusal and script error to `findings`.
async function newPage(context, who) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('console', (message) => {
    if (/Content[- ]Security[- ]Policy/i.test(message.text())) {
      findings.csp.push(`${who} at ${page.url()}: ${message.text()}`);
    }
  });
  page.on('pageerror', (error) => findings.csp.push(`${who} at ${page.url()}: ${error.message}`));
  return page;
}

// Clicks `selector`, which submits a form, and waits for the page that answers it.
async function submit(page, selector) {
  // Marks the document so the wait below knows the new one from the old.
  await page.evaluate(() => document.documentElement.setAttribute('data-stale', 'yes'));
  await page.click(selector);
  await page.locator('html:not([data-stale])').waitFor({ state: 'attached' });
  await page.waitForLoadState('load');
}

// Signs `account` in at `base`, as a person would type it, and returns where it landed.
async function signIn(page, base, account, ahead = 0) {
  await page.goto(`${base}/sign-in`);
  await page.getByLabel('Username').fill(account.username);
  await page.getByLabel('Password', { exact: true }).fill(account.password);
  await page.getByLabel('Code from your authenticator app').fill(totp(account, ahead));
  await submit(page, '#sign-in');
  const url = new URL(page.url());
  if (url.pathname === '/sign-in') {
    const notice = (await page.locator('.notice').allInnerTexts()).join(' ')
      || (await page.locator('body').innerText()).slice(0, 300);
    throw new Error(`${account.username} could not sign in: ${notice}`);
  }
  return url.pathname;
}

// Reloads `url` in `page` until `selector` is on it, or `limit` passes.
async function until(page, url, selector, what, limit = DELIVERY_MS) {
  const deadline = Date.now() + limit;
  for (;;) {
    await page.goto(url);
    if ((await page.locator(selector).count()) > 0) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${limit} ms waiting for ${what}`);
    await sleep(250);
  }
}

// A POST made by script in the page, as an attacker's script or a curious user's console
// would make it: the browser adds the session cookie (HttpOnly, so unreadable to the script)
// and the Origin header; `fields` decides whether a CSRF token goes with it.
async function craftedPost(page, action, fields) {
  return page.evaluate(
    async ({ action, fields }) => {
      const response = await fetch(action, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields).toString(),
        redirect: 'manual',
      });
      // A redirect (the console's answer to a change it made) is opaque to the script.
      if (response.type === 'opaqueredirect') return { status: 'a redirect: the change was made', text: '' };
      return { status: response.status, text: await response.text() };
    },
    { action, fields },
  );
}

// The CSRF token of the page's forms, as a script in the page could read it.
async function csrfOf(page) {
  return page.locator('input[name="csrf"]').first().inputValue();
}

// Screenshots the page as `name`.png and checks it with axe-core (WCAG 2.x A and AA rules,
// and best practice): every violation, whatever its impact, goes to `findings`. Then the same
// page at a phone's width, 390 px: it must not scroll sideways, and axe checks it again;
// that screenshot is `name-390.png`.
async function capture(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  findings.screenshots.push(name);
  await axeCheck(page, name);
  const wide = page.viewportSize();
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    const sideways = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (sideways > 0) {
      const culprits = await page.evaluate(() => [...document.querySelectorAll('main *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 4)
        .map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${e.className ? `.${String(e.className).split(' ').join('.')}` : ''}`));
      findings.axe.push(`${name} at 390 px: scrolls sideways by ${sideways} px (${culprits.join(', ')})`);
    }
    await page.screenshot({ path: path.join(SHOTS, `${name}-390.png`), fullPage: true });
    await axeCheck(page, `${name} at 390 px`);
  } finally {
    await page.setViewportSize(wide);
  }
}

async function axeCheck(page, name) {
  // axe is put into the page through the DevTools protocol, which the page's own
  // Content-Security-Policy (script-src 'self') does not govern, so the pages are checked
  // with their real CSP in force: no bypassCSP context, which would also hide any inline
  // script or style the CSP refuses.
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.evaluate(`${AXE}\n;undefined`);
  }
  const result = await page.evaluate(() =>
    window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      resultTypes: ['violations'],
    }),
  );
  findings.checkedPages.push(name);
  for (const violation of result.violations) {
    const where = violation.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ');
    findings.axe.push(`${name}: ${violation.impact} ${violation.id} (${violation.help}) at ${where}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The scenarios, in the order they run.

// The TOTP code computed here is RFC 6238's own: its SHA-1 test vector, cut to 6 digits.
async function totpMatchesTheRfc() {
  const key = Buffer.from('12345678901234567890');
  assert(hotpAt(key, 59, 8) === '94287082', 'RFC 6238 vector at T=59');
  assert(hotpAt(key, 1111111109, 8) === '07081804', 'RFC 6238 vector at T=1111111109');
  assert(base32Decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ').equals(key), 'base32 of the RFC key');
}

// A case worker signs in with password and TOTP; the session cookie is one scripts cannot read.
async function signInWithPasswordAndCode({ browser }) {
  const context = await browser.newContext(contextOptions);
  const page = await newPage(context, 'school case worker');
  await page.goto(`${SCHOOL}/sign-in`);
  await capture(page, 'sign-in');
  const landed = await signIn(page, SCHOOL, ACCOUNTS.school.worker);
  assert(landed === '/cases', `a case worker lands on My cases, not ${landed}`);
  const who = await page.locator('#signed-in-as').innerText();
  assert(who.includes(ACCOUNTS.school.worker.username) && who.includes('case worker'), `signed in as: ${who}`);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === '__Host-tatmx-session');
  assert(session, `no session cookie among ${cookies.map((c) => c.name)}`);
  assert(session.httpOnly && session.secure && session.sameSite === 'Strict', `cookie: ${JSON.stringify(session)}`);
  assert(!(await page.evaluate(() => document.cookie)).includes('tatmx-session'), 'a script can read the session cookie');
  state.schoolWorker = page;
}

// Wrong passwords are limited: the fifth in a row locks the account, and then even the right
// password and code are refused.
async function wrongPasswordsAreRateLimited({ browser }) {
  const context = await browser.newContext(contextOptions);
  const page = await newPage(context, 'school locked-out case worker');
  const account = ACCOUNTS.school.lockout;
  const wrong = { ...account, password: `${account.password}-wrong` };
  let last = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    await signIn(page, SCHOOL, wrong).then(
      () => { throw new Error(`attempt ${attempt} with a wrong password signed in`); },
      (e) => { last = e.message; },
    );
    if (attempt < 5) assert(!/locked/i.test(last), `locked already at attempt ${attempt}: ${last}`);
  }
  assert(/locked/i.test(last) && /try again after/i.test(last), `the fifth failure says the account is locked: ${last}`);
  const right = await signIn(page, SCHOOL, account).then(() => 'signed in', (e) => e.message);
  assert(/locked/i.test(right), `the right password and code while locked: ${right}`);
  await context.close();
}

// A case worker at the school fills in a new referral in words; the live preview shows the
// mental health information staying at the school, with its reason, and the rest reaching
// the core team. An untouched form is refused beside its fields first, in words.
async function previewShowsMentalHealthWithheld() {
  const page = needState('schoolWorker', 'sign in with password and code');
  await page.goto(`${SCHOOL}/referrals/new`);
  // Sending the untouched form: each missing choice is named beside its field, in words.
  await submit(page, '#send-referral');
  await page.locator('#problems').waitFor();
  const problems = await page.locator('#problems').innerText();
  assert(/Choose the team to send this to/.test(problems), `untouched form: ${problems}`);
  assert(/Choose why the law allows you to share this/.test(problems), `untouched form: ${problems}`);
  assert(!/referral\.|legal_basis|recipient:/.test(problems), `a field path on the page: ${problems}`);
  await page.locator('#recipient-error').waitFor();
  await capture(page, 'new-referral-problems');
  state.caseRef = `LHS-${Date.now().toString(36).toUpperCase()}`;
  await page.getByLabel('The team to send it to').selectOption({ label: teamName(CORE_TEAM) });
  await page.getByLabel('Ask a team to assess a person of concern').check();
  await page.getByLabel(/A health or safety emergency at school/).check();
  await page.getByLabel('Why the law allows sharing without consent').fill(
    'A student told two classmates he would bring a weapon to school on Friday.',
  );
  await page.getByLabel('Your case number').fill(state.caseRef);
  await page.getByLabel('Scheme (for example CSTAG or NTAC)').fill('CSTAG');
  await page.getByLabel('Level (for example moderate)').fill('serious substantive');
  await page.getByLabel('Full name').fill('Jordan Example');
  await page.getByLabel('Date of birth').fill('2010-04-02');
  await page.locator('#behavior-leakage').check();
  await page.getByLabel('When: told others').fill('2026-11-20');
  await page.getByLabel('What kind of threat').fill('targeted-violence');
  await page.getByLabel('Who or what is threatened').fill('school');
  await page.getByLabel('What happened, in your own words').fill('Said in the cafeteria that "Friday is the day"; classmates reported it.');
  const count = (await page.locator('#narrative-count').innerText()).trim();
  assert(/^\d+ of 4000 characters$/.test(count), `the narrative's counter: ${count}`);
  await page.getByLabel('Diagnoses').fill('Generalised anxiety disorder');
  await page.getByLabel('Who reported it').fill('A teacher');
  // The preview follows the form (htmx, on change and after typing stops).
  const mentalHealth = page.locator('#preview li[data-category="MENTAL_HEALTH"][data-outcome="withhold"]');
  await mentalHealth.waitFor();
  const words = (await mentalHealth.innerText()).trim();
  assert(/Mental health information/.test(words) && /Stays here/.test(words) && /Why:/.test(words),
    `the mental health decision in words: ${words}`);
  assert(!/MENTAL_HEALTH/.test(words), `a code shows outside Details: ${words}`);
  await page.locator('#preview li[data-category="THREAT"][data-outcome="disclose"]').waitFor();
  const summary = await page.locator('#preview-decisions-summary').innerText();
  assert(summary.includes(teamName(CORE_TEAM)), `preview summary: ${summary}`);
  // The reporter is typed last; its entry shows once the preview has caught up with the form.
  await page.locator('#preview li[data-category="REPORTER_IDENTITY"]').waitFor();
  state.mentalHealthReason = words;
  await capture(page, 'new-referral-full');
  // The screenshot the README shows: from the page's heading to the end of the preview, the
  // form as filled in beside what will reach the core team and what stays, and why.
  await page.evaluate(() => window.scrollTo(0, 0));
  const heading = await page.locator('main h1').boundingBox();
  const preview = await page.locator('.compose-preview').boundingBox();
  const top = Math.max(0, heading.y - 16);
  await page.screenshot({
    path: path.join(SHOTS, 'new-referral.png'),
    fullPage: true,
    clip: { x: 0, y: top, width: contextOptions.viewport.width, height: preview.y + preview.height + 24 - top },
  });
  findings.screenshots.push('new-referral');
}

// "Check and send" shows what will reach the team once more and sends nothing; "Confirm
// and send" sends it and shows the case as sent.
async function sendTheReferral() {
  const page = needState('schoolWorker', 'sign in with password and code');
  needState('caseRef', 'the preview');
  await submit(page, '#send-referral');
  await page.locator('#confirm-send').waitFor();
  const check = await page.locator('main').innerText();
  assert(/Nothing has been sent yet/.test(check), `the check page: ${check.slice(0, 300)}`);
  await capture(page, 'new-referral-check');
  await submit(page, '#confirm-send');
  const match = new URL(page.url()).pathname.match(/^\/referrals\/([0-9a-f-]{36})$/);
  assert(match, `after sending, the page is ${page.url()}`);
  state.referralId = match[1];
}

// The school finds what it sent on "My cases" by the case number it typed, which it kept.
async function schoolFindsItsCase() {
  const id = needState('referralId', 'send the referral');
  const page = needState('schoolWorker', 'sign in with password and code');
  const done = await page.locator('#done').innerText();
  assert(/sent/i.test(done), `after sending, the case page says: ${done}`);
  await page.click('nav a[href="/cases"]');
  await page.locator('#cases-table').waitFor();
  await page.locator('#cases-q').fill(state.caseRef.toLowerCase());
  await submit(page, '#cases-search-button');
  const row = page.locator(`#case-${id}`);
  await row.waitFor();
  const text = await row.innerText();
  assert(text.includes(state.caseRef), `the case's row does not show its case number: ${text}`);
  assert((await page.locator('#cases-table tbody tr').count()) === 1, 'the search found other cases');
  await capture(page, 'my-cases');
}

// The referral appears at the other node, on the county's "My cases", marked New.
async function appearsInTheCoreTeamsConsole({ browser }) {
  const id = needState('referralId', 'send the referral');
  const context = await browser.newContext(contextOptions);
  const page = await newPage(context, 'core case worker');
  const landed = await signIn(page, CORE, ACCOUNTS.core.worker);
  assert(landed === '/cases', `a case worker lands on ${landed}`);
  await until(page, `${CORE}/cases`, `#case-${id}`, 'the referral on the county\'s My cases');
  assert((await page.locator(`#case-unread-${id}`).count()) === 1, 'the new case is not marked New');
  const text = await page.locator(`#case-${id}`).innerText();
  assert(/waiting for your team to accept or decline/i.test(text), `its status in words: ${text}`);
  state.coreWorker = page;
  state.coreWorkerLastSeen = Date.now();
}

async function statusOf(page) {
  return page.locator('#referral-status').getAttribute('data-status');
}

// A case worker cannot accept: the action is absent, and a crafted request carrying a valid
// CSRF token is refused with 403.
async function caseWorkerCannotAccept() {
  const id = needState('referralId', 'send the referral');
  const page = needState('coreWorker', 'appears in the core team\'s console');
  await page.goto(`${CORE}/referrals/${id}`);
  state.coreWorkerLastSeen = Date.now();
  const content = await page.locator('#referral-content').innerText();
  assert(content.includes('Jordan Example'), 'the content reached the core team');
  assert(!content.includes('Generalised anxiety'), 'withheld mental-health content reached the core team');
  await page.locator('#withheld tr[data-category="MENTAL_HEALTH"]').waitFor();
  assert((await page.locator('#action-accept').count()) === 0, 'a case worker is offered Accept');
  await page.locator('#no-actions').waitFor();
  const forced = await craftedPost(page, `/referrals/${id}/status`, {
    csrf: await csrfOf(page),
    status: 'accepted',
  });
  state.coreWorkerLastSeen = Date.now();
  assert(forced.status === 403, `a case worker's forced accept answered ${forced.status}`);
  await page.goto(`${CORE}/referrals/${id}`);
  state.coreWorkerLastSeen = Date.now();
  const status = await statusOf(page);
  assert(status === 'received', `after the forced accept the status is ${status}`);
}

// A crafted request without the CSRF token is refused, even from the chair's own session,
// and so is one with a wrong token; nothing changes.
async function postWithoutCsrfTokenIsRefused({ browser }) {
  const id = needState('referralId', 'send the referral');
  const context = await browser.newContext(contextOptions);
  const page = await newPage(context, 'core chair');
  await signIn(page, CORE, ACCOUNTS.core.chair);
  await until(page, `${CORE}/cases`, `#case-${id}`, 'the referral on the chair\'s My cases');
  state.coreChair = page;
  await page.goto(`${CORE}/referrals/${id}`);
  await page.locator('#action-accept').waitFor();
  const missing = await craftedPost(page, `/referrals/${id}/status`, { status: 'accepted' });
  assert(missing.status === 403, `without a token: ${missing.status}`);
  assert(/did not come from this console/.test(missing.text), `without a token: ${missing.text}`);
  const wrong = await craftedPost(page, `/referrals/${id}/status`, { csrf: '0'.repeat(64), status: 'accepted' });
  assert(wrong.status === 403, `with a wrong token: ${wrong.status}`);
  await page.reload();
  const status = await statusOf(page);
  assert(status === 'received', `after the refused requests the status is ${status}`);
}

// The chair accepts it, and the school's console shows the new status, in words.
async function chairAcceptsAndTheSchoolSeesIt() {
  const id = needState('referralId', 'send the referral');
  const chair = needState('coreChair', 'the CSRF scenario (it signs the chair in)');
  const school = needState('schoolWorker', 'sign in with password and code');
  await chair.goto(`${CORE}/referrals/${id}`);
  assert((await statusOf(chair)) === 'received', 'before Accept the status is already changed');
  await submit(chair, '#action-accept');
  assert((await statusOf(chair)) === 'accepted', 'after Accept the status is not accepted');
  await until(school, `${SCHOOL}/referrals/${id}`, '#referral-status[data-status="accepted"]',
    'the school console to show accepted');
  const words = await school.locator('#referral-status').innerText();
  assert(/accepted by their team/i.test(words), `the school reads the status as: ${words}`);
}

// Opens the form of `action` on a case page, fills it with `fill`, waits for its live
// preview, checks it, and confirms it; the case page then says it was done.
async function sendFromCase(page, action, fill, shot) {
  await page.locator(`#${action}-form > summary`).click();
  await fill();
  await page.locator(`#${action}-preview .preview-summary, #${action}-preview .preview-lines, #${action}-preview .decisions`).first().waitFor();
  await submit(page, `#${action}-check`);
  await page.locator('#confirm-send').waitFor();
  if (shot) await capture(page, shot);
  await submit(page, '#confirm-send');
  await page.locator('#done').waitFor();
}

// The county asks the school a question, each step checked before it is sent; the school
// reads it on its case page and answers; the county reads the answer in the conversation.
async function countyAsksAndTheSchoolAnswers() {
  const id = needState('referralId', 'send the referral');
  const chair = needState('coreChair', 'the CSRF scenario (it signs the chair in)');
  const school = needState('schoolWorker', 'sign in with password and code');
  await chair.goto(`${CORE}/referrals/${id}`);
  await sendFromCase(chair, 'ask', async () => {
    await chair.locator('#ask-question').fill('Has he been absent since Monday? Please send attendance notes.');
  }, 'case-check');
  await until(school, `${SCHOOL}/referrals/${id}`, '#conversation li[data-kind="information-request"]',
    'the county\'s question at the school');
  const question = await school.locator('#conversation li[data-kind="information-request"]').innerText();
  assert(question.includes('absent since Monday'), `the school reads the question as: ${question}`);
  await capture(school, 'case-question');
  // The school's list of what is new names the case by the school's own case number.
  await school.click('#notifications-link');
  const news = await school.locator('#notification-list').innerText();
  assert(/County Core asked for information/.test(news) && news.includes(state.caseRef),
    `the school's list of what is new: ${news}`);
  await school.goto(`${SCHOOL}/referrals/${id}`);
  await sendFromCase(school, 'answer', async () => {
    await school.locator('#answer-text').fill('Absent Tuesday and Wednesday; the attendance office called home.');
  });
  await until(chair, `${CORE}/referrals/${id}`, '#conversation li[data-kind="supplement"]',
    'the school\'s answer at the county');
  const answer = await chair.locator('#conversation li[data-kind="supplement"]').innerText();
  assert(answer.includes('Absent Tuesday'), `the county reads the answer as: ${answer}`);
  await capture(chair, 'referral-detail');
}

// The school shares new information; the county chair, on another page, sees the count of
// what is new change without reloading, and the case comes first on My cases.
async function newInformationArrivesWithoutReloading() {
  const id = needState('referralId', 'send the referral');
  const chair = needState('coreChair', 'the CSRF scenario (it signs the chair in)');
  const school = needState('schoolWorker', 'sign in with password and code');
  await chair.goto(`${CORE}/notifications`);
  await chair.locator('#notification-count').waitFor({ state: 'attached' });
  // Opening the list marks all of it seen: the count is now empty.
  await chair.goto(`${CORE}/cases`);
  await chair.locator('#cases-table').waitFor();
  const before = (await chair.locator('#notification-count').innerText()).trim();
  await school.goto(`${SCHOOL}/referrals/${id}`);
  await sendFromCase(school, 'inform', async () => {
    await school.locator('#inform-form input[name="kind"][value="precipitating-event"]').check();
    await school.locator('#inform-form input[name="urgent"]').check();
    await school.locator('#inform-text').fill('He was suspended today after a fight and said it was "the last straw".');
  });
  // No navigation from here on: the header's count is polled.
  const deadline = Date.now() + DELIVERY_MS + 15_000;
  let after = before;
  while (after === before || after === '') {
    if (Date.now() > deadline) throw new Error(`the count of what is new stayed "${before}" without a reload`);
    await sleep(500);
    after = (await chair.locator('#notification-count').innerText()).trim();
  }
  assert(/new/.test(after), `the count reads: ${after}`);
  await capture(chair, 'notification-arrived');
  await chair.click('#notifications-link');
  await chair.locator('#notification-list').waitFor();
  const list = await chair.locator('#notification-list').innerText();
  assert(/shared new information/i.test(list), `the list of what is new: ${list}`);
  assert(!/suspended/.test(list), 'the notification carries the message itself');
  await capture(chair, 'notifications');
  await chair.goto(`${CORE}/cases`);
  const first = await chair.locator('#cases-table tbody tr').first().getAttribute('data-referral-id');
  assert(first === id, `the urgent new information is not first on My cases (${first})`);
  assert((await chair.locator(`#case-urgent-${id}`).count()) === 1, 'the case is not marked urgent');
}

// The county plans and reassesses; the reassessment reaches the school in words.
async function reassessmentReachesTheSchool() {
  const id = needState('referralId', 'send the referral');
  const chair = needState('coreChair', 'the CSRF scenario (it signs the chair in)');
  const school = needState('schoolWorker', 'sign in with password and code');
  const inDays = (days) => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
  await chair.goto(`${CORE}/referrals/${id}`);
  await sendFromCase(chair, 'plan', async () => {
    await chair.locator('#plan-intervention-check-ins').check();
    await chair.locator('#plan-next').fill(inDays(14));
  });
  await sendFromCase(chair, 'reassess', async () => {
    await chair.locator('#reassess-level').fill('moderate');
    await chair.locator('#reassess-intervention-safety-plan').check();
    await chair.locator('#reassess-next').fill(inDays(30));
  });
  await until(school, `${SCHOOL}/referrals/${id}`, '#conversation li[data-kind="reassessment"]',
    'the reassessment at the school');
  const text = await school.locator('#conversation li[data-kind="reassessment"]').innerText();
  assert(/reassessed the risk/i.test(text), `the school reads the reassessment as: ${text}`);
  await capture(school, 'case-reassessed');
}

// A second referral, which the county declines with a coded reason; the school reads the
// reason in words.
async function declineWithACodedReasonArrives() {
  const school = needState('schoolWorker', 'sign in with password and code');
  const chair = needState('coreChair', 'the CSRF scenario (it signs the chair in)');
  await school.goto(`${SCHOOL}/referrals/new`);
  await school.getByLabel('The team to send it to').selectOption({ label: teamName(CORE_TEAM) });
  await school.getByLabel('Nothing that names the person is shared').check();
  await school.locator('#behavior-fixation').check();
  await school.getByLabel('What kind of threat').fill('vague statement');
  await school.locator('#preview .decisions').waitFor();
  await submit(school, '#send-referral');
  await submit(school, '#confirm-send');
  const id = new URL(school.url()).pathname.split('/').pop();
  await until(chair, `${CORE}/referrals/${id}`, '#decline-form', 'the second referral at the county');
  await sendFromCase(chair, 'decline', async () => {
    await chair.locator('#decline-reason_code').selectOption('outside-jurisdiction');
    await chair.locator('#decline-reason').fill('The student lives and studies in the next county.');
  });
  await until(school, `${SCHOOL}/referrals/${id}`, '#referral-status[data-status="declined"]',
    'the decline at the school');
  const line = await school.locator('#conversation li[data-status="declined"]').innerText();
  assert(/outside our jurisdiction/i.test(line), `the school reads the decline as: ${line}`);
  assert(!/outside-jurisdiction/.test(line), `the code shows instead of words: ${line}`);
  await capture(school, 'case-declined');
}

// A consent with nothing chosen is refused beside each choice, and nothing is recorded.
async function consentWithNothingChosenIsRefused() {
  const page = needState('schoolWorker', 'sign in with password and code');
  await page.goto(`${SCHOOL}/consents`);
  const before = await page.locator('#consents-list li').count();
  await page.locator('#consent-subject').fill('LHS-STUDENT-77');
  await submit(page, '#check-consent');
  for (const field of ['teams', 'purposes', 'categories']) {
    await page.locator(`#consent-${field}-error`).waitFor();
  }
  await capture(page, 'consent-refused');
  await page.goto(`${SCHOOL}/consents`);
  assert((await page.locator('#consents-list li').count()) === before, 'a consent was recorded');
  await capture(page, 'consents');
  // Chosen explicitly, it is recorded, and its page shows its whole scope in words.
  await page.locator('#consent-subject').fill('LHS-STUDENT-77');
  await page.locator('#consent-teams-only').check();
  await page.locator('#consent-team-0').check();
  await page.locator('#consent-purposes-only').check();
  await page.locator('#consent-purpose-threat-assessment').check();
  await page.locator('#consent-categories-only').check();
  await page.locator('#consent-category-IDENTITY').check();
  await page.locator('#consent-category-MENTAL_HEALTH').check();
  await submit(page, '#check-consent');
  await page.locator('#protected-warning').waitFor();
  await submit(page, '#confirm-consent');
  const scope = await page.locator('#consent-scope').innerText();
  assert(/Mental health information/.test(scope) && /County Core/.test(scope), `the consent's scope in words: ${scope}`);
  await capture(page, 'consent');
}

// The admin unlocks the account that five wrong passwords locked, from the Accounts page;
// its holder then signs in.
async function adminUnlocksAnAccount({ browser }) {
  const locked = ACCOUNTS.school.lockout;
  const context = await browser.newContext(contextOptions);
  const page = await newPage(context, 'school admin');
  const landed = await signIn(page, SCHOOL, ACCOUNTS.school.admin);
  assert(landed === '/trust', `an admin lands on ${landed}`);
  await page.locator('#certificates-table').waitFor();
  await capture(page, 'trust');
  await page.click('nav a[href="/accounts"]');
  await page.locator('#accounts-list').waitFor();
  const state = await page.locator(`#account-${locked.username}-state`).innerText();
  assert(/locked/i.test(state), `the locked account reads: ${state}`);
  await capture(page, 'accounts');
  await submit(page, `#unlock-${locked.username}`);
  const after = await page.locator(`#account-${locked.username}-state`).innerText();
  assert(!/locked/i.test(after), `after unlocking the account reads: ${after}`);
  await context.close();
  const holder = await browser.newContext(contextOptions);
  const theirs = await newPage(holder, 'the unlocked case worker');
  // Its last code was spent at the lockout; the next step's is a new one.
  const where = await signIn(theirs, SCHOOL, locked, 30);
  assert(where === '/cases', `after the unlock the holder landed on ${where}`);
  await holder.close();
}

// The auditor exports the accounting of disclosures as CSV: its header row, and the referral
// in it with MENTAL_HEALTH among what was withheld.
async function auditorExportsDisclosures({ browser }) {
  const id = needState('referralId', 'send the referral');
  const context = await browser.newContext(contextOptions);
  const page = await newPage(context, 'school auditor');
  const landed = await signIn(page, SCHOOL, ACCOUNTS.school.auditor);
  assert(landed === '/audit', `an auditor lands on ${landed}`);
  const verification = await page.locator('#verification').innerText();
  assert(/intact/.test(verification), `chain verification: ${verification}`);
  await capture(page, 'audit');
  await page.getByLabel(/Your reference for the person or case/).fill(state.caseRef);
  await submit(page, '#show-disclosures');
  const table = await page.locator('#disclosures-list').textContent();
  assert(table.includes(id), 'the accounting lists the referral (its id behind Details)');
  await capture(page, 'audit-disclosures');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const csvPath = path.join(SHOTS, 'disclosures.csv');
  await download.saveAs(csvPath);
  assert(download.suggestedFilename() === 'disclosures.csv', `file name ${download.suggestedFilename()}`);
  const lines = fs.readFileSync(csvPath, 'utf8').split(/\r?\n/).filter((l) => l.length > 0);
  assert(
    lines[0] === 'at,recipient,kind,purpose,legal_basis,consent_id,categories,withheld,rules,referral_id,audit_seq',
    `CSV header: ${lines[0]}`,
  );
  const row = lines.slice(1).find((l) => l.includes(id));
  assert(row, `no CSV row names the referral: ${lines.join(' | ')}`);
  const columns = row.split(',');
  assert(columns[1].endsWith(`/team/${CORE_TEAM}`), `CSV recipient: ${columns[1]}`);
  assert(columns[7].split(' ').includes('MENTAL_HEALTH'), `CSV withheld: ${columns[7]}`);
  await context.close();
}

// The other main pages: each renders for its role, and is screenshot and checked with axe.
async function theOtherPagesRender() {
  const id = needState('referralId', 'send the referral');
  const school = needState('schoolWorker', 'sign in with password and code');
  for (const [route, name, marker] of [
    [`/cases/${id}/references`, 'references', '#references-form'],
    ['/consultations', 'consultations', 'main h1'],
    ['/outbox', 'outbox', '#outbox-table'],
    ['/account/settings', 'settings', '#settings-form'],
    [`/cases/${id}/print`, 'print', '#print-conversation'],
  ]) {
    const response = await school.goto(`${SCHOOL}${route}`);
    assert(response.status() === 200, `${route} answered ${response.status()}`);
    await school.locator(marker).first().waitFor();
    await capture(school, name);
  }
  assert((await school.locator('header.site nav').count()) === 0, 'the print view shows the menu');
}

// A chair changes their own password from the header's link: the form says what is wrong
// when the two new entries differ, and then says the password was changed; the session goes on.
async function holderChangesTheirPassword({ browser }) {
  const account = ACCOUNTS.school.holder;
  const context = await browser.newContext(contextOptions);
  const page = await newPage(context, 'school chair changing their password');
  await signIn(page, SCHOOL, account);
  await page.click('#account-password');
  await page.locator('#password-form').waitFor();
  assert(new URL(page.url()).pathname === '/account/password', `the header's link opened ${page.url()}`);
  await capture(page, 'change-password');
  const fill = async (again) => {
    await page.getByLabel('Current password').fill(account.password);
    await page.getByLabel('New password', { exact: true }).fill('a long new passphrase');
    await page.getByLabel('New password again').fill(again);
    // The sign-in used this step's code; the next step's is a new one.
    await page.getByLabel('Code from your authenticator app').fill(totp(account, 30));
    await submit(page, '#change-password');
  };
  await fill('a long new passphrasE');
  const problem = await page.locator('#password-problem').innerText();
  assert(/not the same/.test(problem), `two different new entries: ${problem}`);
  await fill('a long new passphrase');
  const url = new URL(page.url());
  assert(url.pathname === '/account/password', `after the change: ${page.url()}`);
  const changed = await page.locator('#password-changed').innerText();
  assert(/password was changed/.test(changed), `after the change the page says: ${changed}`);
  await page.goto(`${SCHOOL}/cases`);
  assert(new URL(page.url()).pathname === '/cases', `after the change the session opened ${page.url()}`);
  await context.close();
}

// An idle session locks: after the core console's idle limit, any page leads to the lock
// screen, and the password with a new code unlocks it.
async function idleSessionLocks() {
  const page = needState('coreWorker', 'appears in the core team\'s console');
  const idleFor = Date.now() - state.coreWorkerLastSeen;
  await sleep(Math.max(0, CORE_IDLE_LOCK_MS + 1000 - idleFor));
  await page.goto(`${CORE}/cases`);
  assert(new URL(page.url()).pathname === '/unlock', `an idle session opened ${page.url()}`);
  await page.locator('#unlock-form').waitFor();
  await capture(page, 'unlock');
  await page.goto(`${CORE}/referrals/new`);
  assert(new URL(page.url()).pathname === '/unlock', 'a locked session opened another page');
  await page.getByLabel('Password', { exact: true }).fill(ACCOUNTS.core.worker.password);
  // The sign-in used this step's code; the next step's is a new one.
  await page.getByLabel('Code from your authenticator app').fill(totp(ACCOUNTS.core.worker, 30));
  await submit(page, '#unlock');
  assert(new URL(page.url()).pathname === '/cases', `after unlocking: ${page.url()}`);
}

// The main pages, by the name of their screenshot.
const MAIN_PAGES = ['sign-in', 'my-cases', 'referral-detail', 'case-question', 'case-reassessed',
  'case-declined', 'case-check', 'new-referral', 'new-referral-problems', 'new-referral-check',
  'notifications', 'consultations', 'consents', 'consent-refused', 'consent', 'references', 'outbox',
  'audit', 'trust', 'accounts', 'settings', 'print', 'change-password', 'unlock'];

// Every main page was screenshot this run into the documented folder.
async function screenshotsOfTheMainPages() {
  const missing = MAIN_PAGES.filter((name) => {
    const file = path.join(SHOTS, `${name}.png`);
    return !findings.screenshots.includes(name) || !fs.existsSync(file) || fs.statSync(file).size < 1000;
  });
  assert(missing.length === 0, `no screenshot this run of: ${missing.join(', ')}`);
}

// axe-core checked every main page, wide and narrow, and found no violation of any impact;
// no page scrolled sideways on a phone.
async function noAccessibilityViolations() {
  const unchecked = MAIN_PAGES.map((name) => (name === 'new-referral' ? 'new-referral-full' : name))
    .filter((name) => !findings.checkedPages.includes(name));
  assert(findings.axe.length === 0, `axe-core:\n    ${findings.axe.join('\n    ')}`);
  assert(unchecked.length === 0, `not checked with axe-core: ${unchecked.join(', ')}`);
}

// The pages work under their own Content-Security-Policy: it refused nothing, and no script
// failed.
async function nothingRefusedByTheCsp() {
  assert(findings.csp.length === 0, `refused or failed:\n    ${findings.csp.join('\n    ')}`);
}

// ---------------------------------------------------------------------------------------------

const contextOptions = {
  viewport: { width: 1280, height: 900 },
  locale: 'en-US',
  timezoneId: 'UTC',
  acceptDownloads: true,
};

const scenarios = [
  ['TOTP matches RFC 6238', totpMatchesTheRfc],
  ['sign in with password and TOTP', signInWithPasswordAndCode],
  ['wrong passwords are rate-limited', wrongPasswordsAreRateLimited],
  ['the live preview says in words what reaches the team and why', previewShowsMentalHealthWithheld],
  ['the referral is checked, then sent', sendTheReferral],
  ['the school finds its case by its case number', schoolFindsItsCase],
  ['it appears on the county\'s My cases, marked New', appearsInTheCoreTeamsConsole],
  ['a case worker cannot accept (absent, and 403 when forced)', caseWorkerCannotAccept],
  ['a crafted request without the CSRF token is refused', postWithoutCsrfTokenIsRefused],
  ['the chair accepts, and the school\'s console shows it', chairAcceptsAndTheSchoolSeesIt],
  ['the county asks and the school answers', countyAsksAndTheSchoolAnswers],
  ['new information arrives and the county sees it without reloading', newInformationArrivesWithoutReloading],
  ['a reassessment reaches the school', reassessmentReachesTheSchool],
  ['a decline with a coded reason arrives', declineWithACodedReasonArrives],
  ['a consent with nothing chosen is refused', consentWithNothingChosenIsRefused],
  ['an admin unlocks an account', adminUnlocksAnAccount],
  ['the auditor exports the accounting of disclosures', auditorExportsDisclosures],
  ['consultations, sent messages, settings and the print view render', theOtherPagesRender],
  ['a chair changes their own password', holderChangesTheirPassword],
  ['an idle session locks', idleSessionLocks],
  ['screenshots of the main pages', screenshotsOfTheMainPages],
  ['axe-core: no violations at 1280 px or at 390 px, and no page scrolls sideways', noAccessibilityViolations],
  ['no page\'s CSP refuses anything, and no script fails', nothingRefusedByTheCsp],
];

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  // Only this run's screenshots, so none is mistaken for a page as it is now.
  for (const file of fs.readdirSync(SHOTS)) {
    if (file.endsWith('.png') || file.endsWith('.csv')) fs.rmSync(path.join(SHOTS, file));
  }
  const pins = CERTIFICATES.map(spkiHash).join(',');
  const started = Date.now();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // playwright-core gives Chromium a fresh --user-data-dir of its own. The network flags
    // keep it from reaching for Google's services, which this machine's network refuses.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // The consoles present web certificates from the test federation's throwaway CA, which
      // Chromium has no per-run way to trust. Rather than ignoring every certificate error
      // (ignoreHTTPSErrors), trust exactly these two certificates' keys; Chromium honours
      // this flag only with a --user-data-dir, which playwright-core always passes.
      `--ignore-certificate-errors-spki-list=${pins}`,
    ],
  });
  let passed = 0;
  let failed = 0;
  try {
    for (const [name, run] of scenarios) {
      const t0 = Date.now();
      try {
        await run({ browser });
        passed++;
        console.log(`ok   ${name} (${Date.now() - t0} ms)`);
      } catch (error) {
        failed++;
        console.log(`FAIL ${name} (${Date.now() - t0} ms)\n     ${String(error.stack || error).split('\n').slice(0, 6).join('\n     ')}`);
      }
    }
  } finally {
    await browser.close();
  }
  console.log(`browser: ${scenarios.length} scenarios in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
}

await main();
