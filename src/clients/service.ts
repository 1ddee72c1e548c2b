import { z } from 'zod';
import { importJWK, type JWK } from 'jose';
import type { PrismaClient, Client, Resource } from '../generated/prisma/client.js';
import { forTenant } from '../db/tenant-scope.js';
import { Conflict, InvalidInput, NotFound } from '../shared/errors.js';
import { LOOKUP_ID, newClientSecret, randomId, SYSTEM_TENANT } from '../shared/ids.js';
import { parseInput } from '../shared/validate.js';
import type { ChangeEvents } from '../shared/changes.js';
import { resourceUri, scopeList } from '../resources/service.js';
import { MAX_TOKEN_TTL } from '../tenants/service.js';
import { hashSecret } from './secrets.js';
import { TenantLookupCache } from '../shared/lru.js';

/** The client `bulkhead serve` creates in the system tenant on first start. */
export const PLATFORM_ADMIN_CLIENT = 'platform-admin';

export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];
/** RFC 8693 §2.1 grant type identifier. */
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const GRANT_TYPES = ['client_credentials', TOKEN_EXCHANGE] as const;
/** Only these algorithms may sign a client assertion (private_key_jwt). */
export const CLIENT_ASSERTION_ALGS = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];

export interface ClientView {
  client_id: string;
  name: string;
  kind: string;
  token_endpoint_auth_method: string;
  scopes: string[];
  resources: string[];
  grant_types: string[];
  token_ttl: number | null;
  status: string;
  created_at: string;
  /** Present only in the response that created or rotated it. */
  client_secret?: string;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

const jwksInput = z
  .object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(10) })
  .refine((j) => j.keys.every((k) => PRIVATE_MEMBERS.every((m) => !(m in k))), 'jwks must contain public keys only');

export const createClientInput = z.object({
  name: z.string().trim().min(1).max(200),
  scopes: scopeList,
  resources: z.array(resourceUri).max(100).default([]).transform((r) => [...new Set(r)]),
  token_endpoint_auth_method: z.enum(AUTH_METHODS).default('client_secret_basic'),
  jwks: jwksInput.optional(),
  grant_types: z.array(z.enum(GRANT_TYPES)).min(1).default(['client_credentials']).transform((g) => [...new Set(g)]),
  token_ttl: z.number().int().min(1).max(MAX_TOKEN_TTL).optional(),
}).strict();

export type ClientWithResources = Client & { resources: { resource: Resource }[] };

export function toClientView(c: ClientWithResources, secret?: string): ClientView {
  return {
    client_id: c.id,
    name: c.name,
    kind: c.kind,
    token_endpoint_auth_method: c.authMethod,
    scopes: c.scopes,
    resources: c.resources.map((r) => r.resource.uri).sort(),
    grant_types: c.grantTypes,
    token_ttl: c.tokenTtl,
    status: c.status,
    created_at: c.createdAt.toISOString(),
    ...(secret ? { client_secret: secret } : {}),
  };
}

async function assertUsableJwks(jwks: { keys: Record<string, unknown>[] }): Promise<void> {
  for (const [i, k] of jwks.keys.entries()) {
    try {
      const key = await importJWK(k as JWK, typeof k.alg === 'string' ? k.alg : k.kty === 'RSA' ? 'RS256' : k.kty === 'OKP' ? 'EdDSA' : 'ES256');
      if (key instanceof Uint8Array) throw new Error('symmetric');
    } catch {
      throw new InvalidInput(`jwks.keys.${i}: not a usable public signing key`);
    }
  }
}

const withResources = { resources: { include: { resource: true } } } as const;

/**
 * How long the token path may reuse a client row it read. oidc-provider looks the client up on
 * every token request; without this, three queries per token dominate the token path (see
 * bench/README.md). Changes made through this process drop the entry at once; other replicas
 * see them within this window.
 */
export const CLIENT_CACHE_TTL_MS = 5_000;

