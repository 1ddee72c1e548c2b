import { describe, expect, it, vi } from 'vitest';
import { SignJWT } from 'jose';
import { claimedClientId, createRateLimits } from '../../src/limits/index.js';
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
    for (const r of results.filter(Boolean)) expect(r).toEqual({ scope: 'client', retryAfter: 1 });
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
