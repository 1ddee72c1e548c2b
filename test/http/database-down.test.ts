import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { POSTGRES_ADMIN_URL } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

describe('database unavailable (postgres)', () => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;

  beforeAll(async () => {
    b = await startTestBroker('postgres');
    acme = await seedTenant(b, 'acme');
    await seedTenant(b, 'cold');
    // Warm acme's issuer, then take the database away.
    expect((await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [acme.client_id, acme.client_secret!] })).status).toBe(200);
    const name = new URL(b.config.databaseUrl!).pathname.slice(1);
    const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
    await admin.connect();
    await admin.query(`DROP DATABASE "${name}" WITH (FORCE)`);
    await admin.end();
  });
  afterAll(() => b?.close());

  it('token requests get a retryable 503 JSON error, never a 500', async () => {
    // acme's issuer is warm, but a client that is not in the short-lived client cache needs the
    // database: it gets a 503, not invalid_client (which would tell a caller its client is gone).
    const warm = await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: ['cl_not_cached', 'y'] });
    expect(warm.status).toBe(503);
    expect(warm.body.error).toBe('temporarily_unavailable');
    const cold = await tokenRequest(b, 'cold', { grant_type: 'client_credentials' }, { basic: ['x', 'y'] });
    expect(cold.status).toBe(503);
    expect(cold.body).toEqual({ error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable' });
  });

  it('readiness reports it; liveness does not', async () => {
    expect((await fetch(`${b.url}/readyz`)).status).toBe(503);
    expect((await fetch(`${b.url}/healthz`)).status).toBe(200);
  });
});
