import { createHash, randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, CompactSign, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { DPOP_ALGS, DpopError, verifyDpopProof, type DpopCheck, type DpopErrorCode } from '../../src/dpop/proof.js';
import { memoryReplayStore, type ReplayStore } from '../../src/shared/replay.js';

const T = 1_750_000_000;
const clock = () => T;
const HTU = 'https://auth.example.com/t/acme/token';
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjbGllbnQifQ.sig';
const ATH = createHash('sha256').update(TOKEN).digest('base64url');
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

type Alg = 'ES256' | 'EdDSA' | 'Ed25519' | 'RS256' | 'PS256';
const ALGS: Alg[] = ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256'];
type Keys = { publicKey: CryptoKey; privateKey: CryptoKey; jwk: JWK; privateJwk: JWK };
const keys = {} as Record<Alg, Keys>;
let other: Keys; // a second ES256 key

async function newKeys(alg: Alg): Promise<Keys> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { publicKey, privateKey, jwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey) };
}

beforeAll(async () => {
  for (const alg of ALGS) keys[alg] = await newKeys(alg);
  other = await newKeys('ES256');
});

interface ProofOptions {
  alg?: Alg;
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  /** header or claim names to leave out */
  omit?: string[];
  signWith?: CryptoKey | Uint8Array;
  crit?: Record<string, boolean>;
}

/** A well-formed proof for POST HTU at T, signed with the embedded key unless told otherwise. */
async function proof(o: ProofOptions = {}): Promise<string> {
  const alg = o.alg ?? 'ES256';
  const drop = (obj: Record<string, unknown>) => Object.fromEntries(Object.entries(obj).filter(([k]) => !o.omit?.includes(k)));
  const header = drop({ alg, typ: 'dpop+jwt', jwk: keys[alg].jwk, ...o.header });
  const claims = drop({ jti: randomUUID(), iat: T, htm: 'POST', htu: HTU, ...o.claims });
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader(header as { alg: string })
    .sign(o.signWith ?? keys[alg].privateKey, o.crit ? { crit: o.crit } : undefined);
}

/** Hand-crafted ES256 proof from raw JSON text (for duplicate members and alg none). */
async function rawProof(headerJson: string, payloadJson: string, signature?: string): Promise<string> {
  const input = `${b64(headerJson)}.${b64(payloadJson)}`;
  if (signature !== undefined) return `${input}.${signature}`;
  const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.ES256.privateKey, new TextEncoder().encode(input));
  return `${input}.${Buffer.from(sig).toString('base64url')}`;
}
const esHeader = () => JSON.stringify({ alg: 'ES256', typ: 'dpop+jwt', jwk: keys.ES256.jwk });
const claimsJson = () => JSON.stringify({ jti: randomUUID(), iat: T, htm: 'POST', htu: HTU });

/** A replay store that records every call. */
function spyStore(): ReplayStore & { calls: [string, number][] } {
  const inner = memoryReplayStore({ now: clock });
  const calls: [string, number][] = [];
  return { calls, markUsed: (id, exp) => (calls.push([id, exp]), inner.markUsed(id, exp)) };
}

const check = (header: DpopCheck['header'], extra: Partial<DpopCheck> = {}): DpopCheck => ({
  header,
  htm: 'POST',
  htu: HTU,
  replay: memoryReplayStore({ now: clock }),
  scope: 'acme',
  now: clock,
  ...extra,
});

