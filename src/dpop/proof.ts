/**
 * DPoP proof verification (RFC 9449, "OAuth 2.0 Demonstrating Proof of Possession").
 *
 * One function, {@link verifyDpopProof}, implements the checks of RFC 9449 §4.3 for the token
 * endpoint (§5) and, given `accessToken`, for a protected resource (§7, the `ath` claim).
 * Every refusal is a {@link DpopError} with a stable `code` and a client-safe message that
 * never echoes the proof or its claims; the caller maps it to `invalid_dpop_proof` (§5, §7.1).
 */
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, compactVerify, EmbeddedJWK, errors, type JWK } from 'jose';
import type { ReplayStore } from '../shared/replay.js';
import { hasDuplicateKeys } from '../shared/strict-json.js';
import { exceedsJwtLength } from '../shared/jwt-size.js';

/** Asymmetric JWS algorithms accepted for proofs (RFC 9449 §4.3 item 5: never `none` or MACs). */
export const DPOP_ALGS: readonly string[] = Object.freeze(['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']);

const MAX_JTI_LENGTH = 256;
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const KEY_REFERENCES = ['jku', 'x5u', 'x5c'];
const B64URL = /^[A-Za-z0-9_-]*$/;

export type DpopErrorCode =
  | 'ERR_DPOP_MULTIPLE_HEADERS' | 'ERR_DPOP_HEADER_TOO_LARGE' | 'ERR_DPOP_MALFORMED' | 'ERR_DPOP_DUPLICATE_MEMBER'
  | 'ERR_DPOP_INVALID_TYP' | 'ERR_DPOP_UNSUPPORTED_ALG' | 'ERR_DPOP_CRIT' | 'ERR_DPOP_KEY_REFERENCE'
  | 'ERR_DPOP_MISSING_JWK' | 'ERR_DPOP_INVALID_JWK' | 'ERR_DPOP_SYMMETRIC_JWK' | 'ERR_DPOP_PRIVATE_JWK'
  | 'ERR_DPOP_BAD_SIGNATURE' | 'ERR_DPOP_INVALID_JTI' | 'ERR_DPOP_INVALID_IAT' | 'ERR_DPOP_HTM_MISMATCH'
  | 'ERR_DPOP_INVALID_HTU' | 'ERR_DPOP_HTU_MISMATCH' | 'ERR_DPOP_IAT_TOO_OLD' | 'ERR_DPOP_IAT_IN_FUTURE'
  | 'ERR_DPOP_ATH_MISMATCH' | 'ERR_DPOP_REPLAY';

