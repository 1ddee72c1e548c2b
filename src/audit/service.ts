import type { Logger } from 'pino';
import type { PrismaClient } from '../generated/prisma/client.js';
import { forTenant } from '../db/tenant-scope.js';
import type { SqlDriver, SqlSession } from '../db/driver.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import { chainHash, GENESIS_HASH, normalise, type AuditInput, type AuditRecord } from './event.js';

/**
 * A tenant's append-only, tamper-evident audit trail.
 *
 * Writing (group commit): {@link AuditService.record} queues an event and resolves once it is
 * committed. The queue is written every `flushMs` milliseconds, or at once when `batchMax`
 * events wait; one flush runs at a time, and what arrives meanwhile is the next batch. Each
 * tenant's events in a batch get the next sequence numbers and their links
 * `hash = SHA-256(prev_hash || canonical event)` and are written in ONE statement (atomic by
 * itself: no transaction round trips) that inserts them only while moving the chain's head row
 * (`AuditHead`) from exactly the link they follow. A replica that appended first makes that
 * statement change nothing; the events are then appended in a transaction that locks the head
 * first. So replicas on one PostgreSQL append one after another and the chain never forks; in
 * steady state a batch costs one statement per tenant.
 *
 * The token path awaits `record` before a token leaves (src/audit/http.ts): if the batch cannot
 * be committed, the request fails with 503 rather than issuing unaudited.
 *
 * Reading: {@link AuditService.list} (tail and follow), {@link AuditService.verify} (recompute
 * every link; report the first broken one).
 */

export class AuditUnavailable extends Error {
  readonly code = 'ERR_AUDIT_UNAVAILABLE';
}

export interface VerifyReport {
  ok: boolean;
  /** Events checked. */
  events: number;
  /** The chain's head as stored (seq 0 = no events yet). */
  head: { seq: number; hash: string };
  /** The first broken link: the seq where the recomputed chain stops matching, and why. */
  broken?: { seq: number; problem: string };
}

export interface AuditOptions {
  /** Reads (tail, verify). */
  prisma: PrismaClient;
  /** Writes: one statement per tenant per batch (a locking transaction when a replica wrote first). */
  sql: Pick<SqlDriver, 'query' | 'transaction'>;
  logger?: Pick<Logger, 'error'>;
  /** Longest an event waits for its batch (ms). */
  flushMs?: number;
  /** A batch is written at once when this many events wait. */
  batchMax?: number;
}

interface Pending {
  record: Omit<AuditRecord, 'seq' | 'prevHash' | 'hash'>;
  resolve(): void;
  reject(err: Error): void;
}

type Row = {
  tenantId: string; seq: bigint; time: Date; type: string; outcome: string; reason: string | null; actor: string | null;
  clientId: string | null; subject: string | null; jti: string | null; scopes: string[]; audience: string | null;
  requestId: string | null; clientIp: string | null; detail: unknown; prevHash: string; hash: string;
};

function fromRow(r: Row): AuditRecord {
  return { ...r, seq: Number(r.seq), detail: (r.detail ?? null) as Record<string, unknown> | null };
}

const VERIFY_PAGE = 2000;

/** The stored columns, in insert order, with their types for `jsonb_to_recordset`. */
const COLUMN_TYPES = {
  tenantId: 'text', seq: 'bigint', time: 'timestamptz', type: 'text', outcome: 'text', reason: 'text', actor: 'text',
  clientId: 'text', subject: 'text', jti: 'text', scopes: 'jsonb', audience: 'text', requestId: 'text', clientIp: 'text',
  detail: 'jsonb', prevHash: 'text', hash: 'text',
} as const;
const INSERT_COLUMNS = Object.keys(COLUMN_TYPES) as Array<keyof typeof COLUMN_TYPES>;

/**
 * $1 the events (a JSON array), $2/$3 the new head, $4 the tenant, $5/$6 the head they follow.
 * The events are inserted only if the head moved, and the head moves only from exactly $5/$6.
 */
const APPEND_SQL = `WITH moved AS (
    UPDATE "AuditHead" SET "seq" = $2, "hash" = $3 WHERE "tenantId" = $4 AND "seq" = $5 AND "hash" = $6
    RETURNING 1
  ), added AS (
    INSERT INTO "AuditEvent" (${INSERT_COLUMNS.map((c) => `"${c}"`).join(', ')})
    SELECT ${INSERT_COLUMNS.map((c) => (c === 'scopes' ? 'ARRAY(SELECT jsonb_array_elements_text(x."scopes"))' : `x."${c}"`)).join(', ')}
    FROM jsonb_to_recordset($1::jsonb) AS x(${INSERT_COLUMNS.map((c) => `"${c}" ${COLUMN_TYPES[c]}`).join(', ')})
    WHERE EXISTS (SELECT 1 FROM moved)
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM added) AS added`;
export const MAX_LIST = 1000;

