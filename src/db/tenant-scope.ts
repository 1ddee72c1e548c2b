import type { PrismaClient } from '../generated/prisma/client.js';

/**
 * The one place tenant scoping is applied to queries. `forTenant(prisma, T)` returns a client
 * whose every read and write on a tenant-owned model carries `tenantId = T`: reads and
 * updates get it in `where`, creates get it in `data` (a conflicting value is an error, never
 * silently replaced). Services take a tenant-scoped client and so cannot forget the condition.
 *
 * @example
 * const db = forTenant(prisma, 'acme');
 * await db.client.findMany(); // only acme's clients
 */
const TENANT_OWNED = new Set(['SigningKey', 'Client', 'Resource', 'ClientResource']);

const WHERE_OPS = new Set([
  'findUnique', 'findUniqueOrThrow', 'findFirst', 'findFirstOrThrow', 'findMany',
  'update', 'updateMany', 'updateManyAndReturn', 'delete', 'deleteMany', 'count', 'aggregate', 'groupBy',
]);
const CREATE_OPS = new Set(['create', 'createMany', 'createManyAndReturn']);

export class CrossTenantWrite extends Error {
  readonly code = 'ERR_CROSS_TENANT_WRITE';
}

function stamp(data: unknown, tenantId: string): unknown {
  if (Array.isArray(data)) return data.map((d) => stamp(d, tenantId));
  const row = data as Record<string, unknown>;
  if (row.tenantId !== undefined && row.tenantId !== tenantId) {
    throw new CrossTenantWrite(`refusing to write a row of tenant ${String(row.tenantId)} through tenant ${tenantId}`);
  }
  return { ...row, tenantId };
}

export function forTenant(prisma: PrismaClient, tenantId: string) {
  return prisma.$extends({
    name: `tenant:${tenantId}`,
    query: {
      $allModels: {
        async $allOperations({ model, operation, args, query }) {
          if (!TENANT_OWNED.has(model)) return query(args);
          const a = (args ?? {}) as Record<string, unknown>;
          if (WHERE_OPS.has(operation)) {
            a.where = { ...(a.where as object | undefined), tenantId };
          } else if (CREATE_OPS.has(operation)) {
            a.data = stamp(a.data, tenantId);
          } else if (operation === 'upsert') {
            a.where = { ...(a.where as object), tenantId };
            a.create = stamp(a.create, tenantId);
          }
          return query(a as typeof args);
        },
      },
    },
  });
}

export type TenantDb = ReturnType<typeof forTenant>;
