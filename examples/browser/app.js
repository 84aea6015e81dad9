// The browser DPoP client of examples/browser_app.rs.
//
// - The DPoP key is made by WebCrypto as non-extractable (ES256) and kept in
//   IndexedDB: the page can sign with it after a reload, nothing can read it
//   out (RFC 9449 §2, §11.4; docs/deployment.md, browsers).
// - Sign-in is the authorization-code flow with PKCE (RFC 7636), the code
//   bound to the key with dpop_jkt (RFC 9449 §10) and the token to it with a
//   DPoP proof at the token endpoint (§5): oauth4webapi does the protocol.
// - Calls go to the API on another origin; a 401 `use_dpop_nonce` is retried
//   once with the nonce the API sent (§9), which the page can read only
//   because the API's CORS exposes `DPoP-Nonce` and `WWW-Authenticate`.
//
// `window.demo` is what tests/browser.rs drives (through tests/browser/run.mjs).
import * as oauth from './oauth4webapi.js';

const config = await (await fetch('/config.json')).json();
const issuer = new URL(config.issuer);
const client = { client_id: config.client_id };
const redirectUri = `${location.origin}/`;

// Every request oauth4webapi makes goes through this fetch, which remembers
// what was sent: "Replay the last proof" re-sends exactly that.
const sent = [];
const recordingFetch = (url, options) => {
  sent.push({ url: String(url), method: options.method, headers: { ...options.headers } });
  return fetch(url, options);
};
// The demo's servers speak plain http on loopback (a secure context for
// WebCrypto); anywhere else oauth4webapi's https requirement stays on.
const loopback = (url) => ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname);
const http = {
  [oauth.customFetch]: recordingFetch,
  [oauth.allowInsecureRequests]: loopback(config.issuer) && loopback(config.api),
};

// --- the key: WebCrypto, non-extractable, in IndexedDB ------------------------

function database() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('senderbound-demo', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('keys');
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}

async function stored(name, value) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction('keys', value === undefined ? 'readonly' : 'readwrite');
    const store = tx.objectStore('keys');
    const request = value === undefined ? store.get(name) : store.put(value, name);
    request.onsuccess = () => resolve(value ?? request.result);
    request.onerror = () => reject(request.error);
  });
}

let created = false;
let keyPair = await stored('dpop');
if (!keyPair) {
  // extractable: false. The private key's bytes never reach JavaScript; the
  // CryptoKey object itself is what IndexedDB keeps (structured clone).
  keyPair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
    'verify',
  ]);
  await stored('dpop', keyPair);
  created = true;
}
const DPoP = oauth.DPoP(client, keyPair);
const jkt = await DPoP.calculateThumbprint();

// --- the session ---------------------------------------------------------------

const state = {
  token: sessionStorage.getItem('token'),
  requests: [],
  sender: null,
  signInError: null,
};

let as;
async function authorizationServer() {
  as ??= await oauth
    .discoveryRequest(issuer, http)
    .then((response) => oauth.processDiscoveryResponse(issuer, response));
  return as;
}

async function signIn() {
  const server = await authorizationServer();
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const flowState = oauth.generateRandomState();
  sessionStorage.setItem('flow', JSON.stringify({ codeVerifier, state: flowState }));
  const url = new URL(server.authorization_endpoint);
  url.searchParams.set('client_id', client.client_id);
  url.searchParams.set('redirect_uri', redirectUri);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', 'read');
  url.searchParams.set('resource', config.resource);
  url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(codeVerifier));
  url.searchParams.set('code_challenge_method', 'S256');
  url.searchParams.set('state', flowState);
  url.searchParams.set('dpop_jkt', jkt); // the code is for this key only (§10)
  location.assign(url);
}

async function finishSignIn() {
  const flow = JSON.parse(sessionStorage.getItem('flow') ?? 'null');
  sessionStorage.removeItem('flow');
  history.replaceState(null, '', '/');
  if (!flow) throw new Error('no sign-in in progress');
  const server = await authorizationServer();
  const params = oauth.validateAuthResponse(server, client, new URL(callback), flow.state);
  const grant = async () =>
    oauth.processAuthorizationCodeResponse(
      server,
      client,
      await oauth.authorizationCodeGrantRequest(
        server,
        client,
        oauth.None(), // a public client: PKCE and DPoP, no secret in a page
        params,
        redirectUri,
        flow.codeVerifier,
        { DPoP, additionalParameters: { resource: config.resource }, ...http },
      ),
    );
  const result = await grant().catch((err) => {
    if (oauth.isDPoPNonceError(err)) return grant(); // the AS asked for a nonce
    throw err;
  });
  if (result.token_type?.toLowerCase() !== 'dpop') throw new Error(`token_type ${result.token_type}`);
  state.token = result.access_token;
  sessionStorage.setItem('token', state.token);
}

// The `error` of a challenge, read from WWW-Authenticate (exposed by CORS).
const challengeError = (header) => header?.match(/error="([^"]*)"/)?.[1] ?? null;

function remember(record) {
  state.requests.push(record);
  render();
  return record;
}

