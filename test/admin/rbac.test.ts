import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, importJWK } from 'jose';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';
import { adminRouter } from '../../src/admin/routes.js';
import { PLATFORM_ONLY_ROUTES } from '../../src/admin/auth.js';

/**
 * Tenant admins (RBAC): a token from tenant T's own issuer, for the admin API audience with the
 * admin scope, manages T and only T. Another tenant's routes answer exactly what an unknown
 * tenant's do (404), platform-only routes answer 403, and nothing changes.
 */
describe('admin API RBAC: tenant admins (pglite)', () => {
  let b: TestBroker;
  const A = 'rbac-a';
  const B = 'rbac-b';
  const vendor = 'rbac-vendor';
  const UNKNOWN = 'rbac-nosuch';
  let adminA: { client_id: string; client_secret: string };
  let tokenA: string;
  let tokenB: string;
  let seedA: Awaited<ReturnType<typeof seedTenant>>;
  let seedB: Awaited<ReturnType<typeof seedTenant>>;
  let agent: { client_id: string; client_secret: string };
  let delegationB: string;
  let kidB: string;

  const call = async (token: string | null, method: string, route: string, body?: unknown) => {
    const res = await fetch(`${b.url}/admin${route}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json().catch(() => undefined)) as any };
  };

  /** A tenant-admin client in `tenant`, created by the platform admin as documented. */
  async function tenantAdmin(tenant: string) {
    return (await b.admin('POST', `/tenants/${tenant}/clients`, { name: 'tenant-admin', scopes: ['admin'], resources: ['urn:bulkhead:admin'] })).body as { client_id: string; client_secret: string };
  }
  async function clientToken(tenant: string, c: { client_id: string; client_secret?: string }, form: Record<string, string> = {}) {
    const r = await tokenRequest(b, tenant, { grant_type: 'client_credentials', ...form }, { basic: [c.client_id, c.client_secret!] });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.access_token as string;
  }
  /** A token with chosen claims, signed with `signer`'s real active key. */
  async function signed(signer: string, claims: Record<string, unknown>) {
    const { signer: key } = await b.broker.services.keys.loadForIssuer(signer);
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: b.issuer(A), aud: 'urn:bulkhead:admin', client_id: adminA.client_id, tenant_id: A, scope: 'admin', iat: now, exp: now + 60, jti: `j${now}`, ...claims })
      .setProtectedHeader({ alg: key!.alg, kid: key!.kid, typ: 'at+jwt' })
      .sign(await importJWK(key!.privateJwk, key!.alg));
  }

  /** Everything of tenant B an admin route could change, as the platform admin sees it. */
  async function stateOfB() {
    const prisma = b.broker.services.db.prisma;
    return {
      tenants: (await b.admin('GET', '/tenants')).body.tenants,
      tenant: (await b.admin('GET', `/tenants/${B}`)).body,
      keys: (await b.admin('GET', `/tenants/${B}/keys`)).body.keys,
      resources: (await b.admin('GET', `/tenants/${B}/resources`)).body.resources,
      clients: (await b.admin('GET', `/tenants/${B}/clients`)).body.clients,
      delegations: (await b.admin('GET', `/tenants/${B}/delegations`)).body.delegations,
      revoked: await prisma.revokedToken.count({ where: { tenantId: B } }),
      cutoffs: await prisma.tokenCutoff.count({ where: { tenantId: B } }),
      // A's attempts are in A's own trail, never written into B's.
      audit: await prisma.auditEvent.count({ where: { tenantId: B } }),
      limits: (await b.admin('GET', `/tenants/${B}/limits`)).body,
      policy: await prisma.tenantPolicy.findUnique({ where: { tenantId: B } }),
    };
  }

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    await b.admin('POST', '/tenants', { id: vendor });
    agent = (await b.admin('POST', `/tenants/${vendor}/agents`, { name: 'rbac-bot' })).body;
    seedA = await seedTenant(b, A);
    seedB = await seedTenant(b, B);
    adminA = await tenantAdmin(A);
    tokenA = await clientToken(A, adminA, { resource: 'urn:bulkhead:admin', scope: 'admin' });
    tokenB = await clientToken(B, await tenantAdmin(B), { resource: 'urn:bulkhead:admin', scope: 'admin' });
    delegationB = (await b.admin('POST', `/tenants/${B}/delegations`, { client_id: agent.client_id, scopes: ['tickets:read'], resources: [seedB.resource] })).body.id;
    kidB = (await b.admin('GET', `/tenants/${B}/keys`)).body.keys.find((k: { status: string }) => k.status === 'active').kid;
    // B has a policy, so that A deleting or replacing it would show.
    await b.admin('PUT', `/tenants/${B}/policy`, { policy: '@id("b-policy")\npermit(principal, action, resource);' });
  });
  afterAll(() => b?.close());

  it('every tenant is created with the admin API resource, so its issuer can mint tenant-admin tokens', async () => {
    for (const t of [A, B, vendor]) {
      const admin = (await b.admin('GET', `/tenants/${t}/resources`)).body.resources.filter((r: { uri: string }) => r.uri === 'urn:bulkhead:admin');
      expect(admin).toEqual([expect.objectContaining({ uri: 'urn:bulkhead:admin', scopes: ['admin'] })]);
    }
    const claims = JSON.parse(Buffer.from(tokenA.split('.')[1]!, 'base64url').toString());
    expect(claims).toMatchObject({ iss: b.issuer(A), tenant_id: A, aud: 'urn:bulkhead:admin', scope: 'admin', client_id: adminA.client_id });
  });

  /** Every admin route the broker serves, from the same function the app mounts, with a sample body. */
  function routes(): Array<{ method: string; template: string }> {
    return adminRouter(b.broker.services, { maxBodyBytes: 1024 }).stack
      .filter((layer) => layer.methods.length > 0 && layer.path !== '/admin/openapi.json')
      .flatMap((layer) => layer.methods.filter((m) => m !== 'HEAD').map((method) => ({ method, template: String(layer.path) })));
  }
  const samples: Record<string, unknown> = {
    'POST /admin/tenants': { id: 'rbac-new' },
    'POST /admin/tenants/:tenant/keys/rotate': {},
    'POST /admin/tenants/:tenant/resources': { uri: 'https://new.rbac.test/', scopes: ['x'] },
    'POST /admin/tenants/:tenant/clients': { name: 'intruder', scopes: ['admin'], resources: ['urn:bulkhead:admin'] },
    'POST /admin/tenants/:tenant/agents': { name: 'intruder-bot' },
    'POST /admin/tenants/:tenant/delegations': { client_id: 'AGENT', scopes: ['tickets:read', 'tickets:write'], resources: ['RESOURCE'] },
    'POST /admin/tenants/:tenant/tokens/revoke': { jti: 'rbacjti' },
    'PUT /admin/tenants/:tenant/limits': { rate_limit_rps: 5 },
    'PUT /admin/tenants/:tenant/clients/:client/limits': { rate_limit_rps: 3 },
    'PUT /admin/tenants/:tenant/policy': { policy: 'forbid(principal, action, resource);' },
    'POST /admin/tenants/:tenant/policy/test': { policy: 'forbid(principal, action, resource);', requests: [{ principal: { id: 'x' }, action: 'issue', resource: 'https://x.test/' }] },
  };
  function request(method: string, template: string, tenant: string) {
    const path = template
      .replace(/^\/admin/, '')
      .replace(':tenant', tenant)
      .replace(':kid', kidB)
      .replace(':client', seedB.client_id)
      .replace(':delegation', delegationB);
    expect(path, `${method} ${template}: a route parameter this test does not know`).not.toMatch(/:/);
    let body = samples[`${method} ${template}`];
    if (body !== undefined) body = JSON.parse(JSON.stringify(body).replace('AGENT', agent.client_id).replace('RESOURCE', tenant === B ? seedB.resource : seedA.resource));
    return { path, body: method === 'GET' ? undefined : (body ?? {}) };
  }

  it("A's admin token on every one of B's routes: 404 exactly as for an unknown tenant (or 403 platform-only), and nothing changes", async () => {
    const all = routes();
    expect(all.length).toBeGreaterThanOrEqual(20);
    const before = await stateOfB();
    for (const { method, template } of all) {
      const label = `${method} ${template}`;
      if (template.includes(':tenant')) {
        const { path, body } = request(method, template, B);
        const r = await call(tokenA, method, path, body);
        expect(r.status, label).toBe(404);
        expect(r.body, label).toEqual({ error: 'not_found', error_description: `tenant ${B} not found` });
        // Word for word what an unknown tenant answers: A cannot tell that B exists.
        const unknown = await call(tokenA, method, request(method, template, UNKNOWN).path, body);
        expect({ status: unknown.status, body: unknown.body }, label).toEqual({ status: 404, body: { error: 'not_found', error_description: `tenant ${UNKNOWN} not found` } });
      } else if (label === 'GET /admin/tenants') {
        const r = await call(tokenA, method, '/tenants');
        expect(r.status).toBe(200);
        expect(r.body.tenants.map((t: { id: string }) => t.id)).toEqual([A]);
      } else {
        const { path, body } = request(method, template, B);
        const r = await call(tokenA, method, path, body);
        expect(r.status, label).toBe(403);
        expect(r.body.error, label).toBe('insufficient_scope');
      }
    }
    expect(await stateOfB()).toEqual(before);
    // And B's own admin is not affected by any of it.
    expect((await call(tokenB, 'GET', `/tenants/${B}/clients`)).status).toBe(200);
  });

  it("platform-only routes are 403 on A's own tenant too, and change nothing", async () => {
    expect([...PLATFORM_ONLY_ROUTES].sort()).toEqual(['POST /admin/tenants', 'POST /admin/tenants/:tenant/resume', 'POST /admin/tenants/:tenant/suspend', 'PUT /admin/tenants/:tenant/limits']);
    const limitsBefore = (await b.admin('GET', `/tenants/${A}/limits`)).body;
    const tenantsBefore = (await b.admin('GET', '/tenants')).body.tenants;
    for (const key of PLATFORM_ONLY_ROUTES) {
      const [method, template] = key.split(' ') as [string, string];
      const { path, body } = request(method, template, A);
      const r = await call(tokenA, method, path, body);
      expect(r.status, key).toBe(403);
      expect(r.body.error, key).toBe('insufficient_scope');
    }
    expect((await b.admin('GET', '/tenants')).body.tenants).toEqual(tenantsBefore);
    expect((await b.admin('GET', `/tenants/${A}`)).body.status).toBe('active');
    // A's admin cannot raise (or set at all) its own tenant's rate.
    expect((await b.admin('GET', `/tenants/${A}/limits`)).body).toEqual(limitsBefore);
  });

  it("A's admin token works on A's routes: show, list, create a client, list and rotate keys, grant a delegation", async () => {
    expect((await call(tokenA, 'GET', `/tenants/${A}`)).body).toMatchObject({ id: A, status: 'active' });
    const created = await call(tokenA, 'POST', `/tenants/${A}/clients`, { name: 'made-by-tenant-admin', scopes: ['tickets:read'], resources: [seedA.resource] });
    expect(created.status).toBe(201);
    expect(created.body.client_secret).toMatch(/^bhs_/);
    // The new client works at A's token endpoint.
    await clientToken(A, created.body);
    const keys = await call(tokenA, 'GET', `/tenants/${A}/keys`);
    expect(keys.status).toBe(200);
    const activeBefore = keys.body.keys.find((k: { status: string }) => k.status === 'active').kid;
    const rotated = await call(tokenA, 'POST', `/tenants/${A}/keys/rotate`, {});
    expect(rotated.status).toBe(200);
    const after = (await call(tokenA, 'GET', `/tenants/${A}/keys`)).body.keys;
    expect(after.find((k: { kid: string }) => k.kid === activeBefore).status).toBe('retired');
    // Signed by the key that just retired, still published: the admin token keeps working.
    const d = await call(tokenA, 'POST', `/tenants/${A}/delegations`, { client_id: agent.client_id, scopes: ['tickets:read'], resources: [seedA.resource] });
    expect(d.status, JSON.stringify(d.body)).toBe(201);
    expect(d.body.created_by).toBe(adminA.client_id);
    // Its own tenant's policy: set, shown, tested, deleted.
    const set = await call(tokenA, 'PUT', `/tenants/${A}/policy`, { policy: '@id("a-all")\npermit(principal, action, resource);' });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toMatchObject({ tenant: A, version: 1, policy_ids: ['a-all'], updated_by: adminA.client_id });
    expect((await call(tokenA, 'GET', `/tenants/${A}/policy`)).body.policy_ids).toEqual(['a-all']);
    const tested = await call(tokenA, 'POST', `/tenants/${A}/policy/test`, { requests: [{ principal: { id: 'x' }, action: 'issue', resource: seedA.resource }] });
    expect(tested.body.results[0]).toMatchObject({ decision: 'allow', policies: ['a-all'] });
    expect((await call(tokenA, 'DELETE', `/tenants/${A}/policy`)).body).toMatchObject({ deleted: true, text: null });
    expect((await call(tokenA, 'GET', `/tenants/${A}/delegations`)).body.delegations.map((x: { id: string }) => x.id)).toContain(d.body.id);
    // …and the agent can use it in A.
    const home = await clientToken(vendor, agent);
    const x = await tokenRequest(b, A, { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: home, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' }, { basic: [agent.client_id, agent.client_secret] });
    expect(x.status, JSON.stringify(x.body)).toBe(200);
  });

  it('control: a well-formed token signed with A\'s real key is accepted, so the refusals below fail for their reason', async () => {
    expect((await call(await signed(A, {}), 'GET', `/tenants/${A}/keys`)).status).toBe(200);
  });

  it("a token from A's issuer without the admin scope → 403; for another audience → 401", async () => {
    const noScope = await call(await signed(A, { scope: 'tickets:read' }), 'GET', `/tenants/${A}/keys`);
    expect(noScope.status).toBe(403);
    expect(noScope.body.error).toBe('insufficient_scope');
    // A real token of A's ordinary client: audience is A's API, not the admin API.
    const other = await call(await clientToken(A, seedA), 'GET', `/tenants/${A}/keys`);
    expect(other.status).toBe(401);
    expect(other.body.error).toBe('invalid_token');
    expect((await call(await signed(A, { aud: seedA.resource }), 'GET', `/tenants/${A}/keys`)).status).toBe(401);
  });

  it("a token naming A (iss, tenant_id) but signed with B's key is refused, at A's routes and everywhere", async () => {
    const forged = await signed(B, {});
    for (const route of [`/tenants/${A}/keys`, `/tenants/${B}/keys`, '/tenants']) {
      const r = await call(forged, 'GET', route);
      expect(r.status, route).toBe(401);
      expect(r.body.error).toBe('invalid_token');
    }
    // Mixed claims do not pass either: A's key with B's tenant_id, or B's issuer with A's tenant_id.
    expect((await call(await signed(A, { tenant_id: B }), 'GET', `/tenants/${B}/keys`)).status).toBe(401);
    expect((await call(await signed(A, { iss: b.issuer(B) }), 'GET', `/tenants/${B}/keys`)).status).toBe(401);
    expect((await call(await signed(A, { tenant_id: 'system' }), 'GET', '/tenants')).status).toBe(401);
    expect((await call(await signed(A, { iss: b.issuer('system'), tenant_id: 'system' }), 'GET', '/tenants')).status).toBe(401);
    // A token naming an unknown tenant's issuer.
    expect((await call(await signed(A, { iss: b.issuer(UNKNOWN), tenant_id: UNKNOWN }), 'GET', `/tenants/${UNKNOWN}/keys`)).status).toBe(401);
  });

  it("a suspended tenant's admin tokens are refused until the platform resumes it", async () => {
    await b.admin('POST', `/tenants/${A}/suspend`);
    try {
      const r = await call(tokenA, 'GET', `/tenants/${A}/keys`);
      expect(r.status).toBe(401);
      expect(r.body.error_description).toBe('the tenant is suspended');
    } finally {
      await b.admin('POST', `/tenants/${A}/resume`);
    }
    expect((await call(tokenA, 'GET', `/tenants/${A}/keys`)).status).toBe(200);
  });

  it('platform admins still manage every tenant', async () => {
    expect((await b.admin('GET', '/tenants')).body.tenants.map((t: { id: string }) => t.id)).toEqual(expect.arrayContaining([A, B, vendor, 'system']));
    expect((await b.admin('GET', `/tenants/${B}/clients`)).body.clients.length).toBeGreaterThan(0);
  });
});
