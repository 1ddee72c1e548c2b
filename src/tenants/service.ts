import { z } from 'zod';
import type { PrismaClient, Tenant } from '../generated/prisma/client.js';
import { Conflict, InvalidInput, NotFound } from '../shared/errors.js';
import { SYSTEM_TENANT, TENANT_ID } from '../shared/ids.js';
import type { ChangeEvents } from '../shared/changes.js';
import type { KeyService } from '../keys/service.js';
import { KEY_ALGORITHMS } from '../keys/lifecycle.js';
import { parseInput } from '../shared/validate.js';

export interface TenantView {
  id: string;
  name: string;
  status: string;
  token_ttl: number;
  created_at: string;
  updated_at: string;
}

export const MAX_TOKEN_TTL = 86_400;

export const createTenantInput = z.object({
  id: z.string().regex(TENANT_ID, 'tenant id must be 1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen'),
  name: z.string().trim().min(1).max(200).optional(),
  token_ttl: z.number().int().min(1).max(MAX_TOKEN_TTL).optional(),
  alg: z.enum(KEY_ALGORITHMS).optional(),
}).strict();
export type CreateTenantInput = z.infer<typeof createTenantInput>;

export function toTenantView(t: Tenant): TenantView {
  return {
    id: t.id,
    name: t.name,
    status: t.status,
    token_ttl: t.tokenTtl,
    created_at: t.createdAt.toISOString(),
    updated_at: t.updatedAt.toISOString(),
  };
}

export interface TenantServiceDeps {
  prisma: PrismaClient;
  keys: KeyService;
  changes: ChangeEvents;
}

/** Tenants: each its own issuer, keys, clients and resources. */
export function createTenantService(deps: TenantServiceDeps) {
  const { prisma } = deps;

  async function insert(input: CreateTenantInput): Promise<TenantView> {
    const existing = await prisma.tenant.findUnique({ where: { id: input.id } });
    if (existing) throw new Conflict(`tenant ${input.id} already exists`);
    const tenant = await prisma.$transaction(async (tx) => {
      const t = await tx.tenant.create({
        data: { id: input.id, name: input.name ?? input.id, tokenTtl: input.token_ttl ?? 300 },
      });
      await deps.keys.provision(tx, t.id, input.alg);
      return t;
    });
    return toTenantView(tenant);
  }

  return {
    /** Creates a tenant with its first signing key (and the next one, published ahead). */
    async create(raw: unknown): Promise<TenantView> {
      const input = parseInput(createTenantInput, raw);
      if (input.id === SYSTEM_TENANT) throw new InvalidInput(`tenant id "${SYSTEM_TENANT}" is reserved`);
      return insert(input);
    },

    /** Creates the reserved `system` tenant on first start; a no-op afterwards. */
    async ensureSystem(): Promise<{ created: boolean }> {
      if (await prisma.tenant.findUnique({ where: { id: SYSTEM_TENANT } })) return { created: false };
      try {
        await insert({ id: SYSTEM_TENANT, name: 'Bulkhead platform' });
        return { created: true };
      } catch (err) {
        // Another replica created it between our check and insert.
        if (err instanceof Conflict || (err as { code?: string }).code === 'P2002') return { created: false };
        throw err;
      }
    },

    async list(): Promise<TenantView[]> {
      return (await prisma.tenant.findMany({ orderBy: { id: 'asc' } })).map(toTenantView);
    },

    async get(id: string): Promise<TenantView> {
      const t = TENANT_ID.test(id) ? await prisma.tenant.findUnique({ where: { id } }) : null;
      if (!t) throw new NotFound(`tenant ${id} not found`);
      return toTenantView(t);
    },

    /** The tenant row, or undefined; the token path uses this and never throws for unknown ids. */
    async find(id: string): Promise<Tenant | undefined> {
      if (!TENANT_ID.test(id)) return undefined;
      return (await prisma.tenant.findUnique({ where: { id } })) ?? undefined;
    },

    async setStatus(id: string, status: 'active' | 'suspended'): Promise<TenantView> {
      if (id === SYSTEM_TENANT && status === 'suspended') {
        throw new InvalidInput('the system tenant cannot be suspended: it issues the admin API tokens');
      }
      await this.get(id);
      const t = await prisma.tenant.update({ where: { id }, data: { status } });
      deps.changes.tenantChanged(id);
      return toTenantView(t);
    },
  };
}

export type TenantService = ReturnType<typeof createTenantService>;
