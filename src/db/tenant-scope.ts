import { Prisma, type PrismaClient } from '../generated/prisma/client.js';

/**
 * The one place tenant scoping is applied to queries. `forTenant(prisma, T)` returns a client
 * whose every read and write on a tenant-owned model carries `tenantId = T`: reads and
 * updates get it in `where`, creates get it in `data` (a conflicting value is an error, never
 * silently replaced). Services take a tenant-scoped client and so cannot forget the condition.
 *
 * - A model is tenant-owned when it has a `tenantId` field; the `Tenant` model itself is scoped
 *   to the row `id = T`, so no relation can be followed from it into another tenant.
 * - A `where` that already names a tenant keeps its condition and gains ours: a filter on
 *   another tenant matches nothing, it is never retargeted at T (a `deleteMany` for tenant B
 *   through T's client deletes nothing, not all of T's rows).
 * - Writes may not name another tenant anywhere in `data` (`tenantId`, `tenantId: { set }`,
 *   `tenant: { connect }`, or a nested relation write or compound key): that throws
 *   {@link CrossTenantWrite} before any SQL runs. Nested relation payloads are searched as a
 *   whole, so a JSON value holding a `tenantId` key there is refused too (fail closed).
 * - An operation this wrapper does not know is refused rather than passed through unscoped.
 * - Raw SQL (`$queryRaw`, `$executeRaw`) is not scoped: it must name the tenant itself.
 *
 * @example
 * const db = forTenant(prisma, 'acme');
 * await db.client.findMany(); // only acme's clients
 */

/** Each model's scalar field names, from the generated client. */
const SCALARS: ReadonlyMap<string, ReadonlySet<string>> = new Map(
  Object.values(Prisma.ModelName).map((model) => {
    const fields = (Prisma as unknown as Record<string, Record<string, string> | undefined>)[`${model}ScalarFieldEnum`];
    return [model, new Set(Object.values(fields ?? {}))];
  }),
);

/** Models whose rows belong to one tenant: every model with a `tenantId` field. */
export const TENANT_OWNED: ReadonlySet<string> = new Set(
  [...SCALARS].filter(([, fields]) => fields.has('tenantId')).map(([model]) => model),
);

const TENANT_MODEL = 'Tenant';

const WHERE_OPS = new Set([
  'findUnique', 'findUniqueOrThrow', 'findFirst', 'findFirstOrThrow', 'findMany',
  'delete', 'deleteMany', 'count', 'aggregate', 'groupBy',
]);
const UPDATE_OPS = new Set(['update', 'updateMany', 'updateManyAndReturn']);
const CREATE_OPS = new Set(['create', 'createMany', 'createManyAndReturn']);

export class CrossTenantWrite extends Error {
  readonly code = 'ERR_CROSS_TENANT_WRITE';
}

type Row = Record<string, unknown>;

const isObject = (v: unknown): v is Row => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);

function refuse(tenantId: string, what: string, value: unknown): never {
  throw new CrossTenantWrite(`refusing to write ${what} = ${JSON.stringify(value)} through tenant ${tenantId}`);
}

/** A scalar write's value: `'x'` or `{ set: 'x' }`. */
function written(value: unknown): unknown {
  return isObject(value) && 'set' in value ? value.set : value;
}

/**
 * Searches a nested relation payload (creates, connects, compound keys, nested filters) for
 * any tenant other than `tenantId`.
 */
function assertNested(value: unknown, tenantId: string): void {
  if (Array.isArray(value)) {
    for (const v of value) assertNested(v, tenantId);
    return;
  }
  if (!isObject(value)) return;
  for (const [k, v] of Object.entries(value)) {
    if (k === 'tenantId') {
      const w = written(v);
      if (w !== undefined && w !== tenantId) refuse(tenantId, 'tenantId', w);
    } else if (k === 'tenant' && isObject(v)) {
      // The relation to Tenant: whichever tenant it connects or creates must be this one.
      const targets = [v.connect, isObject(v.connectOrCreate) ? v.connectOrCreate.where : undefined, isObject(v.connectOrCreate) ? v.connectOrCreate.create : undefined, v.create];
      for (const t of targets) {
        if (isObject(t) && t.id !== tenantId) refuse(tenantId, 'tenant', t.id);
      }
    }
    assertNested(v, tenantId);
  }
}

/**
 * Checks one row of write data for `model`: its own tenant column (`tenantId`, or `id` for the
 * Tenant model) may only name `tenantId`, and no relation payload may reach another tenant.
 * Other scalar fields (JSON among them) are not searched.
 */
function assertOwnTenant(model: string, data: unknown, tenantId: string): void {
  if (Array.isArray(data)) {
    for (const d of data) assertOwnTenant(model, d, tenantId);
    return;
  }
  if (!isObject(data)) return;
  const column = model === TENANT_MODEL ? 'id' : 'tenantId';
  const scalars = SCALARS.get(model) ?? new Set<string>();
  for (const [k, v] of Object.entries(data)) {
    if (k === column) {
      const w = written(v);
      if (w !== undefined && w !== tenantId) refuse(tenantId, `${model}.${column}`, w);
    } else if (!scalars.has(k)) {
      assertNested({ [k]: v }, tenantId);
    }
  }
}

/** Create data with the tenant column set (a conflicting value has already been refused). */
function stamp(model: string, data: unknown, tenantId: string): unknown {
  assertOwnTenant(model, data, tenantId);
  const column = model === TENANT_MODEL ? 'id' : 'tenantId';
  if (Array.isArray(data)) return data.map((d) => stamp(model, d, tenantId));
  return { ...(data as Row), [column]: tenantId };
}

/** `where` restricted to the tenant: added outright, or ANDed to the caller's own tenant filter. */
function scopeWhere(model: string, where: unknown, tenantId: string): Row {
  const column = model === TENANT_MODEL ? 'id' : 'tenantId';
  const w: Row = { ...(isObject(where) ? where : {}) };
  if (w[column] === undefined) {
    w[column] = tenantId;
  } else if (w[column] !== tenantId) {
    const and = w.AND === undefined ? [] : Array.isArray(w.AND) ? w.AND : [w.AND];
    w.AND = [...and, { [column]: tenantId }];
  }
  return w;
}

export function forTenant(prisma: PrismaClient, tenantId: string) {
  return prisma.$extends({
    name: `tenant:${tenantId}`,
    query: {
      $allModels: {
        async $allOperations({ model, operation, args, query }) {
          if (!TENANT_OWNED.has(model) && model !== TENANT_MODEL) return query(args);
          const a = { ...((args ?? {}) as Row) };
          if (WHERE_OPS.has(operation)) {
            a.where = scopeWhere(model, a.where, tenantId);
          } else if (UPDATE_OPS.has(operation)) {
            assertOwnTenant(model, a.data, tenantId);
            a.where = scopeWhere(model, a.where, tenantId);
          } else if (CREATE_OPS.has(operation)) {
            a.data = stamp(model, a.data, tenantId);
          } else if (operation === 'upsert') {
            assertOwnTenant(model, a.update, tenantId);
            a.create = stamp(model, a.create, tenantId);
            a.where = scopeWhere(model, a.where, tenantId);
          } else {
            throw new Error(`forTenant: ${model}.${operation} is not tenant-scoped; add it to src/db/tenant-scope.ts`);
          }
          return query(a as typeof args);
        },
      },
    },
  });
}

export type TenantDb = ReturnType<typeof forTenant>;
