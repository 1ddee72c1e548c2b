import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { publishedKeys } from '../keys/lifecycle.js';
import { hasDuplicateKeys } from '../shared/strict-json.js';
import { Lru } from '../shared/lru.js';
import type { ActClaim, IssuerContext } from '../issuer/context.js';
import { CLOCK_TOLERANCE_SECONDS } from '../issuer/constants.js';
import type { Decision, Refusal } from './rules.js';
import { MAX_EXCHANGE_LINEAGE, type PresentedToken } from './exchange-rules.js';
import type { Ancestor } from '../tokens/revocations.js';
import { MAX_JWT_LENGTH, exceedsJwtLength } from '../shared/jwt-size.js';

/**
 * Verification of a Bulkhead access token presented to the token endpoint as a subject or
 * actor token (RFC 8693 §2.1), the way a careful resource server would verify it, and then
 * some: the token must be one of ours, from exactly one of the issuers the caller trusts here.
 *
 * Checked before any cryptography: a size bound, compact JWS shape, no duplicate JSON members
 * (parsers disagree on which one wins), `typ: at+jwt` (RFC 9068 §2.1, so ID tokens and client
 * assertions are not access tokens), an asymmetric `alg` that the issuer actually uses, a `kid`,
 * and no key-carrying or critical headers (`jwk`, `jku`, `x5u`, `x5c`, `crit`). Then the
 * signature against the issuer's published keys only (revoked keys are never published),
 * exact `iss`, `exp`/`nbf` with the broker's clock tolerance, the RFC 9068 claims, and
 * `tenant_id` equal to that issuer's tenant.
 */

/** A presented token longer than this is refused before it is parsed (the broker-wide JWT bound). */
export const MAX_PRESENTED_TOKEN_LENGTH = MAX_JWT_LENGTH;
/** Deepest `act` nesting parsed at all (the configured chain limit is enforced separately). */
const MAX_ACT_PARSE_DEPTH = 32;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'crit'];

const jwksCache = new WeakMap<IssuerContext, { at: number; jwks: ReturnType<typeof createLocalJWKSet>; algs: string[] }>();

/** The issuer's published keys as a local JWKS, rebuilt at most once a minute. */
function keysOf(issuer: IssuerContext, now: number) {
  const hit = jwksCache.get(issuer);
  if (hit && now - hit.at < 60_000) return hit;
  const published = publishedKeys(issuer.keys, new Date(now));
  const set: JSONWebKeySet = { keys: published.map((k) => k.publicJwk as never) };
  const entry = { at: now, jwks: createLocalJWKSet(set), algs: [...new Set(published.map((k) => k.alg))] };
  jwksCache.set(issuer, entry);
  return entry;
}

function decodeSegment(segment: string): string | undefined {
  try {
    return Buffer.from(segment, 'base64url').toString('utf8');
  } catch {
    return undefined;
  }
}

function parseObject(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined || hasDuplicateKeys(text)) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function parseLineage(v: unknown): Ancestor[] | undefined | false {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > MAX_EXCHANGE_LINEAGE) return false;
  const out: Ancestor[] = [];
  for (const a of v as unknown[]) {
    if (a === null || typeof a !== 'object') return false;
    const { tenant_id, client_id, jti, iat } = a as Record<string, unknown>;
    if (typeof tenant_id !== 'string' || typeof client_id !== 'string' || typeof jti !== 'string' || typeof iat !== 'number') return false;
    out.push({ tenant_id, client_id, jti, iat });
  }
  return out;
}

