import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { decodeJwt, SignJWT } from 'jose';
import { challenge, createVerifier, PepError, type Verifier, type VerifierOptions, type PepErrorCode } from '../../src/pep/index.js';
import { seedTenant, startTestBroker, type TestBroker } from '../support/broker.js';
import {
  bulkheadClaims, countingFetch, dpopKey, dpopProof, forgeWithTenantKey, issueToken, startIntrospectionStub, type DpopKey,
} from './support.js';

type Client = { client_id: string; client_secret?: string };

/**
 * Every check of the verifier, each refused case next to an accepted control, with tokens from
 * a real broker over real HTTP (or, where the broker would never mint them, signed with the
 * tenant's real key). Each refusal asserts its stable code, so removing a check fails a test.
 */
describe('bulkhead/pep verifier (pglite)', () => {
  let b: TestBroker;
  let acme: Client;
  let globex: Client;
  let billing: Client;
  const apiA = 'https://api.acme.test/';
  const apiB = 'https://api.globex.test/';
  const billingA = 'https://billing.acme.test/';
  const rsUrl = 'https://api.acme.test/tickets';
  const audiences: Record<string, string> = { acme: apiA, globex: apiB };

  function verifier(extra: Partial<VerifierOptions<{ tenant?: string }>> = {}): Verifier<{ tenant?: string }> {
    return createVerifier({ brokerUrl: b.url, audience: (t) => audiences[t] ?? 'urn:nothing', ...extra });
  }

  async function refused(p: Promise<unknown>, code: PepErrorCode): Promise<PepError> {
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err, `expected ${code}`).toBeInstanceOf(PepError);
    expect((err as PepError).code, (err as PepError).message).toBe(code);
    return err as PepError;
  }

  const readToken = (tenant = 'acme', client?: Client) => issueToken(b, tenant, client ?? (tenant === 'acme' ? acme : globex), { resource: audiences[tenant]!, scope: 'tickets:read' });

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    acme = await seedTenant(b, 'acme', { resource: apiA, clientScopes: ['tickets:read', 'tickets:write'] });
    globex = await seedTenant(b, 'globex', { resource: apiB, clientScopes: ['tickets:read', 'tickets:write'] });
    billing = await seedTenant(b, 'acme', { resource: billingA, resourceScopes: ['invoices:read'], clientName: 'billing', clientScopes: ['invoices:read'] });
  });
  afterAll(() => b?.close());

  it('accepts a valid token of the request\'s tenant and returns its claims', async () => {
    const token = await readToken();
    const v = verifier({ tenant: 'acme' });
    const ok = await v.verify(token, { scopes: ['tickets:read'] });
    expect(ok.tenant).toBe('acme');
    expect(ok.scopes).toEqual(['tickets:read']);
    expect(ok.claims).toMatchObject({ iss: b.issuer('acme'), aud: apiA, tenant_id: 'acme', client_id: acme.client_id, scope: 'tickets:read' });
    expect(ok.header).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    expect(ok.jkt).toBeUndefined();
  });

  describe('the tenant boundary', () => {
    it('a valid token of tenant B at A: refused by a fixed-tenant verifier, a tenantFrom verifier, and a per-call tenant', async () => {
      const tokenB = await readToken('globex');
      await refused(verifier({ tenant: 'acme' }).verify(tokenB), 'ERR_PEP_WRONG_TENANT');
      const fromContext = verifier({ tenantFrom: (ctx) => ctx.tenant });
      await refused(fromContext.verify(tokenB, { context: { tenant: 'acme' } }), 'ERR_PEP_WRONG_TENANT');
      await refused(verifier().verify(tokenB, { tenant: 'acme' }), 'ERR_PEP_WRONG_TENANT');
      // Control: the same token at its own tenant, through the same verifiers' code paths.
      expect((await fromContext.verify(tokenB, { context: { tenant: 'globex' } })).tenant).toBe('globex');
      expect((await verifier().verify(tokenB, { tenant: 'globex' })).claims.tenant_id).toBe('globex');
    });

    it('the tenant always comes from the request, never the token: a verifier of A with tenantFrom saying A ignores B\'s claims', async () => {
      const tokenB = await readToken('globex');
      const err = await refused(verifier({ tenantFrom: () => 'acme' }).verify(tokenB), 'ERR_PEP_WRONG_TENANT');
      expect(challenge(err)).toMatchObject({ status: 401, body: { error: 'invalid_token' } });
      expect(challenge(err).headers['WWW-Authenticate']).toMatch(/^Bearer error="invalid_token"/);
    });

    it('a token signed by A\'s key with A\'s issuer but tenant_id B is refused (tenant_id is checked, not just iss)', async () => {
      const forged = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA, { tenant_id: 'globex' }));
      await refused(verifier({ tenant: 'acme' }).verify(forged), 'ERR_PEP_WRONG_TENANT');
      const missing = bulkheadClaims(b, 'acme', apiA);
      delete missing.tenant_id;
      await refused(verifier({ tenant: 'acme' }).verify(await forgeWithTenantKey(b, 'acme', missing)), 'ERR_PEP_INVALID_TOKEN');
      // Control: the forgery technique itself yields accepted tokens.
      const control = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA));
      expect((await verifier({ tenant: 'acme' }).verify(control)).claims.tenant_id).toBe('acme');
    });

    it('B\'s key signing a token that claims A\'s issuer and tenant: bad signature', async () => {
      const forged = await forgeWithTenantKey(b, 'globex', bulkheadClaims(b, 'acme', apiA));
      await refused(verifier({ tenant: 'acme' }).verify(forged), 'ERR_PEP_INVALID_TOKEN');
    });

    it('conflicting tenant sources and tenant ids that are not tenant ids are refused without any fetch', async () => {
      const counter = countingFetch();
      const token = await readToken();
      await refused(verifier({ tenant: 'acme', fetch: counter.fetch }).verify(token, { tenant: 'globex' }), 'ERR_PEP_WRONG_TENANT');
      await refused(verifier({ tenantFrom: () => 'acme', fetch: counter.fetch }).verify(token, { tenant: 'globex' }), 'ERR_PEP_WRONG_TENANT');
      await refused(verifier({ tenantFrom: () => undefined, fetch: counter.fetch }).verify(token), 'ERR_PEP_WRONG_TENANT');
      for (const tenant of ['../admin', 'ACME', '', 'acme/../globex', 'a'.repeat(64)]) {
        await refused(verifier({ fetch: counter.fetch }).verify(token, { tenant }), 'ERR_PEP_WRONG_TENANT');
      }
      expect(counter.count()).toBe(0);
    });
  });

  describe('issuer, audience, type, algorithm, time', () => {
    it('iss differing from the tenant issuer by a trailing slash is refused', async () => {
      const forged = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA, { iss: `${b.issuer('acme')}/` }));
      const err = await refused(verifier({ tenant: 'acme' }).verify(forged), 'ERR_PEP_WRONG_ISSUER');
      expect(err.status).toBe(401);
      const upper = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA, { iss: b.issuer('acme').replace('http:', 'HTTP:') }));
      await refused(verifier({ tenant: 'acme' }).verify(upper), 'ERR_PEP_WRONG_ISSUER');
      // Refused before the signature: a foreign issuer never makes the verifier fetch anything.
      const counter = countingFetch();
      await refused(verifier({ tenant: 'acme', fetch: counter.fetch }).verify(forged), 'ERR_PEP_WRONG_ISSUER');
      expect(counter.count()).toBe(0);
    });

    it('a token for another resource of the same tenant is refused (aud)', async () => {
      const token = await issueToken(b, 'acme', billing, { resource: billingA });
      expect(decodeJwt(token).aud).toBe(billingA);
      await refused(verifier({ tenant: 'acme' }).verify(token), 'ERR_PEP_WRONG_AUDIENCE');
      // Control: the same token where it is meant to be used.
      expect((await createVerifier({ brokerUrl: b.url, tenant: 'acme', audience: billingA }).verify(token)).claims.aud).toBe(billingA);
      // An audience array must include this resource.
      const many = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', [billingA, 'https://other.test/']));
      await refused(verifier({ tenant: 'acme' }).verify(many), 'ERR_PEP_WRONG_AUDIENCE');
      const includes = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', [billingA, apiA]));
      expect((await verifier({ tenant: 'acme' }).verify(includes)).tenant).toBe('acme');
    });

    it('expired is refused; within the clock tolerance it is not', async () => {
      const now = Math.floor(Date.now() / 1000);
      const expired = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA, { iat: now - 600, exp: now - 60 }));
      const err = await refused(verifier({ tenant: 'acme' }).verify(expired), 'ERR_PEP_EXPIRED');
      expect(challenge(err).body).toEqual({ error: 'invalid_token', error_description: 'the access token has expired' });
      const justExpired = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA, { iat: now - 600, exp: now - 2 }));
      expect((await verifier({ tenant: 'acme' }).verify(justExpired)).tenant).toBe('acme');
      await refused(verifier({ tenant: 'acme', clockToleranceSeconds: 0 }).verify(justExpired), 'ERR_PEP_EXPIRED');
    });

    it('nbf in the future is refused; within the clock tolerance it is not', async () => {
      const now = Math.floor(Date.now() / 1000);
      const early = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA, { nbf: now + 60 }));
      await refused(verifier({ tenant: 'acme' }).verify(early), 'ERR_PEP_NOT_YET_VALID');
      const almost = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA, { nbf: now + 2 }));
      expect((await verifier({ tenant: 'acme' }).verify(almost)).tenant).toBe('acme');
    });

    it('typ JWT (or none) is refused: only at+jwt (RFC 9068 §4), application/at+jwt included', async () => {
      const counter = countingFetch();
      for (const typ of ['JWT', 'jwt', 'dpop+jwt', undefined]) {
        const forged = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA), { typ });
        await refused(verifier({ tenant: 'acme' }).verify(forged), 'ERR_PEP_INVALID_TOKEN');
        await refused(verifier({ tenant: 'acme', fetch: counter.fetch }).verify(forged), 'ERR_PEP_INVALID_TOKEN');
      }
      expect(counter.count()).toBe(0);
      const long = await forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA), { typ: 'application/at+jwt' });
      expect((await verifier({ tenant: 'acme' }).verify(long)).tenant).toBe('acme');
    });

    it('missing RFC 9068 claims are refused', async () => {
      for (const claim of ['exp', 'sub', 'client_id', 'iat', 'jti']) {
        const claims = bulkheadClaims(b, 'acme', apiA);
        delete claims[claim];
        await refused(verifier({ tenant: 'acme' }).verify(await forgeWithTenantKey(b, 'acme', claims)), 'ERR_PEP_INVALID_TOKEN');
      }
    });

    it('alg none and HS256 (even keyed with the tenant\'s public key) are refused before any JWKS fetch', async () => {
      const counter = countingFetch();
      const v = verifier({ tenant: 'acme', fetch: counter.fetch });
      const { signer } = await b.broker.services.keys.loadForIssuer('acme');
      const claims = bulkheadClaims(b, 'acme', apiA);
      const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const none = `${enc({ alg: 'none', typ: 'at+jwt', kid: signer!.kid })}.${enc(claims)}.`;
      await refused(v.verify(none), 'ERR_PEP_INVALID_TOKEN');
      const publicJwk = { kty: signer!.privateJwk.kty, crv: signer!.privateJwk.crv, x: signer!.privateJwk.x, y: signer!.privateJwk.y };
      const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: signer!.kid })
        .sign(new TextEncoder().encode(JSON.stringify(publicJwk)));
      await refused(v.verify(hs), 'ERR_PEP_INVALID_TOKEN');
      expect(counter.count()).toBe(0);
    });

    it('the algorithm allowlist holds: an ES256 token at a verifier allowing only EdDSA is refused', async () => {
      const token = await readToken();
      await refused(verifier({ tenant: 'acme', algorithms: ['EdDSA'] }).verify(token), 'ERR_PEP_INVALID_TOKEN');
      expect((await verifier({ tenant: 'acme', algorithms: ['EdDSA', 'ES256'] }).verify(token)).tenant).toBe('acme');
    });

    it('garbage, oversized and missing tokens', async () => {
      const v = verifier({ tenant: 'acme' });
      for (const junk of ['x', 'a.b.c', 'a.b', `${'a'.repeat(20_000)}.b.c`]) await refused(v.verify(junk), 'ERR_PEP_INVALID_TOKEN');
      const missing = await refused(v.verify(undefined), 'ERR_PEP_TOKEN_MISSING');
      expect(challenge(missing).headers['WWW-Authenticate']).not.toMatch(/error=/);
      await refused(v.verify(''), 'ERR_PEP_TOKEN_MISSING');
    });
  });

  describe('scopes', () => {
    it('a missing scope is 403 insufficient_scope naming every required scope; all of them are needed', async () => {
      const token = await readToken();
      const v = verifier({ tenant: 'acme' });
      const err = await refused(v.verify(token, { scopes: ['tickets:read', 'tickets:write'] }), 'ERR_PEP_INSUFFICIENT_SCOPE');
      const answer = challenge(err, { realm: 'tickets' });
      expect(answer.status).toBe(403);
      expect(answer.headers['WWW-Authenticate']).toBe(
        'Bearer realm="tickets", error="insufficient_scope", error_description="the access token lacks a required scope", scope="tickets:read tickets:write", DPoP algs="'
        + v.dpopAlgorithms.join(' ') + '"',
      );
      await refused(v.verify(token, { scopes: ['tickets:write'] }), 'ERR_PEP_INSUFFICIENT_SCOPE');
      await refused(v.verify(token, { scopes: ['tickets'] }), 'ERR_PEP_INSUFFICIENT_SCOPE');
      expect((await v.verify(token, { scopes: ['tickets:read'] })).scopes).toEqual(['tickets:read']);
      const both = await issueToken(b, 'acme', acme, { resource: apiA, scope: 'tickets:read tickets:write' });
      expect((await v.verify(both, { scopes: ['tickets:write', 'tickets:read'] })).scopes.sort()).toEqual(['tickets:read', 'tickets:write']);
    });
  });

  describe('DPoP (RFC 9449 §7)', () => {
    let key: DpopKey;
    let bound: string;
    const request = async (token: string, k: DpopKey = key, claims: Record<string, unknown> = {}) =>
      ({ method: 'GET', url: rsUrl, proof: await dpopProof(k, { htm: 'GET', htu: rsUrl, accessToken: token }, claims) });

    beforeAll(async () => {
      key = await dpopKey();
      bound = await issueToken(b, 'acme', acme, { resource: apiA, scope: 'tickets:read' }, key);
      expect(decodeJwt(bound).cnf).toEqual({ jkt: key.jkt });
    });

    it('a bound token with a proof from its key, for this request and token, is accepted', async () => {
      const ok = await verifier({ tenant: 'acme' }).verify(bound, { dpop: await request(bound), scopes: ['tickets:read'] });
      expect(ok.jkt).toBe(key.jkt);
      // Query and fragment of htu are ignored (RFC 9449 §4.3 item 9).
      const withQuery = await verifier({ tenant: 'acme' }).verify(bound, { dpop: { ...(await request(bound)), url: `${rsUrl}?page=2` } });
      expect(withQuery.jkt).toBe(key.jkt);
    });

    it('a DPoP-bound token presented as Bearer is refused with a DPoP challenge', async () => {
      const err = await refused(verifier({ tenant: 'acme' }).verify(bound), 'ERR_PEP_DPOP_REQUIRED');
      expect(challenge(err).headers['WWW-Authenticate']).toMatch(/^DPoP error="invalid_token", error_description="[^"]+", algs="ES256 [^"]*"$/);
    });

    it('a Bearer token presented with the DPoP scheme is refused', async () => {
      const bearer = await readToken();
      await refused(verifier({ tenant: 'acme' }).verify(bearer, { dpop: await request(bearer) }), 'ERR_PEP_TOKEN_NOT_BOUND');
    });

    it('a proof whose ath is another token\'s is refused', async () => {
      const other = await readToken();
      const proof = await dpopProof(key, { htm: 'GET', htu: rsUrl, accessToken: other });
      const err = await refused(verifier({ tenant: 'acme' }).verify(bound, { dpop: { method: 'GET', url: rsUrl, proof } }), 'ERR_PEP_DPOP_INVALID');
      expect(err.message).toMatch(/ath/);
      expect(challenge(err).headers['WWW-Authenticate']).toMatch(/^DPoP error="invalid_dpop_proof"/);
      const noAth = await dpopProof(key, { htm: 'GET', htu: rsUrl });
      await refused(verifier({ tenant: 'acme' }).verify(bound, { dpop: { method: 'GET', url: rsUrl, proof: noAth } }), 'ERR_PEP_DPOP_INVALID');
    });

    it('a proof from another key than cnf.jkt (a stolen bound token) is refused', async () => {
      const thief = await dpopKey();
      const err = await refused(verifier({ tenant: 'acme' }).verify(bound, { dpop: await request(bound, thief) }), 'ERR_PEP_DPOP_INVALID');
      expect(err.message).toMatch(/binding/);
    });

    it('a token whose cnf was rewritten to the thief\'s key no longer verifies', async () => {
      const thief = await dpopKey();
      const [h, p, s] = bound.split('.');
      const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
      const rewritten = `${h}.${Buffer.from(JSON.stringify({ ...claims, cnf: { jkt: thief.jkt } })).toString('base64url')}.${s}`;
      await refused(verifier({ tenant: 'acme' }).verify(rewritten, { dpop: await request(rewritten, thief) }), 'ERR_PEP_INVALID_TOKEN');
    });

    it('a replayed proof is refused; a fresh one from the same key is fine', async () => {
      const v = verifier({ tenant: 'acme' });
      const dpop = await request(bound);
      await v.verify(bound, { dpop });
      await refused(v.verify(bound, { dpop }), 'ERR_PEP_DPOP_INVALID');
      expect((await v.verify(bound, { dpop: await request(bound) })).jkt).toBe(key.jkt);
    });

    it('htm, htu, a missing proof, several proofs and an old proof are refused', async () => {
      const v = verifier({ tenant: 'acme' });
      await refused(v.verify(bound, { dpop: { ...(await request(bound)), method: 'POST' } }), 'ERR_PEP_DPOP_INVALID');
      await refused(v.verify(bound, { dpop: { ...(await request(bound)), url: 'https://api.acme.test/other' } }), 'ERR_PEP_DPOP_INVALID');
      await refused(v.verify(bound, { dpop: { method: 'GET', url: rsUrl, proof: undefined } }), 'ERR_PEP_DPOP_INVALID');
      await refused(v.verify(bound, { dpop: { method: 'GET', url: rsUrl, proof: [(await request(bound)).proof, (await request(bound)).proof] } }), 'ERR_PEP_DPOP_INVALID');
      await refused(v.verify(bound, { dpop: await request(bound, key, { iat: Math.floor(Date.now() / 1000) - 3600 }) }), 'ERR_PEP_DPOP_INVALID');
    });

    it('a resource requiring DPoP refuses unbound tokens, and accepts bound ones', async () => {
      const v = verifier({ tenant: 'acme', dpop: { required: true } });
      expect(v.dpopRequired).toBe(true);
      const err = await refused(v.verify(await readToken()), 'ERR_PEP_DPOP_REQUIRED');
      expect(challenge(err).headers['WWW-Authenticate']).toMatch(/^DPoP /);
      expect((await v.verify(bound, { dpop: await request(bound) })).jkt).toBe(key.jkt);
    });

    it('proofs are remembered in the injected replay store, namespaced by tenant', async () => {
      const seen: string[] = [];
      const v = verifier({ tenant: 'acme', dpop: { replay: { markUsed: async (id) => (seen.push(id), true) } } });
      await v.verify(bound, { dpop: await request(bound) });
      expect(seen).toHaveLength(1);
      expect(seen[0]!.split('\0').slice(0, 4)).toEqual(['dpop', 'pep', 'acme', key.jkt]);
    });

    it('a cnf this resource cannot check (not just jkt) is refused', async () => {
      const claims = bulkheadClaims(b, 'acme', apiA, { cnf: { 'x5t#S256': 'abc' } });
      await refused(verifier({ tenant: 'acme' }).verify(await forgeWithTenantKey(b, 'acme', claims)), 'ERR_PEP_INVALID_TOKEN');
    });
  });

  describe('online revocation (RFC 7662)', () => {
    let stub: Awaited<ReturnType<typeof startIntrospectionStub>>;
    const credentials = { clientId: 'rs:tickets', clientSecret: 's3cret/with+odd chars' };
    /** Routes `${broker}/t/*\/introspect` to the stub, so the default endpoint path is what is exercised. */
    const viaStub = ((input: string | URL | Request, init?: RequestInit) => {
      const url = String(input instanceof Request ? input.url : input);
      return fetch(url.endsWith('/introspect') ? url.replace(b.url, stub.url) : input, init);
    }) as typeof fetch;

    beforeAll(async () => {
      // RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
      stub = await startIntrospectionStub({ clientId: 'rs%3Atickets', clientSecret: 's3cret%2Fwith%2Bodd+chars' });
    });
    afterAll(() => stub?.close());

    const online = () => verifier({ tenant: 'acme', fetch: viaStub, introspection: credentials });

    it('an active token passes, asked at ${issuer}/introspect with client_secret_basic and token_type_hint', async () => {
      const token = await readToken();
      const before = stub.requests.length;
      const ok = await online().verify(token, { scopes: ['tickets:read'] });
      expect(ok.introspection).toMatchObject({ active: true, jti: decodeJwt(token).jti });
      const req = stub.requests.at(-1)!;
      expect(stub.requests.length).toBe(before + 1);
      expect(req.path).toBe('/t/acme/introspect');
      expect(req.contentType).toMatch(/^application\/x-www-form-urlencoded/);
      expect(Object.fromEntries(req.form)).toEqual({ token, token_type_hint: 'access_token' });
    });

    it('a revoked token is refused', async () => {
      const token = await readToken();
      await online().verify(token);
      stub.revoke(decodeJwt(token).jti!);
      const err = await refused(online().verify(token), 'ERR_PEP_REVOKED');
      expect(challenge(err)).toMatchObject({ status: 401, body: { error: 'invalid_token' } });
      // Without online checking the token is still (offline) valid: the refusal came from introspection.
      expect((await verifier({ tenant: 'acme' }).verify(token)).tenant).toBe('acme');
    });

    it('fails closed: an outage, a refusal of our credentials, a redirect or a non-boolean active are never "active"', async () => {
      const token = await readToken();
      try {
        stub.answerWith(500, '{"error":"server_error"}');
        expect(challenge(await refused(online().verify(token), 'ERR_PEP_UNAVAILABLE')).status).toBe(503);
        stub.answerWith(200, 'not json');
        await refused(online().verify(token), 'ERR_PEP_UNAVAILABLE');
        stub.answerWith(200, '[true]');
        await refused(online().verify(token), 'ERR_PEP_UNAVAILABLE');
        stub.answerWith(302, '');
        await refused(online().verify(token), 'ERR_PEP_UNAVAILABLE');
        stub.answerWith(200, '{"active":"true"}');
        await refused(online().verify(token), 'ERR_PEP_REVOKED');
        stub.answerWith(200, '{}');
        await refused(online().verify(token), 'ERR_PEP_REVOKED');
      } finally {
        stub.answerWith(undefined);
      }
      const wrong = verifier({ tenant: 'acme', fetch: viaStub, introspection: { ...credentials, clientSecret: 'nope' } });
      await refused(wrong.verify(token), 'ERR_PEP_UNAVAILABLE');
    });

    it('tokens refused locally never reach the introspection endpoint', async () => {
      const before = stub.requests.length;
      await refused(online().verify(await readToken('globex')), 'ERR_PEP_WRONG_TENANT');
      await refused(online().verify('garbage'), 'ERR_PEP_INVALID_TOKEN');
      expect(stub.requests.length).toBe(before);
    });

    it('an endpoint option points elsewhere', async () => {
      const v = verifier({ tenant: 'acme', introspection: { ...credentials, endpoint: (issuer) => `${stub.url}/rfc7662?for=${encodeURIComponent(issuer)}` } });
      await v.verify(await readToken());
      expect(stub.requests.at(-1)!.path).toBe(`/rfc7662?for=${encodeURIComponent(b.issuer('acme'))}`);
    });
  });

  it('ath as the client computes it equals base64url(sha256(token))', async () => {
    // Guards the helper the DPoP tests rely on against drifting from RFC 9449 §4.2.
    const token = await readToken();
    const proof = await dpopProof(await dpopKey(), { htm: 'GET', htu: rsUrl, accessToken: token });
    expect(decodeJwt(proof).ath).toBe(createHash('sha256').update(token).digest('base64url'));
  });
});
