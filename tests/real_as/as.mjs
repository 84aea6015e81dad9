// node-oidc-provider as an independent authorization server for
// senderbound's end-to-end test (tests/real_as.rs). Test use only: it keeps
// its signing keys in a scratch file the test names, and its client secrets
// are fixed test values.
//
//   node as.mjs --port 4000 --keys /tmp/keys.json [--rotate] [--drop-old]
//               [--mtls-port 4443 --tls-cert as.pem --tls-key as-key.pem]
//
// --rotate    adds a new signing key in front (it signs from now on)
// --drop-old  publishes only the newest key
// --mtls-port also serves the provider over https on this port, asking for
//             (not verifying) a client certificate: tokens for the mtls-*
//             clients are requested there and bound to that certificate
// --browser-client ORIGIN
//             registers the public client `browser-app` of the page at
//             ORIGIN (examples/browser_app.rs): authorization code with
//             PKCE, redirect URI ORIGIN/, DPoP-bound tokens, CORS from
//             ORIGIN; sign-in and consent are approved at once for the
//             user `browser-user` (a test stands in for the human)
//
// Clients (client_credentials, client_secret_basic, secret "<id>-secret"):
//   agent           JWT access tokens, 300 s
//   agent-short     JWT access tokens, 1 s
//   agent-opaque    opaque access tokens (introspect them)
//   resource-server the resource server's introspection credentials
//   mtls-agent      JWT access tokens bound to the TLS client certificate
//                   (RFC 8705 cnf.x5t#S256), 300 s
//   mtls-opaque     the same, opaque (introspect them)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:https';
import Provider from 'oidc-provider';

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name) => argv[argv.indexOf(name) + 1];
const port = Number(value('--port'));
const keysFile = value('--keys');
const mtlsPort = flag('--mtls-port') ? Number(value('--mtls-port')) : undefined;
const browserOrigin = flag('--browser-client') ? value('--browser-client') : undefined;

function newKey() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID().slice(0, 8), alg: 'ES256', use: 'sig' };
}

let keys = existsSync(keysFile) ? JSON.parse(readFileSync(keysFile, 'utf8')).keys : [newKey()];
if (flag('--rotate')) keys = [newKey(), ...keys];
if (flag('--drop-old')) keys = keys.slice(0, 1);
writeFileSync(keysFile, JSON.stringify({ keys }), { mode: 0o600 });

const client = (id) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'ES256',
});

const certificateBound = (id) => ({ ...client(id), tls_client_certificate_bound_access_tokens: true });
const clients = [
  ...['agent', 'agent-short', 'agent-opaque', 'resource-server'].map(client),
  ...['mtls-agent', 'mtls-opaque'].map(certificateBound),
];
if (browserOrigin) {
  clients.push({
    client_id: 'browser-app',
    application_type: 'web',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${browserOrigin}/`],
    token_endpoint_auth_method: 'none', // a public client: PKCE, no secret
    dpop_bound_access_tokens: true, // RFC 9449 §5.2: DPoP or nothing
    id_token_signed_response_alg: 'ES256',
  });
}

// The client certificate of the https listener's TLS socket: undefined on
// the plain http listener, or when the client sent none.
function getCertificate(ctx) {
  const socket = ctx.req.socket;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const { raw } = socket.getPeerCertificate();
  return raw ? new X509Certificate(raw) : undefined;
}

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients,
  jwks: { keys },
  // The page's origin, and only it, may call the token endpoint (CORS).
  clientBasedCORS: (ctx, origin, c) => browserOrigin !== undefined && c.clientId === 'browser-app' && origin === browserOrigin,
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    dPoP: { enabled: true },
    mTLS: { enabled: true, certificateBoundAccessTokens: true, getCertificate },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      getResourceServerInfo: (ctx, resource, c) => ({
        scope: 'read write',
        audience: resource,
        accessTokenTTL: c.clientId === 'agent-short' ? 1 : 300,
        accessTokenFormat: c.clientId.endsWith('-opaque') ? 'opaque' : 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.proxy = false;

// Sign-in and consent, approved at once for `browser-user` (--browser-client):
// the browser follows the redirects, so the page gets its code.
provider.use(async (ctx, next) => {
  if (!browserOrigin || !ctx.path.startsWith('/interaction/')) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId: 'browser-user' } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    if (details.params.scope?.split(' ').includes('openid')) grant.addOIDCScope('openid');
    const resource = details.params.resource;
    for (const r of Array.isArray(resource) ? resource : resource ? [resource] : []) {
      grant.addResourceScope(r, 'read');
    }
    result = { consent: { grantId: await grant.save() } };
  }
  ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
});

const listening = (server, at) => new Promise((resolve) => server.listen(at, '127.0.0.1', resolve));
const servers = [listening(provider, port)];
if (mtlsPort) {
  const tls = {
    cert: readFileSync(value('--tls-cert')),
    key: readFileSync(value('--tls-key')),
    requestCert: true, // ask for a client certificate...
    rejectUnauthorized: false, // ...of any issuer: the binding is the point (RFC 8705 §2.2)
  };
  servers.push(listening(createServer(tls, provider.callback()), mtlsPort));
}
await Promise.all(servers);
console.log(`as ready on ${issuer} signing with ${keys[0].kid}`);
