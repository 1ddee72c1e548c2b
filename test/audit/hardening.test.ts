import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';
import { runBin } from '../support/cli.js';
import { cleanString, normalise } from '../../src/audit/event.js';
import { tokenEndpointEvent } from '../../src/audit/http.js';
import { SignJWT } from 'jose';

type Event = { seq: number; type: string; outcome: string; reason: string | null; actor: string | null; scopes: string[]; client_ip: string | null; detail: Record<string, any> | null };

describe('cleanString: what a caller hands the trail is storable and printable', () => {
  it('NUL and other control characters are escaped, never stored raw', () => {
    expect(cleanString('a\u0000b\nc\u001b[2Kd\u007f\u0085', 100)).toBe('a\\u0000b\\u000ac\\u001b[2Kd\\u007f\\u0085');
  });
  it('lone surrogates become U+FFFD; a cut never splits a pair', () => {
    expect(cleanString('x\ud800y', 10)).toBe('x\ufffdy');
    const cut = cleanString(`${'a'.repeat(9)}\u{1F600}`, 10);
    expect(cut).toBe('a'.repeat(9));
    expect(cut.isWellFormed()).toBe(true);
    expect(cleanString(`${'a'.repeat(8)}\u{1F600}`, 10)).toBe(`${'a'.repeat(8)}\u{1F600}`);
  });
  it('normalise cleans every string field, the scopes and the detail (keys too)', () => {
    const n = normalise({
      tenantId: 'acme', type: 'token.refused', outcome: 'refused', actor: 'e\u0000vil', clientId: '\ud800', subject: 'a\nb',
      scopes: ['s\u0000'], audience: 'x\ty', detail: { 'k\u0000': 'v\u0000', nested: ['\ud800'] },
    }, new Date());
    expect(JSON.stringify(n).isWellFormed()).toBe(true);
    expect(JSON.stringify(n)).not.toContain('\u0000');
    for (const v of [n.actor, n.clientId, n.subject, n.audience, ...n.scopes]) expect(v!.isWellFormed() && !/[\u0000-\u001f]/.test(v!)).toBe(true);
    expect(n.detail).toEqual({ 'k\\u0000': 'v\\u0000', nested: ['\ufffd'] });
  });
});

describe('a token in an answer is never unrecorded, even when its grant said nothing about it', () => {
  it('the event is made from the token\'s own claims', async () => {
    const token = await new SignJWT({ sub: 'svc', aud: 'https://api.test/', scope: 'a b', jti: 'j-1', client_id: 'svc' })
      .setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(32));
    const ctx = { status: 200, body: { access_token: token }, state: {}, method: 'POST', ip: '127.0.0.1', path: '/t/acme/token', get: () => '', is: () => false };
    const event = await tokenEndpointEvent(ctx as never, 'acme', 'token', 1024);
    expect(event).toMatchObject({ tenantId: 'acme', type: 'token.issued', outcome: 'success', subject: 'svc', jti: 'j-1', scopes: ['a', 'b'], audience: 'https://api.test/', detail: { handler_facts: false } });
    // Nothing decided (no token, no refusal): no event.
    expect(await tokenEndpointEvent({ ...ctx, status: 204, body: undefined } as never, 'acme', 'token', 1024)).toBeUndefined();
  });
});

/**
 * Caller-chosen strings that PostgreSQL cannot store (NUL; an unpaired surrogate) used to reach
 * the audit insert raw: the event was lost (a secret-guessing oracle without a trace) and the
 * legitimate tokens in the same batch were answered 503. Now every such request is one event.
 */
