import { createHmac, randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import { Lru } from '../shared/lru.js';

/**
 * Client secrets are stored only as argon2id hashes (OWASP parameters: 19 MiB, t=2, p=1).
 * Verifying argon2 on every token request would cap throughput at a few dozen requests per
 * second per core, so a successful verification is remembered for a while as an HMAC under a
 * per-process random key: the cache never holds the plaintext or anything that can be tested
 * offline, and it is bound to the stored hash, so rotation invalidates it by construction.
 */
/** `algorithm: 2` is Argon2id (the package's const enum cannot be imported under verbatimModuleSyntax). */
const ARGON2 = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

export function hashSecret(secret: string): Promise<string> {
  return hash(secret, ARGON2);
}

interface Entry {
  tenantId: string;
  clientId: string;
  expiresAt: number;
}

export interface SecretVerifierOptions {
  /** How many verified (client, secret) pairs to remember. */
  maxEntries?: number;
  /** How long a verification is trusted before argon2 runs again, ms. */
  ttlMs?: number;
  now?: () => number;
}

export function createSecretVerifier(opts: SecretVerifierOptions = {}) {
  const key = randomBytes(32);
  const ttlMs = opts.ttlMs ?? 10 * 60_000;
  const now = opts.now ?? Date.now;
  const verified = new Lru<string, Entry>(opts.maxEntries ?? 10_000);
  const inflight = new Map<string, Promise<boolean>>();
  const digest = (tenantId: string, clientId: string, stored: string, presented: string) =>
    createHmac('sha256', key).update(`${tenantId}\0${clientId}\0${stored}\0${presented}`).digest('base64url');

  return {
    /** True when `presented` matches the stored argon2id hash. */
    async verify(tenantId: string, clientId: string, stored: string, presented: string): Promise<boolean> {
      if (typeof presented !== 'string' || presented.length === 0 || presented.length > 512) return false;
      const d = digest(tenantId, clientId, stored, presented);
      const hit = verified.get(d);
      if (hit && hit.expiresAt > now()) return true;
      // Concurrent first requests with the same credentials share one argon2 run.
      let pending = inflight.get(d);
      if (!pending) {
        pending = verify(stored, presented).catch(() => false);
        inflight.set(d, pending);
        void pending.finally(() => inflight.delete(d));
      }
      const ok = await pending;
      if (ok) verified.set(d, { tenantId, clientId, expiresAt: now() + ttlMs });
      return ok;
    },

    /** Forgets every cached verification of a client (secret rotated, client disabled). */
    forget(tenantId: string, clientId: string): void {
      verified.deleteWhere((_, e) => e.tenantId === tenantId && e.clientId === clientId);
    },

    get size(): number {
      return verified.size;
    },
  };
}

export type SecretVerifier = ReturnType<typeof createSecretVerifier>;
