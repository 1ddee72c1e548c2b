import { z } from 'zod';
import type { Delegation, PrismaClient, Resource } from '../generated/prisma/client.js';
import { forTenant } from '../db/tenant-scope.js';
import { Conflict, InvalidInput, NotFound } from '../shared/errors.js';
import { LOOKUP_ID, randomId } from '../shared/ids.js';
import { parseInput } from '../shared/validate.js';
import type { ChangeEvents } from '../shared/changes.js';
import { TenantLookupCache } from '../shared/lru.js';
import { resourceUri, scopeList } from '../resources/service.js';
import { MAX_TOKEN_TTL } from '../tenants/service.js';
import type { RevocationService } from '../tokens/revocations.js';
import { AUTH_METHODS, type ClientService, type ClientView, type ClientWithResources, CLIENT_CACHE_TTL_MS, TOKEN_EXCHANGE } from '../clients/service.js';

/**
 * Agents and their installations ("delegations").
 *
 * An agent is a client of kind `agent` registered in its home tenant. At home it uses client
 * credentials without a resource to obtain its *agent credential* (audience: the home issuer,
 * no scopes), which proves who it is and grants nothing. A tenant's admin installs the agent
 * by granting a delegation: the scopes and resources it may ever obtain in that tenant, for how
 * long. Token exchange at that tenant (src/grants/token-exchange.ts) is bounded by it.
 */

export interface DelegationView {
  id: string;
  /** The agent. */
  client_id: string;
  /** The agent's home tenant. */
  agent_tenant: string;
  scopes: string[];
  resources: string[];
  token_ttl: number | null;
  expires_at: string | null;
  require_dpop: boolean;
  created_by: string;
  created_at: string;
  revoked_at: string | null;
  /** active, or why it no longer is. */
  status: 'active' | 'revoked' | 'expired';
}

/** What the token path needs of a delegation, frozen at the moment of the exchange. */
export interface ActiveDelegation {
  id: string;
  agentTenantId: string;
  agentId: string;
  scopes: string[];
  tokenTtl: number | null;
  expiresAt: Date | null;
  requireDpop: boolean;
  resources: Array<{ uri: string; scopes: string[]; tokenTtl: number | null; requireDpop: boolean }>;
}

export const createAgentInput = z.object({
  name: z.string().trim().min(1).max(200),
  token_endpoint_auth_method: z.enum(AUTH_METHODS).default('client_secret_basic'),
  jwks: z.unknown().optional(),
  token_ttl: z.number().int().min(1).max(MAX_TOKEN_TTL).optional(),
}).strict();

export const grantDelegationInput = z.object({
  client_id: z.string().min(1).max(64),
  scopes: scopeList.refine((s) => s.length > 0, 'at least one scope is required'),
  resources: z.array(resourceUri).min(1, 'at least one resource is required').max(100).transform((r) => [...new Set(r)]),
  token_ttl: z.number().int().min(1).max(MAX_TOKEN_TTL).optional(),
  expires_at: z.iso.datetime({ offset: true }).optional(),
  require_dpop: z.boolean().default(false),
}).strict();

type DelegationWithResources = Delegation & { resources: { resource: Resource }[] };
const withResources = { resources: { include: { resource: true } } } as const;

function statusOf(d: Delegation, now: number): DelegationView['status'] {
  if (d.revokedAt) return 'revoked';
  if (d.expiresAt && d.expiresAt.getTime() <= now) return 'expired';
  return 'active';
}

export function toDelegationView(d: DelegationWithResources, now = Date.now()): DelegationView {
  return {
    id: d.id,
    client_id: d.agentId,
    agent_tenant: d.agentTenantId,
    scopes: d.scopes,
    resources: d.resources.map((r) => r.resource.uri).sort(),
    token_ttl: d.tokenTtl,
    expires_at: d.expiresAt?.toISOString() ?? null,
    require_dpop: d.requireDpop,
    created_by: d.createdBy,
    created_at: d.createdAt.toISOString(),
    revoked_at: d.revokedAt?.toISOString() ?? null,
    status: statusOf(d, now),
  };
}