// GET `path` at the API with the token and a fresh proof, retrying once on
// use_dpop_nonce (oauth4webapi's DPoP handle keeps the nonce for the next).
async function call(path = '/whoami') {
  const record = { kind: 'call', path, attempts: [], retried: false };
  const url = new URL(`${config.api}${path}`);
  const once = async () => {
    try {
      const response = await oauth.protectedResourceRequest(
        state.token ?? 'no-token',
        'GET',
        url,
        undefined,
        undefined,
        { DPoP, ...http },
      );
      record.attempts.push({ status: response.status });
      return response;
    } catch (err) {
      if (err instanceof oauth.WWWAuthenticateChallengeError) {
        record.attempts.push({
          status: err.status,
          error: challengeError(err.response.headers.get('www-authenticate')),
          nonce: err.response.headers.has('dpop-nonce'),
        });
      }
      throw err;
    }
  };
  try {
    const response = await once().catch((err) => {
      if (oauth.isDPoPNonceError(err)) {
        record.retried = true;
        return once();
      }
      throw err;
    });
    record.status = response.status;
    if (response.ok) state.sender = record.sender = await response.json();
  } catch (err) {
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      record.status = err.status;
      record.error = record.attempts.at(-1)?.error ?? null;
    } else {
      // fetch() rejects without a response: the browser blocked it (CORS),
      // or the network failed. The page is told nothing more.
      record.blocked = true;
      record.failure = `${err.name}: ${err.message}`;
    }
  }
  return remember(record);
}

// The exact headers of the last API request (same proof, same token) again.
async function replay() {
  const apiOrigin = new URL(config.api).origin;
  const last = sent.filter((s) => new URL(s.url).origin === apiOrigin).at(-1);
  if (!last) return remember({ kind: 'replay', skipped: 'no request yet' });
  const record = { kind: 'replay', path: new URL(last.url).pathname };
  try {
    const response = await fetch(last.url, { method: last.method, headers: last.headers });
    record.status = response.status;
    record.error = challengeError(response.headers.get('www-authenticate'));
  } catch (err) {
    record.blocked = true;
    record.failure = `${err.name}: ${err.message}`;
  }
  return remember(record);
}

// What the page can do with its own private key besides signing: nothing.
async function tryExport() {
  try {
    await crypto.subtle.exportKey('jwk', keyPair.privateKey);
    return 'exported';
  } catch (err) {
    return err.name;
  }
}

// --- the page ------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function render() {
  $('origin').textContent = location.origin;
  $('alg').textContent = 'ES256 (ECDSA P-256, WebCrypto)';
  $('jkt').textContent = jkt;
  $('extractable').textContent = keyPair.privateKey.extractable
    ? 'extractable'
    : 'non-extractable: signs here, cannot be exported';
  $('stored').textContent = `IndexedDB (${created ? 'made on this visit' : 'made on an earlier visit'})`;
  $('issuer').textContent = config.issuer;
  $('api').textContent = config.api;
  $('token').textContent = state.token
    ? `DPoP-bound to this key, ${state.token.length} characters (never shown)`
    : 'none: sign in';
  $('sender').textContent = state.sender ? JSON.stringify(state.sender, null, 2) : '—';
  // Text only: what the servers said never becomes markup.
  const cell = (text, className) => {
    const td = document.createElement('td');
    if (className) {
      const span = document.createElement('span');
      span.className = className;
      span.textContent = text;
      td.append(span);
    } else {
      td.textContent = text;
    }
    return td;
  };
  const rows = state.requests.map((r, i) => {
    const tried = (r.attempts ?? []).map((a) => `${a.status}${a.error ? ` ${a.error}` : ''}`);
    const what = r.kind === 'replay' ? `replay of the last proof, GET ${r.path}` : `GET ${r.path}`;
    const retry = r.retried ? ` (${tried.join(' → ')})` : '';
    const answer = r.blocked
      ? cell('blocked by the browser (CORS)', 'blocked')
      : r.status === 200
        ? cell('200', 'ok')
        : cell(`${r.status ?? ''} ${r.error ?? r.skipped ?? ''}`, 'refused');
    const tr = document.createElement('tr');
    tr.append(cell(String(i + 1)), cell(`${what}${retry}`), answer);
    return tr;
  });
  $('log').replaceChildren(...rows);
  const last = state.requests.at(-1);
  const banner = $('banner');
  if (state.signInError) {
    banner.className = 'refused';
    banner.textContent = `Sign-in failed: ${state.signInError}`;
  } else if (!last) {
    banner.className = 'idle';
    banner.textContent = state.token ? 'Signed in: call the API.' : 'Signed out: sign in to get a DPoP-bound token.';
  } else if (last.blocked) {
    banner.className = 'blocked';
    banner.textContent = `This origin (${location.origin}) is not allowed by the API: the browser blocked the call.`;
  } else if (last.status === 200) {
    banner.className = 'ok';
    banner.textContent = last.retried
      ? 'Answered 200 after one retry with the nonce the API sent (use_dpop_nonce).'
      : 'Answered 200: the API verified the token, the proof and the key.';
  } else {
    banner.className = 'refused';
    banner.textContent =
      last.kind === 'replay'
        ? `The replayed proof was refused: ${last.status} ${last.error}.`
        : `Refused: ${last.status} ${last.error ?? ''}`;
  }
}

const callback = location.href;
if (new URL(callback).searchParams.has('code') || new URL(callback).searchParams.has('error')) {
  await finishSignIn().catch((err) => {
    state.signInError = `${err.name}: ${err.message}`;
  });
}

$('sign-in').onclick = () => signIn();
$('call').onclick = () => call();
$('replay').onclick = () => replay();
render();

window.demo = { state, jkt, call, replay, signIn, tryExport, ready: true };
