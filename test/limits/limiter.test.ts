import { describe, expect, it, vi } from 'vitest';
import { SignJWT } from 'jose';
import { claimedClientId, createRateLimits, enforceRateLimits } from '../../src/limits/index.js';
import { loadConfig } from '../../src/config/index.js';
import { freePort } from '../support/broker.js';

const basic = (id: string, secret = 's') => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${secret}`).toString('base64')}`;

describe('rate-limit configuration', () => {
  it('is generous by default, 0 turns a bucket off, negatives are refused', () => {
    expect(loadConfig({})).toMatchObject({ rateLimitClientRps: 200, rateLimitTenantRps: 2000 });
    expect(loadConfig({ RATE_LIMIT_CLIENT_RPS: '0', RATE_LIMIT_TENANT_RPS: '0' })).toMatchObject({ rateLimitClientRps: 0, rateLimitTenantRps: 0 });
    expect(() => loadConfig({ RATE_LIMIT_CLIENT_RPS: '-1' })).toThrow(/RATE_LIMIT_CLIENT_RPS/);
    expect(() => loadConfig({ RATE_LIMIT_TENANT_RPS: 'lots' })).toThrow(/RATE_LIMIT_TENANT_RPS/);
  });
});

describe('the claimed client id', () => {
  it('comes from Basic, then the form client_id, then the client assertion sub', async () => {
    expect(claimedClientId(basic('svc a'), new URLSearchParams({ client_id: 'other' }))).toBe('svc a');
    expect(claimedClientId(undefined, new URLSearchParams({ client_id: 'svc-b' }))).toBe('svc-b');
    const assertion = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('svc-c').setIssuer('svc-c').sign(new Uint8Array(32));
    expect(claimedClientId(undefined, new URLSearchParams({ client_assertion: assertion }))).toBe('svc-c');
  });
  it('is undefined for anything malformed', () => {
    expect(claimedClientId('Basic ====', undefined)).toBeUndefined();
    expect(claimedClientId(`Basic ${Buffer.from('%E0%A4%A:x').toString('base64')}`, undefined)).toBeUndefined();
    expect(claimedClientId('Bearer x', new URLSearchParams({ client_assertion: 'a.%%%.c' }))).toBeUndefined();
    expect(claimedClientId(undefined, undefined)).toBeUndefined();
  });
});

describe('buckets', () => {
  it('refuse past the client rate with a Retry-After in whole seconds, and count clients separately', async () => {
    const limits = createRateLimits({ clientRps: 3, tenantRps: 0, publicUrl: 'http://x', logger: { warn: () => {} } });
    const results = await Promise.all(Array.from({ length: 6 }, () => limits.take('acme', 'a')));
    expect(results.filter((r) => r === undefined)).toHaveLength(3);
    for (const r of results.filter(Boolean)) expect(r).toMatchObject({ scope: 'client', limit: 3, retryAfter: 1 });
    expect(await limits.take('acme', 'b')).toBeUndefined();
    expect(await limits.take('globex', 'a')).toBeUndefined();
    await limits.close();
  });

  it('log the first refusal of a window only, not every refused request', async () => {
    const warn = vi.fn();
    const limits = createRateLimits({ clientRps: 1, tenantRps: 0, publicUrl: 'http://x', logger: { warn } });
    for (let i = 0; i < 10; i++) await limits.take('acme', 'a');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![1]).toBe('rate limit exceeded');
    await limits.close();
  });

  it('with Redis unreachable, fail open to this replica\'s memory: no error, still limited, one warning', async () => {
    const warn = vi.fn();
    const port = await freePort();
    const limits = createRateLimits({ clientRps: 2, tenantRps: 100, redisUrl: `redis://127.0.0.1:${port}`, publicUrl: 'http://x', logger: { warn } });
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await limits.take('acme', 'a'));
    expect(results.filter((r) => r === undefined)).toHaveLength(2);
    expect(results.filter(Boolean)).toHaveLength(3);
    expect(warn.mock.calls.some((c) => String(c[1]).includes('rate-limit store unavailable'))).toBe(true);
    await limits.close();
  });
});

