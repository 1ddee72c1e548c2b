import { z } from 'zod';
import type { PrismaClient } from '../generated/prisma/client.js';
import { forTenant } from '../db/tenant-scope.js';
import type { ChangeEvents } from '../shared/changes.js';
import { InvalidInput, NotFound } from '../shared/errors.js';
import { Lru } from '../shared/lru.js';
import { parseInput } from '../shared/validate.js';

/**
 * Per-tenant and per-client rate-limit overrides (issue 5): the operator's exceptions to the
 * environment defaults `RATE_LIMIT_TENANT_RPS` / `RATE_LIMIT_CLIENT_RPS`.
 *
 * Semantics, in one place:
 * - an override is a rate: a whole number of requests per second, 1 to {@link MAX_RATE_LIMIT_RPS};
 * - `null` removes it: the environment default applies again;
 * - `0` is refused. In the environment `0` switches a bucket off for the whole deployment; on one
 *   tenant or client it would read as "block" to some and "unlimited" to others, and either
 *   reading has a clearer tool: `tenant suspend` / `client disable` to stop, a high rate to free;
 * - overrides apply even where the environment default is off (`0`): a platform can run
 *   unlimited by default and still cap one tenant;
 * - a client's rate may not exceed its tenant's effective rate (override, else default; no cap
 *   when that is unlimited): the tenant bucket would cap it anyway, and a tenant admin distributes
 *   its tenant's budget between its clients, it cannot enlarge it.
 *
 * Who may set what is decided in src/admin/auth.ts: the tenant's own rate is platform-only
 * (`PUT /admin/tenants/:tenant/limits` is in `PLATFORM_ONLY_ROUTES`), client rates may be set by
 * the tenant's admins too, under the cap above.
 *
 * The token path reads overrides from memory: each replica loads a tenant's overrides once (one
 * query, on the first rate-limited request it serves for that tenant), keeps them at most
 * {@link OVERRIDES_TTL_MS} and drops them the moment one changes, here or, through the change bus
 * (`tenantChanged` / `clientChanged`, relayed by Redis), on another replica.
 */

/** Highest override accepted, requests per second (the environment's ceiling too). */
export const MAX_RATE_LIMIT_RPS = 10_000_000;
/** How long a replica trusts its copy without a change event (a lost pub/sub message heals by then). */
export const OVERRIDES_TTL_MS = 30_000;
const TENANTS_CACHED = 10_000;

const rateOrDefault = z
  .number({ error: 'must be a whole number of requests per second, or null for the default' })
  .int('must be a whole number of requests per second')
  .min(1, '0 is not a rate: use null for the default (to stop a tenant, suspend it; to stop a client, disable it)')
  .max(MAX_RATE_LIMIT_RPS, `must be at most ${MAX_RATE_LIMIT_RPS}`)
  .nullable();

/** Body of `PUT .../limits`: `{"rate_limit_rps": 50}` or `{"rate_limit_rps": null}` (back to the default). */
export const setRateLimitInput = z.object({ rate_limit_rps: rateOrDefault }).strict();

/** The environment defaults; `0` = unlimited (bucket off). */
export interface RateLimitDefaults {
  clientRps: number;
  tenantRps: number;
}

/** What the limiter needs of one tenant: its own override and its clients'. */
export interface TenantOverrides {
  tenantRps: number | undefined;
  clients: ReadonlyMap<string, number>;
}

/** The rate a bucket applies: the override, else the default; `0` = unlimited. */
export const effectiveRps = (override: number | null | undefined, fallback: number): number => override ?? fallback;

/**
 * Why a client rate is refused, or undefined: it may not exceed the tenant's effective rate
 * (unless that is unlimited). `null` (back to the default) is always allowed.
 */
export function clientRateProblem(requested: number | null, tenantEffectiveRps: number): string | undefined {
  if (requested === null || tenantEffectiveRps === 0 || requested <= tenantEffectiveRps) return undefined;
  return `rate_limit_rps: must not exceed the tenant's rate (${tenantEffectiveRps} requests/s); a platform admin sets the tenant's rate`;
}

export interface TenantLimitsView {
  tenant_id: string;
  /** The tenant bucket: its override (null = default) and the rate in force (0 = unlimited). */
  tenant: { rate_limit_rps: number | null; effective_rps: number };
  /** Rate of every client without an override (RATE_LIMIT_CLIENT_RPS; 0 = unlimited). */
  client_default_rps: number;
  /** Clients with an override. */
  clients: ClientLimitView[];
}

export interface ClientLimitView {
  client_id: string;
  name: string;
  rate_limit_rps: number | null;
  effective_rps: number;
}

export interface RateLimitServiceDeps {
  prisma: PrismaClient;
  changes: ChangeEvents;
  defaults: RateLimitDefaults;
  now?: () => number;
  /** Told when a tenant's overrides cannot be loaded (the defaults apply meanwhile). */
  onLoadError?: (tenantId: string, err: Error) => void;
}

