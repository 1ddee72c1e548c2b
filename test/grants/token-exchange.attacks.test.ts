import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac, createPrivateKey, createPublicKey, createSign, randomBytes, randomUUID, sign as nodeSign } from 'node:crypto';
import { CompactSign, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK, type KeyObject } from 'jose';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
/** A correctness bound, not a benchmark: no refusal may take anywhere near this long. */
const CEILING_MS = 2_000;

const b64u = (text: string | Uint8Array) => Buffer.from(text).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

type Signer = { kid: string; alg: string; privateJwk: JWK };
type Key = CryptoKey | KeyObject | Uint8Array;

/**
 * Attacks on the subject and actor tokens of token exchange (RFC 8693), over real HTTP. Each
 * forged token is built by the same code as a control that differs only in the attacked
 * property and is accepted, so every refusal below is the check under test and not an accident
 * of the request's shape. Refusals are 4xx RFC errors (`invalid_request` per RFC 8693 §2.2.2),
 * never 5xx, and come back within a bounded time.
 */
describe.each(DATABASES)('token exchange refuses forged and abusive tokens (%s)', (kind) => {
  let b: TestBroker;
  let agent: { client_id: string; client_secret: string };
  const apiA = 'https://api.acme.test/';
  const apiB = 'https://api.globex.test/';
  let vendor: { issuer: string; signer: Signer; key: Key };
  let acmeKid: string;
  /** The agent's genuine tokens: its home credential, an acme token, a globex token. */
  let credential: string;
  let acmeToken: string;
  let globexToken: string;
  /** A genuine acme token issued to another client of acme (ticket-service). */
  let othersToken: string;

  async function signerOf(tenant: string): Promise<{ signer: Signer; key: Key }> {
    const { signer } = await b.broker.services.keys.loadForIssuer(tenant);
    if (!signer) throw new Error(`tenant ${tenant} has no signer`);
    return { signer, key: await importJWK(signer.privateJwk, signer.alg) };
  }

  async function timed<T>(f: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const out = await f();
    expect(performance.now() - started, 'refused within the ceiling').toBeLessThan(CEILING_MS);
    return out;
  }

  function exchange(tenant: string, form: Record<string, string | string[]>) {
    return timed(() => tokenRequest(b, tenant, { grant_type: TE, subject_token_type: AT, ...form }, { basic: [agent.client_id, agent.client_secret] }));
  }

  /** The agent's credential claims, as its home issuer mints them. */
  function credentialClaims(over: Record<string, unknown> = {}): Record<string, unknown> {
    const t = now();
    return {
      iss: vendor.issuer, sub: agent.client_id, aud: vendor.issuer, client_id: agent.client_id, tenant_id: 'vendor',
      iat: t, exp: t + 300, jti: randomUUID(), ...over,
    };
  }

  /** A compact JWS over exactly `payloadJson` (so duplicate members survive), signed with `key`. */
  async function sign(header: Record<string, unknown>, payloadJson: string, key: Key = vendor.key): Promise<string> {
    return new CompactSign(new TextEncoder().encode(payloadJson)).setProtectedHeader(header as { alg: string }).sign(key);
  }
  const realHeader = (over: Record<string, unknown> = {}) => ({ alg: vendor.signer.alg, kid: vendor.signer.kid, typ: 'at+jwt', ...over });
  /** A token exactly as the vendor issuer would mint it, from our hands: the baseline control. */
  const genuineForgery = (claims = credentialClaims()) => sign(realHeader(), JSON.stringify(claims));
  /** Header and payload as given (objects or exact JSON text), with the signature segment as given. */
  function assemble(header: Record<string, unknown> | string, payload: Record<string, unknown> | string, signature: string): string {
    const h = typeof header === 'string' ? header : JSON.stringify(header);
    const p = typeof payload === 'string' ? payload : JSON.stringify(payload);
    return `${b64u(h)}.${b64u(p)}.${signature}`;
  }
  const hmac = (secret: Uint8Array | string, input: string) => createHmac('sha256', secret).update(input).digest('base64url');

  beforeAll(async () => {
    b = await startTestBroker(kind);
    await b.admin('POST', '/tenants', { id: 'vendor' });
    agent = (await b.admin('POST', '/tenants/vendor/agents', { name: 'triage-bot' })).body;
    const acme = await seedTenant(b, 'acme', { resource: apiA });
    await seedTenant(b, 'globex', { resource: apiB });
    for (const [tenant, api] of [['acme', apiA], ['globex', apiB]] as const) {
      await b.admin('POST', `/tenants/${tenant}/delegations`, { client_id: agent.client_id, scopes: ['tickets:read', 'tickets:write'], resources: [api] });
    }
    const v = await signerOf('vendor');
    vendor = { issuer: b.issuer('vendor'), ...v };
    acmeKid = (await signerOf('acme')).signer.kid;

    const cred = await tokenRequest(b, 'vendor', { grant_type: 'client_credentials' }, { basic: [agent.client_id, agent.client_secret] });
    expect(cred.status).toBe(200);
    credential = cred.body.access_token;
    const a = await exchange('acme', { subject_token: credential, resource: apiA });
    expect(a.status, JSON.stringify(a.body)).toBe(200);
    acmeToken = a.body.access_token;
    const g = await exchange('globex', { subject_token: credential, resource: apiB });
    expect(g.status, JSON.stringify(g.body)).toBe(200);
    globexToken = g.body.access_token;
    const o = await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [acme.client_id, acme.client_secret!] });
    expect(o.status).toBe(200);
    othersToken = o.body.access_token;
  });
  afterAll(() => b?.close());

  interface Attack {
    name: string;
    /** The forged token and its control: the same construction without the attacked property. */
    build(): Promise<{ attack: string; control: string }>;
  }

  const ATTACKS: Attack[] = [
    {
      name: 'alg none, empty signature',
      build: async () => ({
        attack: assemble(realHeader({ alg: 'none' }), credentialClaims(), ''),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'alg none, with a signature segment',
      build: async () => ({
        attack: assemble(realHeader({ alg: 'none' }), credentialClaims(), b64u('x')),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'HS256 keyed with the public JWK (JSON) of the real key, as published',
      build: async () => {
        const input = `${b64u(JSON.stringify(realHeader({ alg: 'HS256' })))}.${b64u(JSON.stringify(credentialClaims()))}`;
        return { attack: `${input}.${hmac(JSON.stringify(await publishedJwk()), input)}`, control: await genuineForgery() };
      },
    },
    {
      name: 'HS256 keyed with the real key\'s SPKI PEM bytes',
      build: async () => {
        const pem = createPublicKey({ key: (await publishedJwk()) as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
        const input = `${b64u(JSON.stringify(realHeader({ alg: 'HS256' })))}.${b64u(JSON.stringify(credentialClaims()))}`;
        return { attack: `${input}.${hmac(pem, input)}`, control: await genuineForgery() };
      },
    },
    {
      name: 'embedded jwk: an attacker key, self-signed, with the kid of a real key',
      build: async () => {
        const attacker = await generateKeyPair('ES256', { extractable: true });
        const jwk = await exportJWK(attacker.publicKey);
        return {
          attack: await sign({ alg: 'ES256', kid: vendor.signer.kid, typ: 'at+jwt', jwk }, JSON.stringify(credentialClaims()), attacker.privateKey),
          control: await genuineForgery(),
        };
      },
    },
    {
      name: 'embedded jwk: the real public key, signed by the real key (the header alone is refused)',
      build: async () => {
        const { d: _d, ...pub } = vendor.signer.privateJwk;
        return {
          attack: await sign(realHeader({ jwk: { kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y, n: pub.n, e: pub.e } }), JSON.stringify(credentialClaims())),
          control: await genuineForgery(),
        };
      },
    },
    {
      name: 'jku header pointing at an attacker JWKS',
      build: async () => ({
        attack: await sign(realHeader({ jku: 'https://attacker.example/jwks.json' }), JSON.stringify(credentialClaims())),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'x5c header',
      build: async () => ({
        attack: await sign(realHeader({ x5c: [randomBytes(300).toString('base64')] }), JSON.stringify(credentialClaims())),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'x5u header',
      build: async () => ({
        attack: await sign(realHeader({ x5u: 'https://attacker.example/cert.pem' }), JSON.stringify(credentialClaims())),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'crit header',
      build: async () => ({
        attack: await new CompactSign(new TextEncoder().encode(JSON.stringify(credentialClaims())))
          .setProtectedHeader({ ...realHeader(), crit: ['b64'], b64: true } as never)
          .sign(vendor.key),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'unknown kid (signed with the real key)',
      build: async () => ({
        attack: await sign(realHeader({ kid: 'not-a-published-kid' }), JSON.stringify(credentialClaims())),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'no kid (signed with the real key)',
      build: async () => {
        const { kid: _kid, ...header } = realHeader();
        return { attack: await sign(header, JSON.stringify(credentialClaims())), control: await genuineForgery() };
      },
    },
    {
      name: 'real key but typ JWT',
      build: async () => ({
        attack: await sign(realHeader({ typ: 'JWT' }), JSON.stringify(credentialClaims())),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'real key but no typ',
      build: async () => {
        const { typ: _typ, ...header } = realHeader();
        return { attack: await sign(header, JSON.stringify(credentialClaims())), control: await genuineForgery() };
      },
    },
    {
      name: 'an ID-token-shaped JWT (typ JWT, aud = the client)',
      build: async () => {
        const t = now();
        const idToken = { iss: vendor.issuer, sub: agent.client_id, aud: agent.client_id, azp: agent.client_id, iat: t, exp: t + 300, auth_time: t, nonce: 'n', jti: randomUUID() };
        return { attack: await sign(realHeader({ typ: 'JWT' }), JSON.stringify(idToken)), control: await genuineForgery() };
      },
    },
    {
      name: 'an ID-token-shaped JWT even when typed at+jwt (aud = the client, no tenant_id)',
      build: async () => {
        const t = now();
        const idToken = { iss: vendor.issuer, sub: agent.client_id, aud: agent.client_id, iat: t, exp: t + 300, auth_time: t, jti: randomUUID() };
        return { attack: await sign(realHeader(), JSON.stringify(idToken)), control: await genuineForgery() };
      },
    },
    {
      name: 'a client assertion (iss = sub = client id, aud = issuer)',
      build: async () => {
        const t = now();
        const assertion = { iss: agent.client_id, sub: agent.client_id, aud: b.issuer('acme'), iat: t, exp: t + 60, jti: randomUUID() };
        return { attack: await sign(realHeader({ typ: 'JWT' }), JSON.stringify(assertion)), control: await genuineForgery() };
      },
    },
    {
      name: 'a client assertion typed at+jwt (its iss is no issuer)',
      build: async () => {
        const t = now();
        const assertion = { iss: agent.client_id, sub: agent.client_id, aud: vendor.issuer, client_id: agent.client_id, tenant_id: 'vendor', iat: t, exp: t + 60, jti: randomUUID() };
        return { attack: await sign(realHeader(), JSON.stringify(assertion)), control: await genuineForgery() };
      },
    },
    {
      name: 'iss with a trailing slash (signed with the real key)',
      build: async () => ({
        attack: await genuineForgery(credentialClaims({ iss: `${vendor.issuer}/` })),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'iss differing in case (signed with the real key)',
      build: async () => ({
        attack: await genuineForgery(credentialClaims({ iss: vendor.issuer.replace('/t/vendor', '/t/VENDOR') })),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'two tenant_id members (signed with the real key; the last is the genuine one)',
      build: async () => {
        const claims = JSON.stringify(credentialClaims());
        return { attack: await sign(realHeader(), claims.replace('{', '{"tenant_id":"acme",')), control: await sign(realHeader(), claims) };
      },
    },
    {
      name: 'two aud members (signed with the real key; the last is the genuine one)',
      build: async () => {
        const claims = JSON.stringify(credentialClaims());
        return { attack: await sign(realHeader(), claims.replace('{', `{"aud":${JSON.stringify(apiA)},`)), control: await sign(realHeader(), claims) };
      },
    },
    {
      name: 'two aud members spelled differently ("aud" and "\\u0061ud")',
      build: async () => {
        const claims = JSON.stringify(credentialClaims());
        return { attack: await sign(realHeader(), claims.replace('{', `{"\\u0061ud":${JSON.stringify(apiA)},`)), control: await sign(realHeader(), claims) };
      },
    },
    {
      name: 'two typ members in the header (signed with the real key; the last is at+jwt)',
      build: async () => {
        const h = `{"alg":"${vendor.signer.alg}","kid":"${vendor.signer.kid}","typ":"JWT","typ":"at+jwt"}`;
        const input = `${b64u(h)}.${b64u(JSON.stringify(credentialClaims()))}`;
        return { attack: `${input}.${rawSign(input)}`, control: await genuineForgery() };
      },
    },
    {
      name: 'a token of 20,000 characters (fits the body limit, not the token bound)',
      build: async () => ({
        attack: await genuineForgery(credentialClaims({ pad: 'x'.repeat(15_000) })),
        control: await genuineForgery(credentialClaims({ pad: 'x'.repeat(1_000) })),
      }),
    },
    {
      name: 'tenant B\'s token with iss, tenant_id and kid rewritten to tenant A\'s (the signature then fails)',
      build: async () => {
        const [h, p, s] = globexToken.split('.') as [string, string, string];
        const header = { ...JSON.parse(Buffer.from(h, 'base64url').toString()), kid: acmeKid };
        const payload = { ...JSON.parse(Buffer.from(p, 'base64url').toString()), iss: b.issuer('acme'), tenant_id: 'acme' };
        return { attack: assemble(header, payload, s), control: acmeToken };
      },
    },
    {
      name: 'tenant B\'s token with only iss rewritten to tenant A\'s',
      build: async () => {
        const [h, p, s] = globexToken.split('.') as [string, string, string];
        const payload = { ...JSON.parse(Buffer.from(p, 'base64url').toString()), iss: b.issuer('acme') };
        return { attack: `${h}.${b64u(JSON.stringify(payload))}.${s}`, control: acmeToken };
      },
    },
    {
      name: 'a genuine token of this tenant, issued to another client (stolen)',
      build: async () => ({ attack: othersToken, control: acmeToken }),
    },
    {
      name: 'a genuine token with a tampered payload (scope added)',
      build: async () => {
        const [h, p, s] = credential.split('.') as [string, string, string];
        const payload = { ...JSON.parse(Buffer.from(p, 'base64url').toString()), scope: 'tickets:write admin' };
        return { attack: `${h}.${b64u(JSON.stringify(payload))}.${s}`, control: credential };
      },
    },
    {
      name: 'a genuine token with a tampered signature',
      build: async () => {
        const [h, p, s] = credential.split('.') as [string, string, string];
        const sig = Buffer.from(s, 'base64url');
        sig[5]! ^= 1;
        return { attack: `${h}.${p}.${b64u(sig)}`, control: credential };
      },
    },
    {
      name: 'an expired token (signed with the real key)',
      build: async () => {
        const t = now();
        return {
          attack: await genuineForgery(credentialClaims({ iat: t - 900, exp: t - 120 })),
          control: await genuineForgery(credentialClaims({ iat: t - 900, exp: t + 120 })),
        };
      },
    },
    {
      name: 'a token not yet valid (nbf in the future, signed with the real key)',
      build: async () => ({
        attack: await genuineForgery(credentialClaims({ nbf: now() + 600 })),
        control: await genuineForgery(credentialClaims({ nbf: now() - 1 })),
      }),
    },
    {
      name: 'a token without exp (signed with the real key)',
      build: async () => ({
        attack: await genuineForgery(credentialClaims({ exp: undefined })),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'a token from the right key but another tenant_id',
      build: async () => ({
        attack: await genuineForgery(credentialClaims({ tenant_id: 'acme' })),
        control: await genuineForgery(),
      }),
    },
    {
      name: 'not a JWS at all (JWE-shaped, five segments)',
      build: async () => ({
        attack: `${b64u('{"alg":"dir","enc":"A128GCM","typ":"at+jwt"}')}..${b64u('iv')}.${b64u('ct')}.${b64u('tag')}`,
        control: await genuineForgery(),
      }),
    },
  ];

  /** The real key's public JWK, as the vendor's JWKS publishes it. */
  async function publishedJwk(): Promise<JWK> {
    const jwks = (await (await fetch(`${vendor.issuer}/jwks`)).json()) as { keys: JWK[] };
    const jwk = jwks.keys.find((k) => k.kid === vendor.signer.kid);
    if (!jwk) throw new Error('the active key is not published');
    return jwk;
  }

  /**
   * A signature by the vendor's real key over an exact signing input, for headers that jose
   * will not produce (duplicate members).
   */
  function rawSign(input: string): string {
    const key = createPrivateKey({ key: vendor.signer.privateJwk as never, format: 'jwk' });
    switch (vendor.signer.alg) {
      case 'ES256':
        return b64u(createSign('sha256').update(input).sign({ key, dsaEncoding: 'ieee-p1363' }));
      case 'EdDSA':
        return b64u(nodeSign(null, Buffer.from(input), key));
      case 'RS256':
        return b64u(createSign('sha256').update(input).sign(key));
      default:
        throw new Error(`unsupported alg ${vendor.signer.alg}`);
    }
  }

  describe.each(['subject_token', 'actor_token'] as const)('as %s', (position) => {
    /** The request shape: the token under test in `position`, everything else genuine. */
    const form = (token: string): Record<string, string> => (position === 'subject_token'
      ? { subject_token: token, resource: apiA }
      : { subject_token: acmeToken, actor_token: token, actor_token_type: AT, resource: apiA });

    it.each(ATTACKS.map((a) => [a.name, a] as const))('%s', async (_name, attack) => {
      const { attack: forged, control } = await attack.build();
      const refused = await exchange('acme', form(forged));
      expect(refused.status, JSON.stringify(refused.body)).toBe(400);
      expect(refused.body.error).toBe('invalid_request');
      expect(refused.body.error_description).toMatch(new RegExp(`^${position}: `));
      const accepted = await exchange('acme', form(control));
      expect(accepted.status, JSON.stringify(accepted.body)).toBe(200);
      expect(accepted.body.token_type).toBe('Bearer');
    });
  });

  it('a token signed by a key revoked since is refused; the same request before revocation, and with a new-key token, succeed', async () => {
    await b.admin('POST', '/tenants', { id: 'vendor-two' });
    const bot = (await b.admin('POST', '/tenants/vendor-two/agents', { name: 'second-bot' })).body;
    await b.admin('POST', '/tenants/acme/delegations', { client_id: bot.client_id, scopes: ['tickets:read'], resources: [apiA] });
    const credentialOf = async () => {
      const res = await tokenRequest(b, 'vendor-two', { grant_type: 'client_credentials' }, { basic: [bot.client_id, bot.client_secret] });
      expect(res.status).toBe(200);
      return res.body.access_token as string;
    };
    const trade = (subject: string) => timed(() => tokenRequest(b, 'acme', { grant_type: TE, subject_token_type: AT, subject_token: subject, resource: apiA }, { basic: [bot.client_id, bot.client_secret] }));
    const old = await credentialOf();
    expect((await trade(old)).status).toBe(200);

    const kid = JSON.parse(Buffer.from(old.split('.')[0]!, 'base64url').toString()).kid as string;
    await b.admin('POST', `/tenants/vendor-two/keys/${kid}/revoke`);
    const refused = await trade(old);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_request');
    expect(refused.body.error_description).toMatch(/^subject_token: /);

    const fresh = await credentialOf();
    expect(JSON.parse(Buffer.from(fresh.split('.')[0]!, 'base64url').toString()).kid).not.toBe(kid);
    expect((await trade(fresh)).status).toBe(200);
  });

  it('subject_token sent twice (an array) is invalid_request; once, the same request succeeds', async () => {
    const twice = await exchange('acme', { subject_token: [credential, credential], resource: apiA });
    expect(twice.status).toBe(400);
    expect(twice.body.error).toBe('invalid_request');
    const dup = await exchange('acme', { subject_token: [credential, 'other'], resource: apiA });
    expect(dup.status).toBe(400);
    expect(dup.body.error).toBe('invalid_request');
    expect((await exchange('acme', { subject_token: credential, resource: apiA })).status).toBe(200);
  });

  it('actor_token and the token types sent twice are invalid_request too', async () => {
    const forms: Array<Record<string, string | string[]>> = [
      { subject_token: acmeToken, actor_token: [credential, credential], actor_token_type: AT },
      { subject_token: acmeToken, actor_token: credential, actor_token_type: [AT, AT] },
      { subject_token: credential, subject_token_type: [AT, AT] },
    ];
    for (const form of forms) {
      const res = await exchange('acme', { ...form, resource: apiA });
      expect(res.status, JSON.stringify(form)).toBe(400);
      expect(res.body.error).toBe('invalid_request');
    }
    expect((await exchange('acme', { subject_token: acmeToken, actor_token: credential, actor_token_type: AT, resource: apiA })).status).toBe(200);
  });

  it('a 100 KB subject token: 413 (over the body limit) or invalid_request, never 5xx, quickly', async () => {
    const huge = await genuineForgery(credentialClaims({ pad: 'x'.repeat(100_000) }));
    expect(huge.length).toBeGreaterThan(100_000);
    const res = await exchange('acme', { subject_token: huge, resource: apiA });
    expect([400, 413]).toContain(res.status);
    expect(res.body.error).toBe('invalid_request');
    expect((await exchange('acme', { subject_token: credential, resource: apiA })).status).toBe(200);
  });

  it('10,000 resource values: refused (413 over the body limit, else invalid_target), quickly', async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => `https://r${i}.acme.test/`);
    const res = await exchange('acme', { subject_token: credential, resource: many });
    expect([400, 413]).toContain(res.status);
    expect(['invalid_request', 'invalid_target']).toContain(res.body.error);
    // As many as the body and parameter limits let through still reach the grant: invalid_target.
    const fits = Array.from({ length: 900 }, (_, i) => `urn:r${i}`);
    const some = await exchange('acme', { subject_token: credential, resource: fits });
    expect(some.status, JSON.stringify(some.body).slice(0, 300)).toBe(400);
    expect(some.body.error).toBe('invalid_target');
    // The same request with one genuine resource succeeds.
    expect((await exchange('acme', { subject_token: credential, resource: [apiA] })).status).toBe(200);
  });

  it('10,000 scope tokens: invalid_scope, quickly', async () => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
    const tokens = Array.from({ length: 10_000 }, (_, i) => alphabet[i % alphabet.length]!);
    const res = await exchange('acme', { subject_token: credential, resource: apiA, scope: tokens.join(' ') });
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(400);
    expect(res.body.error).toBe('invalid_scope');
    // 2,000 copies of a granted scope (as many as the body limit allows) are one scope.
    const same = await exchange('acme', { subject_token: credential, resource: apiA, scope: Array(2_000).fill('tickets:read').join(' ') });
    expect(same.status, JSON.stringify(same.body).slice(0, 300)).toBe(200);
    expect(same.body.scope).toBe('tickets:read');
    expect((await exchange('acme', { subject_token: credential, resource: apiA, scope: 'tickets:read' })).status).toBe(200);
  });

  it('a body padded past 1,000 parameters is refused, never parsed with its tail cut off', async () => {
    // node:querystring (oidc-provider's form parser) ignores every pair after the 1000th: the
    // scope at the end would be dropped and the token widened to everything the delegation allows.
    const padding = Array.from({ length: 997 }, (_, i) => `p${i}=`).join('&');
    const form = new URLSearchParams({ grant_type: TE, subject_token: credential, subject_token_type: AT, resource: apiA });
    const res = await fetch(`${b.url}/t/acme/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${agent.client_id}:${agent.client_secret}`).toString('base64')}` },
      body: `${form}&${padding}&scope=tickets%3Aread`,
    });
    const body = (await res.json()) as { error?: string; scope?: string };
    expect(res.status, JSON.stringify(body)).toBe(400);
    expect(body.error).toBe('invalid_request');
    // Control: the same request without the padding is granted exactly the scope it asked for.
    const ok = await exchange('acme', { subject_token: credential, resource: apiA, scope: 'tickets:read' });
    expect(ok.status).toBe(200);
    expect(ok.body.scope).toBe('tickets:read');
  });
});
