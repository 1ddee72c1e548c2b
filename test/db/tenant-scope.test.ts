import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrator.js';
import { CrossTenantWrite, forTenant } from '../../src/db/tenant-scope.js';
import type { PrismaClient } from '../../src/generated/prisma/client.js';
import { createClientService } from '../../src/clients/service.js';
import { createResourceService } from '../../src/resources/service.js';
import { localChangeEvents } from '../../src/shared/changes.js';
import { DATABASES } from '../support/databases.js';
import { openTestDatabase } from './support/open.js';

/**
 * Tenant isolation has two layers: `forTenant` scopes every query a service makes, and the
 * composite (tenantId, id) foreign keys make a cross-tenant reference impossible to store.
 * Both tenants below hold rows with the same ids, names and URIs, so any query that loses its
 * tenant condition finds the other tenant's row rather than nothing.
 */

const A = 'acme';
const B = 'globex';
const SAME_URI = 'https://api.example/';

async function seed(prisma: PrismaClient) {
  await prisma.tenant.deleteMany();
  for (const t of [A, B]) {
    await prisma.tenant.create({ data: { id: t, name: `${t} corp` } });
    await prisma.resource.create({ data: { tenantId: t, id: 'rs_same', uri: SAME_URI, scopes: ['read'] } });
    await prisma.client.create({
      data: { tenantId: t, id: 'cl_same', name: 'worker', authMethod: 'client_secret_basic', scopes: ['read'], grantTypes: ['client_credentials'] },
    });
    await prisma.clientResource.create({ data: { tenantId: t, clientId: 'cl_same', resourceId: 'rs_same' } });
    await prisma.signingKey.create({
      data: { tenantId: t, kid: 'k1', alg: 'ES256', status: 'active', publicJwk: { kty: 'EC' }, privateJwkEnc: `sealed-${t}` },
    });
  }
  // Rows only one tenant has, so that counts differ and ids exist on one side only.
  await prisma.client.create({
    data: { tenantId: A, id: 'cl_a_only', name: 'a-only', authMethod: 'client_secret_basic', scopes: [], grantTypes: [] },
  });
  await prisma.client.create({
    data: { tenantId: B, id: 'cl_b_only', name: 'b-only', authMethod: 'client_secret_basic', scopes: [], grantTypes: [] },
  });
  await prisma.client.create({
    data: { tenantId: B, id: 'cl_b_two', name: 'b-two', authMethod: 'client_secret_basic', scopes: [], grantTypes: [] },
  });
  await prisma.resource.create({ data: { tenantId: B, id: 'rs_b_only', uri: 'https://b.example/', scopes: ['read'] } });
  await prisma.clientResource.create({ data: { tenantId: B, clientId: 'cl_b_only', resourceId: 'rs_b_only' } });
}