describe('rate-limit overrides in the buckets', () => {
  const overridesOf = (tenants: Record<string, { tenantRps?: number; clients?: Record<string, number> }>) => ({
    forTenant: async (t: string) => ({ tenantRps: tenants[t]?.tenantRps, clients: new Map(Object.entries(tenants[t]?.clients ?? {})) }),
  });
  const allowed = async (limits: ReturnType<typeof createRateLimits>, tenant: string, client: string | undefined, n: number) =>
    (await Promise.all(Array.from({ length: n }, () => limits.take(tenant, client)))).filter((r) => r === undefined).length;

  it("a client override replaces the default for that client only, a tenant override the tenant's", async () => {
    const limits = createRateLimits({
      clientRps: 3, tenantRps: 100, publicUrl: 'http://x', logger: { warn: () => {} },
      overrides: overridesOf({ acme: { clients: { fast: 7, slow: 1 } }, small: { tenantRps: 4 } }),
    });
    expect(await allowed(limits, 'acme', 'fast', 20)).toBe(7);
    expect(await allowed(limits, 'acme', 'slow', 20)).toBe(1);
    expect(await allowed(limits, 'acme', 'other', 20)).toBe(3);
    // small: every client at the default 3, all of them together at 4.
    expect(await allowed(limits, 'small', 'a', 3) + await allowed(limits, 'small', 'b', 3)).toBe(4);
    const refused = await limits.take('small', 'c');
    expect(refused).toMatchObject({ scope: 'tenant', limit: 4 });
    await limits.close();
  });

  it('overrides apply where the environment default is off (0), and the defaults stay off elsewhere', async () => {
    const limits = createRateLimits({ clientRps: 0, tenantRps: 0, publicUrl: 'http://x', logger: { warn: () => {} }, overrides: overridesOf({ acme: { clients: { capped: 2 } } }) });
    expect(limits.enabled).toBe(true);
    expect(await allowed(limits, 'acme', 'capped', 10)).toBe(2);
    expect(await allowed(limits, 'acme', 'free', 50)).toBe(50);
    expect(await allowed(limits, 'globex', undefined, 50)).toBe(50);
    await limits.close();
  });

  it('a changed override takes effect on the next request, with the same counters', async () => {
    const rates: Record<string, number> = { svc: 2 };
    const limits = createRateLimits({ clientRps: 100, tenantRps: 0, publicUrl: 'http://x', logger: { warn: () => {} }, overrides: { forTenant: async () => ({ tenantRps: undefined, clients: new Map(Object.entries(rates)) }) } });
    expect(await allowed(limits, 'acme', 'svc', 5)).toBe(2);
    rates.svc = 6; // within the same window: 5 counted so far, one more fits
    expect(await allowed(limits, 'acme', 'svc', 5)).toBe(1);
    await limits.close();
  });
});

describe('firstInWindow: the first refusal of each window, once per bucket and key', () => {
  it('under a flood, exactly one refused request per window and key says firstInWindow, and again in the next window', async () => {
    const limits = createRateLimits({ clientRps: 3, tenantRps: 0, publicUrl: 'http://x', logger: { warn: () => {} } });
    const flood = () => Promise.all(Array.from({ length: 50 }, (_, i) => limits.take('acme', i % 2 ? 'a' : 'b')));
    const first = await flood();
    for (const client of ['a', 'b']) {
      const mine = first.filter((_, i) => (i % 2 ? 'a' : 'b') === client);
      expect(mine.filter((r) => r === undefined)).toHaveLength(3);
      expect(mine.filter((r) => r?.firstInWindow)).toHaveLength(1);
      expect(mine.filter((r) => r && !r.firstInWindow)).toHaveLength(21);
      expect(mine.find((r) => r?.firstInWindow)).toEqual({ scope: 'client', limit: 3, firstInWindow: true, retryAfter: 1 });
    }
    await new Promise((r) => setTimeout(r, 1100));
    const second = await flood();
    expect(second.filter((r) => r?.firstInWindow)).toHaveLength(2);
    await limits.close();
  });

  it('the same holds with the counters in Redis, and for the tenant bucket', async () => {
    const limits = createRateLimits({ clientRps: 0, tenantRps: 4, redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', publicUrl: `http://first-in-window-${Math.random()}`, logger: { warn: () => {} } });
    const rs = await Promise.all(Array.from({ length: 40 }, () => limits.take('acme', 'a')));
    expect(rs.filter((r) => r === undefined)).toHaveLength(4);
    expect(rs.filter((r) => r?.firstInWindow)).toEqual([{ scope: 'tenant', limit: 4, firstInWindow: true, retryAfter: 1 }]);
    await limits.close();
  });

  it('enforceRateLimits answers 429 and leaves ctx.state.rateLimited for the audit trail', async () => {
    const limits = createRateLimits({ clientRps: 1, tenantRps: 0, publicUrl: 'http://x', logger: { warn: () => {} } });
    const ctx = () => {
      const headers: Record<string, string> = {};
      return {
        method: 'POST', state: {} as Record<string, unknown>, status: 200, body: undefined as unknown, headers,
        get: (h: string) => (h === 'authorization' ? basic('svc-a') : ''),
        set: (k: string, v: string) => void (headers[k] = v),
        is: () => false,
      };
    };
    const [ok, first, second] = [ctx(), ctx(), ctx()];
    for (const c of [ok, first, second]) await enforceRateLimits(c as never, limits, 'acme', 1024);
    expect(ok.state.rateLimited).toBeUndefined();
    expect(first.status).toBe(429);
    expect(first.state.rateLimited).toEqual({ scope: 'client', clientId: 'svc-a', limit: 1, firstInWindow: true });
    expect(second.state.rateLimited).toEqual({ scope: 'client', clientId: 'svc-a', limit: 1, firstInWindow: false });
    expect(second.body).toEqual({ error: 'temporarily_unavailable', error_description: 'rate limit exceeded; retry after 1 s' });
    await limits.close();
  });
});
