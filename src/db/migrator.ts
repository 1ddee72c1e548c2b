import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SqlDriver, SqlSession } from './driver.js';

/**
 * Applies `prisma/migrations/<timestamp>_<name>/migration.sql` in order and records each in
 * `_prisma_migrations` exactly as Prisma's schema engine does (same table, columns, SHA-256
 * checksum and advisory lock id), so `prisma migrate deploy` and Bulkhead agree on what is applied.
 * Prisma's engine binary cannot be downloaded everywhere Bulkhead runs, hence this.
 */

/** The advisory lock id Prisma's schema engine takes; sharing it serialises both tools. */
export const PRISMA_ADVISORY_LOCK_ID = 72707369;

export const MIGRATIONS_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../prisma/migrations',
);

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrationReport {
  applied: string[];
  alreadyApplied: string[];
}

/** SHA-256 hex of the script, as Prisma's `migration_checksum` computes it. */
export function migrationChecksum(sql: string): string {
  return createHash('sha256').update(sql).digest('hex');
}

/** Reads the migration folders in lexical (= timestamp) order. */
export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(path.join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: migrationChecksum(sql) };
    });
}

const CREATE_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/** Thrown when the database is in a state only an operator should resolve. */
export class MigrationError extends Error {
  readonly code = 'ERR_MIGRATION';
}

async function appliedRows(db: SqlSession): Promise<AppliedRow[]> {
  return db.query<AppliedRow>(
    `SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at`,
  );
}

/**
 * Applies pending migrations under Prisma's advisory lock, so two replicas starting at once
 * never both apply one. Idempotent. Each migration runs in its own transaction.
 */
export async function migrate(
  driver: SqlDriver,
  migrations: Migration[] = readMigrations(),
  log: (msg: string) => void = () => {},
): Promise<MigrationReport> {
  return driver.withSession(async (db) => {
    await db.query('SELECT pg_advisory_lock($1)', [PRISMA_ADVISORY_LOCK_ID]);
    try {
      await db.exec(CREATE_TABLE);
      const rows = await appliedRows(db);
      const failed = rows.find((r) => r.finished_at === null && r.rolled_back_at === null);
      if (failed) {
        throw new MigrationError(
          `migration ${failed.migration_name} failed earlier and was not resolved; fix the database and mark it rolled back or applied before starting again`,
        );
      }
      const done = new Map(
        rows.filter((r) => r.finished_at !== null && r.rolled_back_at === null).map((r) => [r.migration_name, r]),
      );
      const report: MigrationReport = { applied: [], alreadyApplied: [] };
      for (const m of migrations) {
        const prior = done.get(m.name);
        if (prior) {
          if (prior.checksum !== m.checksum) {
            log(`warning: migration ${m.name} was modified after it was applied`);
          }
          report.alreadyApplied.push(m.name);
          continue;
        }
        const id = randomUUID();
        await db.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count) VALUES ($1, $2, $3, now(), 0)`,
          [id, m.checksum, m.name],
        );
        try {
          await db.exec(`BEGIN;\n${m.sql}\n;COMMIT;`);
        } catch (err) {
          await db.exec('ROLLBACK').catch(() => {});
          const message = err instanceof Error ? err.message : String(err);
          await db.query(`UPDATE "_prisma_migrations" SET logs = $2 WHERE id = $1`, [id, message]);
          throw new MigrationError(`migration ${m.name} failed: ${message}`);
        }
        await db.query(
          `UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1`,
          [id],
        );
        log(`applied migration ${m.name}`);
        report.applied.push(m.name);
      }
      return report;
    } finally {
      await db.query('SELECT pg_advisory_unlock($1)', [PRISMA_ADVISORY_LOCK_ID]);
    }
  });
}

/** Names of local migrations the database has not finished applying (empty when up to date). */
export async function pendingMigrations(
  db: SqlSession,
  migrations: Migration[] = readMigrations(),
): Promise<string[]> {
  const [{ exists }] = await db.query<{ exists: boolean }>(
    `SELECT to_regclass('"_prisma_migrations"') IS NOT NULL AS exists`,
  );
  if (!exists) return migrations.map((m) => m.name);
  const done = new Set(
    (await appliedRows(db)).filter((r) => r.finished_at !== null && r.rolled_back_at === null).map((r) => r.migration_name),
  );
  return migrations.filter((m) => !done.has(m.name)).map((m) => m.name);
}