function toActive(d: DelegationWithResources): ActiveDelegation {
  return {
    id: d.id,
    agentTenantId: d.agentTenantId,
    agentId: d.agentId,
    scopes: d.scopes,
    tokenTtl: d.tokenTtl,
    expiresAt: d.expiresAt,
    requireDpop: d.requireDpop,
    resources: d.resources.map(({ resource: r }) => ({ uri: r.uri, scopes: r.scopes, tokenTtl: r.tokenTtl, requireDpop: r.requireDpop })),
  };
}

export function createAgentService(deps: {
  prisma: PrismaClient;
  clients: ClientService;
  changes: ChangeEvents;
  revocations?: Pick<RevocationService, 'revokeAllOf'>;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  // The token path's view of delegations, cached like client rows (CLIENT_CACHE_TTL_MS): a
  // revocation or any change to the tenant drops the entry at once on this replica and, with
  // REDIS_URL, on every other (src/shared/redis.ts); a lost message is bounded by the lifetime.
  const cache = new TenantLookupCache<ActiveDelegation | undefined>(10_000, now);
  deps.changes.onClientChanged((tenantId, clientId) =>
    // The agent itself changed (disabled, secret rotated): drop its installations everywhere too.
    cache.drop(tenantId, clientId, (d) => d?.agentTenantId === tenantId && d.agentId === clientId));
  deps.changes.onTenantChanged((tenantId) => cache.dropWhere((d, t) => t === tenantId || d?.agentTenantId === tenantId));

  const activeWhere = (at: Date) => ({ revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: at } }] });

  async function findActive(tenantId: string, agentId: string): Promise<ActiveDelegation | undefined> {
    if (typeof agentId !== 'string' || !LOOKUP_ID.test(agentId)) return undefined;
    return cache.get(
      tenantId,
      agentId,
      async (t) => {
        const d = await forTenant(deps.prisma, tenantId).delegation.findFirst({
          where: { agentId, ...activeWhere(new Date(t)) },
          include: withResources,
        });
        return d ? toActive(d) : undefined;
      },
      // Never cached past the delegation's own expiry, so an expired one stops at its instant.
      (d, t) => Math.min(t + CLIENT_CACHE_TTL_MS, d?.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY),
    );
  }

  return {
    /** Registers an agent in its home tenant: a client of kind `agent` that may use both grants. */
    async createAgent(homeTenantId: string, raw: unknown): Promise<ClientView> {
      const input = parseInput(createAgentInput, raw);
      return deps.clients.create(homeTenantId, {
        ...input,
        scopes: [],
        resources: [],
        grant_types: ['client_credentials', TOKEN_EXCHANGE],
      }, 'agent');
    },

    /** Installs an agent into `tenantId`, bounded by what the tenant's resources offer. */
    async grant(tenantId: string, raw: unknown, createdBy: string): Promise<DelegationView> {
      const input = parseInput(grantDelegationInput, raw);
      const expiresAt = input.expires_at ? new Date(input.expires_at) : null;
      if (expiresAt && expiresAt.getTime() <= now()) throw new InvalidInput('expires_at: must be in the future');

      // Agent ids are server-generated 128-bit random values, so one id names one agent across
      // every tenant. This lookup is deliberately not tenant-scoped: installing an agent from
      // another tenant is what a delegation is.
      const agents = await deps.prisma.client.findMany({ where: { id: input.client_id, kind: 'agent' }, take: 2 });
      const agent = agents.length === 1 ? agents[0]! : undefined;
      if (!agent) throw new InvalidInput(`client_id: no agent ${input.client_id}`);
      if (agent.status !== 'active') throw new InvalidInput(`client_id: agent ${input.client_id} is disabled`);

      const db = forTenant(deps.prisma, tenantId);
      const resources = await db.resource.findMany({ where: { uri: { in: input.resources } } });
      const unknown = input.resources.filter((u) => !resources.some((r) => r.uri === u));
      if (unknown.length) throw new InvalidInput(`resources: not registered in tenant ${tenantId}: ${unknown.join(', ')}`);
      const offered = new Set(resources.flatMap((r) => r.scopes));
      const orphan = input.scopes.filter((s) => !offered.has(s));
      if (orphan.length) throw new InvalidInput(`scopes: not offered by any of the delegation's resources: ${orphan.join(', ')}`);

      const id = randomId('dg', 12);
      const created = await db.$transaction(async (tx) => {
        // One active installation per agent and tenant, so "what may this agent do here" has
        // one answer. Checked inside the transaction that inserts.
        const existing = await tx.delegation.findFirst({ where: { agentId: agent.id, ...activeWhere(new Date(now())) } });
        if (existing) throw new Conflict(`agent ${agent.id} already has an active delegation in tenant ${tenantId} (${existing.id}); revoke it first`);
        await tx.delegation.create({
          data: {
            tenantId,
            id,
            agentTenantId: agent.tenantId,
            agentId: agent.id,
            scopes: input.scopes,
            tokenTtl: input.token_ttl ?? null,
            expiresAt,
            requireDpop: input.require_dpop,
            createdBy,
          },
        });
        await tx.delegationResource.createMany({ data: resources.map((r) => ({ tenantId, delegationId: id, resourceId: r.id })) });
        return tx.delegation.findFirstOrThrow({ where: { id }, include: withResources });
      });
      deps.changes.clientChanged(tenantId, agent.id);
      return toDelegationView(created, now());
    },

    async list(tenantId: string): Promise<DelegationView[]> {
      const rows = await forTenant(deps.prisma, tenantId).delegation.findMany({ orderBy: { createdAt: 'asc' }, include: withResources });
      const t = now();
      return rows.map((d) => toDelegationView(d, t));
    },

    /** One delegation of the tenant (any status); another tenant's is not found here. */
    async get(tenantId: string, id: string): Promise<DelegationView> {
      const d = await forTenant(deps.prisma, tenantId).delegation.findFirst({ where: { id }, include: withResources });
      if (!d) throw new NotFound(`delegation ${id} not found in tenant ${tenantId}`);
      return toDelegationView(d, now());
    },

    /** Revokes a delegation: from this moment the agent can exchange nothing more in the tenant. */
    async revoke(tenantId: string, id: string): Promise<DelegationView> {
      const db = forTenant(deps.prisma, tenantId);
      const d = await db.delegation.findFirst({ where: { id } });
      if (!d) throw new NotFound(`delegation ${id} not found in tenant ${tenantId}`);
      if (d.revokedAt) throw new Conflict(`delegation ${id} is already revoked`);
      await db.delegation.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date(now()) } });
      // Everything obtained through it is revoked for good: a later grant starts afresh rather
      // than bringing the old tokens back to life.
      await deps.revocations?.revokeAllOf(tenantId, d.agentId);
      deps.changes.clientChanged(tenantId, d.agentId);
      return toDelegationView(await db.delegation.findFirstOrThrow({ where: { id }, include: withResources }), now());
    },

    /**
     * The token path: the agent's active delegation in `tenantId`. Revoking it, or changing
     * the tenant, takes effect on the next exchange (see the cache above).
     */
    findActive,

    /**
     * Client authentication: the home tenant of an agent with an active delegation in
     * `tenantId`, or undefined (then the client is unknown there, like any other).
     */
    async homeOf(tenantId: string, agentId: string): Promise<string | undefined> {
      return (await findActive(tenantId, agentId))?.agentTenantId;
    },
  };
}

export type AgentService = ReturnType<typeof createAgentService>;

/**
 * The clients of tenant T, wherever a client of T authenticates (token endpoint, introspection,
 * revocation): T's own active clients, and an agent from another tenant while it holds an
 * active delegation in T; anyone else is unknown.
 */
export async function findTenantClient(
  deps: { clients: Pick<ClientService, 'findActive'>; agents: Pick<AgentService, 'homeOf'> },
  tenantId: string,
  clientId: string,
): Promise<ClientWithResources | undefined> {
  const own = await deps.clients.findActive(tenantId, clientId);
  if (own) return own;
  const home = await deps.agents.homeOf(tenantId, clientId);
  if (!home || home === tenantId) return undefined;
  const agent = await deps.clients.findActive(home, clientId);
  return agent?.kind === 'agent' ? agent : undefined;
}
