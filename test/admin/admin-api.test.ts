import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, importJWK, UnsecuredJWT, generateKeyPair, exportJWK } from 'jose';
import { DATABASES } from '../support/databases.js';
import { z } from 'zod';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';
import { adminRouter } from '../../src/admin/routes.js';
import { createAgentInput, grantDelegationInput } from '../../src/agents/service.js';
import { MAX_TOKEN_TTL } from '../../src/tenants/service.js';
import { revokeTokenInput } from '../../src/admin/openapi.js';

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

    it("a token from another tenant's issuer, for the admin audience with an admin scope, is a tenant admin of that tenant only", async () => {
      // Every tenant is created with the admin API resource registered in it…
      await b.admin('POST', '/tenants', { id: 'mallory' });
      expect((await b.admin('GET', '/tenants/mallory/resources')).body.resources).toEqual([
        expect.objectContaining({ uri: 'urn:bulkhead:admin', scopes: ['admin'] }),
      ]);
      const c = (await b.admin('POST', '/tenants/mallory/clients', { name: 'fake-admin', scopes: ['admin'], resources: ['urn:bulkhead:admin'] })).body;
      const t = await tokenRequest(b, 'mallory', { grant_type: 'client_credentials', scope: 'admin' }, { basic: [c.client_id, c.client_secret] });
      expect(t.status).toBe(200);
      // …but its token is signed by mallory's key and names mallory's issuer: it sees mallory alone
      // (test/admin/rbac.test.ts walks every route).
      const r = await call('GET', '/tenants', { token: t.body.access_token });
      expect(r.status).toBe(200);
      expect(r.body.tenants.map((x: { id: string }) => x.id)).toEqual(['mallory']);
      expect((await call('GET', '/tenants/system/clients', { token: t.body.access_token })).status).toBe(404);
      expect((await call('POST', '/tenants', { token: t.body.access_token, body: JSON.stringify({ id: 'mallory2' }) })).status).toBe(403);
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
      // Only the admin API resource every tenant is created with.
      expect((await b.admin('GET', '/tenants/res/resources')).body.resources.map((r: { uri: string }) => r.uri)).toEqual(['urn:bulkhead:admin']);
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
        // Agents are registered through /agents only: no agent with scopes and resources of its own.
        [{ name: 'b', kind: 'agent', scopes: ['tickets:read'], resources: ['https://cli.test/'] }, 400, /unknown field.*kind/],
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

  it('the OpenAPI description documents every admin route and method, and only those', async () => {
    const doc = (await call('GET', '/openapi.json', { token: null })).body;
    // The routes as the broker builds them, from the same function the app mounts.
    const served = adminRouter(b.broker.services, { maxBodyBytes: 1024 }).stack
      .filter((layer) => layer.methods.length > 0)
      .flatMap((layer) => layer.methods.filter((m) => m !== 'HEAD').map((m) => `${m.toLowerCase()} ${String(layer.path).replace(/:[A-Za-z0-9_]+/g, '{}')}`));
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p.replace(/\{[^}]+\}/g, '{}')}`));
    expect(served).toEqual(expect.arrayContaining([
      'post /admin/tenants/{}/agents', 'post /admin/tenants/{}/delegations', 'get /admin/tenants/{}/delegations', 'post /admin/tenants/{}/delegations/{}/revoke',
    ]));
    expect([...documented].sort()).toEqual([...new Set(served)].sort());

    // Every reference resolves; the new routes take their bodies from the services' zod schemas.
    const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[A-Za-z]+/g) ?? [];
    for (const ref of new Set(refs)) expect(doc.components.schemas, ref).toHaveProperty(ref.split('/').pop()!);
    const body = (p: string, m: string) => doc.paths[p][m].requestBody.content['application/json'].schema.$ref;
    expect(body('/admin/tenants/{tenant}/agents', 'post')).toBe('#/components/schemas/CreateAgent');
    expect(body('/admin/tenants/{tenant}/delegations', 'post')).toBe('#/components/schemas/GrantDelegation');
    expect(doc.components.schemas.CreateAgent).toEqual(z.toJSONSchema(createAgentInput, { io: 'input', unrepresentable: 'any' }));
    expect(doc.components.schemas.GrantDelegation).toEqual(z.toJSONSchema(grantDelegationInput, { io: 'input', unrepresentable: 'any' }));
    expect(doc.components.schemas.GrantDelegation).toMatchObject({ required: ['client_id', 'scopes', 'resources'], additionalProperties: false });
    expect(doc.paths['/admin/tenants/{tenant}/delegations'].get.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/DelegationList');
    expect(doc.paths['/admin/tenants/{tenant}/delegations/{delegation}/revoke'].post.parameters.map((p: { name: string }) => p.name)).toEqual(['tenant', 'delegation']);
    expect(Object.keys(doc.components.schemas.Delegation.properties).sort()).toEqual([
      'agent_tenant', 'client_id', 'created_at', 'created_by', 'expires_at', 'id', 'require_dpop', 'resources', 'revoked_at', 'scopes', 'status', 'token_ttl',
    ]);
    expect(doc.components.schemas.Resource.properties).toHaveProperty('require_dpop');
    // Token revocation: the body is the route's own zod schema; the path parameters are named.
    expect(body('/admin/tenants/{tenant}/tokens/revoke', 'post')).toBe('#/components/schemas/RevokeToken');
    expect(doc.components.schemas.RevokeToken).toEqual(z.toJSONSchema(revokeTokenInput, { io: 'input', unrepresentable: 'any' }));
    expect(doc.components.schemas.RevokeToken).toMatchObject({ required: ['jti'], additionalProperties: false, properties: { jti: { pattern: '^[A-Za-z0-9_-]{1,64}$' } } });
    expect(doc.paths['/admin/tenants/{tenant}/clients/{client_id}/revoke-tokens'].post.parameters.map((p: { name: string }) => p.name)).toEqual(['tenant', 'client_id']);
    expect(doc.paths['/admin/tenants/{tenant}/delegations/{delegation}/revoke-tokens'].post.parameters.map((p: { name: string }) => p.name)).toEqual(['tenant', 'delegation']);
    const response = (p: string) => doc.components.schemas[doc.paths[p].post.responses['200'].content['application/json'].schema.$ref.split('/').pop()];
    expect(Object.keys(response('/admin/tenants/{tenant}/tokens/revoke').properties).sort()).toEqual(['jti', 'revoked']);
    expect(Object.keys(response('/admin/tenants/{tenant}/clients/{client_id}/revoke-tokens').properties).sort()).toEqual(['client_id', 'not_before']);
    expect(Object.keys(response('/admin/tenants/{tenant}/delegations/{delegation}/revoke-tokens').properties).sort()).toEqual(['client_id', 'delegation', 'not_before']);
  });

  describe('agents and delegations', () => {
    const vendor = 'dlg-vendor';
    const A = 'dlg-a';
    const B = 'dlg-b';
    const apiA = 'https://api.dlg-a.test/';
    const billingA = 'https://billing.dlg-a.test/';
    const apiB = 'https://api.dlg-b.test/';
    let agent: any;
    let serviceA: string;
    const delegations = async (tenant: string) => (await b.admin('GET', `/tenants/${tenant}/delegations`)).body.delegations as any[];
    const newAgent = async (name: string) => (await b.admin('POST', `/tenants/${vendor}/agents`, { name })).body;

    beforeAll(async () => {
      await b.admin('POST', '/tenants', { id: vendor });
      agent = (await b.admin('POST', `/tenants/${vendor}/agents`, { name: 'triage-bot' })).body;
      serviceA = (await seedTenant(b, A, { resource: apiA, resourceScopes: ['tickets:read', 'tickets:write'] })).client_id;
      await b.admin('POST', `/tenants/${A}/resources`, { uri: billingA, scopes: ['invoices:read'] });
      await seedTenant(b, B, { resource: apiB });
    });

    it('agent create: a client of kind agent with both grants and no scopes; its secret only in the response', async () => {
      expect(agent).toMatchObject({
        name: 'triage-bot', kind: 'agent', scopes: [], resources: [], token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'], status: 'active',
      });
      expect(agent.client_id).toMatch(/^ag_/);
      expect(agent.client_secret).toMatch(/^bhs_/);
      const shown = await b.admin('GET', `/tenants/${vendor}/clients/${agent.client_id}`);
      expect(shown.body).toMatchObject({ client_id: agent.client_id, kind: 'agent' });
      expect(shown.body).not.toHaveProperty('client_secret');
    });

    it.each([
      ['an unknown field', { name: 'x', colour: 'red' }, 400, /unknown field\(s\) colour/],
      ['a kind', { name: 'x', kind: 'service' }, 400, /unknown field\(s\) kind/],
      ['scopes (agents get theirs from delegations)', { name: 'x', scopes: ['a'] }, 400, /unknown field\(s\) scopes/],
      ['an empty name', { name: '  ' }, 400, /name/],
      ['no name', {}, 400, /name/],
      ['a token_ttl of zero', { name: 'x', token_ttl: 0 }, 400, /token_ttl/],
      ['a token_ttl past the maximum', { name: 'x', token_ttl: MAX_TOKEN_TTL + 1 }, 400, /token_ttl/],
      ['an unknown auth method', { name: 'x', token_endpoint_auth_method: 'none' }, 400, /token_endpoint_auth_method/],
      ['private_key_jwt without a jwks', { name: 'x', token_endpoint_auth_method: 'private_key_jwt' }, 400, /jwks/],
      ['a duplicate name', { name: 'triage-bot' }, 409, /a client named "triage-bot" already exists/],
    ])('agent create with %s is refused and changes nothing', async (_n, body, status, message) => {
      const before = (await b.admin('GET', `/tenants/${vendor}/clients`)).body.clients;
      const r = await call('POST', `/tenants/${vendor}/agents`, { body: JSON.stringify(body) });
      expect(r.status).toBe(status);
      expect(r.body.error_description).toMatch(message);
      expect((await b.admin('GET', `/tenants/${vendor}/clients`)).body.clients).toEqual(before);
    });

    const past = new Date(Date.now() - 60_000).toISOString();
    it.each([
      ['an unknown field', { colour: 'red' }, /unknown field\(s\) colour/],
      ['a scope with a space', { scopes: ['tickets read'] }, /scopes\.0: each scope must be/],
      ['a scope with a quote', { scopes: ['a"b'] }, /scopes\.0/],
      ['no scopes', { scopes: [] }, /at least one scope is required/],
      ['scopes that are not a list', { scopes: 'tickets:read' }, /scopes/],
      ['no resources field', { resources: undefined }, /resources/],
      ['an empty resources list', { resources: [] }, /at least one resource is required/],
      ['a resource that is not a URI', { resources: ['not a uri'] }, /resources\.0: must be an absolute URI/],
      ['no client_id', { client_id: undefined }, /client_id/],
      ['expires_at as a date only', { expires_at: '2099-01-01' }, /expires_at/],
      ['expires_at without an offset', { expires_at: '2099-01-01T00:00:00' }, /expires_at/],
      ['expires_at in words', { expires_at: 'tomorrow' }, /expires_at/],
      ['expires_at as epoch seconds', { expires_at: 4_070_908_800 }, /expires_at/],
      ['expires_at on 30 February', { expires_at: '2099-02-30T00:00:00Z' }, /expires_at/],
      ['expires_at in the past', { expires_at: past }, /expires_at: must be in the future/],
      ['a token_ttl of zero', { token_ttl: 0 }, /token_ttl/],
      ['a negative token_ttl', { token_ttl: -60 }, /token_ttl/],
      ['a token_ttl past the maximum', { token_ttl: MAX_TOKEN_TTL + 1 }, /token_ttl/],
      ['a fractional token_ttl', { token_ttl: 1.5 }, /token_ttl/],
      ['a token_ttl as a string', { token_ttl: '60' }, /token_ttl/],
      ['require_dpop as a string', { require_dpop: 'true' }, /require_dpop/],
      ['an unknown agent', { client_id: 'ag_nobody' }, /client_id: no agent ag_nobody/],
      ['a resource not registered in the tenant', { resources: ['https://nowhere.test/'] }, /resources: not registered in tenant dlg-a: https:\/\/nowhere\.test\//],
      ["another tenant's resource", { resources: [apiA, apiB] }, /not registered in tenant dlg-a: https:\/\/api\.dlg-b\.test\//],
      ['a scope none of its resources offers', { scopes: ['tickets:read', 'invoices:read'] }, /scopes: not offered by any of the delegation's resources: invoices:read/],
    ])('delegation grant with %s → 400, and the delegation list is unchanged', async (_n, override, message) => {
      const base = { client_id: agent.client_id, scopes: ['tickets:read'], resources: [apiA] };
      const before = await delegations(A);
      const r = await call('POST', `/tenants/${A}/delegations`, { body: JSON.stringify({ ...base, ...override }) });
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('invalid_request');
      expect(r.body.error_description).toMatch(message);
      expect(await delegations(A)).toEqual(before);
    });

    it("a service client is not an agent: it cannot be installed", async () => {
      const before = await delegations(A);
      const r = await call('POST', `/tenants/${A}/delegations`, { body: JSON.stringify({ client_id: serviceA, scopes: ['tickets:read'], resources: [apiA] }) });
      expect(r.status).toBe(400);
      expect(r.body.error_description).toBe(`client_id: no agent ${serviceA}`);
      expect(await delegations(A)).toEqual(before);
    });

    it('grant: the view, created_by = the calling admin client; one active delegation per agent and tenant', async () => {
      // A second platform admin, so created_by is shown to come from the token, not a constant.
      const ops = (await b.admin('POST', '/tenants/system/clients', { name: `ops-${kind}`, scopes: ['admin'], resources: ['urn:bulkhead:admin'] })).body;
      const opsToken = (await tokenRequest(b, 'system', { grant_type: 'client_credentials', resource: 'urn:bulkhead:admin', scope: 'admin' }, { basic: [ops.client_id, ops.client_secret] })).body.access_token;
      expect(ops.client_id).not.toBe(b.adminCredentials().client_id);

      const expires = new Date(Date.now() + 7 * 86_400_000);
      expires.setUTCMilliseconds(0);
      const atPlusTwo = new Date(expires.getTime() + 2 * 3_600_000).toISOString().replace(/\.000Z$/, '+02:00');
      const r = await call('POST', `/tenants/${A}/delegations`, {
        token: opsToken,
        body: JSON.stringify({ client_id: agent.client_id, scopes: ['tickets:read', 'invoices:read', 'tickets:read'], resources: [billingA, apiA, apiA], token_ttl: 120, expires_at: atPlusTwo }),
      });
      expect(r.status).toBe(201);
      expect(Object.keys(r.body).sort()).toEqual(['agent_tenant', 'client_id', 'created_at', 'created_by', 'expires_at', 'id', 'require_dpop', 'resources', 'revoked_at', 'scopes', 'status', 'token_ttl']);
      expect(r.body).toMatchObject({
        client_id: agent.client_id, agent_tenant: vendor, scopes: ['tickets:read', 'invoices:read'], resources: [apiA, billingA], token_ttl: 120,
        expires_at: expires.toISOString(), require_dpop: false, created_by: ops.client_id, revoked_at: null, status: 'active',
      });
      expect(r.body.id).toMatch(/^dg_/);
      expect(await delegations(A)).toEqual([r.body]);

      const second = await newAgent('second-bot');
      const byPlatform = await b.admin('POST', `/tenants/${A}/delegations`, { client_id: second.client_id, scopes: ['tickets:read'], resources: [apiA] });
      expect(byPlatform.body).toMatchObject({ created_by: b.adminCredentials().client_id, token_ttl: null, expires_at: null });

      // A second active grant for the same agent in the same tenant: 409, nothing added.
      const before = await delegations(A);
      const dup = await call('POST', `/tenants/${A}/delegations`, { body: JSON.stringify({ client_id: agent.client_id, scopes: ['tickets:write'], resources: [apiA] }) });
      expect(dup.status).toBe(409);
      expect(dup.body.error_description).toBe(`agent ${agent.client_id} already has an active delegation in tenant ${A} (${r.body.id}); revoke it first`);
      expect(await delegations(A)).toEqual(before);
    });

    it("tenant scoping: B's routes neither see nor revoke A's delegation, and B's grant is B's own", async () => {
      const [inA] = (await delegations(A)).filter((d) => d.client_id === agent.client_id);
      expect(inA.status).toBe('active');
      expect(await delegations(B)).toEqual([]);

      const r = await call('POST', `/tenants/${B}/delegations/${inA.id}/revoke`);
      expect(r.status).toBe(404);
      expect(r.body).toEqual({ error: 'not_found', error_description: `delegation ${inA.id} not found in tenant ${B}` });
      expect((await delegations(A)).find((d) => d.id === inA.id).status).toBe('active');

      // The same agent in B: its own delegation, one per agent *and tenant*, invisible from A.
      const inB = (await b.admin('POST', `/tenants/${B}/delegations`, { client_id: agent.client_id, scopes: ['tickets:read'], resources: [apiB] })).body;
      expect((await delegations(B)).map((d) => d.id)).toEqual([inB.id]);
      expect((await delegations(A)).map((d) => d.id)).not.toContain(inB.id);
      expect((await call('POST', `/tenants/${A}/delegations/${inB.id}/revoke`)).status).toBe(404);
      expect((await delegations(B))[0].status).toBe('active');
    });

    it.each([
      ['GET', '/tenants/nosuch/delegations'],
      ['POST', '/tenants/nosuch/delegations'],
      ['POST', '/tenants/nosuch/delegations/dg_x/revoke'],
      ['POST', '/tenants/nosuch/agents'],
    ])('%s %s on an unknown tenant → 404', async (method, route) => {
      const r = await call(method, route, method === 'POST' ? { body: '{}' } : {});
      expect(r.status).toBe(404);
      expect(r.body.error_description).toBe('tenant nosuch not found');
    });

    it('revoke: revoked once (409 the second time), 404 for an unknown id; the agent may then be installed again', async () => {
      const d = (await delegations(A)).find((x) => x.client_id === agent.client_id);
      const r = await call('POST', `/tenants/${A}/delegations/${d.id}/revoke`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ id: d.id, status: 'revoked', client_id: agent.client_id });
      expect(Date.parse(r.body.revoked_at)).toBeGreaterThan(Date.now() - 60_000);
      expect((await delegations(A)).find((x) => x.id === d.id)).toEqual(r.body);

      const again = await call('POST', `/tenants/${A}/delegations/${d.id}/revoke`);
      expect(again.status).toBe(409);
      expect(again.body.error_description).toBe(`delegation ${d.id} is already revoked`);
      expect((await delegations(A)).find((x) => x.id === d.id).revoked_at).toBe(r.body.revoked_at);

      const unknown = await call('POST', `/tenants/${A}/delegations/dg_nope/revoke`);
      expect(unknown.status).toBe(404);
      expect(unknown.body.error_description).toBe(`delegation dg_nope not found in tenant ${A}`);

      const reinstalled = await call('POST', `/tenants/${A}/delegations`, { body: JSON.stringify({ client_id: agent.client_id, scopes: ['tickets:write'], resources: [apiA] }) });
      expect(reinstalled.status).toBe(201);
      expect(reinstalled.body.id).not.toBe(d.id);
    });

    it('an expired delegation shows as expired and no longer blocks a new one', async () => {
      const bot = await newAgent('short-lived-bot');
      const expiresAt = Date.now() + 3_000;
      const d = (await b.admin('POST', `/tenants/${A}/delegations`, { client_id: bot.client_id, scopes: ['tickets:read'], resources: [apiA], expires_at: new Date(expiresAt).toISOString() })).body;
      expect(d.status).toBe('active');
      expect((await call('POST', `/tenants/${A}/delegations`, { body: JSON.stringify({ client_id: bot.client_id, scopes: ['tickets:read'], resources: [apiA] }) })).status).toBe(409);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now()) + 200));
      expect((await delegations(A)).find((x) => x.id === d.id).status).toBe('expired');
      expect((await call('POST', `/tenants/${A}/delegations`, { body: JSON.stringify({ client_id: bot.client_id, scopes: ['tickets:read'], resources: [apiA] }) })).status).toBe(201);
    });

    it('require_dpop round-trips on resources and delegations (default false); a non-boolean is refused', async () => {
      const bound = await call('POST', `/tenants/${B}/resources`, { body: JSON.stringify({ uri: 'https://dpop.dlg-b.test/', scopes: ['x'], require_dpop: true }) });
      expect(bound.status).toBe(201);
      expect(bound.body.require_dpop).toBe(true);
      const plain = (await b.admin('POST', `/tenants/${B}/resources`, { uri: 'https://plain.dlg-b.test/', scopes: ['x'] })).body;
      expect(plain.require_dpop).toBe(false);
      const listed = (await b.admin('GET', `/tenants/${B}/resources`)).body.resources as any[];
      expect(Object.fromEntries(listed.map((r) => [r.uri, r.require_dpop]))).toEqual({
        [apiB]: false, 'https://dpop.dlg-b.test/': true, 'https://plain.dlg-b.test/': false,
        'urn:bulkhead:admin': false, // the admin API resource every tenant is created with
      });
      const before = (await b.admin('GET', `/tenants/${B}/resources`)).body.resources;
      const bad = await call('POST', `/tenants/${B}/resources`, { body: JSON.stringify({ uri: 'https://bad.dlg-b.test/', scopes: ['x'], require_dpop: 'yes' }) });
      expect(bad.status).toBe(400);
      expect(bad.body.error_description).toMatch(/require_dpop/);
      expect((await b.admin('GET', `/tenants/${B}/resources`)).body.resources).toEqual(before);

      const bot = await newAgent('dpop-bot');
      const d = (await b.admin('POST', `/tenants/${B}/delegations`, { client_id: bot.client_id, scopes: ['x'], resources: ['https://dpop.dlg-b.test/'], require_dpop: true })).body;
      expect(d.require_dpop).toBe(true);
      expect((await delegations(B)).find((x) => x.id === d.id).require_dpop).toBe(true);
      expect((await delegations(B)).find((x) => x.client_id === agent.client_id).require_dpop).toBe(false);
    });

    it("resource URIs under the broker's own PUBLIC_URL are refused; others on the same host are not", async () => {
      const before = (await b.admin('GET', `/tenants/${B}/resources`)).body.resources;
      for (const uri of [b.url, `${b.url}/`, b.issuer(vendor), `${b.issuer(vendor)}/jwks`, `${b.url}/admin`, b.issuer('system')]) {
        const r = await call('POST', `/tenants/${B}/resources`, { body: JSON.stringify({ uri, scopes: ['x'] }) });
        expect(r.status, uri).toBe(400);
        expect(r.body.error_description).toBe(`uri: ${b.url} and the URLs under it belong to Bulkhead itself, not to a resource`);
      }
      expect((await b.admin('GET', `/tenants/${B}/resources`)).body.resources).toEqual(before);
      // Control: another port on the same host is somebody else's.
      const other = new URL(b.url);
      other.port = String(Number(other.port) === 65535 ? 65534 : Number(other.port) + 1);
      expect((await call('POST', `/tenants/${B}/resources`, { body: JSON.stringify({ uri: `${other.origin}/api`, scopes: ['x'] }) })).status).toBe(201);
    });
  });

  describe('token revocation', () => {
    const vendor = 'rv-vendor';
    const A = 'rv-a';
    const B = 'rv-b';
    let svcA: Awaited<ReturnType<typeof seedTenant>>;
    let rsA: Awaited<ReturnType<typeof seedTenant>>;
    let svcB: Awaited<ReturnType<typeof seedTenant>>;
    let agent: { client_id: string; client_secret: string };
    let delegationA: string;
    let delegationB: string;

    const basicOf = (c: { client_id: string; client_secret?: string }): [string, string] => [c.client_id, c.client_secret!];
    /** RFC 7662 at the tenant, as its resource server (a client of the tenant, Basic auth). */
    async function introspect(tenant: string, token: string, as = tenant === A ? rsA : svcB) {
      const res = await fetch(`${b.issuer(tenant)}/introspect`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${as.client_id}:${as.client_secret}`).toString('base64')}` },
        body: new URLSearchParams({ token }).toString(),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as { active: boolean; [k: string]: unknown };
    }
    async function cc(tenant: string, c: { client_id: string; client_secret?: string }): Promise<string> {
      const r = await tokenRequest(b, tenant, { grant_type: 'client_credentials' }, { basic: basicOf(c) });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body.access_token;
    }
    /** A token the agent obtains in `tenant` by exchanging its home credential. */
    async function agentToken(tenant: string): Promise<string> {
      const form = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await cc(vendor, agent), subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' };
      const r = await tokenRequest(b, tenant, form, { basic: basicOf(agent) });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body.access_token;
    }
    const jtiOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string; exp: number };
    /** What a refusal must leave alone: the revocation rows and this replica's in-memory list. */
    const state = async () => ({
      rows: await b.broker.services.db.prisma.revokedToken.count(),
      cutoffs: await b.broker.services.db.prisma.tokenCutoff.count(),
      memory: b.broker.services.revocations.size,
    });

    beforeAll(async () => {
      svcA = await seedTenant(b, A);
      rsA = await seedTenant(b, A, { clientName: 'tickets-api' });
      svcB = await seedTenant(b, B);
      await b.admin('POST', '/tenants', { id: vendor });
      agent = (await b.admin('POST', `/tenants/${vendor}/agents`, { name: 'rv-bot' })).body;
      delegationA = (await b.admin('POST', `/tenants/${A}/delegations`, { client_id: agent.client_id, scopes: ['tickets:read'], resources: [svcA.resource] })).body.id;
      delegationB = (await b.admin('POST', `/tenants/${B}/delegations`, { client_id: agent.client_id, scopes: ['tickets:read'], resources: [svcB.resource] })).body.id;
    });

    it('tokens/revoke: the token is inactive at once at introspection; idempotent; kept until the given expiry', async () => {
      const token = await cc(A, svcA);
      const other = await cc(A, svcA);
      expect((await introspect(A, token)).active).toBe(true);
      const { jti, exp } = jtiOf(token);

      const r = await call('POST', `/tenants/${A}/tokens/revoke`, { body: JSON.stringify({ jti, expires_at: new Date(exp * 1000).toISOString() }) });
      expect(r.status).toBe(200);
      expect(r.headers.get('cache-control')).toBe('no-store');
      expect(r.body).toEqual({ jti, revoked: true });
      expect(await introspect(A, token)).toEqual({ active: false });
      expect((await introspect(A, other)).active).toBe(true);
      const row = await b.broker.services.db.prisma.revokedToken.findFirst({ where: { tenantId: A, jti } });
      expect(row!.expiresAt.getTime()).toBe(exp * 1000);

      // Again, with an offset and without milliseconds: still 200, and the first expiry stays.
      const again = await call('POST', `/tenants/${A}/tokens/revoke`, { body: JSON.stringify({ jti, expires_at: new Date((exp + 3600) * 1000).toISOString().replace(/\.\d{3}Z$/, '+00:00') }) });
      expect(again.status).toBe(200);
      expect((await b.broker.services.db.prisma.revokedToken.findFirst({ where: { tenantId: A, jti } }))!.expiresAt.getTime()).toBe(exp * 1000);

      // Without expires_at: kept for the longest lifetime a token can have.
      const third = await cc(A, svcA);
      expect((await call('POST', `/tenants/${A}/tokens/revoke`, { body: JSON.stringify({ jti: jtiOf(third).jti }) })).status).toBe(200);
      expect(await introspect(A, third)).toEqual({ active: false });
      const kept = (await b.broker.services.db.prisma.revokedToken.findFirst({ where: { tenantId: A, jti: jtiOf(third).jti } }))!.expiresAt.getTime();
      expect(kept).toBeGreaterThanOrEqual(Date.now() + (MAX_TOKEN_TTL - 60) * 1000);
    });

    it("tokens/revoke is tenant-scoped: a jti revoked in B leaves A's token active", async () => {
      const token = await cc(A, svcA);
      const r = await call('POST', `/tenants/${B}/tokens/revoke`, { body: JSON.stringify({ jti: jtiOf(token).jti }) });
      expect(r.status).toBe(200);
      expect((await introspect(A, token)).active).toBe(true);
      expect((await call('POST', '/tenants/nosuch/tokens/revoke', { body: JSON.stringify({ jti: jtiOf(token).jti }) })).status).toBe(404);
      expect((await introspect(A, token)).active).toBe(true);
    });

    const future = new Date(Date.now() + 3_600_000).toISOString();
    it.each([
      ['no jti', {}, /jti/],
      ['an empty jti', { jti: '' }, /jti: must be 1-64 characters of the base64url alphabet/],
      ['a 65-character jti', { jti: 'a'.repeat(65) }, /jti: must be 1-64/],
      ['a jti with a dot', { jti: 'abc.def' }, /jti: must be 1-64/],
      ['a jti with a space', { jti: 'abc def' }, /jti: must be 1-64/],
      ['a jti in standard base64', { jti: 'ab+c/d==' }, /jti: must be 1-64/],
      ['a jti with a non-ASCII letter', { jti: 'abcä' }, /jti: must be 1-64/],
      ['a jti that is a number', { jti: 12345 }, /jti/],
      ['a jti that is a list', { jti: ['abc'] }, /jti/],
      ['an unknown field', { jti: 'REPLACED', tenant: 'rv-b' }, /unknown field\(s\) tenant/],
      ['a token instead of a jti', { jti: 'REPLACED', token: 'x.y.z' }, /unknown field\(s\) token/],
      ['expires_at without an offset', { jti: 'REPLACED', expires_at: '2099-01-01T00:00:00' }, /expires_at/],
      ['expires_at as a date', { jti: 'REPLACED', expires_at: '2099-01-01' }, /expires_at/],
      ['expires_at as epoch seconds', { jti: 'REPLACED', expires_at: 4_070_908_800 }, /expires_at/],
      ['expires_at on 30 February', { jti: 'REPLACED', expires_at: '2099-02-30T00:00:00Z' }, /expires_at/],
      ['expires_at in the past', { jti: 'REPLACED', expires_at: new Date(Date.now() - 60_000).toISOString() }, /expires_at: must be in the future/],
      ['a bad jti with a good expires_at', { jti: 'a b', expires_at: future }, /jti: must be 1-64/],
    ])('tokens/revoke with %s → 400, and nothing is revoked', async (_n, input, message) => {
      const token = await cc(A, svcA);
      const body = { ...input } as Record<string, unknown>;
      if (body.jti === 'REPLACED') body.jti = jtiOf(token).jti;
      const before = await state();
      const r = await call('POST', `/tenants/${A}/tokens/revoke`, { body: JSON.stringify(body) });
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('invalid_request');
      expect(r.body.error_description).toMatch(message);
      expect(await state()).toEqual(before);
      expect((await introspect(A, token)).active).toBe(true);
    });

    it('tokens/revoke: a body that is not a JSON object → 400, nothing revoked', async () => {
      const token = await cc(A, svcA);
      const before = await state();
      for (const [body, headers] of [
        ['', {}],
        [`jti=${jtiOf(token).jti}`, { 'content-type': 'application/x-www-form-urlencoded' }],
        [JSON.stringify([jtiOf(token).jti]), {}],
        ['null', {}],
        ['{"jti":', {}],
      ] as const) {
        const r = await call('POST', `/tenants/${A}/tokens/revoke`, { body, headers });
        expect(r.status, body).toBe(400);
      }
      expect(await state()).toEqual(before);
      expect((await introspect(A, token)).active).toBe(true);
    });

    it("clients/:client/revoke-tokens: 404 for an unknown client or another tenant's; else a cutoff, the client's tokens inactive", async () => {
      const victim = await seedTenant(b, A, { clientName: 'rv-victim' });
      const token = await cc(A, victim);
      const bystander = await cc(A, svcA);
      const before = await state();
      for (const route of [`/tenants/${B}/clients/${victim.client_id}/revoke-tokens`, `/tenants/${A}/clients/cl_nope/revoke-tokens`, `/tenants/nosuch/clients/${victim.client_id}/revoke-tokens`]) {
        const r = await call('POST', route);
        expect(r.status, route).toBe(404);
        expect(r.body.error).toBe('not_found');
      }
      expect((await call('POST', `/tenants/${B}/clients/${victim.client_id}/revoke-tokens`)).body.error_description).toBe(`client ${victim.client_id} not found in tenant ${B}`);
      // A body with fields is refused: this route takes none.
      expect((await call('POST', `/tenants/${A}/clients/${victim.client_id}/revoke-tokens`, { body: JSON.stringify({ jti: jtiOf(token).jti }) })).status).toBe(400);
      expect(await state()).toEqual(before);
      expect((await introspect(A, token)).active).toBe(true);

      const t0 = Date.now();
      const r = await call('POST', `/tenants/${A}/clients/${victim.client_id}/revoke-tokens`);
      expect(r.status).toBe(200);
      expect(Object.keys(r.body).sort()).toEqual(['client_id', 'not_before']);
      expect(r.body.client_id).toBe(victim.client_id);
      expect(Date.parse(r.body.not_before)).toBeGreaterThan(t0);
      expect(Date.parse(r.body.not_before)).toBeLessThanOrEqual(Date.now() + 1000);
      expect(await introspect(A, token)).toEqual({ active: false });
      expect((await introspect(A, bystander)).active).toBe(true);
      // With an empty JSON object it is the same call.
      expect((await call('POST', `/tenants/${A}/clients/${victim.client_id}/revoke-tokens`, { body: '{}' })).status).toBe(200);
    });

    it("delegations/:delegation/revoke-tokens: 404 through another tenant; else the agent's tokens in this tenant only are inactive", async () => {
      const inA = await agentToken(A);
      const inB = await agentToken(B);
      const home = await cc(vendor, agent);
      const before = await state();
      for (const route of [`/tenants/${B}/delegations/${delegationA}/revoke-tokens`, `/tenants/${A}/delegations/${delegationB}/revoke-tokens`, `/tenants/${A}/delegations/dg_nope/revoke-tokens`]) {
        const r = await call('POST', route);
        expect(r.status, route).toBe(404);
        expect(r.body.error).toBe('not_found');
      }
      expect((await call('POST', `/tenants/${B}/delegations/${delegationA}/revoke-tokens`)).body.error_description).toBe(`delegation ${delegationA} not found in tenant ${B}`);
      expect((await call('POST', `/tenants/${A}/delegations/${delegationA}/revoke-tokens`, { body: JSON.stringify({ colour: 'red' }) })).body.error_description).toMatch(/unknown field\(s\) colour/);
      expect(await state()).toEqual(before);
      expect((await introspect(A, inA)).active).toBe(true);

      const r = await call('POST', `/tenants/${A}/delegations/${delegationA}/revoke-tokens`);
      expect(r.status).toBe(200);
      expect(Object.keys(r.body).sort()).toEqual(['client_id', 'delegation', 'not_before']);
      expect(r.body).toMatchObject({ delegation: delegationA, client_id: agent.client_id });
      expect(await introspect(A, inA)).toEqual({ active: false });
      // B's installation and the agent's home credential are untouched.
      expect((await introspect(B, inB)).active).toBe(true);
      expect((await introspect(vendor, home, (await seedTenant(b, vendor, { resource: 'https://api.rv-vendor.test/', clientName: 'rv-vendor-rs' })))).active).toBe(true);
      // The delegation itself stays active: the agent obtains new tokens (after the cutoff second).
      expect((await b.admin('GET', `/tenants/${A}/delegations`)).body.delegations.find((d: { id: string }) => d.id === delegationA).status).toBe('active');
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(r.body.not_before) - Date.now()) + 50));
      expect((await introspect(A, await agentToken(A))).active).toBe(true);
    });
  });
});
