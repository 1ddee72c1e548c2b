import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDriver, type SqlDriver } from '../../../src/db/driver.js';
import { openDatabase, type Database } from '../../../src/db/index.js';
import { freshPostgresDatabase, type DbKind } from '../../support/databases.js';

/** An empty database of `kind`: a PGlite directory of its own, or a fresh PostgreSQL database. */
export async function emptyDatabase(kind: DbKind): Promise<{
  config: { databaseUrl: string | undefined; dataDir: string };
  drop(): Promise<void>;
}> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-db-test-'));
  const pg = kind === 'postgres' ? await freshPostgresDatabase() : undefined;
  return {
    config: { databaseUrl: pg?.url, dataDir: path.join(dir, 'data') },
    async drop() {
      await pg?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A raw SQL driver over a fresh empty database; `close()` also drops it. */
export async function openTestDriver(kind: DbKind): Promise<{
  driver: SqlDriver;
  config: { databaseUrl: string | undefined; dataDir: string };
  close(): Promise<void>;
}> {
  const db = await emptyDatabase(kind);
  const { driver } = await openDriver(db.config);
  return {
    driver,
    config: db.config,
    async close() {
      await driver.close().catch(() => {});
      await db.drop();
    },
  };
}

/** Prisma plus the raw driver over a fresh empty database; `close()` also drops it. */
export async function openTestDatabase(kind: DbKind): Promise<Database & { drop(): Promise<void> }> {
  const db = await emptyDatabase(kind);
  const opened = await openDatabase(db.config);
  return {
    ...opened,
    async drop() {
      await opened.close();
      await db.drop();
    },
  };
}
