// node-oidc-provider as an independent authorization server for
// senderbound's end-to-end test (tests/real_as.rs). Test use only: it keeps
// its signing keys in a scratch file the test names, and its client secrets
// are fixed test values.
//
//   node as.mjs --port 4000 --keys /tmp/keys.json [--rotate] [--drop-old]
//
// --rotate   adds a new signing key in front (it signs from now on)
// --drop-old publishes only the newest key
//
// Clients (client_credentials, client_secret_basic, secret "<id>-secret"):
//   agent           JWT access tokens, 300 s
//   agent-short     JWT access tokens, 1 s
//   agent-opaque    opaque access tokens (introspect them)
//   resource-server the resource server's introspection credentials
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name) => argv[argv.indexOf(name) + 1];
const port = Number(value('--port'));
const keysFile = value('--keys');

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

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: ['agent', 'agent-short', 'agent-opaque', 'resource-server'].map(client),
  jwks: { keys },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    dPoP: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      getResourceServerInfo: (ctx, resource, c) => ({
        scope: 'read write',
        audience: resource,
        accessTokenTTL: c.clientId === 'agent-short' ? 1 : 300,
        accessTokenFormat: c.clientId === 'agent-opaque' ? 'opaque' : 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.proxy = false;

provider.listen(port, '127.0.0.1', () => {
  console.log(`as ready on ${issuer} signing with ${keys[0].kid}`);
});
