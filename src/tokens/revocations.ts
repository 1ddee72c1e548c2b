import type { PrismaClient } from '../generated/prisma/client.js';
import { forTenant } from '../db/tenant-scope.js';
import type { ChangeEvents } from '../shared/changes.js';
import { MAX_TOKEN_TTL } from '../tenants/service.js';
import { InvalidInput } from '../shared/errors.js';

/**
 * Revocation of self-contained JWT access tokens (RFC 7009), which nothing else remembers: a
 * list of revoked `jti`s per tenant, each kept until the token would have expired anyway, and
 * per-client cutoffs ("revoke all": every token a client obtained before an instant).
 *
 * The database holds them; each replica keeps the unexpired ones in memory, so checking costs a
 * map lookup on the token path. A revocation reloads the tenant's list here at once and, with
 * REDIS_URL, on every other replica (the change bus). Exchanged tokens name the tokens they
 * came from (`exchanged_from`), so revoking a token revokes everything exchanged from it.
 */

/**
 * Longest `jti` the revocation list holds (the column's width). Bulkhead mints 22-character
 * jtis; a longer one is no token of ours, and writing it would fail in the database.
 */
export const MAX_JTI_LENGTH = 64;

/** One token a token was exchanged from, nearest first (the `exchanged_from` claim). */
export interface Ancestor {
  tenant_id: string;
  client_id: string;
  jti: string;
  iat: number;
}

/** What is needed of a token to decide whether it is still active. */
export interface RevocableToken {
  tenant_id: string;
  client_id: string;
  jti: string;
  iat: number;
  exchanged_from?: Ancestor[];
}

export interface RevocationServiceDeps {
  prisma: PrismaClient;
  changes: ChangeEvents;
  now?: () => number;
}

