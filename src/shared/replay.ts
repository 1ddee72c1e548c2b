import { createHash } from 'node:crypto';

/**
 * One-time-use store for JWT ids (client assertions now; DPoP proofs later), the storage
 * contract fosite calls `markJtiUsed`: `markUsed` is atomic and answers false when the id was
 * already used and has not expired. In memory for one replica; a Redis implementation
 * (`SET key 1 NX EXAT exp`) keeps the same contract across replicas.
 */
export interface ReplayStore {
  /** Records `id` until `expiresAt` (epoch seconds); false if it was already recorded. */
  markUsed(id: string, expiresAt: number): Promise<boolean>;
}

export function memoryReplayStore(opts: { maxEntries?: number; now?: () => number } = {}): ReplayStore & { readonly size: number } {
  const seen = new Map<string, number>();
  const max = opts.maxEntries ?? 1_000_000;
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  let sweptAt = 0;
  const sweep = (t: number) => {
    for (const [k, exp] of seen) if (exp <= t) seen.delete(k);
    sweptAt = t;
  };
  return {
    async markUsed(rawId, expiresAt) {
      // Stored as a digest: the id is attacker-chosen, its size must not be the store's.
      const id = createHash('sha256').update(rawId).digest('base64url');
      const t = now();
      if (t - sweptAt >= 30 || seen.size >= max) sweep(t);
      const exp = seen.get(id);
      if (exp !== undefined && exp > t) return false;
      // Full even after sweeping: refuse rather than forget an id that could then be replayed.
      if (seen.size >= max) return false;
      seen.set(id, expiresAt);
      return true;
    },
    get size() {
      return seen.size;
    },
  };
}
