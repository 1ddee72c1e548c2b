import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeProtectedHeader } from 'jose';
import { createVerifier, PepError, type VerifierOptions } from '../../src/pep/index.js';
import { seedTenant, startTestBroker, type TestBroker } from '../support/broker.js';
import { bulkheadClaims, countingFetch, forgeWithTenantKey, issueToken } from './support.js';

/**
 * How often the verifier asks the broker for keys, counted request by request: once per tenant
 * while cached, exactly once more for an unknown kid after the cooldown, never during it, not
 * again and again while the broker is down, and within a global budget.
 */
describe('bulkhead/pep JWKS fetching (pglite)', () => {
  let b: TestBroker;
  let acme: { client_id: string; client_secret?: string };
  let globex: { client_id: string; client_secret?: string };
  const apiA = 'https://api.acme.test/';
  const apiB = 'https://api.globex.test/';
  const audiences: Record<string, string> = { acme: apiA, globex: apiB, rotating: apiA };
  const jwksOf = (tenant: string) => `${b.issuer(tenant)}/jwks`;

  function verifier(counter: ReturnType<typeof countingFetch>, jwks: VerifierOptions['jwks'] = {}) {
    return createVerifier({ brokerUrl: b.url, audience: (t) => audiences[t] ?? 'urn:nothing', fetch: counter.fetch, jwks });
  }
  async function code(p: Promise<unknown>): Promise<string> {
    return p.then(() => 'ok', (e: unknown) => (e instanceof PepError ? e.code : `not a PepError: ${String(e)}`));
  }
  const unknownKid = (kid: string) => forgeWithTenantKey(b, 'acme', bulkheadClaims(b, 'acme', apiA), { kid });

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    acme = await seedTenant(b, 'acme', { resource: apiA });
    globex = await seedTenant(b, 'globex', { resource: apiB });
  });
  afterAll(() => b?.close());

  it('one fetch per tenant while the key set is cached', async () => {
    const counter = countingFetch();
    const v = verifier(counter);
    const token = await issueToken(b, 'acme', acme, { resource: apiA });
    await Promise.all(Array.from({ length: 10 }, () => v.verify(token, { tenant: 'acme' })));
    for (let i = 0; i < 5; i++) await v.verify(token, { tenant: 'acme' });
    expect(counter.count(jwksOf('acme'))).toBe(1);
    await v.verify(await issueToken(b, 'globex', globex, { resource: apiB }), { tenant: 'globex' });
    expect(counter.count(jwksOf('globex'))).toBe(1);
    expect(counter.count()).toBe(2);
  });

  it('an unknown kid after the cooldown triggers exactly one refetch, and is then refused', async () => {
    const counter = countingFetch();
    const v = verifier(counter, { cooldownSeconds: 0.3 });
    await v.verify(await issueToken(b, 'acme', acme, { resource: apiA }), { tenant: 'acme' });
    expect(counter.count()).toBe(1);
    await sleep(400);
    expect(await code(v.verify(await unknownKid('no-such-kid'), { tenant: 'acme' }))).toBe('ERR_PEP_INVALID_TOKEN');
    expect(counter.count()).toBe(2);
  });

  it('a storm of unknown kids within the cooldown fetches nothing (default cooldown 30 s)', async () => {
    const counter = countingFetch();
    const v = verifier(counter);
    await v.verify(await issueToken(b, 'acme', acme, { resource: apiA }), { tenant: 'acme' });
    const storm = await Promise.all(Array.from({ length: 40 }, (_, i) => unknownKid(`storm-${i}`)));
    const codes = await Promise.all(storm.map((t) => code(v.verify(t, { tenant: 'acme' }))));
    for (const t of storm.slice(0, 10)) codes.push(await code(v.verify(t, { tenant: 'acme' })));
    expect(new Set(codes)).toEqual(new Set(['ERR_PEP_INVALID_TOKEN']));
    expect(counter.count()).toBe(1);
  });

  it('concurrent unknown kids after the cooldown share one refetch', async () => {
    const counter = countingFetch();
    const v = verifier(counter, { cooldownSeconds: 1 });
    await v.verify(await issueToken(b, 'acme', acme, { resource: apiA }), { tenant: 'acme' });
    await sleep(1100);
    const storm = await Promise.all(Array.from({ length: 20 }, (_, i) => unknownKid(`burst-${i}`)));
    await Promise.all(storm.map((t) => code(v.verify(t, { tenant: 'acme' }))));
    expect(counter.count()).toBe(2);
  });

  it('a key rotated in after the first fetch is found by one refetch (the same verifier, no restart)', async () => {
    await seedTenant(b, 'rotating', { resource: apiA });
    const client = await seedTenant(b, 'rotating', { resource: apiA, clientName: 'second' });
    const counter = countingFetch();
    const v = verifier(counter, { cooldownSeconds: 0.2 });
    const before = await issueToken(b, 'rotating', client, { resource: apiA });
    await v.verify(before, { tenant: 'rotating' });
    // A new algorithm has no pending key: it is generated and signs at once, unknown to our cache.
    await b.admin('POST', '/tenants/rotating/keys/rotate', { alg: 'EdDSA' });
    const after = await issueToken(b, 'rotating', client, { resource: apiA });
    expect(decodeProtectedHeader(after)).toMatchObject({ alg: 'EdDSA' });
    expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);
    await sleep(300);
    expect((await v.verify(after, { tenant: 'rotating' })).header.alg).toBe('EdDSA');
    expect(counter.count()).toBe(2);
    // The retired key's tokens still verify from the same set.
    expect((await v.verify(before, { tenant: 'rotating' })).tenant).toBe('rotating');
    expect(counter.count()).toBe(2);
  });

  it('while the broker\'s JWKS fails, a burst makes one request, not one each; after the backoff it recovers', async () => {
    const counter = countingFetch();
    const v = verifier(counter, { failureBackoffSeconds: 1 });
    const token = await issueToken(b, 'acme', acme, { resource: apiA });
    counter.fail(503);
    const codes = await Promise.all(Array.from({ length: 30 }, () => code(v.verify(token, { tenant: 'acme' }))));
    for (let i = 0; i < 10; i++) codes.push(await code(v.verify(token, { tenant: 'acme' })));
    expect(new Set(codes)).toEqual(new Set(['ERR_PEP_UNAVAILABLE']));
    expect(counter.count()).toBe(1);
    counter.fail(undefined);
    await sleep(1100);
    expect(await code(v.verify(token, { tenant: 'acme' }))).toBe('ok');
    expect(counter.count()).toBe(2);
  });

  it('an unreachable broker is 503 unavailable, not invalid_token', async () => {
    const v = createVerifier({ brokerUrl: 'http://127.0.0.1:9', tenant: 'acme', audience: apiA });
    const token = await forgeWithTenantKey(b, 'acme', { ...bulkheadClaims(b, 'acme', apiA), iss: 'http://127.0.0.1:9/t/acme' });
    const err = await v.verify(token).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_PEP_UNAVAILABLE', status: 503 });
  });

  it('a tenant the broker does not know: refused as wrong tenant, and asked about once per backoff', async () => {
    const counter = countingFetch();
    const v = verifier(counter);
    const ghost = await forgeWithTenantKey(b, 'acme', { ...bulkheadClaims(b, 'acme', apiA), iss: b.issuer('ghost'), tenant_id: 'ghost' });
    for (let i = 0; i < 5; i++) expect(await code(v.verify(ghost, { tenant: 'ghost' }))).toBe('ERR_PEP_WRONG_TENANT');
    expect(counter.count(jwksOf('ghost'))).toBe(1);
  });

  it('made-up tenants cannot turn into unbounded fetches: a global per-minute budget', async () => {
    const counter = countingFetch();
    const v = verifier(counter, { maxFetchesPerMinute: 3 });
    const codes: string[] = [];
    for (let i = 0; i < 8; i++) {
      const tenant = `ghost-${i}`;
      const token = await forgeWithTenantKey(b, 'acme', { ...bulkheadClaims(b, 'acme', apiA), iss: b.issuer(tenant), tenant_id: tenant });
      codes.push(await code(v.verify(token, { tenant })));
    }
    expect(counter.count()).toBe(3);
    expect(codes.slice(0, 3)).toEqual(Array(3).fill('ERR_PEP_WRONG_TENANT'));
    expect(codes.slice(3)).toEqual(Array(5).fill('ERR_PEP_UNAVAILABLE'));
  });

  it('the key-set map is bounded: with room for one tenant, alternating tenants refetch', async () => {
    const counter = countingFetch();
    const v = verifier(counter, { maxTenants: 1 });
    const a = await issueToken(b, 'acme', acme, { resource: apiA });
    const g = await issueToken(b, 'globex', globex, { resource: apiB });
    for (let i = 0; i < 3; i++) {
      await v.verify(a, { tenant: 'acme' });
      await v.verify(g, { tenant: 'globex' });
    }
    expect(counter.count()).toBe(6);
    const roomy = verifier(countingFetch());
    expect((await roomy.verify(a, { tenant: 'acme' })).tenant).toBe('acme');
  });

  it('cacheMaxAge: an old key set is fetched again', async () => {
    const counter = countingFetch();
    const v = verifier(counter, { cacheMaxAgeSeconds: 1, cooldownSeconds: 0.1 });
    const token = await issueToken(b, 'acme', acme, { resource: apiA });
    await v.verify(token, { tenant: 'acme' });
    await v.verify(token, { tenant: 'acme' });
    expect(counter.count()).toBe(1);
    await sleep(1100);
    await v.verify(token, { tenant: 'acme' });
    expect(counter.count()).toBe(2);
  });

  it('limits are validated', () => {
    for (const jwks of [{ cooldownSeconds: -1 }, { cacheMaxAgeSeconds: Number.NaN }, { maxTenants: -3 }]) {
      expect(() => createVerifier({ brokerUrl: b.url, audience: apiA, jwks })).toThrow(TypeError);
    }
  });
});