export function createRateLimitService(deps: RateLimitServiceDeps) {
  const { prisma, defaults } = deps;
  const now = deps.now ?? Date.now;
  const cache = new Lru<string, { at: number; value: TenantOverrides }>(TENANTS_CACHED);
  const loading = new Map<string, Promise<TenantOverrides>>();
  /** Bumped on every change of a tenant's overrides: a load that started earlier is not kept. */
  const generation = new Map<string, number>();

  const invalidate = (tenantId: string) => {
    generation.set(tenantId, (generation.get(tenantId) ?? 0) + 1);
    cache.delete(tenantId);
    loading.delete(tenantId);
  };
  deps.changes.onTenantChanged(invalidate);
  deps.changes.onClientChanged((tenantId) => invalidate(tenantId));

  async function read(tenantId: string): Promise<TenantOverrides> {
    const db = forTenant(prisma, tenantId);
    const [tenant, clients] = await Promise.all([
      db.tenant.findUnique({ where: { id: tenantId }, select: { rateLimitRps: true } }),
      db.client.findMany({ where: { rateLimitRps: { not: null } }, select: { id: true, rateLimitRps: true } }),
    ]);
    return { tenantRps: tenant?.rateLimitRps ?? undefined, clients: new Map(clients.map((c) => [c.id, c.rateLimitRps!])) };
  }

  function load(tenantId: string): Promise<TenantOverrides> {
    const pending = loading.get(tenantId);
    if (pending) return pending;
    const gen = generation.get(tenantId) ?? 0;
    const p = read(tenantId)
      .then((value) => {
        if ((generation.get(tenantId) ?? 0) === gen) cache.set(tenantId, { at: now(), value });
        return value;
      })
      .finally(() => {
        if (loading.get(tenantId) === p) loading.delete(tenantId);
      });
    loading.set(tenantId, p);
    return p;
  }

  async function tenantRow(tenantId: string) {
    const t = await forTenant(prisma, tenantId).tenant.findUnique({ where: { id: tenantId }, select: { rateLimitRps: true } });
    if (!t) throw new NotFound(`tenant ${tenantId} not found`);
    return t;
  }

  const clientView = (c: { id: string; name: string; rateLimitRps: number | null }): ClientLimitView => ({
    client_id: c.id,
    name: c.name,
    rate_limit_rps: c.rateLimitRps,
    effective_rps: effectiveRps(c.rateLimitRps, defaults.clientRps),
  });

  const service = {
    defaults,

    /**
     * The overrides of a tenant, for the token path: from memory, loaded once per tenant (and
     * again after a change or {@link OVERRIDES_TTL_MS}; a stale copy is served while the fresh
     * one loads). If the database cannot be read, the defaults apply (fail open, like the
     * limiter's own store) and the next request tries again.
     */
    async forTenant(tenantId: string): Promise<TenantOverrides> {
      const hit = cache.get(tenantId);
      if (hit) {
        if (now() - hit.at > OVERRIDES_TTL_MS) void load(tenantId).catch((err: Error) => deps.onLoadError?.(tenantId, err));
        return hit.value;
      }
      try {
        return await load(tenantId);
      } catch (err) {
        deps.onLoadError?.(tenantId, err as Error);
        return { tenantRps: undefined, clients: new Map() };
      }
    },

    /** The tenant's rate, its default for clients, and every client override. */
    async show(tenantId: string): Promise<TenantLimitsView> {
      const t = await tenantRow(tenantId);
      const clients = await forTenant(prisma, tenantId).client.findMany({
        where: { rateLimitRps: { not: null } },
        select: { id: true, name: true, rateLimitRps: true },
        orderBy: { name: 'asc' },
      });
      return {
        tenant_id: tenantId,
        tenant: { rate_limit_rps: t.rateLimitRps, effective_rps: effectiveRps(t.rateLimitRps, defaults.tenantRps) },
        client_default_rps: defaults.clientRps,
        clients: clients.map(clientView),
      };
    },

    /** Sets (or, with null, clears) the tenant's own rate. Platform admins only (src/admin/auth.ts). */
    async setTenant(tenantId: string, raw: unknown): Promise<TenantLimitsView> {
      const input = parseRate(raw);
      await tenantRow(tenantId);
      await forTenant(prisma, tenantId).tenant.update({ where: { id: tenantId }, data: { rateLimitRps: input } });
      invalidate(tenantId);
      deps.changes.tenantChanged(tenantId);
      return service.show(tenantId);
    },

    /** Sets (or, with null, clears) one client's rate, at most the tenant's effective rate. */
    async setClient(tenantId: string, clientId: string, raw: unknown): Promise<ClientLimitView> {
      const input = parseRate(raw);
      const t = await tenantRow(tenantId);
      const db = forTenant(prisma, tenantId);
      const client = await db.client.findUnique({ where: { tenantId_id: { tenantId, id: clientId } }, select: { id: true } });
      if (!client) throw new NotFound(`client ${clientId} not found in tenant ${tenantId}`);
      const problem = clientRateProblem(input, effectiveRps(t.rateLimitRps, defaults.tenantRps));
      if (problem) throw new InvalidInput(problem);
      const updated = await db.client.update({
        where: { tenantId_id: { tenantId, id: clientId } },
        data: { rateLimitRps: input },
        select: { id: true, name: true, rateLimitRps: true },
      });
      invalidate(tenantId);
      deps.changes.clientChanged(tenantId, clientId);
      return clientView(updated);
    },
  };
  return service;
}

function parseRate(raw: unknown): number | null {
  return parseInput(setRateLimitInput, raw).rate_limit_rps;
}

export type RateLimitService = ReturnType<typeof createRateLimitService>;
