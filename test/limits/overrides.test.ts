import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';
import { DATABASES } from '../support/databases.js';
import { clientRateProblem, effectiveRps } from '../../src/limits/overrides.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Unique tenant names: Redis is shared by every test file running at the same time. */
const tenantName = (base: string) => `${base}-${randomBytes(4).toString('hex')}`;

type Seeded = Awaited<ReturnType<typeof seedTenant>>;
const cc = (b: Pick<TestBroker, 'url'>, c: Seeded) =>
  tokenRequest(b as TestBroker, c.tenant, { grant_type: 'client_credentials', resource: c.resource }, { basic: [c.client_id, c.client_secret!] });
/** How many of `n` concurrent token requests (one window) get a token. */
const served = async (b: Pick<TestBroker, 'url'>, c: Seeded, n: number) => {
  const rs = await Promise.all(Array.from({ length: n }, () => cc(b, c)));
  for (const r of rs) expect([200, 429], JSON.stringify(r.body)).toContain(r.status);
  return rs.filter((r) => r.status === 200).length;
};
/** Waits for the next one-second window, so earlier requests of a test do not count. */
const nextWindow = () => new Promise((r) => setTimeout(r, 1100));

describe('override rules (pure)', () => {
  it.each([
    [null, 100, undefined],
    [50, 100, undefined],
    [100, 100, undefined],
    [101, 100, "rate_limit_rps: must not exceed the tenant's rate (100 requests/s); a platform admin sets the tenant's rate"],
    [5_000_000, 0, undefined], // the tenant is unlimited: nothing to exceed
  ] as const)('client rate %s under a tenant at %s → %s', (requested, tenant, problem) => {
    expect(clientRateProblem(requested, tenant)).toBe(problem);
  });
  it('the override wins over the default, null falls back to it', () => {
    expect(effectiveRps(7, 200)).toBe(7);
    expect(effectiveRps(null, 200)).toBe(200);
    expect(effectiveRps(undefined, 0)).toBe(0);
  });
});

