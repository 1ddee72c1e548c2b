import { z } from 'zod';
import type { PrismaClient, Resource } from '../generated/prisma/client.js';
import { forTenant } from '../db/tenant-scope.js';
import { Conflict, InvalidInput } from '../shared/errors.js';
import { randomId, SCOPE_TOKEN } from '../shared/ids.js';
import { parseInput } from '../shared/validate.js';
import type { ChangeEvents } from '../shared/changes.js';
import { MAX_TOKEN_TTL } from '../tenants/service.js';

export interface ResourceView {
  id: string;
  uri: string;
  scopes: string[];
  token_ttl: number | null;
  require_dpop: boolean;
  created_at: string;
}

/** RFC 8707 §2: a resource indicator is an absolute URI without a fragment. */
export const resourceUri = z
  .string()
  .max(2048)
  .refine((u) => URL.canParse(u) && !u.includes('#'), 'must be an absolute URI without a fragment');

export const scopeList = z
  .array(z.string().regex(SCOPE_TOKEN, 'each scope must be 1-128 printable characters without spaces, quotes or backslashes'))
  .max(100)
  .transform((s) => [...new Set(s)]);

export const createResourceInput = z.object({
  uri: resourceUri,
  scopes: scopeList.refine((s) => s.length > 0, 'at least one scope is required'),
  token_ttl: z.number().int().min(1).max(MAX_TOKEN_TTL).optional(),
  require_dpop: z.boolean().default(false),
}).strict();

export function toResourceView(r: Resource): ResourceView {
  return { id: r.id, uri: r.uri, scopes: r.scopes, token_ttl: r.tokenTtl, require_dpop: r.requireDpop, created_at: r.createdAt.toISOString() };
}

/** Resources (RFC 8707 resource servers) registered in a tenant, with the scopes they accept. */
export function createResourceService(deps: { prisma: PrismaClient; changes: ChangeEvents; publicUrl: string }) {
  return {
    async create(tenantId: string, raw: unknown): Promise<ResourceView> {
      const input = parseInput(createResourceInput, raw);
      // The broker is not a resource server: a resource at one of its own URLs (an issuer, the
      // admin API) would make tokens whose audience is that URL (agent credentials, admin
      // tokens) acceptable to whoever registered it.
      if (input.uri === deps.publicUrl || input.uri.startsWith(`${deps.publicUrl}/`)) {
        throw new InvalidInput(`uri: ${deps.publicUrl} and the URLs under it belong to Bulkhead itself, not to a resource`);
      }
      const db = forTenant(deps.prisma, tenantId);
      if (await db.resource.findFirst({ where: { uri: input.uri } })) {
        throw new Conflict(`resource ${input.uri} already exists in tenant ${tenantId}`);
      }
      const r = await db.resource.create({
        data: { tenantId, id: randomId('rs', 12), uri: input.uri, scopes: input.scopes, tokenTtl: input.token_ttl ?? null, requireDpop: input.require_dpop },
      });
      deps.changes.tenantChanged(tenantId);
      return toResourceView(r);
    },

    async list(tenantId: string): Promise<ResourceView[]> {
      const rows = await forTenant(deps.prisma, tenantId).resource.findMany({ orderBy: { uri: 'asc' } });
      return rows.map(toResourceView);
    },
  };
}

export type ResourceService = ReturnType<typeof createResourceService>;