/** Clients of a tenant: services (and, later, agents) that obtain tokens from its issuer. */
export function createClientService(deps: { prisma: PrismaClient; changes: ChangeEvents; now?: () => number }) {
  const now = deps.now ?? Date.now;
  const active = new TenantLookupCache<ClientWithResources | undefined>(10_000, now);
  deps.changes.onClientChanged((tenantId, clientId) => active.drop(tenantId, clientId));
  deps.changes.onTenantChanged((tenantId) => active.dropWhere((_, t) => t === tenantId));

  async function load(tenantId: string, clientId: string): Promise<ClientWithResources> {
    const c = await forTenant(deps.prisma, tenantId).client.findFirst({ where: { id: clientId }, include: withResources });
    if (!c) throw new NotFound(`client ${clientId} not found in tenant ${tenantId}`);
    return c;
  }

  return {
    /**
     * Registers a client; a secret-based client's secret is returned here once and never again.
     * Agents are registered through the agent service, which passes `kind: 'agent'`.
     */
    async create(tenantId: string, raw: unknown, kind: 'service' | 'agent' = 'service'): Promise<ClientView> {
      const input = { ...parseInput(createClientInput, raw), kind };
      const db = forTenant(deps.prisma, tenantId);
      const usesSecret = input.token_endpoint_auth_method !== 'private_key_jwt';
      if (!usesSecret && !input.jwks) throw new InvalidInput('jwks: private_key_jwt clients need a jwks with their public key(s)');
      if (usesSecret && input.jwks) throw new InvalidInput(`jwks: only private_key_jwt clients take a jwks, not ${input.token_endpoint_auth_method}`);
      if (input.jwks) await assertUsableJwks(input.jwks);

      const resources = input.resources.length
        ? await db.resource.findMany({ where: { uri: { in: input.resources } } })
        : [];
      const unknown = input.resources.filter((u) => !resources.some((r) => r.uri === u));
      if (unknown.length) throw new InvalidInput(`resources: not registered in tenant ${tenantId}: ${unknown.join(', ')}`);
      const offered = new Set(resources.flatMap((r) => r.scopes));
      const orphan = input.scopes.filter((s) => !offered.has(s));
      if (input.kind === 'service' && orphan.length) {
        throw new InvalidInput(`scopes: not offered by any of the client's resources: ${orphan.join(', ')}`);
      }
      if (await db.client.findFirst({ where: { name: input.name } })) {
        throw new Conflict(`a client named "${input.name}" already exists in tenant ${tenantId}`);
      }

      const secret = usesSecret ? newClientSecret() : undefined;
      const id = randomId(input.kind === 'agent' ? 'ag' : 'cl');
      const created = await db.$transaction(async (tx) => {
        await tx.client.create({
          data: {
            tenantId,
            id,
            name: input.name,
            kind: input.kind,
            authMethod: input.token_endpoint_auth_method,
            secretHash: secret ? await hashSecret(secret) : null,
            jwks: (input.jwks as object | undefined) ?? undefined,
            scopes: input.scopes,
            grantTypes: input.grant_types,
            tokenTtl: input.token_ttl ?? null,
            secretRotatedAt: secret ? new Date() : null,
          },
        });
        if (resources.length) {
          await tx.clientResource.createMany({ data: resources.map((r) => ({ tenantId, clientId: id, resourceId: r.id })) });
        }
        return tx.client.findFirstOrThrow({ where: { id }, include: withResources });
      });
      deps.changes.clientChanged(tenantId, id);
      return toClientView(created as ClientWithResources, secret);
    },

    async list(tenantId: string): Promise<ClientView[]> {
      const rows = await forTenant(deps.prisma, tenantId).client.findMany({ orderBy: { name: 'asc' }, include: withResources });
      return rows.map((c) => toClientView(c as ClientWithResources));
    },

    async get(tenantId: string, clientId: string): Promise<ClientView> {
      return toClientView(await load(tenantId, clientId));
    },

    /** Replaces the secret; the old one stops working at once. */
    async rotateSecret(tenantId: string, clientId: string): Promise<ClientView> {
      const c = await load(tenantId, clientId);
      if (c.authMethod === 'private_key_jwt') {
        throw new InvalidInput(`client ${clientId} authenticates with private_key_jwt and has no secret to rotate`);
      }
      if (c.status !== 'active') throw new Conflict(`client ${clientId} is disabled`);
      const secret = newClientSecret();
      await forTenant(deps.prisma, tenantId).client.update({
        where: { tenantId_id: { tenantId, id: clientId } },
        data: { secretHash: await hashSecret(secret), secretRotatedAt: new Date() },
      });
      deps.changes.clientChanged(tenantId, clientId);
      return toClientView(await load(tenantId, clientId), secret);
    },

    /** Disables a client: it can no longer obtain tokens. */
    async disable(tenantId: string, clientId: string): Promise<ClientView> {
      const c = await load(tenantId, clientId);
      if (tenantId === SYSTEM_TENANT && c.name === PLATFORM_ADMIN_CLIENT) {
        throw new InvalidInput('the platform-admin client cannot be disabled: it is the way into the admin API');
      }
      if (c.status === 'disabled') throw new Conflict(`client ${clientId} is already disabled`);
      await forTenant(deps.prisma, tenantId).client.update({
        where: { tenantId_id: { tenantId, id: clientId } },
        data: { status: 'disabled' },
      });
      deps.changes.clientChanged(tenantId, clientId);
      return toClientView(await load(tenantId, clientId));
    },

    /** The token path's lookup: an active client of this tenant with its resources, or undefined. */
    async findActive(tenantId: string, clientId: string): Promise<ClientWithResources | undefined> {
      if (typeof clientId !== 'string' || !LOOKUP_ID.test(clientId)) return undefined;
      return active.get(
        tenantId,
        clientId,
        async () => {
          const c = await forTenant(deps.prisma, tenantId).client.findFirst({
            where: { id: clientId, status: 'active' },
            include: withResources,
          });
          return (c as ClientWithResources | null) ?? undefined;
        },
        (_, loadedAt) => loadedAt + CLIENT_CACHE_TTL_MS,
      );
    },
  };
}

export type ClientService = ReturnType<typeof createClientService>;
