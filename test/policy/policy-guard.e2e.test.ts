import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { forTenant } from '../../src/db/tenant-scope.js';
import { localChangeEvents } from '../../src/shared/changes.js';
import { createPolicyService } from '../../src/policy/service.js';
import { policyEngineHealthy } from '../../src/policy/engine.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';
import { CRASH_SHAPES } from './crash-shapes.js';

/**
 * The security review's finding (one tenant admin's deeply nested policy text broke cedar-wasm
 * for the whole process: every tenant's issuance, the system tenant's admin tokens included),
 * through the real admin API and token endpoint: the text is refused with a located 400 at
 * `policy set` and at `policy test --policy`, nothing is stored, and everyone still gets
 * tokens; a text stored before the guard existed is never handed to Cedar (its tenant alone
 * fails closed, and it is logged).
 */
describe('a tenant admin cannot break policy evaluation for everyone', () => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let globex: Awaited<ReturnType<typeof seedTenant>>;
  let acmeAdminToken: string;
  const DEEP = `permit(principal, action, resource) when { ${'('.repeat(1000)}true${')'.repeat(1000)} };`;

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    acme = await seedTenant(b, 'acme');
    globex = await seedTenant(b, 'globex');
    const admin = (await b.admin('POST', '/tenants/acme/clients', { name: 'acme-admin', scopes: ['admin'], resources: ['urn:bulkhead:admin'] })).body;
    const t = await tokenRequest(b, 'acme', { grant_type: 'client_credentials', resource: 'urn:bulkhead:admin', scope: 'admin' }, { basic: [admin.client_id, admin.client_secret] });
    expect(t.status).toBe(200);
    acmeAdminToken = t.body.access_token;
  });
  afterAll(() => b?.close());

  /** The admin API as acme's own tenant admin. */
  const asAcmeAdmin = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${b.url}/admin/tenants/acme${route}`, {
      method,
      headers: { authorization: `Bearer ${acmeAdminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: await res.json() };
  };
  const cc = (tenant: string, c: { client_id: string; client_secret?: string }) =>
    tokenRequest(b, tenant, { grant_type: 'client_credentials' }, { basic: [c.client_id, c.client_secret!] });
  const systemAdminToken = () => {
    const c = b.adminCredentials();
    return tokenRequest(b, 'system', { grant_type: 'client_credentials', resource: 'urn:bulkhead:admin', scope: 'admin' }, { basic: [c.client_id, c.client_secret] });
  };
  async function everyoneStillGetsTokens() {
    expect((await cc('globex', globex)).status).toBe(200);
    expect((await systemAdminToken()).status).toBe(200);
    expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
    expect(policyEngineHealthy()).toBe(true);
  }

  it('policy set: the deep text is refused with a located 400, nothing is stored, everyone still gets tokens', async () => {
    const res = await asAcmeAdmin('PUT', '/policy', { policy: DEEP });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringMatching(/^invalid policy: brackets are nested too deeply .* at line 1, column \d+$/),
      problems: [{ message: expect.stringMatching(/nested too deeply/), location: { line: 1, column: expect.any(Number) } }],
    });
    expect((await asAcmeAdmin('GET', '/policy')).body).toMatchObject({ text: null, version: null });
    expect((await cc('acme', acme)).status).toBe(200);
    await everyoneStillGetsTokens();
  });

  it('policy test with a candidate: the deep text is refused with a 400, everyone still gets tokens', async () => {
    const res = await asAcmeAdmin('POST', '/policy/test', { policy: DEEP, requests: [{ principal: { id: acme.client_id }, action: 'issue', resource: acme.resource }] });
    expect(res.status).toBe(400);
    expect(res.body.problems[0].message).toMatch(/nested too deeply/);
    await everyoneStillGetsTokens();
  });

  it('every shape that breaks cedar-wasm is refused at policy set and at policy test', async () => {
    for (const s of CRASH_SHAPES) {
      expect((await asAcmeAdmin('PUT', '/policy', { policy: s.text })).status, s.name).toBe(400);
      const t = await asAcmeAdmin('POST', '/policy/test', { policy: s.text, requests: [{ principal: { id: acme.client_id }, action: 'issue', resource: acme.resource }] });
      expect(t.status, s.name).toBe(400);
    }
    expect((await asAcmeAdmin('GET', '/policy')).body.text).toBeNull();
    await everyoneStillGetsTokens();
  });

  it('a legitimate policy near the bounds is still accepted and decides', async () => {
    const nested = `permit(principal, action, resource) when { ${'('.repeat(30)}context.scopes.contains("tickets:read")${')'.repeat(30)} };`;
    expect((await asAcmeAdmin('PUT', '/policy', { policy: nested })).status).toBe(200);
    expect((await cc('acme', acme)).status).toBe(200);
    expect((await asAcmeAdmin('DELETE', '/policy')).status).toBe(200);
  });

  it('a policy stored before the guard existed is never handed to Cedar: its tenant fails closed (access_denied), everyone else still gets tokens', async () => {
    const prisma = b.broker.services.db.prisma;
    await forTenant(prisma, 'acme').tenantPolicy.create({ data: { tenantId: 'acme', text: DEEP, version: 7, updatedAt: new Date(), updatedBy: 'before-the-guard' } });
    b.broker.services.changes.policyChanged('acme');
    try {
      const r = await cc('acme', acme);
      expect(r.status).toBe(400);
      expect(r.body).toEqual({ error: 'access_denied', error_description: "the tenant's policy does not allow this request" });
      await everyoneStillGetsTokens();
      // The admin API shows it as stored (so it can be replaced), and refuses to test it.
      expect((await asAcmeAdmin('GET', '/policy')).body).toMatchObject({ text: DEEP, version: 7, policy_ids: [] });
      const t = await asAcmeAdmin('POST', '/policy/test', { requests: [{ principal: { id: acme.client_id }, action: 'issue', resource: acme.resource }] });
      expect(t.status).toBe(400);

      // And it is logged (a service of its own over the same database, to see the logger).
      const logger = { error: vi.fn(), fatal: vi.fn() };
      const svc = createPolicyService({ prisma, changes: localChangeEvents(), tenantTtl: async () => 300, logger });
      expect((await svc.forTenant('acme')).version).toBe(7);
      expect(logger.error).toHaveBeenCalledWith(
        { tenant: 'acme', version: 7, err: { message: expect.stringMatching(/^invalid policy: brackets are nested too deeply/) } },
        expect.stringMatching(/stored tenant policy refused/),
      );
      expect(logger.fatal).not.toHaveBeenCalled();

      // Replacing it restores the tenant's tokens.
      expect((await asAcmeAdmin('PUT', '/policy', { policy: 'permit(principal, action, resource);' })).status).toBe(200);
      expect((await cc('acme', acme)).status).toBe(200);
    } finally {
      await b.admin('DELETE', '/tenants/acme/policy');
    }
  });
});