function parseAct(v: unknown, depth = 0): ActClaim | undefined | false {
  if (v === undefined) return undefined;
  if (depth >= MAX_ACT_PARSE_DEPTH || v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  if (typeof o.sub !== 'string' || (o.iss !== undefined && typeof o.iss !== 'string')) return false;
  const inner = parseAct(o.act, depth + 1);
  if (inner === false) return false;
  return { sub: o.sub, ...(o.iss !== undefined ? { iss: o.iss as string } : {}), ...(inner ? { act: inner } : {}) };
}

/**
 * Tokens already verified, per issuer. Agents exchange the same credential many times by
 * design, and verifying a signature costs more than the rest of an exchange. An entry is the
 * result of verifying exactly this string against exactly this issuer context; it lives until
 * the token's `exp` at the latest, and it dies with the context, which is rebuilt whenever the
 * tenant's keys change (so a revoked key's tokens are never served from here).
 */
const VERIFIED_PER_ISSUER = 1000;
const verified = new WeakMap<IssuerContext, Lru<string, { token: PresentedToken; expiresAt: number }>>();

export async function verifyPresentedToken(
  name: 'subject_token' | 'actor_token',
  raw: unknown,
  trusted: IssuerContext[],
  now = Date.now(),
): Promise<Decision<{ token: PresentedToken; issuer: IssuerContext }>> {
  if (typeof raw === 'string') {
    for (const issuer of trusted) {
      const hit = verified.get(issuer)?.get(raw);
      if (hit && hit.expiresAt > now) return { ok: true, issuer, token: hit.token };
    }
  }
  const result = await verifyUncached(name, raw, trusted, now);
  if (result.ok && result.token.exp * 1000 > now) {
    let cache = verified.get(result.issuer);
    if (!cache) verified.set(result.issuer, (cache = new Lru(VERIFIED_PER_ISSUER)));
    cache.set(raw as string, { token: result.token, expiresAt: result.token.exp * 1000 });
  }
  return result;
}

async function verifyUncached(
  name: 'subject_token' | 'actor_token',
  raw: unknown,
  trusted: IssuerContext[],
  now: number,
): Promise<Decision<{ token: PresentedToken; issuer: IssuerContext }>> {
  const refuse = (why: string): Refusal => ({ ok: false, error: 'invalid_request', description: `${name}: ${why}` });
  if (typeof raw !== 'string' || raw.length === 0) return refuse('is required');
  if (exceedsJwtLength(raw)) return refuse(`must not exceed ${MAX_PRESENTED_TOKEN_LENGTH} characters`);
  if (!COMPACT_JWS.test(raw)) return refuse('is not a signed JWT');

  const [h, p] = raw.split('.') as [string, string, string];
  const header = parseObject(decodeSegment(h));
  const payload = parseObject(decodeSegment(p));
  if (!header || !payload) return refuse('is not a well-formed JWT (bad JSON or duplicate members)');
  if (typeof header.typ !== 'string' || !/^(application\/)?at\+jwt$/i.test(header.typ)) {
    return refuse('is not an access token (typ must be at+jwt)');
  }
  if (FORBIDDEN_HEADERS.some((k) => k in header)) return refuse('carries a key or critical header, which is not accepted');
  if (typeof header.kid !== 'string') return refuse('has no kid');

  // The issuer is chosen by exact string comparison among those trusted here; nothing is
  // fetched from a URL the token names.
  const issuer = trusted.find((i) => i.issuer === payload.iss);
  if (!issuer) return refuse('was not issued by an issuer trusted for this exchange');
  const { jwks, algs } = keysOf(issuer, now);
  if (typeof header.alg !== 'string' || !algs.includes(header.alg)) return refuse('is signed with an algorithm this issuer does not use');

  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(raw, jwks, {
      issuer: issuer.issuer,
      typ: 'at+jwt',
      algorithms: algs,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: new Date(now),
      requiredClaims: ['exp', 'iat', 'jti', 'sub', 'aud'],
    }));
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_JWT_EXPIRED') return refuse('has expired');
    if (code === 'ERR_JWKS_NO_MATCHING_KEY') return refuse('is signed by a key this issuer does not publish');
    return refuse('failed verification');
  }

  const aud = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
  const scope = claims.scope;
  const act = parseAct(claims.act);
  const lineage = parseLineage(claims.exchanged_from);
  const cnf = claims.cnf as { jkt?: unknown } | undefined;
  if (
    claims.tenant_id !== issuer.tenant.id
    || typeof claims.client_id !== 'string'
    || typeof claims.sub !== 'string'
    || typeof claims.jti !== 'string'
    || !Array.isArray(aud) || aud.length === 0 || !aud.every((a) => typeof a === 'string')
    || (scope !== undefined && typeof scope !== 'string')
    || act === false
    || lineage === false
    || typeof claims.iat !== 'number'
    || (cnf !== undefined && (cnf === null || typeof cnf !== 'object' || typeof cnf.jkt !== 'string'))
  ) {
    return refuse('does not carry the claims of a Bulkhead access token');
  }
  const mayAct = claims.may_act;
  return {
    ok: true,
    issuer,
    token: {
      iss: issuer.issuer,
      sub: claims.sub,
      aud,
      client_id: claims.client_id,
      tenant_id: issuer.tenant.id,
      scopes: typeof scope === 'string' ? scope.split(' ').filter(Boolean) : [],
      exp: claims.exp!,
      iat: claims.iat!,
      jti: claims.jti,
      ...(lineage?.length ? { exchanged_from: lineage } : {}),
      ...(act ? { act } : {}),
      ...(mayAct && typeof mayAct === 'object' ? { may_act: mayAct as PresentedToken['may_act'] } : {}),
      ...(cnf ? { jkt: cnf.jkt as string } : {}),
    },
  };
}