export function createRevocationService(deps: RevocationServiceDeps) {
  const now = deps.now ?? Date.now;
  /** tenant → jti → expiry (ms) */
  const revoked = new Map<string, Map<string, number>>();
  /** tenant → client → notBefore (epoch seconds) */
  const cutoffs = new Map<string, Map<string, number>>();

  /** tenant → number of the latest reload started */
  const reloads = new Map<string, number>();

  async function loadTenant(tenantId: string): Promise<void> {
    const mine = (reloads.get(tenantId) ?? 0) + 1;
    reloads.set(tenantId, mine);
    const db = forTenant(deps.prisma, tenantId);
    const [rows, cuts] = await Promise.all([
      db.revokedToken.findMany({ where: { expiresAt: { gt: new Date(now()) } } }),
      db.tokenCutoff.findMany({}),
    ]);
    // Reloads overlap when changes come quickly. One that started later read at least as much
    // as this one did; this one's older snapshot would drop a revocation made in between.
    if (reloads.get(tenantId) !== mine) return;
    revoked.set(tenantId, new Map(rows.map((r) => [r.jti, r.expiresAt.getTime()])));
    cutoffs.set(tenantId, new Map(cuts.map((c) => [c.clientId, Math.floor(c.notBefore.getTime() / 1000)])));
  }

  deps.changes.onRevocationsChanged((tenantId) => {
    void loadTenant(tenantId).catch(() => {
      // The next change or restart reloads it; until then this replica answers from memory.
    });
  });

  const isRevoked = (tenantId: string, jti: string): boolean => {
    const exp = revoked.get(tenantId)?.get(jti);
    return exp !== undefined && exp > now();
  };
  const cutOff = (tenantId: string, clientId: string, iat: number): boolean => {
    const notBefore = cutoffs.get(tenantId)?.get(clientId);
    return notBefore !== undefined && iat < notBefore;
  };

  return {
    /** Loads every tenant's unexpired revocations; called once at start, before serving. */
    async load(): Promise<void> {
      const [rows, cuts] = await Promise.all([
        deps.prisma.revokedToken.findMany({ where: { expiresAt: { gt: new Date(now()) } } }),
        deps.prisma.tokenCutoff.findMany({}),
      ]);
      revoked.clear();
      cutoffs.clear();
      for (const r of rows) {
        if (!revoked.has(r.tenantId)) revoked.set(r.tenantId, new Map());
        revoked.get(r.tenantId)!.set(r.jti, r.expiresAt.getTime());
      }
      for (const c of cuts) {
        if (!cutoffs.has(c.tenantId)) cutoffs.set(c.tenantId, new Map());
        cutoffs.get(c.tenantId)!.set(c.clientId, Math.floor(c.notBefore.getTime() / 1000));
      }
    },

    /**
     * Revokes one token of the tenant until `expiresAt` (epoch seconds; unknown → the longest
     * lifetime any token can have). Idempotent.
     */
    async revoke(tenantId: string, jti: string, expiresAt?: number): Promise<void> {
      if (jti.length === 0 || jti.length > MAX_JTI_LENGTH) throw new InvalidInput(`jti: must be 1-${MAX_JTI_LENGTH} characters`);
      const exp = new Date(1000 * (expiresAt ?? Math.floor(now() / 1000) + MAX_TOKEN_TTL));
      const db = forTenant(deps.prisma, tenantId);
      await db.revokedToken.upsert({
        where: { tenantId_jti: { tenantId, jti } },
        create: { tenantId, jti, expiresAt: exp },
        update: {},
      });
      if (!revoked.has(tenantId)) revoked.set(tenantId, new Map());
      revoked.get(tenantId)!.set(jti, exp.getTime());
      deps.changes.revocationsChanged(tenantId);
    },

    /** Revokes every token `clientId` obtained in the tenant until now. */
    async revokeAllOf(tenantId: string, clientId: string): Promise<{ not_before: string }> {
      // Whole seconds, rounded up: a token issued in this very second is revoked too.
      const notBefore = Math.floor(now() / 1000) + 1;
      const at = new Date(notBefore * 1000);
      await forTenant(deps.prisma, tenantId).tokenCutoff.upsert({
        where: { tenantId_clientId: { tenantId, clientId } },
        create: { tenantId, clientId, notBefore: at },
        update: { notBefore: at },
      });
      if (!cutoffs.has(tenantId)) cutoffs.set(tenantId, new Map());
      cutoffs.get(tenantId)!.set(clientId, notBefore);
      deps.changes.revocationsChanged(tenantId);
      return { not_before: at.toISOString() };
    },

    /**
     * Whether a verified token is no longer active by revocation: itself, any token it was
     * exchanged from (the cascade), or a cutoff of the client that obtained any of them.
     */
    isInactive(token: RevocableToken): boolean {
      const chain: Array<Pick<Ancestor, 'tenant_id' | 'client_id' | 'jti' | 'iat'>> = [token, ...(token.exchanged_from ?? [])];
      return chain.some((t) => isRevoked(t.tenant_id, t.jti) || cutOff(t.tenant_id, t.client_id, t.iat));
    },

    /**
     * Cutoffs are whole seconds (`iat` is), rounded up so nothing issued before a revoke-all
     * survives it. A token minted for the same client later in that same second would be born
     * revoked: minting waits out the rest of the second instead (ms to wait, usually 0).
     */
    cutoffWait(tenantId: string, clientId: string): number {
      const notBefore = cutoffs.get(tenantId)?.get(clientId);
      return notBefore === undefined ? 0 : Math.max(0, notBefore * 1000 - now());
    },

    /** Forgets revocations of tokens that have expired anyway; returns how many rows went. */
    async cleanup(): Promise<number> {
      const t = now();
      const { count } = await deps.prisma.revokedToken.deleteMany({ where: { expiresAt: { lte: new Date(t) } } });
      for (const list of revoked.values()) for (const [jti, exp] of list) if (exp <= t) list.delete(jti);
      return count;
    },

    /** How many revocations this replica holds in memory (for tests and metrics). */
    get size(): number {
      let n = 0;
      for (const list of revoked.values()) n += list.size;
      return n;
    },
  };
}

export type RevocationService = ReturnType<typeof createRevocationService>;
