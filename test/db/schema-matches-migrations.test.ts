import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrator.js';
import type { SqlDriver } from '../../src/db/driver.js';
import { DATABASES } from '../support/databases.js';
import { openTestDriver } from './support/open.js';
import { getDmmf } from './support/prisma-dmmf.js';
import { diffShapes, expectedShape, introspectShape, type DatabaseShape } from './support/schema-diff.js';

/**
 * The migrations in prisma/migrations, applied by Bulkhead's migrator, must build exactly the
 * database prisma/schema.prisma describes: Prisma's schema engine (which would check this with
 * `migrate diff`) cannot run here, so this suite is the check. The schema is read by Prisma's
 * own parser (the wasm module the installed Prisma CLI ships), the database from pg_catalog.
 */

const SCHEMA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../prisma/schema.prisma');

describe.each(DATABASES)('prisma/schema.prisma matches the migrated database (%s)', (kind) => {
  let db: Awaited<ReturnType<typeof openTestDriver>>;
  let actual: DatabaseShape;
  const expected = expectedShape(getDmmf(SCHEMA));
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-schema-'));

  beforeAll(async () => {
    db = await openTestDriver(kind);
    await migrate(db.driver);
    actual = await introspectShape(db.driver);
  });
  afterAll(async () => {
    await db?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  /** The expected shape of schema.prisma after textual edits, each of which must apply exactly once. */
  function editedSchema(...edits: [from: string, to: string][]): DatabaseShape {
    let text = readFileSync(SCHEMA, 'utf8');
    for (const [from, to] of edits) {
      expect(text.split(from).length - 1, `edit anchor ${JSON.stringify(from)} must occur once in schema.prisma`).toBe(1);
      text = text.replace(from, to);
    }
    const file = path.join(scratch, `schema-${Math.random().toString(36).slice(2)}.prisma`);
    writeFileSync(file, text);
    return expectedShape(getDmmf(file));
  }

  /**
   * What the comparison reports once schema.prisma is edited, beyond what it reports for the
   * schema as committed (nothing, unless the suite above fails too): the detector is tested on
   * its own, whatever the state of the real schema.
   */
  function driftAfter(...edits: [from: string, to: string][]): string[] {
    const baseline = new Set(diffShapes(expected, actual));
    return diffShapes(editedSchema(...edits), actual).filter((d) => !baseline.has(d));
  }

  /** Runs DDL in a transaction, introspects, and rolls it back. */
  async function driftWithDdl(driver: SqlDriver, ddl: string): Promise<string[]> {
    const baseline = new Set(diffShapes(expected, actual));
    const changed = await driver.withSession(async (s) => {
      await s.exec('BEGIN');
      try {
        await s.exec(ddl);
        return await introspectShape(s);
      } finally {
        await s.exec('ROLLBACK');
      }
    });
    return diffShapes(expected, changed).filter((d) => !baseline.has(d));
  }

  it('the parser sees every model and the introspection sees every table', () => {
    expect(Object.keys(expected).sort()).toEqual(['AuditEvent', 'AuditHead', 'Client', 'ClientResource', 'Delegation', 'DelegationResource', 'Resource', 'RevokedToken', 'SigningKey', 'Tenant', 'TenantPolicy', 'TokenCutoff']);
    expect(Object.keys(actual)).toContain('_prisma_migrations');
    // Spot checks that the two readers speak the same language.
    expect(expected.Client!.columns.scopes).toEqual({ type: 'text[]', notNull: false, default: null });
    expect(actual.Client!.columns.scopes).toEqual({ type: 'text[]', notNull: false, default: null });
    expect(actual.Tenant!.columns.createdAt).toEqual({ type: 'timestamp(3) with time zone', notNull: true, default: 'CURRENT_TIMESTAMP' });
    expect(actual.SigningKey!.columns.publicJwk!.type).toBe('jsonb');
    expect(actual.Tenant!.columns.tokenTtl).toEqual({ type: 'integer', notNull: true, default: '300' });
    expect(actual.Client!.columns.secretHash).toEqual({ type: 'text', notNull: false, default: null });
  });

  it('every model, field, key, index and relation agrees, and nothing extra exists', () => {
    expect(diffShapes(expected, actual)).toEqual([]);
  });

  it('composite keys and composite foreign keys keep their column order', () => {
    expect(actual.ClientResource!.primaryKey).toEqual({ name: 'ClientResource_pkey', columns: ['tenantId', 'clientId', 'resourceId'] });
    expect(actual.ClientResource!.foreignKeys.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'ClientResource_tenantId_clientId_fkey', columns: ['tenantId', 'clientId'], refTable: 'Client', refColumns: ['tenantId', 'id'], onDelete: 'Cascade', onUpdate: 'Cascade' },
      { name: 'ClientResource_tenantId_resourceId_fkey', columns: ['tenantId', 'resourceId'], refTable: 'Resource', refColumns: ['tenantId', 'id'], onDelete: 'Cascade', onUpdate: 'Cascade' },
    ]);
  });

  // The comparison must notice each kind of drift; each edit below is one a developer could make.
  describe('detects drift', () => {
    it('a field added to schema.prisma without a migration', () => {
      const drift = driftAfter(['  secretHash      String?\n', '  secretHash      String?\n  driftProbe      String?\n']);
      expect(drift).toEqual(['column "Client"."driftProbe" (field in schema.prisma) is missing from the database']);
    });

    it('a model added to schema.prisma without a migration', () => {
      const drift = driftAfter(['model Resource {', 'model Audit {\n  id Int @id\n}\n\nmodel Resource {']);
      expect(drift).toEqual(['table "Audit" (model in schema.prisma) is missing from the database']);
    });

    it('a changed @db type', () => {
      const drift = driftAfter(['uri       String   @db.VarChar(2048)', 'uri       String   @db.VarChar(1024)']);
      expect(drift).toEqual([
        'column "Resource"."uri" is character varying(2048) in the database, schema.prisma says character varying(1024)',
      ]);
    });

    it('a changed base type (Int → BigInt, Json → String)', () => {
      expect(driftAfter(['tokenTtl  Int      @default(300)', 'tokenTtl  BigInt   @default(300)'])).toEqual([
        'column "Tenant"."tokenTtl" is integer in the database, schema.prisma says bigint',
      ]);
      expect(driftAfter(['  publicJwk     Json\n', '  publicJwk     String\n'])).toEqual([
        'column "SigningKey"."publicJwk" is jsonb in the database, schema.prisma says text',
      ]);
    });

    it('changed nullability', () => {
      expect(driftAfter(['name      String   @db.VarChar(200)\n  /// active | suspended', 'name      String?  @db.VarChar(200)\n  /// active | suspended'])).toEqual([
        'column "Tenant"."name" is NOT NULL in the database, schema.prisma says nullable',
      ]);
    });

    it('a removed or changed default', () => {
      expect(driftAfter(['status    String   @default("active") @db.VarChar(16)', 'status    String   @db.VarChar(16)'])).toEqual([
        'column "Tenant"."status" has default "\'active\'" in the database, schema.prisma says null',
      ]);
      expect(driftAfter(['@default(300)', '@default(600)'])).toEqual([
        'column "Tenant"."tokenTtl" has default "300" in the database, schema.prisma says "600"',
      ]);
    });

    it('a reordered composite primary key', () => {
      const drift = driftAfter(['@@id([tenantId, clientId, resourceId])', '@@id([tenantId, resourceId, clientId])']);
      expect(drift).toEqual([
        'table "ClientResource" has primary key {"name":"ClientResource_pkey","columns":["tenantId","clientId","resourceId"]} in the database, schema.prisma says {"name":"ClientResource_pkey","columns":["tenantId","resourceId","clientId"]}',
      ]);
    });

    it('a removed @@unique and a removed @@index', () => {
      expect(driftAfter(['  @@unique([tenantId, name])\n', ''])).toEqual([
        'index {"name":"Client_tenantId_name_key","columns":["tenantId","name"],"unique":true,"method":"btree"} on "Client" exists in the database but not in schema.prisma',
      ]);
      expect(driftAfter(['  @@index([tenantId, status])\n', ''])).toEqual([
        'index {"name":"SigningKey_tenantId_status_idx","columns":["tenantId","status"],"unique":false,"method":"btree"} on "SigningKey" exists in the database but not in schema.prisma',
      ]);
    });

    it('a new @unique and a new @@index', () => {
      expect(driftAfter(['  @@unique([tenantId, uri])\n', '  @@unique([tenantId, uri])\n  @@index([createdAt])\n'])).toEqual([
        'index {"name":"Resource_createdAt_idx","columns":["createdAt"],"unique":false,"method":"btree"} on "Resource" (schema.prisma) is missing from the database',
      ]);
      expect(driftAfter(['  alg           String    @db.VarChar(16)', '  alg           String    @unique @db.VarChar(16)'])).toEqual([
        'index {"name":"SigningKey_alg_key","columns":["alg"],"unique":true,"method":"btree"} on "SigningKey" (schema.prisma) is missing from the database',
      ]);
    });

    it('a changed ON DELETE and a changed referenced column set', () => {
      const drift = driftAfter([
        'client   Client   @relation(fields: [tenantId, clientId], references: [tenantId, id], onDelete: Cascade)',
        'client   Client   @relation(fields: [tenantId, clientId], references: [tenantId, id], onDelete: Restrict)',
      ]);
      expect(drift).toEqual([
        'foreign key on "ClientResource" is {"name":"ClientResource_tenantId_clientId_fkey","columns":["tenantId","clientId"],"refTable":"Client","refColumns":["tenantId","id"],"onDelete":"Cascade","onUpdate":"Cascade"} in the database, schema.prisma says {"name":"ClientResource_tenantId_clientId_fkey","columns":["tenantId","clientId"],"refTable":"Client","refColumns":["tenantId","id"],"onDelete":"Restrict","onUpdate":"Cascade"}',
      ]);
    });

    it('a relation made single-column (no longer tenant-bound)', () => {
      // Prisma accepts a single-column reference only to a unique field, hence the second edit.
      const drift = driftAfter(
        ['client   Client   @relation(fields: [tenantId, clientId], references: [tenantId, id], onDelete: Cascade)',
          'client   Client   @relation(fields: [clientId], references: [id], onDelete: Cascade)'],
        ['  id              String    @db.VarChar(64)\n  name            String    @db.VarChar(200)',
          '  id              String    @unique @db.VarChar(64)\n  name            String    @db.VarChar(200)'],
      );
      expect(drift).toEqual([
        'index {"name":"Client_id_key","columns":["id"],"unique":true,"method":"btree"} on "Client" (schema.prisma) is missing from the database',
        'foreign key {"name":"ClientResource_tenantId_clientId_fkey","columns":["tenantId","clientId"],"refTable":"Client","refColumns":["tenantId","id"],"onDelete":"Cascade","onUpdate":"Cascade"} on "ClientResource" exists in the database but not in schema.prisma',
        'foreign key {"name":"ClientResource_clientId_fkey","columns":["clientId"],"refTable":"Client","refColumns":["id"],"onDelete":"Cascade","onUpdate":"Cascade"} on "ClientResource" (schema.prisma relation) is missing from the database',
      ]);
    });

    it('a table, a column, a check constraint or an index that only the database has', async () => {
      expect(await driftWithDdl(db.driver, 'CREATE TABLE "Stray" ("id" integer PRIMARY KEY)')).toEqual([
        'table "Stray" exists in the database but not in schema.prisma',
      ]);
      expect(await driftWithDdl(db.driver, 'ALTER TABLE "Client" ADD COLUMN "legacy" text')).toEqual([
        'column "Client"."legacy" exists in the database but not in schema.prisma',
      ]);
      expect(await driftWithDdl(db.driver, 'ALTER TABLE "Tenant" ADD CONSTRAINT "ttl_positive" CHECK ("tokenTtl" > 0)')).toEqual([
        '"Tenant" has constraint ttl_positive of type c, which schema.prisma cannot express',
      ]);
      expect(await driftWithDdl(db.driver, 'CREATE INDEX "Client_status_idx" ON "Client" ("status")')).toEqual([
        'index {"name":"Client_status_idx","columns":["status"],"unique":false,"method":"btree"} on "Client" exists in the database but not in schema.prisma',
      ]);
      expect(await driftWithDdl(db.driver, 'ALTER TABLE "Resource" ALTER COLUMN "tokenTtl" SET DEFAULT 60')).toEqual([
        'column "Resource"."tokenTtl" has default "60" in the database, schema.prisma says null',
      ]);
    });
  });
});
