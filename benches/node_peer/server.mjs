// The Node peer for senderbound's benches/compare (benchmark only, not a
// test and not an example): the DPoP resource server people would otherwise
// write in Node, express + Auth0's express-oauth2-jwt-bearer, configured as
// close to senderbound's defaults as that package allows:
//   - DPoP enabled and required: only `Authorization: DPoP` with a proof
//     bound to the token's cnf.jkt is accepted, Bearer is refused;
//   - ES256 access tokens (RFC 9068, `strict` checks typ at+jwt), issuer and
//     audience checked, keys from the issuer's JWKS;
//   - scope `read` required;
//   - no logging on the hot path (express's default error handler would print
//     every 401 with console.error, so errors are answered here instead).
// The package keeps no record of proof jti values: a replayed proof is
// accepted again while its iat is fresh (300 s back, 30 s ahead).
//
//   npm ci --no-audit --no-fund
//   node server.mjs --port 0 --issuer http://127.0.0.1:4000 \
//        --audience https://api.bench.test [--jwks-uri http://127.0.0.1:4000/jwks]
//
// Without --jwks-uri the package discovers the JWKS from the issuer's
// /.well-known/openid-configuration (plain http works). It listens on
// 127.0.0.1 only (--port 0 picks a free port) and, once listening, prints one
// line to stdout: `listening on http://127.0.0.1:PORT`.
// GET /api/read answers {"ok":true,"sub":...}.
import { parseArgs } from 'node:util';
import express from 'express';
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    'jwks-uri': { type: 'string' },
  },
});
if (args.port === undefined || !args.issuer || !args.audience) {
  console.error('usage: node server.mjs --port P --issuer URL --audience AUD [--jwks-uri URL]');
  process.exit(2);
}

const app = express();
app.disable('x-powered-by');
app.disable('etag');
// No `trust proxy`: nothing sits in front, so the proof's htu is checked
// against this request's own protocol and Host header.

const issuerOptions = args['jwks-uri']
  ? { issuer: args.issuer, jwksUri: args['jwks-uri'] }
  : { issuerBaseURL: args.issuer };

app.get(
  '/api/read',
  auth({
    ...issuerOptions,
    audience: args.audience,
    tokenSigningAlg: 'ES256',
    strict: true,
    dpop: { enabled: true, required: true },
  }),
  requiredScopes('read'),
  (req, res) => {
    res.json({ ok: true, sub: req.auth.payload.sub });
  },
);

// Answers the package's errors (status and WWW-Authenticate) without logging.
app.use((err, req, res, next) => {
  const status = err.status ?? err.statusCode ?? 500;
  if (err.headers) res.set(err.headers);
  res.status(status).json({ ok: false, error: err.code || null });
});

const server = app.listen(Number(args.port), '127.0.0.1', (err) => {
  if (err) throw err;
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
