// Drives headless Chromium through the browser_app example (tests/browser.rs
// starts the servers and reads the summary this prints).
//
//   node run.mjs --page http://127.0.0.1:P --other-page http://127.0.0.1:O \
//        --api http://127.0.0.1:A --chromium /usr/bin/chromium --screenshots DIR
//
// Steps, each recorded in the summary (one JSON line on stdout):
//   key          the page's key: thumbprint, extractable flag, what exportKey says
//   reload       the same key after a reload (kept in IndexedDB)
//   sign_in      the authorization-code flow with PKCE at node-oidc-provider
//   first        GET /whoami: 401 use_dpop_nonce, then 200 with the nonce
//   second       GET /whoami again: 200 at once (the nonce is kept)
//   replay       the last request's exact headers again: refused
//   outside      the token copied out of the page, used from Node: without a
//                proof, with a proof by another key (after the nonce), as Bearer
//   other_origin the same page on an origin the API does not allow: blocked
// Screenshots of the page's states go to --screenshots.
import { createPrivateKey, generateKeyPairSync, createHash, randomUUID, sign } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import puppeteer from 'puppeteer-core';

const argv = process.argv.slice(2);
const arg = (name) => {
  const i = argv.indexOf(name);
  if (i === -1) throw new Error(`missing ${name}`);
  return argv[i + 1];
};
const pageUrl = arg('--page');
const otherUrl = arg('--other-page');
const api = arg('--api');
const shots = arg('--screenshots');
mkdirSync(shots, { recursive: true });

const summary = { steps: {}, console: [] };
const steps = summary.steps;

const browser = await puppeteer.launch({
  executablePath: arg('--chromium'),
  headless: true,
  // Root in a container has no user namespace sandbox to drop into.
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const timeout = 20_000;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(timeout);
  await page.setViewport({ width: 1100, height: 760 });
  page.on('console', (m) => summary.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => summary.console.push(`pageerror: ${e.message}`));
  const ready = () => page.waitForFunction(() => window.demo?.ready === true);
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png` });

  await page.goto(pageUrl);
  await ready();
  steps.key = await page.evaluate(async () => ({
    jkt: window.demo.jkt,
    extractable: (await window.demo.tryExport()) === 'exported',
    export_error: await window.demo.tryExport(),
  }));
  await page.reload();
  await ready();
  steps.reload = { same_key: (await page.evaluate(() => window.demo.jkt)) === steps.key.jkt };
  await shot('1-signed-out');

  // Sign in: the page goes to the AS, which approves at once and sends the
  // browser back with a code; the page exchanges it with a DPoP proof.
  await Promise.all([page.waitForNavigation(), page.click('#sign-in')]);
  await page.waitForFunction(() => window.demo?.ready === true && window.location.search === '', {
    timeout,
  });
  steps.sign_in = await page.evaluate(() => ({
    token: window.demo.state.token !== null,
    error: window.demo.state.signInError,
    url: location.href,
  }));
  const token = await page.evaluate(() => window.demo.state.token);
  if (token) {
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    steps.sign_in.cnf_jkt_is_the_page_key = claims.cnf?.jkt === steps.key.jkt;
    steps.sign_in.client_id = claims.client_id;
    steps.sign_in.sub = claims.sub;
  }

  steps.first = await page.evaluate(() => window.demo.call());
  await shot('2-called-after-nonce-retry');
  steps.second = await page.evaluate(() => window.demo.call());
  steps.replay = await page.evaluate(() => window.demo.replay());
  await shot('3-replay-refused');

  // Outside the browser: the token copied out of the page, replayed from
  // here. The key stays behind, so no proof can be made for it.
  steps.outside = await outside(token);

  // The same page served from an origin the API does not list.
  const other = await browser.newPage();
  other.setDefaultTimeout(timeout);
  await other.setViewport({ width: 1100, height: 760 });
  other.on('console', (m) => summary.console.push(`other ${m.type()}: ${m.text()}`));
  await other.goto(otherUrl);
  await other.waitForFunction(() => window.demo?.ready === true);
  steps.other_origin = await other.evaluate(() => window.demo.call('/api/read'));
  await other.screenshot({ path: `${shots}/4-other-origin-blocked.png` });
  // Blocked by CORS, not by a network failure: Chromium says which.
  steps.other_origin.cors_reported = summary.console.some(
    (line) => line.startsWith('other') && line.includes('blocked by CORS policy'),
  );
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));

// --- the thief's side ------------------------------------------------------------

async function outside(token) {
  const result = {};
  const get = (headers) => fetch(`${api}/whoami`, { headers, signal: AbortSignal.timeout(timeout) });
  const challenge = (r) => r.headers.get('www-authenticate')?.match(/error="([^"]*)"/)?.[1] ?? null;
  let r = await get({ authorization: `DPoP ${token}` });
  result.no_proof = { status: r.status, error: challenge(r) };
  // A proof by the thief's own key: the nonce first, then the binding.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const proof = (nonce) => {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } });
    const payload = b64({
      jti: randomUUID(),
      htm: 'GET',
      htu: `${api}/whoami`,
      iat: Math.floor(Date.now() / 1000),
      ath: createHash('sha256').update(token).digest('base64url'),
      ...(nonce ? { nonce } : {}),
    });
    const signature = sign('sha256', Buffer.from(`${header}.${payload}`), {
      key: createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' })),
      dsaEncoding: 'ieee-p1363',
    }).toString('base64url');
    return `${header}.${payload}.${signature}`;
  };
  r = await get({ authorization: `DPoP ${token}`, dpop: proof() });
  const nonce = r.headers.get('dpop-nonce');
  result.thief_key_first = { status: r.status, error: challenge(r) };
  r = await get({ authorization: `DPoP ${token}`, dpop: proof(nonce) });
  result.thief_key = { status: r.status, error: challenge(r) };
  r = await get({ authorization: `Bearer ${token}` });
  result.as_bearer = { status: r.status, error: challenge(r) };
  return result;
}