/** A refused DPoP proof. `message` is safe to return to the client; `cause` is for logs only. */
export class DpopError extends Error {
  override readonly name = 'DpopError';
  constructor(readonly code: DpopErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface DpopCheck {
  /** The raw request's `DPoP` header value(s), as in node's `IncomingHttpHeaders`. */
  header: string | string[] | undefined;
  /** The request method, e.g. `'POST'` (compared exactly to `htm`). */
  htm: string;
  /** The endpoint URL as the client must have used it, e.g. `${issuer}/token`. */
  htu: string;
  /** When present, the proof must carry `ath` = base64url(sha256(accessToken)) (RFC 9449 §4.3 item 12). */
  accessToken?: string;
  replay: ReplayStore;
  /** Namespace for replay keys, e.g. the tenant id; the key is `dpop\0${scope}\0${jkt}\0${jti}`. */
  scope: string;
  /** Epoch seconds; for tests. */
  now?: () => number;
  /** How old `iat` may be, in seconds (default 60). */
  maxAgeSeconds?: number;
  /** How far in the future `iat` may be, in seconds (default 15). */
  clockToleranceSeconds?: number;
}

export interface DpopResult {
  /** RFC 7638 SHA-256 thumbprint of `jwk`, base64url: the value bound as `cnf.jkt` (RFC 9449 §6). */
  jkt: string;
  jwk: JWK;
  jti: string;
  iat: number;
}

function fail(code: DpopErrorCode, message: string, cause?: unknown): never {
  throw new DpopError(code, message, cause === undefined ? undefined : { cause });
}
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Strictly decodes one base64url JSON part: canonical base64url, valid UTF-8, an object, no duplicate names. */
function decodePart(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  let text: string;
  try {
    const bytes = Buffer.from(part, 'base64url');
    if (bytes.toString('base64url') !== part) throw new Error('non-canonical base64url');
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    value = JSON.parse(text);
  } catch (cause) {
    return fail('ERR_DPOP_MALFORMED', `DPoP proof ${what} is not valid base64url JSON`, cause);
  }
  if (!isObject(value)) fail('ERR_DPOP_MALFORMED', `DPoP proof ${what} is not a JSON object`);
  if (hasDuplicateKeys(text)) fail('ERR_DPOP_DUPLICATE_MEMBER', `DPoP proof ${what} has duplicate member names`);
  return value as Record<string, unknown>;
}

/** The URL without query and fragment, normalised by the WHATWG URL parser (RFC 9449 §4.3 item 9). */
function normaliseHtu(url: string): string {
  const u = new URL(url);
  u.search = '';
  u.hash = '';
  return u.href;
}

/**
 * Verifies the `DPoP` request header per RFC 9449 §4.3 and records its `jti` (§11.1).
 *
 * Checks, in order: a single header value of at most 8192 characters (§4.3 item 1); a compact
 * JWS (item 2) whose protected header and payload are strict JSON without duplicate names
 * (item 3); header `typ` exactly `dpop+jwt` (item 4), `alg` in {@link DPOP_ALGS} (item 5), no
 * `crit`, no `jku`/`x5u`/`x5c`, and an embedded public asymmetric `jwk` (item 7, §4.2); the
 * signature under that `jwk` (item 6); payload `jti` (1..256 chars) and `iat` (item 3), `htm`
 * (item 8), `htu` ignoring query and fragment (item 9), `iat` within `maxAgeSeconds` in the past
 * and `clockToleranceSeconds` in the future (item 11), and, when `accessToken` is given, `ath`
 * (item 12; otherwise `ath` is ignored). Only then is the proof marked used in `check.replay`
 * under `dpop\0${scope}\0${jkt}\0${jti}` until `iat + maxAge + tolerance` (item 10, §11.1).
 *
 * @returns `undefined` when the request carries no `DPoP` header at all, else the proof's key,
 *   its RFC 7638 thumbprint, `jti` and `iat`.
 * @throws {DpopError} for any refused proof; nothing in its message comes from the proof.
 * @throws {TypeError} if `check.htu` itself is not a valid URL (a server misconfiguration).
 */
export async function verifyDpopProof(check: DpopCheck): Promise<DpopResult | undefined> {
  const { header } = check;
  if (header === undefined || (Array.isArray(header) && header.length === 0)) return undefined;
  if (Array.isArray(header) && header.length > 1) fail('ERR_DPOP_MULTIPLE_HEADERS', 'more than one DPoP header');
  const proof = Array.isArray(header) ? header[0]! : header;
  if (exceedsJwtLength(proof)) fail('ERR_DPOP_HEADER_TOO_LARGE', 'DPoP header is too large');
  if (proof.includes(',')) fail('ERR_DPOP_MULTIPLE_HEADERS', 'more than one DPoP header');

  const parts = proof.split('.');
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p)) || !parts[0] || !parts[1]) {
    fail('ERR_DPOP_MALFORMED', 'DPoP proof is not a compact JWS');
  }
  const jose = decodePart(parts[0]!, 'header');
  const claims = decodePart(parts[1]!, 'payload');

  // §4.2/§4.3: the header, checked here rather than trusted to the JOSE library's leniency.
  if (jose.typ !== 'dpop+jwt') fail('ERR_DPOP_INVALID_TYP', 'DPoP proof typ must be dpop+jwt');
  if (typeof jose.alg !== 'string' || !DPOP_ALGS.includes(jose.alg)) fail('ERR_DPOP_UNSUPPORTED_ALG', 'DPoP proof alg is not supported');
  if (jose.crit !== undefined) fail('ERR_DPOP_CRIT', 'DPoP proof must not use crit');
  if (KEY_REFERENCES.some((m) => Object.hasOwn(jose, m))) fail('ERR_DPOP_KEY_REFERENCE', 'DPoP proof key must be an embedded jwk');
  if (jose.jwk === undefined) fail('ERR_DPOP_MISSING_JWK', 'DPoP proof has no jwk');
  const jwk = jose.jwk;
  if (!isObject(jwk) || typeof jwk.kty !== 'string') return fail('ERR_DPOP_INVALID_JWK', 'DPoP proof jwk is invalid');
  if (jwk.kty === 'oct') fail('ERR_DPOP_SYMMETRIC_JWK', 'DPoP proof jwk must be an asymmetric key');
  if (PRIVATE_JWK_MEMBERS.some((m) => Object.hasOwn(jwk, m))) fail('ERR_DPOP_PRIVATE_JWK', 'DPoP proof jwk must not contain private key material');
  // An RSA key's cost is chosen by whoever sends it: only the usual exponent (65537) and 2048 to
  // 4096-bit moduli, so a proof cannot make signature checking arbitrarily expensive.
  if (jwk.kty === 'RSA' && (jwk.e !== 'AQAB' || typeof jwk.n !== 'string' || jwk.n.length < 342 || jwk.n.length > 683)) {
    fail('ERR_DPOP_INVALID_JWK', 'DPoP proof RSA keys must use exponent 65537 and a 2048 to 4096-bit modulus');
  }

  // §4.3 item 6: the signature, under the embedded key and an allowed alg only.
  try {
    await compactVerify(proof, EmbeddedJWK, { algorithms: [...DPOP_ALGS] });
  } catch (err) {
    if (err instanceof errors.JWSSignatureVerificationFailed) fail('ERR_DPOP_BAD_SIGNATURE', 'DPoP proof signature is invalid', err);
    fail('ERR_DPOP_INVALID_JWK', 'DPoP proof jwk is not a usable public key for its alg', err);
  }

  const { jti, iat, htm, htu, ath } = claims;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) return fail('ERR_DPOP_INVALID_JTI', 'DPoP proof jti is missing or invalid');
  if (typeof iat !== 'number' || !Number.isFinite(iat)) return fail('ERR_DPOP_INVALID_IAT', 'DPoP proof iat is missing or invalid');
  if (htm !== check.htm) fail('ERR_DPOP_HTM_MISMATCH', 'DPoP proof htm does not match the request method');
  let proofHtu: string;
  try {
    if (typeof htu !== 'string') throw new TypeError('htu is not a string');
    proofHtu = normaliseHtu(htu);
  } catch (cause) {
    return fail('ERR_DPOP_INVALID_HTU', 'DPoP proof htu is not a valid URL', cause);
  }
  if (proofHtu !== normaliseHtu(check.htu)) fail('ERR_DPOP_HTU_MISMATCH', 'DPoP proof htu does not match the request URL');

  const now = check.now?.() ?? Math.floor(Date.now() / 1000);
  const maxAge = check.maxAgeSeconds ?? 60;
  const tolerance = check.clockToleranceSeconds ?? 15;
  if (now - iat > maxAge) fail('ERR_DPOP_IAT_TOO_OLD', 'DPoP proof is too old');
  if (iat - now > tolerance) fail('ERR_DPOP_IAT_IN_FUTURE', 'DPoP proof iat is in the future');

  if (check.accessToken !== undefined) {
    const expected = createHash('sha256').update(check.accessToken).digest('base64url');
    if (ath !== expected) fail('ERR_DPOP_ATH_MISMATCH', 'DPoP proof ath does not match the access token');
  }

  const jkt = await calculateJwkThumbprint(jwk as JWK, 'sha256');
  // §11.1: last, so a refused proof never uses up its jti.
  if (!(await check.replay.markUsed(`dpop\0${check.scope}\0${jkt}\0${jti}`, iat + maxAge + tolerance))) {
    fail('ERR_DPOP_REPLAY', 'DPoP proof has already been used');
  }
  return { jkt, jwk: jwk as JWK, jti, iat };
}