describe.each(DATABASES)('rate-limit overrides through the admin API (%s; client 4/s, tenant 50/s by default)', (kind) => {
  let b: TestBroker;
  let tenant: string;
  let svc: Seeded;
  let tenantAdminToken: string;
  const call = async (token: string, method: string, route: string, body?: unknown) => {
    const res = await fetch(`${b.url}/admin${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json().catch(() => undefined)) as any };
  };

  beforeAll(async () => {
    b = await startTestBroker(kind, { RATE_LIMIT_CLIENT_RPS: '4', RATE_LIMIT_TENANT_RPS: '50' });
    tenant = tenantName('ovr');
    svc = await seedTenant(b, tenant);
    const admin = (await b.admin('POST', `/tenants/${tenant}/clients`, { name: 'admin', scopes: ['admin'], resources: ['urn:bulkhead:admin'] })).body;
    const t = await tokenRequest(b, tenant, { grant_type: 'client_credentials', resource: 'urn:bulkhead:admin', scope: 'admin' }, { basic: [admin.client_id, admin.client_secret] });
    tenantAdminToken = t.body.access_token;
  });
  afterAll(() => b?.close());

  it('GET shows the defaults from the environment and no overrides', async () => {
    expect((await b.admin('GET', `/tenants/${tenant}/limits`)).body).toEqual({
      tenant_id: tenant,
      tenant: { rate_limit_rps: null, effective_rps: 50 },
      client_default_rps: 4,
      clients: [],
    });
  });

  it('bad input is refused with invalid_request naming the field, and changes nothing', async () => {
    const before = (await b.admin('GET', `/tenants/${tenant}/limits`)).body;
    const cases: Array<[string, unknown, RegExp]> = [
      ['zero', { rate_limit_rps: 0 }, /^rate_limit_rps: 0 is not a rate: use null for the default/],
      ['negative', { rate_limit_rps: -5 }, /^rate_limit_rps: 0 is not a rate/],
      ['fraction', { rate_limit_rps: 2.5 }, /^rate_limit_rps: must be a whole number/],
      ['string', { rate_limit_rps: '10' }, /^rate_limit_rps: must be a whole number of requests per second, or null/],
      ['too big', { rate_limit_rps: 10_000_001 }, /^rate_limit_rps: must be at most 10000000/],
      ['missing', {}, /^rate_limit_rps: /],
      ['unknown field', { rate_limit_rps: 5, rps: 5 }, /unknown field\(s\) rps/],
      ['not JSON', '{"rate_limit_rps":', /not valid JSON/],
    ];
    for (const [label, body, message] of cases) {
      for (const route of [`/tenants/${tenant}/limits`, `/tenants/${tenant}/clients/${svc.client_id}/limits`]) {
        const r = await call(await b.adminToken(), 'PUT', route, body);
        expect(r.status, `${label} at ${route}`).toBe(400);
        expect(r.body.error, label).toBe('invalid_request');
        expect(r.body.error_description, label).toMatch(message);
      }
    }
    expect((await b.admin('GET', `/tenants/${tenant}/limits`)).body).toEqual(before);
  });

  it('unknown tenants and clients are 404; another tenant\'s client is unknown here', async () => {
    const other = await seedTenant(b, tenantName('ovr-other'));
    const r1 = await b.admin('PUT', `/tenants/nosuch-tenant/limits`, { rate_limit_rps: 5 }, { allowError: true });
    expect(r1).toEqual({ status: 404, body: { error: 'not_found', error_description: 'tenant nosuch-tenant not found' } });
    const r2 = await b.admin('PUT', `/tenants/${tenant}/clients/cl_nosuch/limits`, { rate_limit_rps: 2 }, { allowError: true });
    expect(r2).toEqual({ status: 404, body: { error: 'not_found', error_description: `client cl_nosuch not found in tenant ${tenant}` } });
    const r3 = await b.admin('PUT', `/tenants/${tenant}/clients/${other.client_id}/limits`, { rate_limit_rps: 2 }, { allowError: true });
    expect(r3.status).toBe(404);
    expect((await b.admin('GET', `/tenants/${other.tenant}/limits`)).body.clients).toEqual([]);
  });

  it("a client override applies at the next request: lower, then higher than the default, then back to it", async () => {
    const c = await seedTenant(b, tenant, { clientName: 'svc-override' });
    const set = (rps: number | null) => b.admin('PUT', `/tenants/${tenant}/clients/${c.client_id}/limits`, { rate_limit_rps: rps });
    expect((await set(1)).body).toEqual({ client_id: c.client_id, name: 'svc-override', rate_limit_rps: 1, effective_rps: 1 });
    expect(await served(b, c, 8)).toBe(1);
    await nextWindow();
    await set(9);
    expect(await served(b, c, 14)).toBe(9);
    expect((await b.admin('GET', `/tenants/${tenant}/limits`)).body.clients).toEqual([{ client_id: c.client_id, name: 'svc-override', rate_limit_rps: 9, effective_rps: 9 }]);
    await nextWindow();
    expect((await set(null)).body).toEqual({ client_id: c.client_id, name: 'svc-override', rate_limit_rps: null, effective_rps: 4 });
    expect(await served(b, c, 10)).toBe(4);
    expect((await b.admin('GET', `/tenants/${tenant}/limits`)).body.clients).toEqual([]);
  });

  it("a tenant override caps the tenant's clients together, and caps the client overrides that may be set", async () => {
    const t = tenantName('ovr-tenant');
    const clients: Seeded[] = [];
    for (let i = 0; i < 3; i++) clients.push(await seedTenant(b, t, { clientName: `svc-${i}` }));
    const put = await b.admin('PUT', `/tenants/${t}/limits`, { rate_limit_rps: 6 });
    expect(put.body).toEqual({ tenant_id: t, tenant: { rate_limit_rps: 6, effective_rps: 6 }, client_default_rps: 4, clients: [] });
    const counts = await Promise.all(clients.map((c) => served(b, c, 4)));
    expect(counts.reduce((a, n) => a + n, 0)).toBe(6);
    // A client rate above the tenant's is refused, for a platform admin too, and changes nothing.
    const over = await b.admin('PUT', `/tenants/${t}/clients/${clients[0]!.client_id}/limits`, { rate_limit_rps: 7 }, { allowError: true });
    expect(over).toEqual({ status: 400, body: { error: 'invalid_request', error_description: "rate_limit_rps: must not exceed the tenant's rate (6 requests/s); a platform admin sets the tenant's rate" } });
    expect((await b.admin('PUT', `/tenants/${t}/clients/${clients[0]!.client_id}/limits`, { rate_limit_rps: 6 })).body.rate_limit_rps).toBe(6);
    await nextWindow();
    // Back to the default: 50/s for the tenant, so 3 × 4 all pass.
    expect((await b.admin('PUT', `/tenants/${t}/limits`, { rate_limit_rps: null })).body.tenant).toEqual({ rate_limit_rps: null, effective_rps: 50 });
    await b.admin('PUT', `/tenants/${t}/clients/${clients[0]!.client_id}/limits`, { rate_limit_rps: null });
    const after = await Promise.all(clients.map((c) => served(b, c, 4)));
    expect(after).toEqual([4, 4, 4]);
  });

  it("a tenant admin shares out its tenant's rate between its clients, and cannot raise the tenant's", async () => {
    const c = await seedTenant(b, tenant, { clientName: 'svc-by-tenant-admin' });
    const ok = await call(tenantAdminToken, 'PUT', `/tenants/${tenant}/clients/${c.client_id}/limits`, { rate_limit_rps: 20 });
    expect(ok).toEqual({ status: 200, body: { client_id: c.client_id, name: 'svc-by-tenant-admin', rate_limit_rps: 20, effective_rps: 20 } });
    const over = await call(tenantAdminToken, 'PUT', `/tenants/${tenant}/clients/${c.client_id}/limits`, { rate_limit_rps: 51 });
    expect(over.status).toBe(400);
    expect(over.body.error_description).toMatch(/must not exceed the tenant's rate \(50 requests\/s\)/);
    const raise = await call(tenantAdminToken, 'PUT', `/tenants/${tenant}/limits`, { rate_limit_rps: 10_000 });
    expect(raise).toEqual({ status: 403, body: { error: 'insufficient_scope', error_description: 'only a platform admin (a token of the system tenant) may do this' } });
    const seen = await call(tenantAdminToken, 'GET', `/tenants/${tenant}/limits`);
    expect(seen.status).toBe(200);
    expect(seen.body.tenant).toEqual({ rate_limit_rps: null, effective_rps: 50 });
    expect(seen.body.clients).toContainEqual({ client_id: c.client_id, name: 'svc-by-tenant-admin', rate_limit_rps: 20, effective_rps: 20 });
    await b.admin('PUT', `/tenants/${tenant}/clients/${c.client_id}/limits`, { rate_limit_rps: null });
  });

  it('the OpenAPI document describes the limit routes', async () => {
    const doc = (await (await fetch(`${b.url}/admin/openapi.json`)).json()) as any;
    expect(Object.keys(doc.paths['/admin/tenants/{tenant}/limits'])).toEqual(['get', 'put']);
    expect(Object.keys(doc.paths['/admin/tenants/{tenant}/clients/{client_id}/limits'])).toEqual(['put']);
    expect(doc.components.schemas.SetRateLimit.required).toEqual(['rate_limit_rps']);
  });
});

describe('rate-limit overrides on two replicas (PostgreSQL + Redis)', () => {
  let r1: TestBroker;
  let r2: TestBroker;
  beforeAll(async () => {
    const env = { REDIS_URL, RATE_LIMIT_CLIENT_RPS: '3', RATE_LIMIT_TENANT_RPS: '1000' };
    r1 = await startTestBroker('postgres', env);
    r2 = await startTestBroker('pglite', { ...env, DATABASE_URL: r1.config.databaseUrl!, KEYS_DIR: r1.keysDir, PUBLIC_URL: r1.url });
  });
  afterAll(async () => {
    await r2?.close();
    await r1?.close();
  });

  it("an override set through r1 applies at r2 at once, although r2 had cached the tenant's overrides", async () => {
    const c = await seedTenant(r1, tenantName('ovr-replicas'));
    const at2 = { url: `http://127.0.0.1:${r2.config.port}` };
    // r2 serves the tenant first, so it holds the (empty) overrides in memory.
    expect(await served(at2, c, 6)).toBe(3);
    await nextWindow();
    await r1.admin('PUT', `/tenants/${c.tenant}/clients/${c.client_id}/limits`, { rate_limit_rps: 8 });
    // The change travels by Redis pub/sub: give it a moment, then one window's worth at r2 only.
    const deadline = Date.now() + 3000;
    let n = 0;
    while (Date.now() < deadline) {
      await nextWindow();
      n = await served(at2, c, 12);
      if (n === 8) break;
    }
    expect(n).toBe(8);
    await r1.admin('PUT', `/tenants/${c.tenant}/limits`, { rate_limit_rps: 2 });
    let m = 0;
    for (let i = 0; i < 3; i++) {
      await nextWindow();
      m = await served(at2, c, 12);
      if (m === 2) break;
    }
    expect(m).toBe(2);
  });
});
