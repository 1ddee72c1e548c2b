import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * A policy set or deleted through one replica is in force at the other at once: each replica
 * caches the prepared policy set of a tenant (up to 30 s), and the change bus (Redis pub/sub)
 * tells the others to drop it.
 */
describe('tenant policies across two replicas sharing PostgreSQL and Redis', () => {
  let r1: TestBroker;
  let r2: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;

  beforeAll(async () => {
    r1 = await startTestBroker('postgres', { REDIS_URL });
    r2 = await startTestBroker('pglite', { REDIS_URL, DATABASE_URL: r1.config.databaseUrl!, KEYS_DIR: r1.keysDir, PUBLIC_URL: r1.url });
    acme = await seedTenant(r1, 'acme', { clientScopes: ['tickets:read', 'tickets:write'] });
  });
  afterAll(async () => {
    await r2?.close();
    await r1?.close();
  });

  // r2 serves the same PUBLIC_URL as r1: requests go to r2's own port.
  const atR2 = () => ({ ...r2, url: `http://127.0.0.1:${r2.config.port}` });
  const tokenAtR2 = (scope: string) => tokenRequest(atR2(), 'acme', { grant_type: 'client_credentials', scope }, { basic: [acme.client_id, acme.client_secret!] });
  const bus = () => new Promise((r) => setTimeout(r, 150));

  it('set through r1: r2, which had cached "no policy", decides with the new policy on the next request', async () => {
    expect((await tokenAtR2('tickets:write')).status).toBe(200);
    expect((await tokenAtR2('tickets:write')).status).toBe(200);
    await r1.admin('PUT', '/tenants/acme/policy', { policy: 'permit(principal, action, resource) unless { context.scopes.contains("tickets:write") };' });
    await bus();
    expect((await tokenAtR2('tickets:write')).body.error).toBe('invalid_scope');
    expect((await tokenAtR2('tickets:read')).status).toBe(200);
  });

  it('changed and then deleted through r1: r2 follows each step', async () => {
    await r1.admin('PUT', '/tenants/acme/policy', { policy: 'forbid(principal, action, resource);' });
    await bus();
    expect((await tokenAtR2('tickets:read')).body.error).toBe('access_denied');
    await r1.admin('DELETE', '/tenants/acme/policy');
    await bus();
    expect((await tokenAtR2('tickets:write')).status).toBe(200);
  });

  it('and the other way round: set through r2, in force at r1', async () => {
    const tokenAtR1 = () => tokenRequest(r1, 'acme', { grant_type: 'client_credentials', scope: 'tickets:read' }, { basic: [acme.client_id, acme.client_secret!] });
    expect((await tokenAtR1()).status).toBe(200);
    const admin2 = atR2();
    const res = await fetch(`${admin2.url}/admin/tenants/acme/policy`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${await r1.adminToken()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ policy: 'forbid(principal, action, resource);' }),
    });
    expect(res.status).toBe(200);
    await bus();
    expect((await tokenAtR1()).body.error).toBe('access_denied');
    await r1.admin('DELETE', '/tenants/acme/policy');
  });
});
