import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openDriver, type SqlDriver, type SqlSession } from '../../src/db/driver.js';
import {
  MIGRATIONS_DIR,
  MigrationError,
  PRISMA_ADVISORY_LOCK_ID,
  migrate,
  pendingMigrations,
  readMigrations,
} from '../../src/db/migrator.js';
import { DATABASES } from '../support/databases.js';
import { openTestDriver } from './support/open.js';

/**
 * Bulkhead's migrator stands in for `prisma migrate deploy`: it must leave `_prisma_migrations`
 * exactly as Prisma would (so either tool can take over), apply each migration once, never
 * leave half a migration behind, and serialise with other migrators under Prisma's lock.
 */

/** The migration folders on disk, read independently of the migrator. */
const SHIPPED = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(path.join(MIGRATIONS_DIR, d.name, 'migration.sql')))
  .map((d) => d.name)
  .sort();

const sha256File = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}

const rows = (db: SqlSession) =>
  db.query<MigrationRow>(`SELECT * FROM "_prisma_migrations" ORDER BY started_at, migration_name`);

const tableExists = async (db: SqlSession, name: string) =>
  (await db.query<{ t: string | null }>(`SELECT to_regclass($1)::text AS t`, [`"${name}"`]))[0]!.t !== null;

const scratch = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-migrations-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A migrations directory: the shipped migrations (unless `shipped: false`) plus `extra`. */
function migrationsDir(extra: Record<string, string>, opts: { shipped?: boolean } = {}): string {
  const dir = mkdtempSync(path.join(scratch, 'set-'));
  if (opts.shipped !== false) cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  for (const [name, sql] of Object.entries(extra)) {
    mkdirSync(path.join(dir, name), { recursive: true });
    writeFileSync(path.join(dir, name, 'migration.sql'), sql);
  }
  return dir;
}

it("uses Prisma's advisory lock id, so it serialises with `prisma migrate deploy`", () => {
  expect(PRISMA_ADVISORY_LOCK_ID).toBe(72707369);
});

it('ships at least one migration and reads them in timestamp order', () => {
  expect(SHIPPED.length).toBeGreaterThan(0);
  expect(readMigrations().map((m) => m.name)).toEqual(SHIPPED);
});