describe.each(DATABASES)('tenant isolation (%s)', (kind) => {
  let db: Awaited<ReturnType<typeof openTestDatabase>>;
  let prisma: PrismaClient;

  /** Everything in the database, read without any scoping, as a comparable snapshot. */
  const snapshot = async (tenantId: string) => ({
    tenant: await prisma.tenant.findUnique({ where: { id: tenantId } }),
    clients: await prisma.client.findMany({ where: { tenantId }, orderBy: { id: 'asc' } }),
    resources: await prisma.resource.findMany({ where: { tenantId }, orderBy: { id: 'asc' } }),
    links: await prisma.clientResource.findMany({ where: { tenantId }, orderBy: [{ clientId: 'asc' }, { resourceId: 'asc' }] }),
    keys: await prisma.signingKey.findMany({ where: { tenantId }, orderBy: { kid: 'asc' } }),
  });

  beforeAll(async () => {
    db = await openTestDatabase(kind);
    await migrate(db.driver);
    prisma = db.prisma;
  });
  afterAll(async () => {
    await db?.drop();
  });
  beforeEach(async () => {
    await seed(prisma);
  });

  describe('reads through forTenant(A)', () => {
    it('findMany returns exactly A’s rows of every tenant-owned model', async () => {
      for (const [t, other] of [[A, B], [B, A]] as const) {
        const s = forTenant(prisma, t);
        const own = await snapshot(t);
        expect(await s.client.findMany({ orderBy: { id: 'asc' } })).toEqual(own.clients);
        expect(await s.resource.findMany({ orderBy: { id: 'asc' } })).toEqual(own.resources);
        expect(await s.clientResource.findMany({ orderBy: [{ clientId: 'asc' }, { resourceId: 'asc' }] })).toEqual(own.links);
        expect(await s.signingKey.findMany({ orderBy: { kid: 'asc' } })).toEqual(own.keys);
        expect((await s.client.findMany()).some((c) => c.tenantId === other)).toBe(false);
      }
    });

    it('findFirst finds A’s row for a shared id and nothing for an id only B has', async () => {
      const s = forTenant(prisma, A);
      expect(await s.client.findFirst({ where: { id: 'cl_same' } })).toMatchObject({ tenantId: A, id: 'cl_same' });
      expect(await s.client.findFirst({ where: { name: 'worker' } })).toMatchObject({ tenantId: A });
      expect(await s.resource.findFirst({ where: { uri: SAME_URI } })).toMatchObject({ tenantId: A });
      expect(await s.signingKey.findFirst({ where: { kid: 'k1' } })).toMatchObject({ tenantId: A, privateJwkEnc: `sealed-${A}` });
      expect(await s.client.findFirst({ where: { id: 'cl_b_only' } })).toBeNull();
      expect(await s.resource.findFirst({ where: { id: 'rs_b_only' } })).toBeNull();
      await expect(s.client.findFirstOrThrow({ where: { id: 'cl_b_only' } })).rejects.toThrow();
    });

    it('count, aggregate and groupBy see only A', async () => {
      const s = forTenant(prisma, A);
      expect(await prisma.client.count()).toBe(5);
      expect(await s.client.count()).toBe(2);
      expect(await forTenant(prisma, B).client.count()).toBe(3);
      expect(await s.resource.count()).toBe(1);
      expect(await s.clientResource.count()).toBe(1);
      expect(await s.signingKey.count({ where: { status: 'active' } })).toBe(1);
      expect((await s.client.aggregate({ _count: { _all: true } }))._count._all).toBe(2);
      const groups = await s.client.groupBy({ by: ['tenantId'], _count: { _all: true } });
      expect(groups).toEqual([{ tenantId: A, _count: { _all: 2 } }]);
    });

    it('findUnique by B’s compound key finds nothing', async () => {
      const s = forTenant(prisma, A);
      expect(await s.client.findUnique({ where: { tenantId_id: { tenantId: A, id: 'cl_same' } } })).toMatchObject({ tenantId: A });
      expect(await s.client.findUnique({ where: { tenantId_id: { tenantId: B, id: 'cl_same' } } })).toBeNull();
      expect(await s.client.findUnique({ where: { tenantId_name: { tenantId: B, name: 'worker' } } })).toBeNull();
      expect(await s.resource.findUnique({ where: { tenantId_uri: { tenantId: B, uri: SAME_URI } } })).toBeNull();
      expect(await s.resource.findUnique({ where: { tenantId_id: { tenantId: B, id: 'rs_b_only' } } })).toBeNull();
      expect(await s.signingKey.findUnique({ where: { tenantId_kid: { tenantId: B, kid: 'k1' } } })).toBeNull();
      expect(
        await s.clientResource.findUnique({
          where: { tenantId_clientId_resourceId: { tenantId: B, clientId: 'cl_same', resourceId: 'rs_same' } },
        }),
      ).toBeNull();
      await expect(s.client.findUniqueOrThrow({ where: { tenantId_id: { tenantId: B, id: 'cl_same' } } })).rejects.toThrow();
    });

    it('a filter naming B narrows to nothing; it is never widened or retargeted to A', async () => {
      const s = forTenant(prisma, A);
      expect(await s.client.findMany({ where: { tenantId: B } })).toEqual([]);
      expect(await s.client.count({ where: { tenantId: B } })).toBe(0);
      expect(await s.client.findMany({ where: { OR: [{ tenantId: B }, { id: 'cl_b_only' }] } })).toEqual([]);
      expect(await s.client.findMany({ where: { NOT: { tenantId: A } } })).toEqual([]);
      expect(await s.client.findMany({ where: { tenantId: { in: [A, B] } } })).toHaveLength(2);
      expect(await s.client.findMany({ where: { tenant: { id: B } } })).toEqual([]);
    });

    it('relations included from A’s rows stay in A', async () => {
      const s = forTenant(prisma, A);
      const clients = await s.client.findMany({ include: { tenant: true, resources: { include: { resource: true, client: true } } } });
      expect(clients).toHaveLength(2);
      for (const c of clients) {
        expect(c.tenant.id).toBe(A);
        for (const link of c.resources) {
          expect([link.tenantId, link.resource.tenantId, link.client.tenantId]).toEqual([A, A, A]);
        }
      }
      const keys = await s.signingKey.findMany({ include: { tenant: { include: { clients: true, resources: true } } } });
      expect(keys.flatMap((k) => [...k.tenant.clients, ...k.tenant.resources]).every((r) => r.tenantId === A)).toBe(true);
    });

    it('the Tenant model itself shows only A, so B’s rows cannot be reached through it', async () => {
      const s = forTenant(prisma, A);
      expect((await s.tenant.findMany()).map((t) => t.id)).toEqual([A]);
      expect(await s.tenant.count()).toBe(1);
      expect(await s.tenant.findUnique({ where: { id: B }, include: { clients: true, signingKeys: true } })).toBeNull();
      expect(await s.tenant.findFirst({ where: { id: B } })).toBeNull();
      expect(await s.tenant.findUnique({ where: { id: A } })).toMatchObject({ id: A });
    });

    it('an interactive transaction on the scoped client stays scoped', async () => {
      const s = forTenant(prisma, A);
      const [clients, n] = await s.$transaction(async (tx) => [await tx.client.findMany(), await tx.resource.count()] as const);
      expect(clients.map((c) => c.tenantId)).toEqual([A, A]);
      expect(n).toBe(1);
    });
  });

  describe('writes through forTenant(A)', () => {
    it('update and delete by B’s compound key fail and leave B untouched', async () => {
      const s = forTenant(prisma, A);
      const before = await snapshot(B);
      await expect(s.client.update({ where: { tenantId_id: { tenantId: B, id: 'cl_same' } }, data: { name: 'hijacked' } })).rejects.toThrow();
      await expect(s.client.update({ where: { tenantId_id: { tenantId: B, id: 'cl_b_only' } }, data: { status: 'disabled' } })).rejects.toThrow();
      await expect(s.resource.update({ where: { tenantId_uri: { tenantId: B, uri: SAME_URI } }, data: { scopes: ['admin'] } })).rejects.toThrow();
      await expect(s.signingKey.update({ where: { tenantId_kid: { tenantId: B, kid: 'k1' } }, data: { status: 'revoked' } })).rejects.toThrow();
      await expect(s.client.delete({ where: { tenantId_id: { tenantId: B, id: 'cl_b_only' } } })).rejects.toThrow();
      await expect(s.resource.delete({ where: { tenantId_id: { tenantId: B, id: 'rs_same' } } })).rejects.toThrow();
      await expect(
        s.clientResource.delete({ where: { tenantId_clientId_resourceId: { tenantId: B, clientId: 'cl_same', resourceId: 'rs_same' } } }),
      ).rejects.toThrow();
      expect(await snapshot(B)).toEqual(before);
    });

    it('updateMany and deleteMany touch only A’s rows', async () => {
      const s = forTenant(prisma, A);
      const before = await snapshot(B);
      expect(await s.client.updateMany({ where: { id: 'cl_same' }, data: { status: 'disabled' } })).toEqual({ count: 1 });
      expect(await s.client.updateMany({ data: { tokenTtl: 60 } })).toEqual({ count: 2 });
      expect(await s.signingKey.updateMany({ data: { status: 'retired' } })).toEqual({ count: 1 });
      expect(await s.clientResource.deleteMany()).toEqual({ count: 1 });
      expect(await s.client.deleteMany()).toEqual({ count: 2 });
      expect(await s.resource.deleteMany({ where: { uri: SAME_URI } })).toEqual({ count: 1 });
      expect(await snapshot(B)).toEqual(before);
      const a = await snapshot(A);
      expect([a.clients, a.resources, a.links]).toEqual([[], [], []]);
      expect(a.keys.map((k) => k.status)).toEqual(['retired']);
    });

    it('a bulk write whose filter names B changes nothing at all (not A instead)', async () => {
      const s = forTenant(prisma, A);
      const [a, b] = [await snapshot(A), await snapshot(B)];
      expect(await s.client.deleteMany({ where: { tenantId: B } })).toEqual({ count: 0 });
      expect(await s.client.updateMany({ where: { tenantId: B }, data: { status: 'disabled' } })).toEqual({ count: 0 });
      expect(await s.signingKey.deleteMany({ where: { tenantId: { not: A } } })).toEqual({ count: 0 });
      expect([await snapshot(A), await snapshot(B)]).toEqual([a, b]);
    });

    it('upsert on B’s key never updates B’s row', async () => {
      const s = forTenant(prisma, A);
      const before = await snapshot(B);
      await s.client
        .upsert({
          where: { tenantId_id: { tenantId: B, id: 'cl_b_only' } },
          create: { tenantId: A, id: 'cl_upserted', name: 'upserted', authMethod: 'client_secret_basic', scopes: [], grantTypes: [] },
          update: { name: 'hijacked' },
        })
        .catch(() => undefined);
      expect(await snapshot(B)).toEqual(before);
    });

    it('no row can be moved from A into B', async () => {
      const s = forTenant(prisma, A);
      const [a, b] = [await snapshot(A), await snapshot(B)];
      const key = { tenantId_id: { tenantId: A, id: 'cl_a_only' } };
      await expect(s.client.update({ where: key, data: { tenantId: B } })).rejects.toThrow(CrossTenantWrite);
      await expect(s.client.update({ where: key, data: { tenantId: { set: B } } })).rejects.toThrow(CrossTenantWrite);
      await expect(s.client.update({ where: key, data: { tenant: { connect: { id: B } } } })).rejects.toThrow(CrossTenantWrite);
      await expect(s.client.updateMany({ where: { id: 'cl_a_only' }, data: { tenantId: B } })).rejects.toThrow(CrossTenantWrite);
      await expect(s.client.updateManyAndReturn({ data: { tenantId: B } })).rejects.toThrow(CrossTenantWrite);
      await expect(s.signingKey.update({ where: { tenantId_kid: { tenantId: A, kid: 'k1' } }, data: { tenantId: B } })).rejects.toThrow(CrossTenantWrite);
      await expect(
        s.client.upsert({
          where: key,
          create: { tenantId: A, id: 'cl_a_only', name: 'x', authMethod: 'client_secret_basic', scopes: [], grantTypes: [] },
          update: { tenantId: B },
        }),
      ).rejects.toThrow(CrossTenantWrite);
      // Re-pointing a link at B's same-named resource would carry the link into B.
      await expect(
        s.clientResource.update({
          where: { tenantId_clientId_resourceId: { tenantId: A, clientId: 'cl_same', resourceId: 'rs_same' } },
          data: { resource: { connect: { tenantId_id: { tenantId: B, id: 'rs_same' } } } },
        }),
      ).rejects.toThrow(CrossTenantWrite);
      await expect(s.tenant.update({ where: { id: A }, data: { id: B } })).rejects.toThrow(CrossTenantWrite);
      expect([await snapshot(A), await snapshot(B)]).toEqual([a, b]);
    });

    it('a create naming another tenant throws CrossTenantWrite and writes nothing', async () => {
      const s = forTenant(prisma, A);
      const [a, b] = [await snapshot(A), await snapshot(B)];
      const client = { id: 'cl_new', name: 'new', authMethod: 'client_secret_basic', scopes: [], grantTypes: [] };
      await expect(s.client.create({ data: { ...client, tenantId: B } })).rejects.toThrow(CrossTenantWrite);
      await expect(s.resource.create({ data: { tenantId: B, id: 'rs_new', uri: 'https://new.example/', scopes: [] } })).rejects.toThrow(CrossTenantWrite);
      await expect(
        s.signingKey.create({ data: { tenantId: B, kid: 'k9', alg: 'ES256', status: 'pending', publicJwk: {}, privateJwkEnc: 'x' } }),
      ).rejects.toThrow(CrossTenantWrite);
      await expect(s.clientResource.create({ data: { tenantId: B, clientId: 'cl_b_two', resourceId: 'rs_b_only' } })).rejects.toThrow(CrossTenantWrite);
      // One foreign row in a batch refuses the whole batch.
      await expect(
        s.client.createMany({ data: [{ ...client, id: 'cl_ok', tenantId: A }, { ...client, id: 'cl_bad', name: 'bad', tenantId: B }] }),
      ).rejects.toThrow(CrossTenantWrite);
      await expect(s.client.createManyAndReturn({ data: [{ ...client, tenantId: B }] })).rejects.toThrow(CrossTenantWrite);
      await expect(s.client.upsert({ where: { tenantId_id: { tenantId: A, id: 'cl_new' } }, create: { ...client, tenantId: B }, update: {} })).rejects.toThrow(
        CrossTenantWrite,
      );
      await expect(s.client.create({ data: { ...client, tenant: { connect: { id: B } } } as never })).rejects.toThrow(CrossTenantWrite);
      await expect(s.tenant.create({ data: { id: 'initech', name: 'Initech' } })).rejects.toThrow(CrossTenantWrite);
      expect([await snapshot(A), await snapshot(B)]).toEqual([a, b]);
      expect(await prisma.tenant.findUnique({ where: { id: 'initech' } })).toBeNull();
    });

    it('a create without a tenantId, or with A’s, lands in A', async () => {
      const s = forTenant(prisma, A);
      const base = { name: 'new', authMethod: 'client_secret_basic', scopes: [], grantTypes: [] };
      // The type requires tenantId; the wrapper supplies it when a caller leaves it out at run time.
      await s.client.create({ data: { ...base, id: 'cl_new' } as Parameters<typeof s.client.create>[0]['data'] });
      await s.client.create({ data: { ...base, id: 'cl_new2', name: 'new2', tenantId: A } });
      await s.client.createMany({ data: [{ ...base, id: 'cl_new3', name: 'new3' }] as never });
      const created = await prisma.client.findMany({ where: { id: { in: ['cl_new', 'cl_new2', 'cl_new3'] } } });
      expect(created.map((c) => c.tenantId)).toEqual([A, A, A]);
    });
  });

  describe('the services built on forTenant', () => {
    it('the same resource URI and client name in two tenants stay apart', async () => {
      const changes = localChangeEvents();
      const resources = createResourceService({ prisma, changes, publicUrl: 'http://localhost:8080' });
      const clients = createClientService({ prisma, changes });
      const uri = 'https://tickets.example/';
      const ra = await resources.create(A, { uri, scopes: ['tickets:read'] });
      const rb = await resources.create(B, { uri, scopes: ['tickets:read', 'tickets:write'] });
      const ca = await clients.create(A, { name: 'ticket-bot', scopes: ['tickets:read'], resources: [uri] });
      const cb = await clients.create(B, { name: 'ticket-bot', scopes: ['tickets:write'], resources: [uri] });

      expect((await resources.list(A)).filter((r) => r.uri === uri)).toEqual([ra]);
      expect((await resources.list(B)).filter((r) => r.uri === uri)).toEqual([rb]);
      const listedA = (await clients.list(A)).filter((c) => c.name === 'ticket-bot');
      expect(listedA.map((c) => c.client_id)).toEqual([ca.client_id]);
      expect((await clients.list(B)).filter((c) => c.name === 'ticket-bot').map((c) => c.client_id)).toEqual([cb.client_id]);
      // Each client is linked to its own tenant's resource row.
      const links = await prisma.clientResource.findMany({ where: { clientId: { in: [ca.client_id, cb.client_id] } } });
      expect(links.map((l) => [l.tenantId, l.clientId, l.resourceId]).sort()).toEqual(
        [[A, ca.client_id, ra.id], [B, cb.client_id, rb.id]].sort(),
      );
      // A's client is not found, used or changed under B.
      expect(await clients.findActive(B, ca.client_id)).toBeUndefined();
      await expect(clients.get(B, ca.client_id)).rejects.toThrow(/not found/);
      await expect(clients.disable(B, ca.client_id)).rejects.toThrow(/not found/);
      expect((await clients.get(A, ca.client_id)).status).toBe('active');
    });
  });

  describe('the database itself', () => {
    const insertLink = (tenantId: string, clientId: string, resourceId: string) =>
      db.driver.query(`INSERT INTO "ClientResource" ("tenantId", "clientId", "resourceId") VALUES ($1, $2, $3)`, [tenantId, clientId, resourceId]);

    it('rejects a link from A’s client to B’s resource (composite foreign key)', async () => {
      // The only tenantId column is shared by both references, so A's client with B's resource
      // can only be written as (A, A's client, an id that exists only in B).
      await expect(insertLink(A, 'cl_a_only', 'rs_b_only')).rejects.toThrow(/ClientResource_tenantId_resourceId_fkey/);
      await expect(insertLink(B, 'cl_a_only', 'rs_same')).rejects.toThrow(/ClientResource_tenantId_clientId_fkey/);
      await expect(
        prisma.clientResource.create({ data: { tenantId: A, clientId: 'cl_a_only', resourceId: 'rs_b_only' } }),
      ).rejects.toThrow();
      expect(await prisma.clientResource.count({ where: { clientId: 'cl_a_only' } })).toBe(0);
      // The same link inside one tenant is accepted: the refusal above is about the tenant.
      await insertLink(A, 'cl_a_only', 'rs_same');
      expect(await prisma.clientResource.count({ where: { tenantId: A, clientId: 'cl_a_only' } })).toBe(1);
    });

    it('rejects moving a link across tenants by rewriting its tenantId', async () => {
      // (A, cl_a_only, rs_same) → tenant B: B has rs_same but no cl_a_only.
      await insertLink(A, 'cl_a_only', 'rs_same');
      await expect(
        db.driver.query(`UPDATE "ClientResource" SET "tenantId" = $1 WHERE "tenantId" = $2 AND "clientId" = 'cl_a_only'`, [B, A]),
      ).rejects.toThrow(/ClientResource_tenantId_clientId_fkey/);
    });

    it('rejects tenant-owned rows of a tenant that does not exist', async () => {
      await expect(
        db.driver.query(`INSERT INTO "Resource" ("tenantId", id, uri, "updatedAt") VALUES ('nobody', 'rs_x', 'https://x/', now())`),
      ).rejects.toThrow(/Resource_tenantId_fkey/);
    });
  });
});
