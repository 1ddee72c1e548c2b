import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { POSTGRES_ADMIN_URL } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

/**
 * Fail closed: a policy that must be read while the database is down is a retryable 503
 * (temporarily_unavailable), never a 500 and never "no policy, so the registrations decide".
 */
describe('tenant policy unreadable: database down (postgres)', () => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let globex: Awaited<ReturnType<typeof seedTenant>>;
  const cc = (tenant: string, c: { client_id: string; client_secret?: string }) =>
    tokenRequest(b, tenant, { grant_type: 'client_credentials' }, { basic: [c.client_id, c.client_secret!] });

  beforeAll(async () => {
    b = await startTestBroker('postgres');
    acme = await seedTenant(b, 'acme');
    globex = await seedTenant(b, 'globex');
    await b.admin('PUT', '/tenants/acme/policy', { policy: 'permit(principal, action, resource);' });
    // Warm everything: issuers, client rows (cached 5 s) and both tenants' policy sets.
    expect((await cc('acme', acme)).status).toBe(200);
    expect((await cc('globex', globex)).status).toBe(200);
    // Another replica changed acme's policy: this one drops its cached set (the change bus)...
    b.broker.services.changes.policyChanged('acme');
    // ...and then the database goes away.
    const name = new URL(b.config.databaseUrl!).pathname.slice(1);
    const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
    await admin.connect();
    await admin.query(`DROP DATABASE "${name}" WITH (FORCE)`);
    await admin.end();
    // Every token also needs its audit record written, which now fails too (test/audit and
    // test/http/database-down.test.ts prove that). Set the trail aside here so that what these
    // tests see is the policy read alone.
    b.broker.services.audit.record = async () => {};
  });
  afterAll(() => b?.close());

  it('the tenant whose policy must be read gets 503 temporarily_unavailable, not a token and not a 500', async () => {
    const r = await cc('acme', acme);
    expect(r.status, JSON.stringify(r.body)).toBe(503);
    expect(r.body).toEqual({ error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable' });
  });

  it('control: a tenant whose caches are all warm still issues, so the 503 above is the policy read', async () => {
    expect((await cc('globex', globex)).status).toBe(200);
  });
});
