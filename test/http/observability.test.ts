import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Writable } from 'node:stream';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

describe('health, readiness, metrics and logs', () => {
  let b: TestBroker;
  const lines: string[] = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    b = await startTestBroker('pglite', {}, pino({ level: 'trace' }, sink));
  });
  afterAll(() => b?.close());

  it('/healthz and /readyz answer when the database is migrated', async () => {
    expect(await (await fetch(`${b.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${b.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('/readyz is 503 while a migration is pending', async () => {
    const db = b.broker.services.db.driver;
    await db.exec(`CREATE TABLE "_saved_migrations" AS SELECT * FROM "_prisma_migrations"`);
    await db.exec(`DELETE FROM "_prisma_migrations"`);
    try {
      const r = await fetch(`${b.url}/readyz`);
      expect(r.status).toBe(503);
      expect(((await r.json()) as { status: string }).status).toBe('migrations pending');
    } finally {
      await db.exec(`INSERT INTO "_prisma_migrations" SELECT * FROM "_saved_migrations"; DROP TABLE "_saved_migrations"`);
    }
    expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
  });

  it('/metrics counts tokens issued and refused by tenant and reason, and latency by route class', async () => {
    const fresh = await startTestBroker('pglite');
    try {
      const t = await seedTenant(fresh, 'metered');
      await tokenRequest(fresh, 'metered', { grant_type: 'client_credentials' }, { basic: [t.client_id, t.client_secret!] });
      await tokenRequest(fresh, 'metered', { grant_type: 'client_credentials', scope: 'nope' }, { basic: [t.client_id, t.client_secret!] });
      await tokenRequest(fresh, 'metered', { grant_type: 'client_credentials' }, { basic: [t.client_id, 'wrong'] });
      const text = await (await fetch(`${fresh.url}/metrics`)).text();
      expect(text).toMatch(/bulkhead_tokens_issued_total\{tenant="metered",grant_type="client_credentials"\} 1\b/);
      expect(text).toMatch(/bulkhead_tokens_refused_total\{tenant="metered",reason="invalid_scope"\} 1\b/);
      expect(text).toMatch(/bulkhead_tokens_refused_total\{tenant="metered",reason="invalid_client"\} 1\b/);
      expect(text).toMatch(/bulkhead_http_request_duration_seconds_bucket\{le="[0-9.]+",route="token",method="POST",status="200"\}/);
      expect(text).not.toMatch(/route="\/t\//);
    } finally {
      await fresh.close();
    }
  });

  it('logs one JSON line per request and never a secret, token or assertion', async () => {
    const t = await seedTenant(b, 'logged');
    const ok = await tokenRequest(b, 'logged', { grant_type: 'client_credentials' }, { basic: [t.client_id, t.client_secret!] });
    await tokenRequest(b, 'logged', { grant_type: 'client_credentials', client_id: t.client_id, client_secret: 'bhs_typo_secret_value' });
    await fetch(`${b.url}/admin/tenants?token=${encodeURIComponent(ok.body.access_token)}`);
    const all = lines.join('');
    const requests = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
    expect(requests.some((l) => l.path === '/t/logged/token' && l.status === 200 && l.tenant === 'logged')).toBe(true);
    for (const secret of [t.client_secret!, 'bhs_typo_secret_value', ok.body.access_token, await b.adminToken(), b.adminCredentials().client_secret]) {
      expect(all).not.toContain(secret);
    }
    expect(all).not.toMatch(/authorization|Basic [A-Za-z0-9+/=]{8,}|Bearer ey/i);
  });
});
