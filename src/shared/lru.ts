/**
 * A bounded map that forgets the least recently used entry first. Used for caches whose size
 * must not grow with the number of tenants or clients (issuers, verified-secret digests).
 */
export class Lru<K, V> {
  readonly #map = new Map<K, V>();
  constructor(readonly maxSize: number) {}

  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.maxSize) {
      this.#map.delete(this.#map.keys().next().value as K);
    }
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  /** Drops every entry for which `match` is true. */
  deleteWhere(match: (key: K, value: V) => boolean): void {
    for (const [k, v] of this.#map) if (match(k, v)) this.#map.delete(k);
  }

  clear(): void {
    this.#map.clear();
  }

  get size(): number {
    return this.#map.size;
  }
}

/**
 * A read-through cache of per-tenant lookups for the token path: each entry lives until its own
 * expiry, the LRU bounds its size, and `drop` invalidates entries. A load that was in flight
 * while anything was dropped is returned but not cached, so a lookup racing a change (a
 * revocation, a disabled client) never puts what it read before the change back in the cache.
 */
export class TenantLookupCache<V> {
  readonly #lru: Lru<string, { value: V; expiresAt: number; tenantId: string }>;
  #epoch = 0;

  constructor(maxSize: number, private readonly now: () => number = Date.now) {
    this.#lru = new Lru(maxSize);
  }

  /**
   * The cached value for (tenant, id), or `load()`'s, kept until `expiresAt(value, loadedAt)`.
   */
  async get(tenantId: string, id: string, load: (loadedAt: number) => Promise<V>, expiresAt: (value: V, loadedAt: number) => number): Promise<V> {
    const key = `${tenantId}\0${id}`;
    const t = this.now();
    const hit = this.#lru.get(key);
    if (hit && hit.expiresAt > t) return hit.value;
    const seen = this.#epoch;
    const value = await load(t);
    if (seen === this.#epoch) this.#lru.set(key, { value, expiresAt: expiresAt(value, t), tenantId });
    return value;
  }

  /** Drops (tenant, id), and every entry `also` matches. */
  drop(tenantId: string, id: string, also?: (value: V, tenantId: string) => boolean): void {
    this.#epoch++;
    this.#lru.delete(`${tenantId}\0${id}`);
    if (also) this.#lru.deleteWhere((_, e) => also(e.value, e.tenantId));
  }

  /** Drops every entry `match` matches. */
  dropWhere(match: (value: V, tenantId: string) => boolean): void {
    this.#epoch++;
    this.#lru.deleteWhere((_, e) => match(e.value, e.tenantId));
  }
}
