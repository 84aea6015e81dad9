// A third-party DPoP client for senderbound's resource_server example:
// panva's oauth4webapi (see package.json for the pinned version) gets a
// DPoP-bound access token from node-oidc-provider (tests/real_as/as.mjs)
// with client_credentials, then calls the resource server with
// protectedResourceRequest and oauth4webapi's DPoP handle.
//
//   node oauth4webapi_client.mjs --issuer http://127.0.0.1:AS --rs http://127.0.0.1:RS \
//        --resource https://api.example.test/ [--client-id agent] [--client-secret agent-secret]
//        [--alg ES256|EdDSA] [--nonce-change none|stdin]
//
// Steps (each recorded in the summary; the file README.md in this
// directory says how the test runs it):
//   token        discovery + client_credentials with resource= and a DPoP proof
//   first        GET /api/read with the documented retry pattern: a resource
//                server that requires nonces answers 401 use_dpop_nonce first
//   valid        GET /api/read again (the nonce is cached by the DPoP handle)
//   replay       the exact headers of `valid` (same proof, same token) re-sent
//                with a plain fetch: must be 401 invalid_dpop_proof
//   query        GET /api/read?x=1&y=a%20b (htu must leave the query out)
//   write        POST /api/write
//   whoami       GET /whoami: the Sender the server verified (its jkt should be
//                the thumbprint of our key)
//   bad_token    the token with a broken signature (informational: how the
//                library reports a DPoP 401 other than use_dpop_nonce)
//   nonce_change with --nonce-change stdin: prints the line `awaiting nonce
//                change` and reads one line from stdin (meanwhile the test
//                restarts the resource server with another --nonce-secret on
//                the same address; the line is empty, or the new base URL),
//                then GET /api/read with the retry pattern (one retry at most)
//
// stdout: at most the line `awaiting nonce change`, then one JSON line (the
// summary). Diagnostics go to stderr. Exit status 0 when `ok` is true.
import * as oauth from 'oauth4webapi';
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

const argv = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = argv.indexOf(name);
  if (i === -1) {
    if (fallback === undefined) throw new Error(`missing ${name}`);
    return fallback;
  }
  return argv[i + 1];
};
const issuer = new URL(arg('--issuer'));
let rsBase = arg('--rs').replace(/\/+$/, '');
const resource = arg('--resource');
const clientId = arg('--client-id', 'agent');
const clientSecret = arg('--client-secret', `${clientId}-secret`);
const alg = arg('--alg', 'ES256');
const nonceChange = arg('--nonce-change', 'none');
// oauth4webapi names an Ed25519 proof's alg "Ed25519" (RFC 9864), which
// senderbound accepts beside "EdDSA".

const version = JSON.parse(
  readFileSync(new URL('./node_modules/oauth4webapi/package.json', import.meta.url), 'utf8'),
).version;

// Every request goes through this fetch, which remembers what was sent: the
// replay step re-sends the exact headers oauth4webapi produced.
const sent = [];
const timeout = () => AbortSignal.timeout(10_000);
const recordingFetch = async (url, options) => {
  sent.push({ url, method: options.method, headers: { ...options.headers } });
  return fetch(url, { ...options, signal: options.signal ?? timeout() });
};
const http = {
  [oauth.customFetch]: recordingFetch,
  [oauth.allowInsecureRequests]: true, // the test servers speak plain http on 127.0.0.1
};

const b64uJson = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
const decodeJwt = (jwt) => {
  const [h, p] = jwt.split('.');
  return { header: b64uJson(h), payload: b64uJson(p) };
};
// error="..." of the DPoP (or Bearer) challenge, from a raw WWW-Authenticate.
const challengeError = (response) => {
  const header = response.headers.get('www-authenticate');
  return header?.match(/error="([^"]*)"/)?.[1] ?? null;
};
// What a captured proof says about how oauth4webapi builds proofs.
const describeProof = (headers, token) => {
  const { header, payload } = decodeJwt(headers.dpop);
  return {
    alg: header.alg,
    typ: header.typ,
    jwk_kty: header.jwk?.kty,
    jwk_crv: header.jwk?.crv,
    htm: payload.htm,
    htu: payload.htu,
    has_nonce: payload.nonce !== undefined,
    has_ath: payload.ath !== undefined,
    ath_ok: token
      ? payload.ath === createHash('sha256').update(token).digest('base64url')
      : undefined,
    authorization_scheme: headers.authorization?.split(' ')[0],
  };
};

const summary = { client: 'oauth4webapi', version, alg, steps: {} };
const steps = summary.steps;

// --- key, AS discovery, client_credentials --------------------------------

const keyPair = await oauth.generateKeyPair(alg);
const DPoP = oauth.DPoP({ client_id: clientId }, keyPair);
const thumbprint = await DPoP.calculateThumbprint();

const as = await oauth
  .discoveryRequest(issuer, { ...http })
  .then((response) => oauth.processDiscoveryResponse(issuer, response));
const client = { client_id: clientId };
const clientAuth = oauth.ClientSecretBasic(clientSecret);

let accessToken;
{
  const statuses = [];
  const grant = async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      clientAuth,
      { scope: 'read write', resource },
      { DPoP, ...http },
    );
    statuses.push(response.status);
    return oauth.processClientCredentialsResponse(as, client, response);
  };
  const result = await grant().catch((err) => {
    if (oauth.isDPoPNonceError(err)) return grant(); // the AS asked for a nonce
    throw err;
  });
  accessToken = result.access_token;
  const claims = decodeJwt(accessToken).payload; // the AS issues JWT access tokens to `agent`
  steps.token = {
    statuses,
    token_type: result.token_type,
    cnf_jkt_matches_key: claims.cnf?.jkt === thumbprint,
    aud: claims.aud,
    scope: result.scope ?? claims.scope,
    proof: describeProof(sent.at(-1).headers),
  };
}

