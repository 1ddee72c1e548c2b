import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

/** A deterministic PRNG so a failure can be replayed from its seed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

const PATHS = ['/t/acme/token', '/t/acme/jwks', '/t/acme/.well-known/openid-configuration', '/admin/tenants', '/admin/tenants/acme/clients', '/t/%ff/token', '/t/acme/token?x=%zz', '/admin/tenants/%E0%A4%A/keys', '/..%2f..%2fetc/passwd', '/t/acme/token/../../admin/tenants'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_TYPES = [AT, 'urn:ietf:params:oauth:token-type:jwt', 'urn:ietf:params:oauth:token-type:refresh_token', 'urn:ietf:params:oauth:token-type:id_token', 'access_token', '', '%00'];
const TYPES = ['application/x-www-form-urlencoded', 'application/json', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded; charset=utf-16', ''];

describe('no request, however malformed, gets a 5xx', () => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let agent: { client_id: string; client_secret: string };
  /** Genuine tokens to mutate: the agent's credential (one DPoP-bound) and an acme token. */
  let credential: string;
  let boundCredential: string;
  let acmeToken: string;
  let dpopKey: { privateKey: CryptoKey; jwk: JWK };
  beforeAll(async () => {
    b = await startTestBroker('pglite');
    acme = await seedTenant(b, 'acme');
    await b.admin('POST', '/tenants', { id: 'vendor' });
    agent = (await b.admin('POST', '/tenants/vendor/agents', { name: 'fuzz-bot' })).body;
    await b.admin('POST', '/tenants/acme/delegations', { client_id: agent.client_id, scopes: ['tickets:read', 'tickets:write'], resources: [acme.resource] });
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    dpopKey = { privateKey, jwk: await exportJWK(publicKey) };
    const basicAgent = { basic: [agent.client_id, agent.client_secret] as [string, string] };
    credential = (await tokenRequest(b, 'vendor', { grant_type: 'client_credentials' }, basicAgent)).body.access_token;
    boundCredential = (await tokenRequest(b, 'vendor', { grant_type: 'client_credentials' }, { ...basicAgent, headers: { dpop: await proof('vendor', {}) } })).body.access_token;
    const a = await tokenRequest(b, 'acme', { grant_type: TE, subject_token: credential, subject_token_type: AT, resource: acme.resource }, basicAgent);
    expect(a.status, JSON.stringify(a.body)).toBe(200);
    acmeToken = a.body.access_token;
  });
  afterAll(() => b?.close());

  /** A DPoP proof for `tenant`'s token endpoint, from the one fuzz key, with claims overridden. */
  function proof(tenant: string, over: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
    return new SignJWT({ jti: randomUUID(), htm: 'POST', htu: `${b.issuer(tenant)}/token`, iat: Math.floor(Date.now() / 1000), ...over })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: dpopKey.jwk, ...header })
      .sign(dpopKey.privateKey);
  }

  /** Raw HTTP, so that nothing is normalised away by a client library. */
  function raw(method: string, path: string, headers: Record<string, string>, body?: Buffer, onBody?: (text: string) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      const u = new URL(b.url);
      // A connection per request: a request that lies about its Content-Length must not make the
      // next one wait on a desynchronised keep-alive socket (and a seed replays request by request).
      const req = request({ host: u.hostname, port: u.port, method, path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => { if (onBody) chunks.push(c); });
        res.on('end', () => {
          onBody?.(Buffer.concat(chunks).toString());
          resolve(res.statusCode!);
        });
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
    const fields = ['grant_type', 'scope', 'resource', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type', 'audience', 'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', '', '%', 'a[b]', '__proto__', 'constructor'];
    const values = () => pick(['client_credentials', TE, AT, credential, acme.client_id, acme.client_secret!, 'tickets:read', '%', '%00', '', 'x'.repeat(Math.floor(r() * 5000)), randomBytes(16).toString('latin1'), 'eyJhbGciOiJub25lIn0.e30.', '{"a":1}', '[]', 'https://api.acme.test/']);
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
      if (r() < 0.1) headers.dpop = pick(['x', 'a.b.c', values(), `${credential}, x`]);
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
  it('survives 400 random token-exchange requests, and some of them get all the way to a token', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? 1234);
    const r = rng(seed + 1);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
    const maybe = (p: number) => r() < p;
    const junk = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(r() * 95))).join('');
    const b64 = (text: string) => Buffer.from(text).toString('base64url');
    /** A genuine token, mutated in one of many ways (or not at all). */
    const mutate = (token: string): string => {
      const [h, p, sig] = token.split('.') as [string, string, string];
      const payload = () => JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
      switch (Math.floor(r() * 14)) {
        case 0: return token;
        case 1: return `${token.slice(0, -3)}${pick(['AAA', '___', '---'])}`;
        case 2: return token.slice(0, Math.floor(r() * token.length));
        case 3: return `${p}.${h}.${sig}`;
        case 4: return `${b64(JSON.stringify({ alg: pick(['none', 'HS256', 'ES256', 'RS256', '', 1]), typ: pick(['at+jwt', 'JWT', null]), kid: pick(['x', '', 1, null]) }))}.${p}.${pick([sig, ''])}`;
        case 5: return `${h}.${b64(JSON.stringify({ ...payload(), [pick(['iss', 'aud', 'tenant_id', 'exp', 'cnf', 'act', 'may_act', 'client_id', 'sub', 'scope'])]: pick([null, 1, '', [], {}, 'x', [1], { jkt: 1 }, { sub: 'x', act: { sub: 'y' } }, 1e308, -1]) }))}.${sig}`;
        case 6: return `${h}.${b64(`{"iss":1,"iss":2${junk(Math.floor(r() * 20))}`)}.${sig}`;
        case 7: return `${h}.${p}`;
        case 8: return `${token}.${sig}.${sig}`;
        case 9: return token.repeat(1 + Math.floor(r() * 4));
        case 10: return `${h}.${b64('['.repeat(Math.floor(r() * 5000)))}.${sig}`;
        case 11: return `${b64('{"alg":"ES256","typ":"at+jwt","kid":"' + junk(10) + '","jwk":{"kty":"EC"}}')}.${p}.${sig}`;
        case 12: return junk(Math.floor(r() * 300));
        default: return 'x'.repeat(Math.floor(r() * 9000));
      }
    };
    const token = () => {
      const genuine = pick([credential, credential, boundCredential, acmeToken, acmeToken]);
      return maybe(0.5) ? genuine : mutate(genuine);
    };
    const agentAuth = `Basic ${Buffer.from(`${agent.client_id}:${agent.client_secret}`).toString('base64')}`;
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const params: Array<[string, string]> = [['grant_type', maybe(0.95) ? TE : pick(['client_credentials', '', TE.toUpperCase()])]];
      if (maybe(0.95)) params.push(['subject_token', token()]);
      if (maybe(0.9)) params.push(['subject_token_type', maybe(0.8) ? AT : pick(TOKEN_TYPES)]);
      if (maybe(0.25)) {
        params.push(['actor_token', token()]);
        if (maybe(0.85)) params.push(['actor_token_type', maybe(0.8) ? AT : pick(TOKEN_TYPES)]);
      } else if (maybe(0.05)) params.push(['actor_token_type', AT]);
      if (maybe(0.2)) params.push(['requested_token_type', pick(TOKEN_TYPES)]);
      const resources = maybe(0.5) ? 1 : pick([0, 0, 2, 3, 50]);
      for (let k = 0; k < resources; k++) params.push(['resource', maybe(0.7) ? acme.resource : pick(['https://api.globex.test/', b.issuer('vendor'), 'not a uri', '', '%', junk(40)])]);
      if (maybe(0.3)) params.push(['audience', pick([acme.resource, 'https://api.globex.test/', b.issuer('acme'), '', junk(20)])]);
      if (maybe(0.5)) params.push(['scope', maybe(0.5) ? pick(['tickets:read', 'tickets:read tickets:write', '', ' ', 'tickets:delete', 'openid']) : Array.from({ length: Math.floor(r() * 300) }, () => pick(['tickets:read', 'a', junk(4), '"', '\\'])).join(pick([' ', '  ', '\t', '+']))]);
      if (maybe(0.05)) params.push([pick(['subject_token', 'subject_token_type', 'scope', 'grant_type']), token()]);
      if (maybe(0.05)) params.splice(Math.floor(r() * params.length), 1);

      const headers: Record<string, string> = { 'content-type': maybe(0.95) ? 'application/x-www-form-urlencoded' : pick(TYPES) };
      headers.authorization = maybe(0.9) ? agentAuth : pick([`Basic ${Buffer.from(`${acme.client_id}:${acme.client_secret}`).toString('base64')}`, 'Basic', `DPoP ${credential}`, `Bearer ${credential}`]);
      if (maybe(0.35)) {
        const tenant = maybe(0.8) ? 'acme' : 'vendor';
        headers.dpop = await pick<() => Promise<string> | string>([
          () => proof(tenant, {}),
          () => proof(tenant, {}),
          () => proof(tenant, { htu: pick([`${b.issuer('acme')}/token/`, b.issuer('acme'), 'x', 1, null, `${b.url}/t/acme/token?x=1`]) }),
          () => proof(tenant, { htm: pick(['GET', 'post', 1, null]) }),
          () => proof(tenant, { iat: pick([0, -1, 1e308, '1', null, Math.floor(Date.now() / 1000) - 3600, Math.floor(Date.now() / 1000) + 3600]) }),
          () => proof(tenant, { jti: pick([undefined, '', 1, 'x'.repeat(300), 'fixed-jti']) }),
          () => proof(tenant, {}, pick([{ typ: 'JWT' }, { jwk: { kty: 'oct', k: 'AAAA' } }, { jwk: { ...dpopKey.jwk, d: 'AAAA' } }, { jku: 'https://x' }, { jwk: 'x' }, { jwk: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } }])),
          async () => { const one = await proof(tenant, {}); return `${one}, ${one}`; },
          () => `${b64(JSON.stringify({ alg: pick(['none', 'ES256', 'HS256']), typ: 'dpop+jwt', jwk: pick([dpopKey.jwk, {}, null]) }))}.${b64(JSON.stringify({ htm: 'POST' }))}.${pick(['', 'AAAA', junk(5)])}`,
          () => pick(['x', '', ' ', 'a.b.c', '..', '\u00ff', junk(Math.floor(r() * 9000)), 'e30.e30.e30']),
        ])();
      }
      for (const k of Object.keys(headers)) headers[k] = headers[k]!.replace(/[^\x20-\x7e]/g, '?');
      const body = Buffer.from(new URLSearchParams(params).toString());
      const path = maybe(0.9) ? '/t/acme/token' : pick(['/t/vendor/token', '/t/globex/token']);
      const status = await raw('POST', path, headers, body, (text) => {
        let error = '';
        try { error = (JSON.parse(text) as { error?: string }).error ?? ''; } catch { /* not JSON */ }
        outcomes.set(error, (outcomes.get(error) ?? 0) + 1);
      }).catch((e: Error & { code?: string }) => {
        if (e.code === 'ECONNRESET' || e.code === 'EPIPE') return 0;
        failures.push(`${path}: ${e.message}`);
        return 0;
      });
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status >= 500) failures.push(`${path} ${JSON.stringify(headers).slice(0, 2000)} body=${body.subarray(0, 2000).toString()} → ${status}`);
    }
    expect(failures, `seed ${seed}`).toEqual([]);
    // The fuzz reaches the grant: some requests get tokens, others are refused for their tokens,
    // proofs, resources and scopes, each with its RFC error.
    const seen = JSON.stringify({ statuses: [...statuses], errors: [...outcomes] });
    if (process.env.FUZZ_SHOW) console.log(seen);
    expect(statuses.get(200) ?? 0, seen).toBeGreaterThan(0);
    for (const error of ['invalid_request', 'invalid_dpop_proof', 'invalid_target', 'invalid_scope']) expect(outcomes.get(error) ?? 0, seen).toBeGreaterThan(0);
    const health = await fetch(`${b.url}/healthz`);
    expect(health.status).toBe(200);
  });
});
