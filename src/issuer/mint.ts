import { randomBytes } from 'node:crypto';
import { importJWK, SignJWT, type CryptoKey, type KeyObject } from 'jose';
import type { MintRequest, MintedToken, Signer } from './context.js';

/**
 * Where every Bulkhead access token is minted, for every grant. An RFC 9068 JWT: header
 * `{ alg, kid, typ: "at+jwt" }` signed by the tenant's active key; claims `iss` (the tenant's
 * issuer), `sub`, `aud` (exactly the one granted resource, or the home issuer for an agent
 * credential), `client_id`, `tenant_id`, `scope` (absent when empty), `iat`, `exp`, a fresh
 * `jti`, and when they apply `act` (RFC 8693 §4.1), `cnf.jkt` (RFC 9449 §6.1) and
 * `exchanged_from` (the tokens an exchanged token came from, for revocation cascades). This
 * function decides nothing: the grant handlers have decided audience, scopes, lifetime.
 */
const keys = new WeakMap<Signer, Promise<CryptoKey | KeyObject | Uint8Array>>();

function signingKey(signer: Signer) {
  let key = keys.get(signer);
  if (!key) keys.set(signer, (key = importJWK(signer.privateJwk, signer.alg)));
  return key;
}

export async function mintAccessToken(issuer: string, tenantId: string, signer: Signer, req: MintRequest): Promise<MintedToken> {
  const iat = Math.floor((req.now ?? Date.now()) / 1000);
  const exp = req.exp ?? iat + req.ttl;
  if (!(exp > iat)) throw new RangeError('an access token must expire after it is issued');
  const jti = randomBytes(16).toString('base64url');
  const claims: Record<string, unknown> = {
    iss: issuer,
    sub: req.subject,
    aud: req.audience,
    client_id: req.clientId,
    tenant_id: tenantId,
    ...(req.scopes.length ? { scope: req.scopes.join(' ') } : {}),
    iat,
    exp,
    jti,
    ...(req.act ? { act: req.act } : {}),
    ...(req.jkt ? { cnf: { jkt: req.jkt } } : {}),
    ...(req.exchangedFrom?.length ? { exchanged_from: req.exchangedFrom } : {}),
  };
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })
    .sign(await signingKey(signer));
  return { token, jti, exp, expiresIn: exp - iat };
}