// --- protected resource requests ---------------------------------------------

// One protected resource request with oauth4webapi's documented retry
// pattern: isDPoPNonceError -> the DPoP handle cached the RS-signalled
// nonce -> retry once. Records every status and challenge error.
async function call(method, path, body) {
  const record = { statuses: [], errors: [], retried: false };
  const url = new URL(`${rsBase}${path}`);
  const once = async () => {
    try {
      const response = await oauth.protectedResourceRequest(
        accessToken,
        method,
        url,
        body === undefined ? undefined : new Headers({ 'content-type': 'application/json' }),
        body,
        { DPoP, ...http },
      );
      record.statuses.push(response.status);
      record.errors.push(null);
      return response;
    } catch (err) {
      if (err instanceof oauth.WWWAuthenticateChallengeError) {
        record.statuses.push(err.status);
        record.errors.push(err.cause.find((c) => c.parameters.error)?.parameters.error ?? null);
        record.nonce_header = err.response.headers.has('dpop-nonce');
      }
      throw err;
    }
  };
  let response;
  try {
    response = await once().catch((err) => {
      if (oauth.isDPoPNonceError(err)) {
        record.retried = true;
        return once(); // the RS-signalled nonce is now cached, retrying
      }
      throw err;
    });
  } catch (err) {
    if (!(err instanceof oauth.WWWAuthenticateChallengeError)) throw err;
    record.status = err.status;
    record.error = record.errors.at(-1);
    record.error_description =
      err.cause.find((c) => c.parameters.error)?.parameters.error_description ?? null;
  }
  record.status ??= response.status;
  if (response?.ok) record.nonce_on_success = response.headers.has('dpop-nonce');
  record.proof = describeProof(sent.at(-1).headers, accessToken);
  record.sent = sent.at(-1);
  return { record, response };
}
const strip = ({ sent: _sent, ...rest }) => rest;

{
  const { record } = await call('GET', '/api/read');
  steps.first = strip(record);
}
let captured;
{
  const { record } = await call('GET', '/api/read');
  captured = record.sent;
  steps.valid = strip(record);
}
if (steps.valid.status !== 200) {
  steps.replay = { skipped: 'the valid call failed' };
} else {
  // The exact request again: same DPoP proof, same token, same URL.
  const response = await fetch(captured.url, {
    method: captured.method,
    headers: captured.headers,
    redirect: 'manual',
    signal: timeout(),
  });
  steps.replay = {
    status: response.status,
    error: challengeError(response),
    www_authenticate: response.headers.get('www-authenticate'),
  };
  await response.body?.cancel();
}
{
  // A query string: htu must leave it out (RFC 9449 §4.2), the server
  // compares without it.
  const { record } = await call('GET', '/api/read?x=1&y=a%20b');
  steps.query = strip(record);
}
{
  const { record } = await call('POST', '/api/write', JSON.stringify({ note: 'oauth4webapi' }));
  steps.write = strip(record);
}
{
  const { record, response } = await call('GET', '/whoami');
  steps.whoami = strip(record);
  if (response?.ok) {
    const text = await response.text();
    let sender;
    try {
      sender = JSON.parse(text);
    } catch {
      sender = text;
    }
    steps.whoami.sender = sender;
    steps.whoami.jkt_matches_key = sender?.jkt === thumbprint;
  }
}

{
  // A token the server refuses (signature broken), through the library: how
  // it reports a DPoP 401 that is not use_dpop_nonce. Informational.
  const good = accessToken;
  accessToken = good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  const { record } = await call('GET', '/api/read');
  steps.bad_token = strip(record);
  accessToken = good;
}

// --- the resource server's nonce changes -------------------------------------

if (nonceChange === 'stdin') {
  const before = rsBase;
  process.stdout.write('awaiting nonce change\n');
  const rl = createInterface({ input: process.stdin });
  const line = await new Promise((resolve) => {
    rl.once('line', resolve);
    rl.once('close', () => resolve(''));
  });
  rl.close();
  if (line.trim()) rsBase = line.trim().replace(/\/+$/, '');
  const { record } = await call('GET', '/api/read');
  record.same_origin = new URL(before).origin === new URL(rsBase).origin;
  steps.nonce_change = { mode: nonceChange, ...strip(record) };
} else if (nonceChange !== 'none') {
  throw new Error(`unknown --nonce-change ${nonceChange}`);
}

// --- verdict ------------------------------------------------------------------

const checks = {
  token_dpop_bound: steps.token.token_type.toLowerCase() === 'dpop' && steps.token.cnf_jkt_matches_key,
  first_ok: steps.first.status === 200,
  valid_ok: steps.valid.status === 200 && steps.valid.statuses.length === 1,
  replay_refused: steps.replay.status === 401 && steps.replay.error === 'invalid_dpop_proof',
  query_ok: steps.query.status === 200 && !steps.query.proof.htu.includes('?'),
  write_ok: steps.write.status === 200,
  whoami_ok: steps.whoami.status === 200 && steps.whoami.jkt_matches_key,
  bad_token_refused: steps.bad_token.status === 401 && steps.bad_token.error === 'invalid_token',
};
if (steps.nonce_change) {
  const c = steps.nonce_change;
  checks.nonce_change_recovered =
    c.status === 200 &&
    c.statuses.length <= 2 &&
    (c.statuses.length === 1 || c.errors[0] === 'use_dpop_nonce');
}
summary.checks = checks;
summary.ok = Object.values(checks).every(Boolean);
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exitCode = summary.ok ? 0 : 1;
