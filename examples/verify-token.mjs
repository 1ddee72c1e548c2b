#!/usr/bin/env node
// Verifies a Bulkhead access token the way any resource server would: signature against the
// tenant's JWKS, exact issuer, typ at+jwt, audience. Usage:
//   node examples/verify-token.mjs <issuer> <audience> <token>
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [issuer, audience, token] = process.argv.slice(2);
if (!issuer || !audience || !token) {
  console.error('usage: verify-token.mjs <issuer> <audience> <token>');
  process.exit(2);
}
try {
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt' });
  console.log(JSON.stringify({ verified: true, header: protectedHeader, claims: payload }, null, 2));
} catch (err) {
  console.log(JSON.stringify({ verified: false, code: err.code, message: err.message }, null, 2));
  process.exit(1);
}
