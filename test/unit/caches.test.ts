import { describe, expect, it } from 'vitest';
import { Lru, TenantLookupCache } from '../../src/shared/lru.js';
import { createSecretVerifier, hashSecret } from '../../src/clients/secrets.js';
import { memoryReplayStore } from '../../src/shared/replay.js';

describe('Lru', () => {
  it('never holds more than maxSize and evicts the least recently used', () => {
    const lru = new Lru<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.get('a');
    lru.set('c', 3);
    expect(lru.size).toBe(2);
    expect(lru.get('b')).toBeUndefined();
    expect(lru.get('a')).toBe(1);
    expect(lru.get('c')).toBe(3);
  });
});

describe('verified-secret cache', () => {
  it('verifies argon2id hashes, caches only successes, and is bound to the stored hash', async () => {
    const v = createSecretVerifier({ maxEntries: 2 });
    const h1 = await hashSecret('s3cret');
    expect(h1).toMatch(/^\$argon2id\$/);
    expect(await v.verify('t', 'c', h1, 'wrong')).toBe(false);
    expect(v.size).toBe(0);
    expect(await v.verify('t', 'c', h1, 's3cret')).toBe(true);
    expect(v.size).toBe(1);
    // A rotated secret has a new hash: the cached success does not carry over.
    const h2 = await hashSecret('other');
    expect(await v.verify('t', 'c', h2, 's3cret')).toBe(false);
    // Another tenant or client id with the same hash string is a different cache entry.
    expect(await v.verify('t2', 'c', h1, 's3cret')).toBe(true);
    expect(v.size).toBe(2);
    v.forget('t', 'c');
    expect(v.size).toBe(1);
  });

  it('is bounded', async () => {
    const v = createSecretVerifier({ maxEntries: 3 });
    const h = await hashSecret('x');
    for (let i = 0; i < 10; i++) await v.verify('t', `c${i}`, h, 'x');
    expect(v.size).toBe(3);
  });

  it('expires entries so argon2 runs again', async () => {
    let now = 0;
    const v = createSecretVerifier({ ttlMs: 1000, now: () => now });
    const h = await hashSecret('x');
    expect(await v.verify('t', 'c', h, 'x')).toBe(true);
    now = 2000;
    expect(await v.verify('t', 'c', h, 'y')).toBe(false);
    expect(await v.verify('t', 'c', h, 'x')).toBe(true);
  });

  it('refuses empty and absurdly long secrets without hashing', async () => {
    const v = createSecretVerifier();
    const h = await hashSecret('x');
    expect(await v.verify('t', 'c', h, '')).toBe(false);
    expect(await v.verify('t', 'c', h, 'x'.repeat(10_000))).toBe(false);
    expect(await v.verify('t', 'c', 'not-a-hash', 'x')).toBe(false);
  });
});

describe('replay store', () => {
  it('answers true once per id until it expires', async () => {
    let now = 100;
    const r = memoryReplayStore({ now: () => now });
    expect(await r.markUsed('a', 200)).toBe(true);
    expect(await r.markUsed('a', 200)).toBe(false);
    expect(await r.markUsed('b', 200)).toBe(true);
    now = 201;
    expect(await r.markUsed('a', 300)).toBe(true);
  });
  it('refuses rather than forgets when full', async () => {
    const r = memoryReplayStore({ maxEntries: 2, now: () => 0 });
    expect(await r.markUsed('a', 10)).toBe(true);
    expect(await r.markUsed('b', 10)).toBe(true);
    expect(await r.markUsed('c', 10)).toBe(false);
    expect(await r.markUsed('a', 10)).toBe(false);
  });
});

describe('TenantLookupCache', () => {
  it('serves a value until its expiry, then loads again', async () => {
    let t = 1_000;
    const cache = new TenantLookupCache<string>(10, () => t);
    let loads = 0;
    const load = async () => `v${++loads}`;
    expect(await cache.get('a', 'x', load, (_, at) => at + 100)).toBe('v1');
    t += 99;
    expect(await cache.get('a', 'x', load, (_, at) => at + 100)).toBe('v1');
    t += 1;
    expect(await cache.get('a', 'x', load, (_, at) => at + 100)).toBe('v2');
  });

  it('a load that raced a drop is returned but not cached', async () => {
    const cache = new TenantLookupCache<string>(10);
    let release!: () => void;
    const slow = cache.get('a', 'x', () => new Promise<string>((r) => (release = () => r('stale'))), () => Infinity);
    cache.drop('a', 'x');
    release();
    expect(await slow).toBe('stale');
    expect(await cache.get('a', 'x', async () => 'fresh', () => Infinity)).toBe('fresh');
  });

  it('drop and dropWhere remove by key, by value and by tenant, and nothing else', async () => {
    const cache = new TenantLookupCache<{ owner: string }>(10);
    const fill = async (tenant: string, id: string, owner: string) => cache.get(tenant, id, async () => ({ owner }), () => Infinity);
    await fill('a', '1', 'p');
    await fill('a', '2', 'q');
    await fill('b', '3', 'q');
    await fill('c', '4', 'r');
    await fill('d', '5', 'z');
    cache.drop('a', '1', (v) => v.owner === 'q');
    cache.dropWhere((_, tenant) => tenant === 'c');
    const reloaded: string[] = [];
    for (const [tenant, id] of [['a', '1'], ['a', '2'], ['b', '3'], ['c', '4']] as const) {
      await cache.get(tenant, id, async () => (reloaded.push(`${tenant}${id}`), { owner: 'new' }), () => Infinity);
    }
    expect(reloaded).toEqual(['a1', 'a2', 'b3', 'c4']);
    // Untouched by either drop: still cached.
    await cache.get('d', '5', async () => (reloaded.push('d5'), { owner: 'x' }), () => Infinity);
    expect(reloaded).not.toContain('d5');
  });
});