async function refusal(c: DpopCheck): Promise<DpopError> {
  const err = await verifyDpopProof(c).then(
    () => expect.unreachable('proof was accepted'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DpopError);
  return err as DpopError;
}

describe('verifyDpopProof: valid proofs', () => {
  it('accepts only asymmetric algorithms', () => {
    expect(DPOP_ALGS).not.toContain('none');
    expect(DPOP_ALGS.some((a) => a.startsWith('HS'))).toBe(false);
  });

  it.each(ALGS)('accepts a %s proof and returns its RFC 7638 thumbprint', async (alg) => {
    const p = await proof({ alg, claims: { jti: `jti-${alg}` } });
    const result = await verifyDpopProof(check(p));
    expect(result).toEqual({ jkt: await calculateJwkThumbprint(keys[alg].jwk, 'sha256'), jwk: keys[alg].jwk, jti: `jti-${alg}`, iat: T });
  });

  it('accepts a proof built with SignJWT', async () => {
    const p = await new SignJWT({ htm: 'POST', htu: HTU })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: keys.ES256.jwk })
      .setJti(randomUUID())
      .setIssuedAt(T)
      .sign(keys.ES256.privateKey);
    expect((await verifyDpopProof(check(p)))?.jkt).toBe(await calculateJwkThumbprint(keys.ES256.jwk, 'sha256'));
  });

  it('returns undefined when there is no DPoP header', async () => {
    expect(await verifyDpopProof(check(undefined))).toBeUndefined();
    expect(await verifyDpopProof(check([]))).toBeUndefined();
  });

  it.each<[string, ProofOptions, Partial<DpopCheck>]>([
    ['a single-element header array', {}, {}],
    ['htu with a query string and fragment', { claims: { htu: `${HTU}?a=1#frag` } }, {}],
    ['a request URL with a query string', {}, { htu: `${HTU}?x=y` }],
    ['htu differing only by case of scheme/host and default port', { claims: { htu: 'HTTPS://AUTH.Example.COM:443/t/acme/token' } }, {}],
    ['iat exactly maxAgeSeconds old', { claims: { iat: T - 60 } }, {}],
    ['iat exactly clockToleranceSeconds ahead', { claims: { iat: T + 15 } }, {}],
    ['a custom maxAgeSeconds', { claims: { iat: T - 300 } }, { maxAgeSeconds: 300 }],
    ['the right ath for the access token', { claims: { ath: ATH } }, { accessToken: TOKEN }],
    ['a bogus ath when no access token is given', { claims: { ath: 'bogus' } }, {}],
  ])('accepts %s', async (name, opts, extra) => {
    const p = await proof(opts);
    const result = await verifyDpopProof(check(name.startsWith('a single') ? [p] : p, extra));
    expect(result?.jkt).toBe(await calculateJwkThumbprint(keys.ES256.jwk, 'sha256'));
  });
});

describe('verifyDpopProof: replay (RFC 9449 §11.1)', () => {
  it('refuses the same proof twice but accepts a fresh proof from the same key', async () => {
    const replay = memoryReplayStore({ now: clock });
    const p = await proof();
    await verifyDpopProof(check(p, { replay }));
    expect((await refusal(check(p, { replay }))).code).toBe('ERR_DPOP_REPLAY');
    expect(await verifyDpopProof(check(await proof(), { replay }))).toBeDefined();
    // The scope namespaces the key: the same proof is new to another tenant's replay space.
    expect(await verifyDpopProof(check(p, { replay, scope: 'other' }))).toBeDefined();
  });

  it('records dpop\\0scope\\0jkt\\0jti until iat + maxAge + tolerance', async () => {
    const replay = spyStore();
    const p = await proof({ claims: { jti: 'j1', iat: T - 5 } });
    const { jkt } = (await verifyDpopProof(check(p, { replay })))!;
    expect(replay.calls).toEqual([[`dpop\0acme\0${jkt}\0j1`, T - 5 + 60 + 15]]);
  });
});