export function createAuditService(opts: AuditOptions) {
  const { prisma, sql } = opts;
  const flushMs = opts.flushMs ?? 2;
  const batchMax = opts.batchMax ?? 256;
  let queue: Pending[] = [];
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;

  /**
   * Where each tenant's chain ends, as this process last saw it. A hint, never trusted: the
   * append below moves the head only if it is still exactly here, and re-reads it otherwise.
   */
  const heads = new Map<string, { seq: number; hash: string }>();
  const MAX_HEADS = 10_000;

  /**
   * Reads tenant T's chain head, creating it at the genesis link the first time. Inside a
   * transaction it also locks the head until the transaction ends.
   */
  async function readHead(db: Pick<SqlSession, 'query'>, tenantId: string): Promise<{ seq: number; hash: string }> {
    const [row] = await db.query<{ seq: string | number; hash: string }>(
      `INSERT INTO "AuditHead" ("tenantId", "seq", "hash") VALUES ($1, 0, $2)
       ON CONFLICT ("tenantId") DO UPDATE SET "seq" = "AuditHead"."seq"
       RETURNING "seq", "hash"`,
      [tenantId, GENESIS_HASH],
    );
    return { seq: Number(row!.seq), hash: row!.hash };
  }

  /**
   * Appends one tenant's events after `head`, in ONE statement (atomic on its own): the head
   * moves from exactly `head` to the last new link and the events are inserted, or, when another
   * writer (a replica) moved the head first, nothing happens and false is returned. The row lock
   * the UPDATE takes orders concurrent writers; the primary key (tenantId, seq) backs it up.
   */
  async function appendAfter(db: Pick<SqlSession, 'query'>, tenantId: string, head: { seq: number; hash: string }, events: Pending[]): Promise<{ seq: number; hash: string } | undefined> {
    let seq = head.seq;
    let prev = head.hash;
    const rows = events.map(({ record }) => {
      seq += 1;
      const linked = { ...record, seq };
      const hash = chainHash(prev, linked);
      // A missing key is SQL NULL in jsonb_to_recordset (a JSON null would be a jsonb 'null').
      const { detail, ...rest } = linked;
      const row = { ...rest, ...(detail ? { detail } : {}), time: record.time.toISOString(), prevHash: prev, hash };
      prev = hash;
      return row;
    });
    const [result] = await db.query<{ moved: string | number; added: string | number }>(APPEND_SQL, [JSON.stringify(rows), seq, prev, tenantId, head.seq, head.hash]);
    const moved = Number(result!.moved);
    if (moved === 0) return undefined;
    if (Number(result!.added) !== rows.length) throw new Error('the audit chain head moved without its events');
    return { seq, hash: prev };
  }

  /**
   * Appends one tenant's events to its chain. Fast path: one statement after the head this
   * process last wrote (it is right whenever this process is the tenant's only writer). When
   * another replica appended in between, the slow path cannot lose: a transaction that locks the
   * head, reads it and appends after it.
   */
  async function append(tenantId: string, events: Pending[]): Promise<void> {
    const known = heads.get(tenantId);
    let moved = known ? await appendAfter(sql, tenantId, known, events) : undefined;
    moved ??= await sql.transaction(async (tx) => {
      const head = await readHead(tx, tenantId);
      const after = await appendAfter(tx, tenantId, head, events);
      if (!after) throw new Error('the audit chain head moved while locked');
      return after;
    });
    heads.delete(tenantId);
    if (heads.size >= MAX_HEADS) heads.delete(heads.keys().next().value!);
    heads.set(tenantId, moved);
  }

  const settle = (events: Pending[], err?: unknown) => {
    for (const p of events) {
      if (err) p.reject(new AuditUnavailable('the audit trail could not be written', { cause: err }));
      else p.resolve();
    }
  };

  /** Writes a batch: each tenant's events in one statement of its own, so one tenant's failure sinks no other's. */
  async function writeBatch(batch: Pending[]): Promise<void> {
    const byTenant = new Map<string, Pending[]>();
    for (const p of batch) {
      const list = byTenant.get(p.record.tenantId);
      if (list) list.push(p);
      else byTenant.set(p.record.tenantId, [p]);
    }
    await Promise.all([...byTenant].map(async ([tenantId, events]) => {
      try {
        await append(tenantId, events);
        settle(events);
        return;
      } catch (err) {
        heads.delete(tenantId);
        if (events.length === 1 || isDatabaseUnavailable(err)) {
          opts.logger?.error({ err: { message: (err as Error).message }, tenant: tenantId, events: events.length }, 'audit events not written');
          settle(events, err);
          return;
        }
      }
      // One event the database refuses must not sink the others of its batch: one at a time.
      for (const event of events) {
        try {
          await append(tenantId, [event]);
          settle([event]);
        } catch (err) {
          heads.delete(tenantId);
          opts.logger?.error({ err: { message: (err as Error).message }, tenant: tenantId, events: 1 }, 'audit event not written');
          settle([event], err);
        }
      }
    }));
  }

  function flush(): Promise<void> {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (flushing) return flushing;
    flushing = (async () => {
      while (queue.length) {
        const batch = queue.length > batchMax ? queue.slice(0, batchMax) : queue;
        queue = queue.length > batchMax ? queue.slice(batchMax) : [];
        await writeBatch(batch);
      }
    })().finally(() => {
      flushing = undefined;
      // Events that arrived while the last batch was being written and found no timer.
      if (queue.length) schedule();
    });
    return flushing;
  }

  function schedule(): void {
    if (flushing) return; // the running flush takes the queue when it is done
    if (queue.length >= batchMax) void flush();
    else timer ??= setTimeout(() => void flush(), flushMs);
  }

  function record(input: AuditInput): Promise<void> {
    const pending = normalise(input, new Date());
    return new Promise<void>((resolve, reject) => {
      queue.push({ record: pending, resolve, reject });
      schedule();
    });
  }

  return {
    /**
     * Records one event; resolves when it is committed to the tenant's chain, rejects with
     * {@link AuditUnavailable} when it could not be (the caller must then not act as if it were).
     */
    record,

    /** Records without waiting (a refusal whose answer does not depend on the record); a failure is logged. */
    recordLater(input: AuditInput): void {
      record(input).catch(() => {});
    },

    /** Writes what is queued now (shutdown, tests). */
    flush,

    /**
     * Events of one tenant in chain order: the newest `limit` (tail), or with `after` those
     * following that seq (follow).
     */
    async list(tenantId: string, q: { limit: number; after?: number | undefined }): Promise<AuditRecord[]> {
      const db = forTenant(prisma, tenantId);
      const limit = Math.min(Math.max(1, q.limit), MAX_LIST);
      if (q.after !== undefined) {
        const rows = await db.auditEvent.findMany({ where: { seq: { gt: BigInt(q.after) } }, orderBy: { seq: 'asc' }, take: limit });
        return (rows as Row[]).map(fromRow);
      }
      const rows = await db.auditEvent.findMany({ orderBy: { seq: 'desc' }, take: limit });
      return (rows as Row[]).map(fromRow).reverse();
    },

    /** Recomputes tenant T's chain from its first event and reports the first broken link. */
    async verify(tenantId: string): Promise<VerifyReport> {
      const db = forTenant(prisma, tenantId);
      const headRow = await db.auditHead.findFirst({});
      const head = { seq: headRow ? Number(headRow.seq) : 0, hash: headRow?.hash ?? GENESIS_HASH };
      let prev = GENESIS_HASH;
      let expected = 1;
      let events = 0;
      const report = (seq: number, problem: string): VerifyReport => ({ ok: false, events, head, broken: { seq, problem } });
      for (;;) {
        // Up to the head read first: events appended while this runs (the head and its events
        // move in one statement) are the next verify's, not a break in this one.
        const page = (await db.auditEvent.findMany({ where: { seq: { gte: BigInt(expected), lte: BigInt(head.seq) } }, orderBy: { seq: 'asc' }, take: VERIFY_PAGE }) as Row[]).map(fromRow);
        for (const e of page) {
          if (e.seq !== expected) return report(expected, `event ${expected} is missing (the next stored event is ${e.seq})`);
          if (e.prevHash !== prev) return report(e.seq, `event ${e.seq} does not link to event ${e.seq - 1} (prev_hash differs)`);
          if (chainHash(prev, e) !== e.hash) return report(e.seq, `event ${e.seq} was altered (its content does not match its hash)`);
          events += 1;
          prev = e.hash;
          expected += 1;
        }
        if (page.length < VERIFY_PAGE) break;
      }
      // Rows outside the chain's numbering can only have been written around the broker.
      const stray = await db.auditEvent.findFirst({ where: { seq: { lt: 1n } }, orderBy: { seq: 'asc' }, select: { seq: true } });
      if (stray) return report(Number(stray.seq), `event ${stray.seq} is outside the chain (sequence numbers start at 1)`);
      const last = expected - 1;
      if (head.seq !== last) return report(last + 1, `the trail ends at event ${last} but its head is event ${head.seq}: events ${last + 1}..${head.seq} were removed`);
      if (head.hash !== prev) return report(last, `the trail's head does not match event ${last}`);
      return { ok: true, events, head };
    },

    async close(): Promise<void> {
      await flush();
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
