import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { POSTGRES_ADMIN_URL } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

describe('database unavailable (postgres)', () => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let agent: { client_id: string; client_secret: string };
  let credential: string;

  beforeAll(async () => {
    b = await startTestBroker('postgres');
    acme = await seedTenant(b, 'acme');
    await seedTenant(b, 'cold');
    // An agent installed in its own home tenant: its delegation is read only by the grant.
    agent = (await b.admin('POST', '/tenants/acme/agents', { name: 'bot' })).body;
    await b.admin('POST', '/tenants/acme/delegations', { client_id: agent.client_id, scopes: ['tickets:read'], resources: [acme.resource] });
    // Warm acme's issuer and the agent's client row, then take the database away.
    expect((await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [acme.client_id, acme.client_secret!] })).status).toBe(200);
    const cred = await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [agent.client_id, agent.client_secret] });
    expect(cred.status).toBe(200);
    credential = cred.body.access_token;
    // (The delegation itself has not been read yet: only the exchange reads it.)
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

  it('a warm client whose token could be minted from memory alone still gets no token: its audit record cannot be written', async () => {
    // Issuer, client and verified secret are all cached: only the audit trail needs the database.
    const res = await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [acme.client_id, acme.client_secret!] });
    expect(res.status, JSON.stringify(res.body)).toBe(503);
    expect(res.body).toEqual({ error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable' });
  });

  it('a token exchange whose delegation must be read gets the 503 too, not a 500', async () => {
    const res = await tokenRequest(b, 'acme', {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: credential,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    }, { basic: [agent.client_id, agent.client_secret] });
    expect(res.status, JSON.stringify(res.body)).toBe(503);
    expect(res.body.error).toBe('temporarily_unavailable');
  });

  it('readiness reports it; liveness does not', async () => {
    expect((await fetch(`${b.url}/readyz`)).status).toBe(503);
    expect((await fetch(`${b.url}/healthz`)).status).toBe(200);
  });
});