type Case = [name: string, code: DpopErrorCode, make: () => Promise<DpopCheck['header']>, extra?: Partial<DpopCheck>];
const cases: Case[] = [
  // §4.3 item 1: exactly one header, bounded size
  ['two DPoP headers (array)', 'ERR_DPOP_MULTIPLE_HEADERS', async () => [await proof(), await proof()]],
  ['two DPoP headers joined with a comma', 'ERR_DPOP_MULTIPLE_HEADERS', async () => `${await proof()}, ${await proof()}`],
  ['a header over 8192 characters', 'ERR_DPOP_HEADER_TOO_LARGE', () => proof({ claims: { pad: 'x'.repeat(9000) } })],
  // §4.3 item 2: a well-formed compact JWS
  ['non-JWS garbage', 'ERR_DPOP_MALFORMED', async () => 'not a jwt'],
  ['two parts', 'ERR_DPOP_MALFORMED', async () => (await proof()).split('.').slice(0, 2).join('.')],
  ['five parts (JWE-shaped)', 'ERR_DPOP_MALFORMED', async () => 'a.b.c.d.e'],
  ['an empty string', 'ERR_DPOP_MALFORMED', async () => ''],
  ['a header that is not JSON', 'ERR_DPOP_MALFORMED', async () => `${b64('hello')}.${b64(claimsJson())}.c2ln`],
  ['a payload that is a JSON array', 'ERR_DPOP_MALFORMED', () => rawProof(esHeader(), '[1]')],
  // §4.3 item 3: strict JSON
  ['duplicate claims in the payload', 'ERR_DPOP_DUPLICATE_MEMBER', () => rawProof(esHeader(), `{"jti":"a","iat":${T},"htm":"GET","htm":"POST","htu":"${HTU}"}`)],
  ['duplicate members in the header', 'ERR_DPOP_DUPLICATE_MEMBER', () => rawProof(`{"typ":"JWT",${esHeader().slice(1)}`, claimsJson())],
  // §4.3 item 4: typ
  ['typ JWT', 'ERR_DPOP_INVALID_TYP', () => proof({ header: { typ: 'JWT' } })],
  ['typ application/dpop+jwt', 'ERR_DPOP_INVALID_TYP', () => proof({ header: { typ: 'application/dpop+jwt' } })],
  ['no typ', 'ERR_DPOP_INVALID_TYP', () => proof({ omit: ['typ'] })],
  // §4.3 item 5: asymmetric alg only
  ['alg none', 'ERR_DPOP_UNSUPPORTED_ALG', () => rawProof(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk: keys.ES256.jwk }), claimsJson(), '')],
  ['HS256 with a secret', 'ERR_DPOP_UNSUPPORTED_ALG', async () => {
    const secret = new Uint8Array(32).fill(7);
    return new CompactSign(new TextEncoder().encode(claimsJson()))
      .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: Buffer.from(secret).toString('base64url') } as JWK })
      .sign(secret);
  }],
  // §4.2: the key is the embedded jwk, and nothing else
  ['crit', 'ERR_DPOP_CRIT', () => proof({ header: { crit: ['urn:example:x'], 'urn:example:x': 1 }, crit: { 'urn:example:x': true } })],
  ['jku', 'ERR_DPOP_KEY_REFERENCE', () => proof({ header: { jku: 'https://attacker.example/jwks' } })],
  ['x5c', 'ERR_DPOP_KEY_REFERENCE', () => proof({ header: { x5c: ['MIIB'] } })],
  ['x5u', 'ERR_DPOP_KEY_REFERENCE', () => proof({ header: { x5u: 'https://attacker.example/cert' } })],
  ['no jwk', 'ERR_DPOP_MISSING_JWK', () => proof({ omit: ['jwk'] })],
  ['a kid instead of a jwk', 'ERR_DPOP_MISSING_JWK', () => proof({ omit: ['jwk'], header: { kid: 'k1' } })],
  ['a jwk that is not an object', 'ERR_DPOP_INVALID_JWK', () => proof({ header: { jwk: 'key' } })],
  ['an oct jwk', 'ERR_DPOP_SYMMETRIC_JWK', () => proof({ header: { jwk: { kty: 'oct', k: 'c2VjcmV0' } } })],
  ['a private jwk (d)', 'ERR_DPOP_PRIVATE_JWK', () => proof({ header: { jwk: keys.ES256.privateJwk } })],
  ['an RSA jwk with private members', 'ERR_DPOP_PRIVATE_JWK', () => proof({ alg: 'RS256', header: { jwk: keys.RS256.privateJwk } })],
  ['a jwk of the wrong type for alg', 'ERR_DPOP_INVALID_JWK', () => proof({ header: { jwk: keys.EdDSA.jwk } })],
  // An attacker-chosen RSA exponent or modulus size would choose the cost of verifying.
  ['an RSA jwk with a huge exponent', 'ERR_DPOP_INVALID_JWK', () => proof({ alg: 'RS256', header: { jwk: { ...keys.RS256.jwk, e: Buffer.alloc(384, 0xff).toString('base64url') } } })],
  ['an RSA jwk with exponent 3', 'ERR_DPOP_INVALID_JWK', () => proof({ alg: 'RS256', header: { jwk: { ...keys.RS256.jwk, e: 'Aw' } } })],
  ['an RSA jwk with an 8192-bit modulus', 'ERR_DPOP_INVALID_JWK', () => proof({ alg: 'RS256', header: { jwk: { ...keys.RS256.jwk, n: Buffer.alloc(1024, 0xc3).toString('base64url') } } })],
  // §4.3 item 6: signature
  ['a signature by a different key than the embedded jwk', 'ERR_DPOP_BAD_SIGNATURE', () => proof({ signWith: other.privateKey })],
  ['a tampered payload', 'ERR_DPOP_BAD_SIGNATURE', async () => {
    const [h, , s] = (await proof()).split('.');
    return `${h}.${b64(JSON.stringify({ jti: 'x', iat: T, htm: 'POST', htu: HTU }))}.${s}`;
  }],
  // §4.3 items 3, 8-12: claims
  ['no jti', 'ERR_DPOP_INVALID_JTI', () => proof({ omit: ['jti'] })],
  ['an empty jti', 'ERR_DPOP_INVALID_JTI', () => proof({ claims: { jti: '' } })],
  ['a jti over 256 characters', 'ERR_DPOP_INVALID_JTI', () => proof({ claims: { jti: 'j'.repeat(257) } })],
  ['a numeric jti', 'ERR_DPOP_INVALID_JTI', () => proof({ claims: { jti: 42 } })],
  ['no iat', 'ERR_DPOP_INVALID_IAT', () => proof({ omit: ['iat'] })],
  ['a string iat', 'ERR_DPOP_INVALID_IAT', () => proof({ claims: { iat: String(T) } })],
  ['the wrong htm', 'ERR_DPOP_HTM_MISMATCH', () => proof({ claims: { htm: 'GET' } })],
  ['a lower-case htm', 'ERR_DPOP_HTM_MISMATCH', () => proof({ claims: { htm: 'post' } })],
  ['htu with another path', 'ERR_DPOP_HTU_MISMATCH', () => proof({ claims: { htu: 'https://auth.example.com/t/other/token' } })],
  ['htu with another host', 'ERR_DPOP_HTU_MISMATCH', () => proof({ claims: { htu: 'https://evil.example.com/t/acme/token' } })],
  ['htu with another scheme', 'ERR_DPOP_HTU_MISMATCH', () => proof({ claims: { htu: 'http://auth.example.com/t/acme/token' } })],
  ['an unparsable htu', 'ERR_DPOP_INVALID_HTU', () => proof({ claims: { htu: 'not a url' } })],
  ['a non-string htu', 'ERR_DPOP_INVALID_HTU', () => proof({ claims: { htu: [HTU] } })],
  ['a stale iat', 'ERR_DPOP_IAT_TOO_OLD', () => proof({ claims: { iat: T - 61 } })],
  ['an iat too far in the future', 'ERR_DPOP_IAT_IN_FUTURE', () => proof({ claims: { iat: T + 16 } })],
  ['no ath when an access token is given', 'ERR_DPOP_ATH_MISMATCH', () => proof(), { accessToken: TOKEN }],
  ['the wrong ath', 'ERR_DPOP_ATH_MISMATCH', () => proof({ claims: { ath: createHash('sha256').update('other').digest('base64url') } }), { accessToken: TOKEN }],
];

describe('verifyDpopProof: refusals (RFC 9449 §4.3)', () => {
  it.each(cases)('refuses %s with %s, without using up the jti', async (_name, code, make, extra) => {
    const replay = spyStore();
    const err = await refusal(check(await make(), { replay, ...extra }));
    expect(err.code).toBe(code);
    expect(replay.calls).toEqual([]);
  });

  it('never puts the proof or its claims in the error message', async () => {
    const p = await proof({ claims: { jti: 'secret-jti-value', htm: 'GET' } });
    const err = await refusal(check(p));
    expect(err.code).toBe('ERR_DPOP_HTM_MISMATCH');
    for (const part of [p, ...p.split('.'), 'secret-jti-value']) expect(err.message).not.toContain(part);
  });
});
