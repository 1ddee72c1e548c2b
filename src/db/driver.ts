import { mkdirSync } from 'node:fs';
import type { Config } from '../config/index.js';
import type { Pool } from 'pg';

/**
 * The smallest SQL surface the migrator and health checks need, over either PGlite or a pg pool.
 * Prisma serves every domain query; this exists because migrations are multi-statement scripts
 * and an advisory lock must be held on one connection.
 */
export interface SqlSession {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs a script of several statements (simple-query protocol, no parameters). */
  exec(sql: string): Promise<void>;
}

export interface SqlDriver extends SqlSession {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` on one dedicated connection (needed for session-level advisory locks). */
  withSession<T>(fn: (session: SqlSession) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in one transaction on one connection: committed when it resolves, rolled back
   * when it throws. No other query (Prisma's included) runs inside it.
   */
  transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface OpenedDriver {
  driver: SqlDriver;
  /** The driver adapter Prisma should use over the same database. */
  adapter: unknown;
}

/** Opens the configured database: PGlite under `dataDir`, or PostgreSQL at `databaseUrl`. */
export async function openDriver(config: Pick<Config, 'databaseUrl' | 'dataDir'>): Promise<OpenedDriver> {
  return config.databaseUrl ? openPostgres(config.databaseUrl) : openPglite(config.dataDir);
}

async function openPglite(dataDir: string): Promise<OpenedDriver> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PrismaPGlite } = await import('pglite-prisma-adapter');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const db = await PGlite.create(dataDir);
  const session: SqlSession = {
    async query<T>(sql: string, params?: unknown[]) {
      return (await db.query<T>(sql, params)).rows;
    },
    async exec(sql: string) {
      await db.exec(sql);
    },
  };
  // PGlite is one connection, so a "dedicated" session means an exclusive turn on it: without
  // the queue two concurrent sessions would interleave, and a session-level advisory lock (which
  // is re-entrant within one connection) would not keep two migrators apart. Do not nest them.
  let turn: Promise<unknown> = Promise.resolve();
  const driver: SqlDriver = {
    kind: 'pglite',
    ...session,
    withSession(fn) {
      const run = turn.then(() => fn(session));
      turn = run.catch(() => {});
      return run;
    },
    // PGlite's own transaction holds its exclusive lock: Prisma's queries wait until it ends.
    transaction: (fn) => db.transaction((tx) => fn({
      async query<T>(sql: string, params?: unknown[]) {
        return (await tx.query<T>(sql, params)).rows;
      },
      async exec(sql: string) {
        await tx.exec(sql);
      },
    })),
    close: () => db.close(),
  };
  return { driver, adapter: new PrismaPGlite(db) };
}

async function openPostgres(url: string): Promise<OpenedDriver> {
  const pg = (await import('pg')).default;
  const { PrismaPg } = await import('@prisma/adapter-pg');
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // An idle client losing its connection must not crash the process.
  pool.on('error', () => {});
  const session = (q: { query: Pool['query'] }): SqlSession => ({
    async query<T>(sql: string, params?: unknown[]) {
      return (await q.query(sql, params as unknown[])).rows as T[];
    },
    async exec(sql: string) {
      await q.query(sql);
    },
  });
  const driver: SqlDriver = {
    kind: 'postgres',
    ...session(pool),
    async withSession(fn) {
      const client = await pool.connect();
      try {
        return await fn(session(client as unknown as Pool));
      } finally {
        client.release();
      }
    },
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn(session(client as unknown as Pool));
        await client.query('COMMIT');
        client.release();
        return result;
      } catch (err) {
        // A connection that cannot even roll back is not given back to the pool.
        const broken = await client.query('ROLLBACK').then(() => false, () => true);
        client.release(broken);
        throw err;
      }
    },
    close: () => pool.end(),
  };
  return { driver, adapter: new PrismaPg(pool) };
}