describe.each(DATABASES)('migrator (%s)', (kind) => {
  let db: Awaited<ReturnType<typeof openTestDriver>>;
  let driver: SqlDriver;
  beforeAll(async () => {
    db = await openTestDriver(kind);
    driver = db.driver;
  });
  afterAll(async () => {
    await db?.close();
  });
  // Each test starts from an empty database (a new PGlite takes seconds to initialise).
  beforeEach(async () => {
    await driver.exec('DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
  });

  it('on an empty database applies every migration and records it as Prisma does', async () => {
    expect(await pendingMigrations(driver)).toEqual(SHIPPED);
    const before = new Date(Date.now() - 5_000);
    const report = await migrate(driver);
    expect(report).toEqual({ applied: SHIPPED, alreadyApplied: [] });

    // Prisma's own table definition (schema engine, PostgreSQL connector).
    const columns = await driver.query<{ column_name: string; data_type: string; max: number | null; is_nullable: string; column_default: string | null }>(
      `SELECT column_name, data_type, character_maximum_length AS max, is_nullable, column_default
         FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    expect(columns).toEqual([
      { column_name: 'id', data_type: 'character varying', max: 36, is_nullable: 'NO', column_default: null },
      { column_name: 'checksum', data_type: 'character varying', max: 64, is_nullable: 'NO', column_default: null },
      { column_name: 'finished_at', data_type: 'timestamp with time zone', max: null, is_nullable: 'YES', column_default: null },
      { column_name: 'migration_name', data_type: 'character varying', max: 255, is_nullable: 'NO', column_default: null },
      { column_name: 'logs', data_type: 'text', max: null, is_nullable: 'YES', column_default: null },
      { column_name: 'rolled_back_at', data_type: 'timestamp with time zone', max: null, is_nullable: 'YES', column_default: null },
      { column_name: 'started_at', data_type: 'timestamp with time zone', max: null, is_nullable: 'NO', column_default: 'now()' },
      { column_name: 'applied_steps_count', data_type: 'integer', max: null, is_nullable: 'NO', column_default: '0' },
    ]);
    const [pk] = await driver.query<{ name: string; columns: string }>(
      `SELECT con.conname AS name, pg_get_constraintdef(con.oid) AS columns FROM pg_constraint con
        WHERE con.conrelid = '"_prisma_migrations"'::regclass AND con.contype = 'p'`,
    );
    expect(pk).toEqual({ name: '_prisma_migrations_pkey', columns: 'PRIMARY KEY (id)' });

    const recorded = await rows(driver);
    expect(recorded.map((r) => r.migration_name)).toEqual(SHIPPED);
    for (const r of recorded) {
      expect(r.checksum).toBe(sha256File(path.join(MIGRATIONS_DIR, r.migration_name, 'migration.sql')));
      expect(r.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(r.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(r.finished_at).toBeInstanceOf(Date);
      expect(r.finished_at!.getTime()).toBeGreaterThanOrEqual(r.started_at.getTime());
      expect(r.started_at.getTime()).toBeGreaterThan(before.getTime());
      expect(r.applied_steps_count).toBe(1);
      expect(r.logs).toBeNull();
      expect(r.rolled_back_at).toBeNull();
    }
    expect(await tableExists(driver, 'Tenant')).toBe(true);
    expect(await pendingMigrations(driver)).toEqual([]);
  });

  it('a second run applies nothing and writes nothing', async () => {
    await migrate(driver);
    const first = await rows(driver);
    const report = await migrate(driver);
    expect(report).toEqual({ applied: [], alreadyApplied: SHIPPED });
    expect(await rows(driver)).toEqual(first);
    const [{ n }] = await driver.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "_prisma_migrations" GROUP BY migration_name ORDER BY 1 DESC LIMIT 1`,
    );
    expect(n).toBe(1);
    expect(await pendingMigrations(driver)).toEqual([]);
  });

  it('applies only what is new, in order, and reports pending ones before', async () => {
    await migrate(driver);
    const dir = migrationsDir({
      '29990101000000_b': 'CREATE TABLE "ProbeB" ("id" INTEGER PRIMARY KEY);',
      '29990101000000_a': 'CREATE TABLE "ProbeA" ("id" INTEGER PRIMARY KEY);',
    });
    const set = readMigrations(dir);
    expect(await pendingMigrations(driver, set)).toEqual(['29990101000000_a', '29990101000000_b']);
    expect(await migrate(driver, set)).toEqual({ applied: ['29990101000000_a', '29990101000000_b'], alreadyApplied: SHIPPED });
    expect(await tableExists(driver, 'ProbeA')).toBe(true);
    expect(await tableExists(driver, 'ProbeB')).toBe(true);
    expect(await pendingMigrations(driver, set)).toEqual([]);
  });

  it('a failing migration is recorded with its error, leaves nothing behind, and blocks later runs until resolved', async () => {
    const broken = '29990101000000_broken';
    const dir = migrationsDir({
      '29990100000000_good': 'CREATE TABLE "ProbeGood" ("id" INTEGER PRIMARY KEY);',
      // Two statements succeed before the third fails: all of it must be undone.
      [broken]: [
        'CREATE TABLE "ProbePartial" ("id" INTEGER PRIMARY KEY);',
        'ALTER TABLE "Tenant" ADD COLUMN "probe" TEXT;',
        'INSERT INTO "NoSuchTable" VALUES (1);',
      ].join('\n'),
      '29990102000000_after': 'CREATE TABLE "ProbeAfter" ("id" INTEGER PRIMARY KEY);',
    });
    const logs: string[] = [];
    const err = await migrate(driver, readMigrations(dir), (m) => logs.push(m)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toContain(broken);
    expect((err as Error).message).toContain('NoSuchTable');

    // Nothing of the broken migration survives; what ran before it does; nothing after it ran.
    expect(await tableExists(driver, 'ProbePartial')).toBe(false);
    const probe = await driver.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'Tenant' AND column_name = 'probe'`);
    expect(probe).toEqual([]);
    expect(await tableExists(driver, 'ProbeGood')).toBe(true);
    expect(await tableExists(driver, 'ProbeAfter')).toBe(false);

    const recorded = await rows(driver);
    expect(recorded.map((r) => r.migration_name)).toEqual([...SHIPPED, '29990100000000_good', broken]);
    const failed = recorded.find((r) => r.migration_name === broken)!;
    expect(failed.finished_at).toBeNull();
    expect(failed.rolled_back_at).toBeNull();
    expect(failed.applied_steps_count).toBe(0);
    expect(failed.logs).toContain('NoSuchTable');
    expect(failed.checksum).toBe(sha256File(path.join(dir, broken, 'migration.sql')));

    // Every later run refuses, with this set or the shipped one, and changes nothing.
    await expect(migrate(driver, readMigrations(dir))).rejects.toThrow(MigrationError);
    await expect(migrate(driver)).rejects.toThrow(/29990101000000_broken failed earlier/);
    expect(await rows(driver)).toEqual(recorded);
    expect(await pendingMigrations(driver, readMigrations(dir))).toEqual([broken, '29990102000000_after']);

    // An operator fixes the script and marks the failure rolled back (`prisma migrate resolve --rolled-back`).
    writeFileSync(path.join(dir, broken, 'migration.sql'), 'CREATE TABLE "ProbePartial" ("id" INTEGER PRIMARY KEY);');
    await driver.query(`UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = $1`, [broken]);
    expect(await migrate(driver, readMigrations(dir))).toEqual({
      applied: [broken, '29990102000000_after'],
      alreadyApplied: [...SHIPPED, '29990100000000_good'],
    });
    expect(await tableExists(driver, 'ProbePartial')).toBe(true);
    expect(await tableExists(driver, 'ProbeAfter')).toBe(true);
    const attempts = (await rows(driver)).filter((r) => r.migration_name === broken);
    expect(attempts).toHaveLength(2);
    expect(attempts.filter((r) => r.finished_at !== null && r.rolled_back_at === null)).toHaveLength(1);
  });

  it('a script that does not even parse is recorded and leaves nothing behind', async () => {
    const dir = migrationsDir({
      '29990101000000_typo': 'CREATE TABLE "ProbeTypo" ("id" INTEGER PRIMARY KEY);\nCREAT TABLE oops ();',
    });
    await expect(migrate(driver, readMigrations(dir))).rejects.toThrow(MigrationError);
    expect(await tableExists(driver, 'ProbeTypo')).toBe(false);
    const failed = (await rows(driver)).find((r) => r.migration_name === '29990101000000_typo')!;
    expect(failed.finished_at).toBeNull();
    expect(failed.logs).toMatch(/syntax error/i);
    // The session is usable afterwards (no transaction left open or aborted).
    expect(await driver.query<{ one: number }>('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await expect(migrate(driver, readMigrations(dir))).rejects.toThrow(/failed earlier/);
  });

  it('a migration edited after it was applied only warns, and is not applied again', async () => {
    const name = '29990101000000_edited';
    const dir = migrationsDir({ [name]: 'CREATE TABLE "ProbeEdited" ("id" INTEGER PRIMARY KEY);' });
    await migrate(driver, readMigrations(dir));
    const before = await rows(driver);
    writeFileSync(path.join(dir, name, 'migration.sql'), '-- reworded\nCREATE TABLE "ProbeEdited" ("id" INTEGER PRIMARY KEY);');

    const logs: string[] = [];
    const report = await migrate(driver, readMigrations(dir), (m) => logs.push(m));
    expect(report).toEqual({ applied: [], alreadyApplied: [...SHIPPED, name] });
    expect(logs).toEqual([`warning: migration ${name} was modified after it was applied`]);
    // The recorded checksum stays the one that was applied, as with Prisma.
    expect(await rows(driver)).toEqual(before);

    // An unedited set says nothing.
    const quiet: string[] = [];
    await migrate(driver, readMigrations(), (m) => quiet.push(m));
    expect(quiet).toEqual([]);
  });

  it('two concurrent runs on one driver apply each migration exactly once', async () => {
    // On PostgreSQL each run gets its own pooled connection and the advisory lock orders them;
    // PGlite has one connection, on which that lock is re-entrant, so its sessions must take turns.
    const dir = migrationsDir({ '29990101000000_slow': 'SELECT pg_sleep(0.2);\nCREATE TABLE "ProbeSlow" ("id" INTEGER PRIMARY KEY);' });
    const set = readMigrations(dir);
    const reports = await Promise.all([migrate(driver, set), migrate(driver, set)]);
    expect(reports.map((r) => r.applied.length).sort()).toEqual([0, set.length]);
    const counts = await driver.query<{ n: number; finished: number }>(
      `SELECT count(*)::int AS n, count(finished_at)::int AS finished FROM "_prisma_migrations" GROUP BY migration_name`,
    );
    expect(counts).toEqual(set.map(() => ({ n: 1, finished: 1 })));
  });

  it('runs under the advisory lock and releases it', async () => {
    // Advisory locks are per database; other suites may be migrating databases of their own.
    const lockHeld = `SELECT count(*)::int AS n FROM pg_locks
       WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND classid = 0 AND objid = ${PRISMA_ADVISORY_LOCK_ID} AND objsubid = 1 AND granted`;
    const held = async () => (await driver.query<{ n: number }>(lockHeld))[0]!.n;
    if (kind === 'pglite') {
      // One connection: look from inside a migration.
      const probe = migrationsDir({ '29990101000000_probe': `CREATE TABLE "ProbeLock" AS ${lockHeld};` });
      await migrate(driver, readMigrations(probe));
      expect(await driver.query('SELECT n FROM "ProbeLock"')).toEqual([{ n: 1 }]);
    } else {
      // A slow migration keeps the lock held long enough to see it from another connection.
      const slow = migrationsDir({ '29990101000000_slow': 'SELECT pg_sleep(0.3);\nCREATE TABLE "ProbeSlow" ("id" INTEGER);' });
      const running = migrate(driver, readMigrations(slow));
      await new Promise((r) => setTimeout(r, 150));
      expect(await held()).toBe(1);
      await running;
    }
    expect(await held()).toBe(0);
  });
});

describe('migrator across processes (postgres)', () => {
  let db: Awaited<ReturnType<typeof openTestDriver>>;
  const extra: SqlDriver[] = [];
  beforeEach(async () => {
    db = await openTestDriver('postgres');
  });
  afterEach(async () => {
    for (const d of extra.splice(0)) await d.close().catch(() => {});
    await db?.close();
  });
  const another = async () => {
    const { driver } = await openDriver(db.config);
    extra.push(driver);
    return driver;
  };

  it('two migrators on two pools, started at once, apply each migration exactly once', async () => {
    // A slow migration widens the window in which an unserialised second migrator would
    // also see it pending and apply it again.
    const dir = migrationsDir({
      '29990101000000_slow': 'SELECT pg_sleep(0.5);\nCREATE TABLE "ProbeSlow" ("id" INTEGER PRIMARY KEY);',
      '29990102000000_after': 'CREATE TABLE "ProbeAfter" ("id" INTEGER PRIMARY KEY);',
    });
    const set = readMigrations(dir);
    const all = set.map((m) => m.name);
    const [a, b] = [db.driver, await another()];
    const reports = await Promise.all([migrate(a, set), migrate(b, set)]);

    // One of them did the work, the other found it done.
    expect(reports.map((r) => r.applied.length).sort()).toEqual([0, all.length]);
    for (const r of reports) expect([...r.applied, ...r.alreadyApplied].sort()).toEqual(all);
    const counts = await a.query<{ migration_name: string; n: number; finished: number }>(
      `SELECT migration_name, count(*)::int AS n, count(finished_at)::int AS finished
         FROM "_prisma_migrations" GROUP BY migration_name ORDER BY migration_name`,
    );
    expect(counts).toEqual(all.map((migration_name) => ({ migration_name, n: 1, finished: 1 })));
  });

  it('waits while another migrator (e.g. `prisma migrate deploy`) holds the lock', async () => {
    const holder = await another();
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holding = holder.withSession(async (s) => {
      await s.query('SELECT pg_advisory_lock($1)', [PRISMA_ADVISORY_LOCK_ID]);
      locked();
      await released;
      // Prisma would have created the table and applied the first migration meanwhile.
      await s.query('SELECT pg_advisory_unlock($1)', [PRISMA_ADVISORY_LOCK_ID]);
    });
    await isLocked;

    let done = false;
    const running = migrate(db.driver).then((r) => ((done = true), r));
    try {
      await new Promise((r) => setTimeout(r, 400));
      expect(done).toBe(false);
      expect(await tableExists(db.driver, '_prisma_migrations')).toBe(false);
    } finally {
      release();
      await holding;
    }
    expect(await running).toEqual({ applied: SHIPPED, alreadyApplied: [] });
  });
});
