import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Unique tenant names: Redis is shared by every test file running at the same time. */
const tenantName = (base: string) => `${base}-${randomBytes(4).toString('hex')}`;

type Seeded = Awaited<ReturnType<typeof seedTenant>>;
const cc = (b: TestBroker, c: Seeded) => tokenRequest(b, c.tenant, { grant_type: 'client_credentials', resource: c.resource }, { basic: [c.client_id, c.client_secret!] });
const count = (rs: { status: number }[], status: number) => rs.filter((r) => r.status === status).length;

/**
 * Quotas at the tenant endpoints over real HTTP. Buckets hold `rps` requests and refill every
 * second; bursts here are sent concurrently, so they land within one window: the assertions are
 * counts of 200 vs 429, never timings.
 */
describe('rate limits (client 5/s, tenant 8/s)', () => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker('pglite', { RATE_LIMIT_CLIENT_RPS: '5', RATE_LIMIT_TENANT_RPS: '8' });
  });
  afterAll(async () => {
    await b?.close();
  });

  it('a flooding client gets 429 with Retry-After and an OAuth error, while a client of another tenant keeps getting tokens', async () => {
    const noisy = await seedTenant(b, tenantName('noisy'));
    const quiet = await seedTenant(b, tenantName('quiet'));
    const flood = Promise.all(Array.from({ length: 30 }, () => cc(b, noisy)));
    const others = Promise.all(Array.from({ length: 4 }, () => cc(b, quiet)));
    const [flooded, served] = await Promise.all([flood, others]);
    expect(count(flooded, 200)).toBeLessThanOrEqual(5);
    expect(count(flooded, 429)).toBeGreaterThanOrEqual(25);
    expect(count(flooded, 200) + count(flooded, 429)).toBe(30);
    const refused = flooded.find((r) => r.status === 429)!;
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.headers.get('cache-control')).toBe('no-store');
    expect(refused.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.stringMatching(/^rate limit exceeded; retry after \d+ s$/) });
    expect(served.map((r) => r.status)).toEqual([200, 200, 200, 200]);
  });

  it('a flood is audited once per window, not once per 429: one rate_limit.exceeded event naming the client and its rate', async () => {
    const noisy = await seedTenant(b, tenantName('audited'));
    const flooded = await Promise.all(Array.from({ length: 30 }, () => cc(b, noisy)));
    expect(count(flooded, 429)).toBeGreaterThanOrEqual(25);
    // A 429 does not wait for its record: give the group commit a moment.
    let events: Array<{ type: string; outcome: string; reason: string; actor: string; detail: Record<string, unknown> }> = [];
    for (let i = 0; i < 40 && events.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      events = (await b.admin('GET', `/tenants/${noisy.tenant}/audit?limit=1000`)).body.events.filter((e: { type: string }) => e.type === 'rate_limit.exceeded');
    }
    // The 30 requests were sent at once: one window, two if they straddled a second boundary.
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events.length).toBeLessThanOrEqual(2);
    expect(events[0]).toMatchObject({ outcome: 'refused', reason: 'rate_limited', actor: noisy.client_id, detail: { scope: 'client', limit_rps: 5 } });
    // The requests that were served are each one event too; the refused ones are not.
    const all = (await b.admin('GET', `/tenants/${noisy.tenant}/audit?limit=1000`)).body.events as Array<{ type: string }>;
    expect(all.filter((e) => e.type === 'token.issued')).toHaveLength(count(flooded, 200));
    expect((await b.admin('GET', `/tenants/${noisy.tenant}/audit/verify`)).body.ok).toBe(true);
  });

  it('the tenant bucket caps a tenant whose clients together exceed it, each under its own rate', async () => {
    const tenant = tenantName('busy');
    const clients: Seeded[] = [];
    for (let i = 0; i < 4; i++) clients.push(await seedTenant(b, tenant, { clientName: `svc-${i}` }));
    const rs = await Promise.all(clients.flatMap((c) => Array.from({ length: 4 }, () => cc(b, c))));
    expect(count(rs, 200)).toBeLessThanOrEqual(8);
    expect(count(rs, 429)).toBeGreaterThanOrEqual(8);
    expect(count(rs, 200) + count(rs, 429)).toBe(16);
  });

  it('counts by the claimed client id whatever the authentication method, and limits introspection and revocation too', async () => {
    const c = await seedTenant(b, tenantName('intro'), { auth: 'client_secret_post' });
    const post = (path: string) => fetch(`${b.url}/t/${c.tenant}/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: c.client_id, client_secret: c.client_secret!, token: 'x' }),
    });
    const rs = await Promise.all([...Array.from({ length: 6 }, () => post('introspect')), ...Array.from({ length: 6 }, () => post('revoke'))]);
    expect(count(rs, 429)).toBeGreaterThanOrEqual(7);
    // The requests that got through were read in full by the endpoints (the body was replayed).
    for (const r of rs.filter((x) => x.status !== 429)) expect(r.status).toBe(200);
  });

  it('requests claiming no client share one client-sized bucket per tenant', async () => {
    const t = await seedTenant(b, tenantName('anon'));
    const rs = await Promise.all(Array.from({ length: 10 }, () => tokenRequest(b, t.tenant, { grant_type: 'client_credentials' })));
    expect(count(rs, 401)).toBeLessThanOrEqual(5);
    expect(count(rs, 429)).toBeGreaterThanOrEqual(5);
  });
});

describe('rate limits off (RATE_LIMIT_*_RPS=0)', () => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker('pglite', { RATE_LIMIT_CLIENT_RPS: '0', RATE_LIMIT_TENANT_RPS: '0' });
  });
  afterAll(async () => {
    await b?.close();
  });

  it('limits nothing', async () => {
    const c = await seedTenant(b, tenantName('free'));
    const rs = await Promise.all(Array.from({ length: 40 }, () => cc(b, c)));
    expect(count(rs, 200)).toBe(40);
  });
});

describe('rate limits shared by two replicas through Redis', () => {
  let r1: TestBroker;
  let r2: TestBroker;
  beforeAll(async () => {
    const env = { REDIS_URL, RATE_LIMIT_CLIENT_RPS: '5', RATE_LIMIT_TENANT_RPS: '1000' };
    r1 = await startTestBroker('postgres', env);
    r2 = await startTestBroker('pglite', { ...env, DATABASE_URL: r1.config.databaseUrl!, KEYS_DIR: r1.keysDir, PUBLIC_URL: r1.url });
  });
  afterAll(async () => {
    await r2?.close();
    await r1?.close();
  });

  it('a client gets one bucket across replicas, not one per replica', async () => {
    const c = await seedTenant(r1, tenantName('shared'));
    const at2 = { ...r2, url: `http://127.0.0.1:${r2.config.port}` };
    const rs = await Promise.all(Array.from({ length: 16 }, (_, i) => cc(i % 2 ? at2 : r1, c)));
    // Per-replica buckets would let 5 through at each (10); the shared one lets 5 through in all.
    expect(count(rs, 200)).toBeLessThanOrEqual(5);
    expect(count(rs, 200)).toBeGreaterThanOrEqual(1);
    expect(count(rs, 429)).toBeGreaterThanOrEqual(11);
    const r1Refused = rs.filter((r, i) => i % 2 === 0 && r.status === 429).length;
    const r2Refused = rs.filter((r, i) => i % 2 === 1 && r.status === 429).length;
    expect(r1Refused + r2Refused).toBe(count(rs, 429));
    expect(Math.min(r1Refused, r2Refused)).toBeGreaterThanOrEqual(3);
  });
});
