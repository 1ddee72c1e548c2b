import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, importJWK, UnsecuredJWT, generateKeyPair, exportJWK } from 'jose';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

describe.each(DATABASES)('admin API (%s)', (kind) => {
  let b: TestBroker;

  const call = async (method: string, route: string, opts: { token?: string | null; body?: string; headers?: Record<string, string> } = {}) => {
    const token = opts.token === undefined ? await b.adminToken() : opts.token;
    const res = await fetch(`${b.url}/admin${route}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(opts.body ? { 'content-type': 'application/json' } : {}), ...opts.headers },
      ...(opts.body !== undefined ? { body: opts.body } : {}),
    });
    return { status: res.status, headers: res.headers, body: (await res.json().catch(() => undefined)) as any };
  };

  /** A token signed with the system tenant's real active key, with chosen claims and header. */
  async function systemSigned(claims: Record<string, unknown>, header: Record<string, unknown> = {}) {
    const { signer } = await b.broker.services.keys.loadForIssuer('system');
    const key = await importJWK(signer!.privateJwk, signer!.alg);
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: b.issuer('system'), aud: 'urn:bulkhead:admin', client_id: 'x', tenant_id: 'system', scope: 'admin', iat: now, exp: now + 60, ...claims })
      .setProtectedHeader({ alg: signer!.alg, kid: signer!.kid, typ: 'at+jwt', ...header })
      .sign(key);
  }

  beforeAll(async () => {
    b = await startTestBroker(kind);
  });
  afterAll(() => b?.close());

  it('serves its OpenAPI description without authentication', async () => {
    const r = await call('GET', '/openapi.json', { token: null });
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
    expect(Object.keys(r.body.paths)).toEqual(expect.arrayContaining(['/admin/tenants', '/admin/tenants/{tenant}/keys/rotate', '/admin/tenants/{tenant}/clients']));
    expect(r.body.components.schemas.CreateClient.properties).toHaveProperty('token_endpoint_auth_method');
  });

  describe('authentication, checked as a resource server would', () => {
    it('no token → 401 with a Bearer challenge', async () => {
      const r = await call('GET', '/tenants', { token: null });
      expect(r.status).toBe(401);
      expect(r.body.error).toBe('invalid_token');
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer realm="bulkhead-admin"/);
    });

    it("a token from another tenant's issuer, even for the admin audience with an admin scope, is refused", async () => {
      // A tenant admin can register `urn:bulkhead:admin` with an `admin` scope in its own tenant…
      await b.admin('POST', '/tenants', { id: 'mallory' });
      await b.admin('POST', '/tenants/mallory/resources', { uri: 'urn:bulkhead:admin', scopes: ['admin'] });
      const c = (await b.admin('POST', '/tenants/mallory/clients', { name: 'fake-admin', scopes: ['admin'], resources: ['urn:bulkhead:admin'] })).body;
      const t = await tokenRequest(b, 'mallory', { grant_type: 'client_credentials', scope: 'admin' }, { basic: [c.client_id, c.client_secret] });
      expect(t.status).toBe(200);
      // …but its token is signed by mallory's key and names mallory's issuer.
      const r = await call('GET', '/tenants', { token: t.body.access_token });
      expect(r.status).toBe(401);
      expect(r.body.error).toBe('invalid_token');
    });

    it('a system-tenant token for another audience is refused', async () => {
      await b.admin('POST', '/tenants/system/resources', { uri: 'https://other.system.test/', scopes: ['read'] });
      const c = (await b.admin('POST', '/tenants/system/clients', { name: 'reader', scopes: ['read'], resources: ['https://other.system.test/'] })).body;
      const t = await tokenRequest(b, 'system', { grant_type: 'client_credentials' }, { basic: [c.client_id, c.client_secret] });
      expect((await call('GET', '/tenants', { token: t.body.access_token })).status).toBe(401);
    });

    it.each([
      ['without the admin scope', { scope: 'read' }, {}, 403, 'insufficient_scope'],
      ['expired', { exp: Math.floor(Date.now() / 1000) - 120 }, {}, 401, 'invalid_token'],
      ['typ JWT instead of at+jwt', {}, { typ: 'JWT' }, 401, 'invalid_token'],
      ['for another tenant_id', { tenant_id: 'acme' }, {}, 401, 'invalid_token'],
      ['with a trailing slash on iss', { iss: 'SLASH' }, {}, 401, 'invalid_token'],
      ['with the wrong audience', { aud: 'https://elsewhere/' }, {}, 401, 'invalid_token'],
    ])('a system-signed token %s → %d', async (_n, claims, header, status, error) => {
      const c = { ...claims } as Record<string, unknown>;
      if (c.iss === 'SLASH') c.iss = `${b.issuer('system')}/`;
      const r = await call('GET', '/tenants', { token: await systemSigned(c, header) });
      expect(r.status).toBe(status);
      expect(r.body.error).toBe(error);
    });

    it('control: a well-formed system-signed admin token is accepted (so the rows above fail for their reason)', async () => {
      expect((await call('GET', '/tenants', { token: await systemSigned({}) })).status).toBe(200);
    });

    it('alg none and a self-signed key are refused', async () => {
      const none = new UnsecuredJWT({ iss: b.issuer('system'), aud: 'urn:bulkhead:admin', scope: 'admin', tenant_id: 'system' }).setExpirationTime('1m').encode();
      expect((await call('GET', '/tenants', { token: none })).status).toBe(401);
      const { privateKey, publicKey } = await generateKeyPair('ES256');
      const forged = await new SignJWT({ iss: b.issuer('system'), aud: 'urn:bulkhead:admin', scope: 'admin', tenant_id: 'system', client_id: 'x' })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', jwk: await exportJWK(publicKey) })
        .setIssuedAt().setExpirationTime('1m').sign(privateKey);
      expect((await call('GET', '/tenants', { token: forged })).status).toBe(401);
    });
  });

  describe('bad input gets a clear error and changes nothing', () => {
    const tenants = async () => (await b.admin('GET', '/tenants')).body.tenants.map((t: { id: string }) => t.id);

    it.each([
      ['an invalid tenant id', { id: 'Bad_ID' }, 400, /tenant id/],
      ['a tenant id ending in a hyphen', { id: 'bad-' }, 400, /tenant id/],
      ['a 64-character tenant id', { id: 'a'.repeat(64) }, 400, /tenant id/],
      ['the reserved system id', { id: 'system' }, 400, /reserved/],
      ['an unknown field', { id: 'okay', colour: 'red' }, 400, /unknown field/],
      ['a token_ttl of zero', { id: 'okay', token_ttl: 0 }, 400, /token_ttl/],
      ['a symmetric key algorithm', { id: 'okay', alg: 'HS256' }, 400, /alg/],
    ])('tenant create with %s', async (_n, body, status, message) => {
      const before = await tenants();
      const r = await call('POST', '/tenants', { body: JSON.stringify(body) });
      expect(r.status).toBe(status);
      expect(r.body.error).toBe('invalid_request');
      expect(r.body.error_description).toMatch(message);
      expect(await tenants()).toEqual(before);
    });

    it('a duplicate tenant is 409', async () => {
      await b.admin('POST', '/tenants', { id: 'dup' });
      const r = await call('POST', '/tenants', { body: JSON.stringify({ id: 'dup' }) });
      expect(r.status).toBe(409);
      expect(r.body.error_description).toBe('tenant dup already exists');
    });

    it.each([
      ['not JSON', '{"id":', {}, 400],
      ['JSON with a text content type', '{"id":"x1"}', { 'content-type': 'text/plain' }, 400],
      ['an oversized body', JSON.stringify({ id: 'x2', name: 'n'.repeat(40_000) }), {}, 413],
      ['a JSON array', '[1,2]', {}, 400],
      ['JSON null', 'null', {}, 400],
    ])('a body that is %s', async (_n, body, headers, status) => {
      const before = await tenants();
      const r = await call('POST', '/tenants', { body, headers });
      expect(r.status).toBe(status);
      expect(await tenants()).toEqual(before);
    });

    it('resources: bad URIs and scopes are refused, duplicates are 409', async () => {
      await b.admin('POST', '/tenants', { id: 'res' });
      for (const body of [
        { uri: 'not a uri', scopes: ['a'] },
        { uri: 'https://x.test/#frag', scopes: ['a'] },
        { uri: 'https://x.test/', scopes: [] },
        { uri: 'https://x.test/', scopes: ['a b'] },
        { uri: 'https://x.test/', scopes: ['a"b'] },
        { uri: 'https://x.test/', scopes: ['ok'], token_ttl: -5 },
      ]) {
        const r = await call('POST', '/tenants/res/resources', { body: JSON.stringify(body) });
        expect(r.status, JSON.stringify(body)).toBe(400);
      }
      expect((await b.admin('GET', '/tenants/res/resources')).body.resources).toEqual([]);
      await b.admin('POST', '/tenants/res/resources', { uri: 'https://x.test/', scopes: ['a'] });
      expect((await call('POST', '/tenants/res/resources', { body: JSON.stringify({ uri: 'https://x.test/', scopes: ['a'] }) })).status).toBe(409);
    });

    it('clients: unknown resources, unoffered scopes, bad jwks and duplicate names are refused', async () => {
      await seedTenant(b, 'cli', { resource: 'https://cli.test/', clientName: 'first' });
      const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
      const pub = await exportJWK(publicKey);
      const priv = await exportJWK(privateKey);
      const cases: Array<[Record<string, unknown>, number, RegExp]> = [
        [{ name: 'a', scopes: ['tickets:read'], resources: ['https://unknown.test/'] }, 400, /not registered/],
        [{ name: 'a', scopes: ['tickets:read'], resources: ['https://api.res.test/'] }, 400, /not registered/],
        [{ name: 'a', scopes: ['nope'], resources: ['https://cli.test/'] }, 400, /not offered/],
        [{ name: 'a', scopes: ['bad scope'], resources: ['https://cli.test/'] }, 400, /scope/],
        [{ name: 'a', scopes: ['tickets:read'], resources: ['https://cli.test/'], token_endpoint_auth_method: 'private_key_jwt' }, 400, /jwks/],
        [{ name: 'a', scopes: ['tickets:read'], resources: ['https://cli.test/'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [priv] } }, 400, /public keys only/],
        [{ name: 'a', scopes: ['tickets:read'], resources: ['https://cli.test/'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }] } }, 400, /usable public/],
        [{ name: 'a', scopes: ['tickets:read'], resources: ['https://cli.test/'], jwks: { keys: [pub] } }, 400, /only private_key_jwt/],
        [{ name: 'a', scopes: ['tickets:read'], resources: ['https://cli.test/'], token_endpoint_auth_method: 'none' }, 400, /token_endpoint_auth_method/],
        [{ name: 'a', scopes: ['tickets:read'], resources: ['https://cli.test/'], grant_types: ['password'] }, 400, /grant_types/],
        [{ name: 'first', scopes: ['tickets:read'], resources: ['https://cli.test/'] }, 409, /already exists/],
      ];
      const before = (await b.admin('GET', '/tenants/cli/clients')).body.clients;
      for (const [body, status, message] of cases) {
        const r = await call('POST', '/tenants/cli/clients', { body: JSON.stringify(body) });
        expect(r.status, JSON.stringify(body)).toBe(status);
        expect(r.body.error_description, JSON.stringify(body)).toMatch(message);
      }
      expect((await b.admin('GET', '/tenants/cli/clients')).body.clients).toEqual(before);
    });

    it('client listings never contain a secret or its hash', async () => {
      const text = JSON.stringify((await b.admin('GET', '/tenants/cli/clients')).body);
      expect(text).not.toMatch(/"client_secret"|secretHash|argon2|bhs_/);
    });

    it.each([
      ['GET', '/tenants/nosuch'],
      ['GET', '/tenants/nosuch/keys'],
      ['POST', '/tenants/nosuch/keys/rotate'],
      ['GET', '/tenants/nosuch/clients'],
      ['POST', '/tenants/nosuch/resources'],
      ['POST', '/tenants/nosuch/suspend'],
      ['GET', '/tenants/Not_Valid/clients'],
    ])('%s %s on an unknown tenant → 404', async (method, route) => {
      const r = await call(method, route, method === 'POST' ? { body: '{}' } : {});
      expect(r.status).toBe(404);
      expect(r.body.error_description).toMatch(/tenant .* not found/);
    });

    it("another tenant's client is not found through this tenant's routes", async () => {
      const c = await seedTenant(b, 'owner1', { clientName: 'c' });
      await b.admin('POST', '/tenants', { id: 'owner2' });
      for (const [m, r] of [['GET', ''], ['POST', '/disable'], ['POST', '/rotate-secret']] as const) {
        expect((await call(m, `/tenants/owner2/clients/${c.client_id}${r}`)).status).toBe(404);
      }
      expect((await b.admin('GET', `/tenants/owner1/clients/${c.client_id}`)).body.status).toBe('active');
    });

    it('the platform-admin client cannot be disabled (it is the way in)', async () => {
      const id = b.adminCredentials().client_id;
      const r = await call('POST', `/tenants/system/clients/${id}/disable`);
      expect(r.status).toBe(400);
      expect(r.body.error_description).toMatch(/platform-admin/);
      expect((await b.admin('GET', `/tenants/system/clients/${id}`)).body.status).toBe('active');
    });

    it('the system tenant cannot be suspended', async () => {
      const r = await call('POST', '/tenants/system/suspend');
      expect(r.status).toBe(400);
      expect((await b.admin('GET', '/tenants/system')).body.status).toBe('active');
    });
  });
});
