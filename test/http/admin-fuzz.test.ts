import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedTenant, startTestBroker, type TestBroker } from '../support/broker.js';
import { adminRouter } from '../../src/admin/routes.js';

/** A deterministic PRNG so a failure can be replayed from its seed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

const STRINGS = ['', 'a', 'x'.repeat(300), '\u0000', 'a\u0000b', '\ud800', '\u{1F600}', '%00', '../..', '<script>', 'permit(principal, action, resource);', '(((((((((((', 'https://api.acme.test/', 'urn:bulkhead:admin', 'tickets:read', 'admin', '-1', '1e309', 'null'];
const KEYS = ['name', 'scopes', 'resources', 'uri', 'token_ttl', 'policy', 'requests', 'rate_limit_rps', 'client_id', 'jti', 'expires_at', 'alg', 'token_endpoint_auth_method', 'grant_types', 'jwks', 'require_dpop', 'id', '__proto__', 'constructor', '\u0000'];

/** A random JSON value, sometimes the wrong type, sometimes deep, sometimes huge. */
function value(r: () => number, depth = 0): unknown {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  switch (Math.floor(r() * (depth > 3 ? 5 : 8))) {
    case 0: return pick(STRINGS);
    case 1: return pick([0, -1, 1, 2 ** 31, 2 ** 53 + 1, 1.5, -0, 1e308]);
    case 2: return pick([true, false, null]);
    case 3: return pick([[], ['tickets:read'], ['\u0000'], Array.from({ length: 200 }, (_, i) => `s${i}`)]);
    case 4: return pick(STRINGS) + pick(STRINGS);
    case 5: return Array.from({ length: Math.floor(r() * 4) }, () => value(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(r() * 5); i > 0; i--) o[pick(KEYS)] = value(r, depth + 1);
      return o;
    }
  }
}

/** A valid body per route that takes one: the fuzz mutates one member, so requests get past validation to storage. */
const SAMPLES: Record<string, Record<string, unknown>> = {
  'POST /admin/tenants': { id: 'fz', name: 'Fuzz' },
  'POST /admin/tenants/:tenant/resources': { uri: 'https://fz.acme.test/', scopes: ['a'] },
  'POST /admin/tenants/:tenant/clients': { name: 'fz', scopes: ['tickets:read'], resources: ['https://api.acme.test/'] },
  'POST /admin/tenants/:tenant/agents': { name: 'fz-bot' },
  'POST /admin/tenants/:tenant/delegations': { client_id: 'AGENT', scopes: ['tickets:read'], resources: ['https://api.acme.test/'] },
  'POST /admin/tenants/:tenant/tokens/revoke': { jti: 'abc' },
  'POST /admin/tenants/:tenant/keys/rotate': { alg: 'ES256' },
  'PUT /admin/tenants/:tenant/limits': { rate_limit_rps: 5000 },
  'PUT /admin/tenants/:tenant/clients/:client/limits': { rate_limit_rps: 50 },
  'PUT /admin/tenants/:tenant/policy': { policy: 'permit(principal, action, resource);' },
  'POST /admin/tenants/:tenant/policy/test': { requests: [{ principal: { id: 'x' }, action: 'issue', resource: 'https://api.acme.test/' }] },
};

/** One member of `sample` replaced: by a random value, or by itself with a hostile character inside. */
function mutate(r: () => number, sample: Record<string, unknown>): Record<string, unknown> {
  const keys = Object.keys(sample);
  const key = keys[Math.floor(r() * keys.length)]!;
  const hostile = ['\u0000', '\ud800', '\u001b[2K', '\n'][Math.floor(r() * 4)]!;
  const poison = (v: unknown): unknown => (typeof v === 'string' ? `${v}${hostile}` : Array.isArray(v) ? v.map(poison) : v);
  return { ...sample, [key]: r() < 0.5 ? poison(sample[key]) : value(r) };
}

/**
 * Every admin route the broker serves (from the router itself, so new routes are covered without
 * touching this file), authenticated as the platform admin, with random and hostile bodies and
 * query strings: whatever the input, the answer is never a 5xx, and the audit trails still verify.
 */
describe('admin API: no body or query, however malformed, gets a 5xx', () => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let token: string;
  let agent: string;

  beforeAll(async () => {
    b = await startTestBroker('pglite', { RATE_LIMIT_CLIENT_RPS: '0', RATE_LIMIT_TENANT_RPS: '0' });
    acme = await seedTenant(b, 'acme');
    token = await b.adminToken();
    agent = (await b.admin('POST', '/tenants/acme/agents', { name: 'fuzz-agent' })).body.client_id;
  });
  afterAll(() => b?.close());

  it('random bodies and queries on every route', async () => {
    const routes = adminRouter(b.broker.services, { maxBodyBytes: 1024 }).stack
      .filter((l) => l.methods.length > 0)
      .flatMap((l) => l.methods.filter((m) => m !== 'HEAD').map((method) => ({ method, template: String(l.path) })));
    expect(routes.length).toBeGreaterThanOrEqual(25);
    const r = rng(20261205);
    const fails: string[] = [];
    for (let round = 0; round < 20; round++) {
      await Promise.all(routes.map(async ({ method, template }) => {
        const ids = ['acme', acme.client_id, 'nope', '%00', '%E0%A4%A', 'x'.repeat(300)];
        const path = template
          .replace(':tenant', r() < 0.8 ? 'acme' : ids[Math.floor(r() * ids.length)]!)
          .replace(/:(client|kid|delegation)/g, () => ids[1 + Math.floor(r() * (ids.length - 1))]!);
        const query = r() < 0.5 ? `?${['limit', 'after', 'x'][Math.floor(r() * 3)]}=${encodeURIComponent(String(value(r)).toWellFormed())}` : '';
        const sample = SAMPLES[`${method} ${template}`];
        const body = sample && r() < 0.6 ? JSON.stringify(mutate(r, JSON.parse(JSON.stringify(sample).replace('AGENT', agent)))) : r() < 0.15 ? '{"a":' : r() < 0.1 ? '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]' : JSON.stringify(value(r));
        const res = await fetch(`${b.url}${path}${query}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(method === 'GET' ? {} : { 'content-type': r() < 0.9 ? 'application/json' : 'text/plain' }) },
          ...(method === 'GET' ? {} : { body }),
        });
        if (res.status >= 500) fails.push(`${method} ${path}${query} ${body.slice(0, 200)} → ${res.status} ${await res.text()}`);
        else await res.arrayBuffer();
      }));
    }
    expect(fails).toEqual([]);
    for (const t of ['system', 'acme']) expect((await b.admin('GET', `/tenants/${t}/audit/verify`)).body.ok, t).toBe(true);
  });
});
