import type { Logger } from 'pino';
import type { PrismaClient } from '../generated/prisma/client.js';
import { forTenant } from '../db/tenant-scope.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import { chainHash, GENESIS_HASH, normalise, type AuditInput, type AuditRecord } from './event.js';

/**
 * A tenant's append-only, tamper-evident audit trail.
 *
 * Writing (group commit): {@link AuditService.record} queues an event and resolves once it is
 * committed. The queue is written every `flushMs` milliseconds, or at once when `batchMax`
 * events wait, in ONE transaction per batch: for each tenant in the batch (in a fixed order, so
 * two replicas never deadlock) the chain's head row (`AuditHead`) is locked, the events get the
 * next sequence numbers and their links `hash = SHA-256(prev_hash || canonical event)`, are
 * inserted, and the head moves. One flush runs at a time; what arrives meanwhile is the next
 * batch. The head-row lock is what makes replicas on one PostgreSQL append one after another.
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
  prisma: PrismaClient;
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
export const MAX_LIST = 1000;

export function createAuditService(opts: AuditOptions) {
  const { prisma } = opts;
  const flushMs = opts.flushMs ?? 2;
  const batchMax = opts.batchMax ?? 256;
  let queue: Pending[] = [];
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;

  /** Appends one tenant's events to its chain inside transaction `tx`. */
  async function append(tx: PrismaClient, tenantId: string, events: Pending[]): Promise<void> {
    // Lock the head (creating it at the genesis link the first time) and read where the chain ends.
    const [head] = await tx.$queryRaw<{ seq: bigint; hash: string }[]>`
      INSERT INTO "AuditHead" ("tenantId", "seq", "hash") VALUES (${tenantId}, 0, ${GENESIS_HASH})
      ON CONFLICT ("tenantId") DO UPDATE SET "seq" = "AuditHead"."seq"
      RETURNING "seq", "hash"`;
    let seq = Number(head!.seq);
    let prev = head!.hash;
    const rows = events.map(({ record }) => {
      seq += 1;
      const linked = { ...record, seq };
      const hash = chainHash(prev, linked);
      const row = { ...linked, seq: BigInt(seq), prevHash: prev, hash, detail: record.detail ?? undefined };
      prev = hash;
      return row;
    });
    await tx.auditEvent.createMany({ data: rows as never });
    await tx.$executeRaw`UPDATE "AuditHead" SET "seq" = ${BigInt(seq)}, "hash" = ${prev} WHERE "tenantId" = ${tenantId}`;
  }

  async function commit(groups: [string, Pending[]][]): Promise<void> {
    await prisma.$transaction(async (tx) => {
      for (const [tenantId, events] of groups) await append(tx as unknown as PrismaClient, tenantId, events);
    }, { maxWait: 5_000, timeout: 10_000 });
  }

  const settle = (events: Pending[], err?: unknown) => {
    for (const p of events) {
      if (err) p.reject(new AuditUnavailable('the audit trail could not be written', { cause: err }));
      else p.resolve();
    }
  };

  async function writeBatch(batch: Pending[]): Promise<void> {
    const byTenant = new Map<string, Pending[]>();
    for (const p of batch) {
      const list = byTenant.get(p.record.tenantId);
      if (list) list.push(p);
      else byTenant.set(p.record.tenantId, [p]);
    }
    const groups = [...byTenant].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    try {
      await commit(groups);
      settle(batch);
      return;
    } catch (err) {
      if (groups.length === 1 || isDatabaseUnavailable(err)) {
        opts.logger?.error({ err: { message: (err as Error).message }, events: batch.length }, 'audit batch not written');
        settle(batch, err);
        return;
      }
    }
    // One tenant's events must not sink another's: retry each tenant on its own.
    for (const group of groups) {
      try {
        await commit([group]);
        settle(group[1]);
      } catch (err) {
        opts.logger?.error({ err: { message: (err as Error).message }, tenant: group[0], events: group[1].length }, 'audit batch not written');
        settle(group[1], err);
      }
    }
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
        const page = (await db.auditEvent.findMany({ where: { seq: { gte: BigInt(expected) } }, orderBy: { seq: 'asc' }, take: VERIFY_PAGE }) as Row[]).map(fromRow);
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
      const last = expected - 1;
      if (head.seq !== last) {
        return head.seq > last
          ? report(last + 1, `the trail ends at event ${last} but its head is event ${head.seq}: events ${last + 1}..${head.seq} were removed`)
          : report(head.seq + 1, `events after ${head.seq} are not covered by the trail's head`);
      }
      if (head.hash !== prev) return report(last, `the trail's head does not match event ${last}`);
      return { ok: true, events, head };
    },

    async close(): Promise<void> {
      await flush();
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