describe.each(DATABASES)('audit trail hardening (%s)', (kind) => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  const trail = async (tenant = 'acme'): Promise<Event[]> => (await b.admin('GET', `/tenants/${tenant}/audit?limit=1000`)).body.events;
  async function added(fn: () => Promise<unknown>, tenant = 'acme'): Promise<Event[]> {
    const before = (await trail(tenant)).at(-1)?.seq ?? 0;
    await fn();
    return (await b.admin('GET', `/tenants/${tenant}/audit?after=${before}&limit=1000`)).body.events;
  }

  beforeAll(async () => {
    b = await startTestBroker(kind, { RATE_LIMIT_CLIENT_RPS: '0', RATE_LIMIT_TENANT_RPS: '0' });
    acme = await seedTenant(b, 'acme');
  });
  afterAll(() => b?.close());

  it('refusals with a NUL or a split surrogate in the claimed client id or the scope are each one event; no 5xx', async () => {
    const cases: Array<[string, () => ReturnType<typeof tokenRequest>, number]> = [
      ['NUL client_id', () => tokenRequest(b, 'acme', { grant_type: 'client_credentials', client_id: 'evil\u0000x', client_secret: 'x' }), 401],
      ['client_id cut inside a pair', () => tokenRequest(b, 'acme', { grant_type: 'client_credentials', client_id: `${'a'.repeat(199)}\u{1F600}`, client_secret: 'x' }), 401],
      ['NUL scope, right secret', () => tokenRequest(b, 'acme', { grant_type: 'client_credentials', scope: 'tickets:read\u0000' }, { basic: [acme.client_id, acme.client_secret!] }), 400],
      ['NUL scope, wrong secret (a guess)', () => tokenRequest(b, 'acme', { grant_type: 'client_credentials', scope: '\u0000' }, { basic: [acme.client_id, 'guess'] }), 401],
      ['lone surrogate resource', () => tokenRequest(b, 'acme', { grant_type: 'client_credentials', resource: 'https://x/\ud800' }, { basic: [acme.client_id, acme.client_secret!] }), 400],
    ];
    for (const [label, send, status] of cases) {
      let res: Awaited<ReturnType<typeof tokenRequest>> | undefined;
      const events = await added(async () => {
        res = await send();
      });
      expect(res!.status, label).toBe(status);
      expect(events.map((e) => [e.type, e.outcome]), label).toEqual([['token.refused', 'refused']]);
    }
    expect((await b.admin('GET', '/tenants/acme/audit/verify')).body.ok).toBe(true);
  });

  it('junk in the same batch does not sink legitimate tokens', async () => {
    const statuses: number[] = [];
    for (let round = 0; round < 5; round++) {
      const junk = Array.from({ length: 10 }, () => tokenRequest(b, 'acme', { grant_type: 'client_credentials', client_id: '\u0000', client_secret: 'x' }));
      const good = await Promise.all(Array.from({ length: 4 }, () => tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [acme.client_id, acme.client_secret!] })));
      statuses.push(...good.map((r) => r.status));
      await Promise.all(junk);
    }
    expect(statuses).toEqual(statuses.map(() => 200));
  });

  it('an intact chain verifies while tokens are being issued (verify reads up to the head it saw first)', async () => {
    let stop = false;
    const load = (async () => {
      while (!stop) await Promise.all(Array.from({ length: 6 }, () => tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [acme.client_id, acme.client_secret!] })));
    })();
    const reports = [];
    try {
      for (let i = 0; i < 25; i++) reports.push((await b.admin('GET', '/tenants/acme/audit/verify')).body);
    } finally {
      stop = true;
      await load;
    }
    expect(reports.filter((r) => !r.ok)).toEqual([]);
  });

  it('the client IP is the socket\'s: X-Forwarded-For is ignored unless TRUST_PROXY says how many proxies to believe', async () => {
    const events = await added(() => tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [acme.client_id, acme.client_secret!], headers: { 'x-forwarded-for': '6.6.6.6' } }));
    expect(events[0]!.client_ip).toMatch(/127\.0\.0\.1/);
    const proxied = await startTestBroker(kind, { TRUST_PROXY: '1' });
    try {
      const t = await seedTenant(proxied, 'acme');
      await tokenRequest(proxied, 'acme', { grant_type: 'client_credentials' }, { basic: [t.client_id, t.client_secret!], headers: { 'x-forwarded-for': '6.6.6.6, 203.0.113.7' } });
      const last = (await proxied.admin('GET', '/tenants/acme/audit?limit=1')).body.events[0];
      // The one trusted proxy appended the address it saw; what the caller wrote before it is not believed.
      expect(last).toMatchObject({ type: 'token.issued', client_ip: '203.0.113.7' });
    } finally {
      await proxied.close();
    }
  });

  it('a CORS preflight at /token decides nothing and records nothing', async () => {
    const events = await added(async () => {
      const r = await fetch(`${b.url}/t/acme/token`, { method: 'OPTIONS', headers: { origin: 'https://x.test', 'access-control-request-method': 'POST' } });
      expect(r.status).toBeLessThan(500);
    });
    expect(events).toEqual([]);
  });

  it('a token request refused with 413 before the endpoint ran is still one event', async () => {
    const big = 'x'.repeat(b.config.maxBodyBytes + 10);
    const events = await added(async () => {
      const r = await fetch(`${b.url}/t/acme/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=client_credentials&pad=${big}` });
      expect(r.status).toBe(413);
    });
    expect(events.map((e) => [e.type, e.reason, e.detail?.status])).toEqual([['token.refused', 'invalid_request', 413]]);
  });

  it('admin input a database cannot store (NUL, an unpaired surrogate) is a 4xx with one event, never a 5xx', async () => {
    const cases: Array<[string, string, string, unknown]> = [
      ['client name', 'POST', '/tenants/acme/clients', { name: 'a\u0000b', scopes: ['tickets:read'], resources: [acme.resource] }],
      ['resource scope', 'POST', '/tenants/acme/resources', { uri: 'https://x.acme.test/', scopes: ['a\u0000'] }],
      ['json key', 'POST', '/tenants/acme/agents', { name: 'bot', '\u0000': 1 }],
      ['unpaired surrogate', 'POST', '/tenants/acme/clients', { name: 'a\ud800', scopes: ['tickets:read'], resources: [acme.resource] }],
      ['policy text', 'PUT', '/tenants/acme/policy', { policy: 'permit(principal, action, resource) when { context.scopes.contains("a\u0000") };' }],
      ['client id in the path', 'POST', '/tenants/acme/clients/%00/disable', {}],
      ['client id in the limits path', 'PUT', '/tenants/acme/clients/%00/limits', { rate_limit_rps: 5 }],
      ['delegation id in the path', 'POST', '/tenants/acme/delegations/%0a/revoke', {}],
      ['kid in the path', 'POST', '/tenants/acme/keys/%1b%5b2K/revoke', {}],
    ];
    for (const [label, method, route, body] of cases) {
      let res: { status: number; body: any } | undefined;
      const events = await added(async () => {
        res = await b.admin(method, route, body, { allowError: true });
      });
      expect(res!.status, `${label}: ${JSON.stringify(res!.body)}`).toBeGreaterThanOrEqual(400);
      expect(res!.status, label).toBeLessThan(500);
      expect(events.map((e) => e.outcome), label).toEqual(['refused']);
    }
  });

  it('a malformed id in a route is judged after authentication and authorization, never before', async () => {
    const route = `${b.url}/admin/tenants/acme/clients/%00/disable`;
    expect((await fetch(route, { method: 'POST' })).status).toBe(401);
    await seedTenant(b, 'other');
    const admin = (await b.admin('POST', '/tenants/other/clients', { name: 'other-admin', scopes: ['admin'], resources: ['urn:bulkhead:admin'] })).body;
    const token = (await tokenRequest(b, 'other', { grant_type: 'client_credentials', resource: 'urn:bulkhead:admin', scope: 'admin' }, { basic: [admin.client_id, admin.client_secret] })).body.access_token;
    const r = await fetch(route, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect({ status: r.status, body: await r.json() }).toEqual({ status: 404, body: { error: 'not_found', error_description: 'tenant acme not found' } });
  });

  it('changes name what changed: a policy by version, ids and digest; a rate by its value', async () => {
    const policy = await added(() => b.admin('PUT', '/tenants/acme/policy', { policy: '@id("all")\npermit(principal, action, resource);' }));
    expect(policy[0]).toMatchObject({ type: 'policy.set', detail: { version: 1, policy_ids: ['all'], policy_sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    await b.admin('DELETE', '/tenants/acme/policy');
    const rate = await added(() => b.admin('PUT', '/tenants/acme/limits', { rate_limit_rps: 77 }));
    expect(rate[0]).toMatchObject({ type: 'rate_limit.tenant_set', detail: { rate_limit_rps: 77, effective_rps: 77 } });
    const client = await added(() => b.admin('PUT', `/tenants/acme/clients/${acme.client_id}/limits`, { rate_limit_rps: 7 }));
    expect(client[0]).toMatchObject({ type: 'rate_limit.client_set', detail: { rate_limit_rps: 7 } });
  });

  it('audit tail never prints a control character a caller put in its claimed client id', async () => {
    await tokenRequest(b, 'acme', { grant_type: 'client_credentials', client_id: 'x\n99  2026-01-01T00:00:00.000Z  token.issued  success\u001b[2K', client_secret: 'x' });
    const r = await runBin(['audit', 'tail', '--tenant', 'acme', '--limit', '5'], { BULKHEAD_URL: b.url, KEYS_DIR: b.keysDir });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(r.stdout).toContain('x\\u000a99');
    expect(r.stdout.split('\n').filter((l) => /^99 /.test(l))).toEqual([]);
  });
});

describe('the platform-admin secret re-issued at start is in the system trail', () => {
  let r1: TestBroker;
  let r2: TestBroker | undefined;
  let keys: string;
  beforeAll(async () => {
    r1 = await startTestBroker('postgres');
  });
  afterAll(async () => {
    await r2?.close();
    await r1?.close();
    if (keys) rmSync(keys, { recursive: true, force: true });
  });

  it('first start: client.created; a start without the credentials file: client.secret_rotated', async () => {
    const system = async () => (await r1.admin('GET', '/tenants/system/audit?limit=1000')).body.events as Event[];
    const first = (await system()).filter((e) => e.detail?.bootstrap === true);
    expect(first.map((e) => [e.type, e.actor])).toEqual([['client.created', 'bulkhead serve']]);
    keys = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-keys-'));
    for (const f of readdirSync(r1.keysDir)) if (f !== 'admin-credentials.json') copyFileSync(path.join(r1.keysDir, f), path.join(keys, f));
    r2 = await startTestBroker('pglite', { DATABASE_URL: r1.config.databaseUrl!, KEYS_DIR: keys, PUBLIC_URL: r1.url });
    expect(r2.adminCredentials().client_secret).not.toBe(r1.adminCredentials().client_secret);
    const rotated = (await system()).filter((e) => e.detail?.bootstrap === true).slice(1);
    expect(rotated).toEqual([expect.objectContaining({ type: 'client.secret_rotated', actor: 'bulkhead serve', outcome: 'success' })]);
    expect(JSON.stringify(await system())).not.toContain(r2.adminCredentials().client_secret);
  });
});
