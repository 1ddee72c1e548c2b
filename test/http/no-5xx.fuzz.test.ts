import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { seedTenant, startTestBroker, type TestBroker } from '../support/broker.js';

/** A deterministic PRNG so a failure can be replayed from its seed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

const PATHS = ['/t/acme/token', '/t/acme/jwks', '/t/acme/.well-known/openid-configuration', '/admin/tenants', '/admin/tenants/acme/clients', '/t/%ff/token', '/t/acme/token?x=%zz', '/admin/tenants/%E0%A4%A/keys', '/..%2f..%2fetc/passwd', '/t/acme/token/../../admin/tenants'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const TYPES = ['application/x-www-form-urlencoded', 'application/json', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded; charset=utf-16', ''];

describe('no request, however malformed, gets a 5xx', () => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  beforeAll(async () => {
    b = await startTestBroker('pglite');
    acme = await seedTenant(b, 'acme');
  });
  afterAll(() => b?.close());

  /** Raw HTTP, so that nothing is normalised away by a client library. */
  function raw(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const u = new URL(b.url);
      const req = request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      if (body) req.write(body);
      req.end();
    });
  }

  it('survives 400 random requests', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? 1234);
    const r = rng(seed);
    const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
    const fields = ['grant_type', 'scope', 'resource', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type', 'audience', '', '%', 'a[b]', '__proto__', 'constructor'];
    const values = () => pick(['client_credentials', acme.client_id, acme.client_secret!, 'tickets:read', '%', '%00', '', 'x'.repeat(Math.floor(r() * 5000)), randomBytes(16).toString('latin1'), 'eyJhbGciOiJub25lIn0.e30.', '{"a":1}', '[]', 'https://api.acme.test/']);
    const failures: string[] = [];
    for (let i = 0; i < 400; i++) {
      const method = pick(METHODS);
      const path = pick(PATHS);
      const n = Math.floor(r() * 6);
      const body = r() < 0.2
        ? randomBytes(Math.floor(r() * 2000))
        : Buffer.from(Array.from({ length: n }, () => `${pick(fields)}=${encodeURIComponent(values())}`).join('&'));
      const headers: Record<string, string> = {};
      const type = pick(TYPES);
      if (type) headers['content-type'] = type;
      if (r() < 0.4) headers.authorization = pick([`Basic ${Buffer.from(`${acme.client_id}:${acme.client_secret}`).toString('base64')}`, 'Basic', 'Bearer', `Bearer ${values()}`.slice(0, 4000), 'Basic ====', `Basic ${Buffer.from(values()).toString('base64')}`, 'DPoP x']);
      if (r() < 0.1) headers['x-request-id'] = values().slice(0, 200).replace(/[^\x20-\x7e]/g, '');
      if (r() < 0.1) headers['content-length'] = String(body.length);
      // Only what a real client could put on the wire: printable header values.
      for (const k of Object.keys(headers)) headers[k] = headers[k]!.replace(/[^\x20-\x7e]/g, '?');
      const status = await raw(method, path, headers, method === 'GET' || method === 'HEAD' ? undefined : body).catch((e: Error & { code?: string }) => {
        // The server may answer (e.g. 401) and close before an unread request body is sent: not a 5xx.
        if (e.code === 'ECONNRESET' || e.code === 'EPIPE') return 0;
        failures.push(`${method} ${path}: ${e.message}`);
        return 0;
      });
      if (status >= 500) failures.push(`${method} ${path} ${JSON.stringify(headers)} body=${body.subarray(0, 100).toString('base64')} → ${status}`);
    }
    expect(failures, `seed ${seed}`).toEqual([]);
    // Still serving correctly afterwards.
    const health = await fetch(`${b.url}/healthz`);
    expect(health.status).toBe(200);
  });
});
