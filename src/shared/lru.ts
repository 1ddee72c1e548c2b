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
