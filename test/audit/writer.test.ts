import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database, type SqlDriver } from '../../src/db/index.js';
import { migrate } from '../../src/db/migrator.js';
import { AuditUnavailable, createAuditService } from '../../src/audit/service.js';
import { canonicalEvent, chainHash, GENESIS_HASH, normalise } from '../../src/audit/event.js';
import { DATABASES } from '../support/databases.js';
import { emptyDatabase } from '../db/support/open.js';

/** A SQL driver that counts its statements (a batch is one per tenant in steady state). */
function counting(driver: SqlDriver) {
  const counter = { statements: 0 };
  const sql: Pick<SqlDriver, 'query' | 'transaction'> = {
    query(text, params) {
      counter.statements += 1;
      return driver.query(text, params);
    },
    transaction(fn) {
      counter.statements += 1;
      return driver.transaction(fn);
    },
  };
  return { sql, counter };
}

describe('audit event hashing (pure)', () => {
  const base = normalise({ tenantId: 'acme', type: 'token.issued', outcome: 'success', actor: 'c1', scopes: ['a', 'b'], detail: { b: 1, a: { y: [1, 'x'], x: null } } }, new Date('2026-12-04T10:00:00.123Z'));

  it('the canonical form sorts object keys at every level, so storage key order cannot change a hash', () => {
    const reordered = { ...base, seq: 1, detail: { a: { x: null, y: [1, 'x'] }, b: 1 } };
    expect(canonicalEvent({ ...base, seq: 1 })).toBe(canonicalEvent(reordered));
    expect(chainHash(GENESIS_HASH, { ...base, seq: 1 })).toBe(chainHash(GENESIS_HASH, reordered));
  });

  it('every field and the previous hash are covered', () => {
    const h = chainHash(GENESIS_HASH, { ...base, seq: 1 });
    const changes: Array<Partial<typeof base & { seq: number }>> = [
      { seq: 2 }, { tenantId: 'globex' }, { time: new Date('2026-12-04T10:00:00.124Z') }, { type: 'token.refused' }, { outcome: 'refused' },
      { reason: 'invalid_scope' }, { actor: 'c2' }, { clientId: 'c1' }, { subject: 's' }, { jti: 'j' }, { scopes: ['a'] }, { scopes: ['b', 'a'] },
      { audience: 'https://x/' }, { requestId: 'r' }, { clientIp: '10.0.0.1' }, { detail: { b: 2, a: { y: [1, 'x'], x: null } } }, { detail: null },
    ];
    for (const change of changes) expect(chainHash(GENESIS_HASH, { ...base, seq: 1, ...change }), JSON.stringify(change)).not.toBe(h);
    expect(chainHash('1'.repeat(64), { ...base, seq: 1 })).not.toBe(h);
  });

  it('normalise bounds what a caller hands in (long values cut, non-JSON values dropped)', () => {
    const n = normalise({ tenantId: 't', type: 'x'.repeat(100), outcome: 'refused', actor: 'a'.repeat(1000), scopes: Array.from({ length: 500 }, (_, i) => `s${i}`), detail: { f: () => 1, n: Number.NaN, u: undefined } }, new Date());
    expect(n.type).toHaveLength(64);
    expect(n.actor).toHaveLength(200);
    expect(n.scopes).toHaveLength(100);
    expect(n.detail).toEqual({ n: null });
    expect(normalise({ tenantId: 't', type: 'x', outcome: 'success', detail: { big: 'y'.repeat(10_000) } }, new Date()).detail).toEqual({ truncated: true });
  });
});

describe.each(DATABASES)('audit group commit (%s)', (kind) => {
  let db: Database;
  let empty: Awaited<ReturnType<typeof emptyDatabase>>;

  beforeAll(async () => {
    empty = await emptyDatabase(kind);
    db = await openDatabase(empty.config);
    await migrate(db.driver);
    for (const id of ['acme', 'globex', 'initech']) await db.prisma.tenant.create({ data: { id, name: id } });
  });
  afterAll(async () => {
    await db?.close();
    await empty?.drop();
  });

  it('many concurrent events are written in a few batches, each committed before its record() resolves', async () => {
    const { sql, counter } = counting(db.driver);
    const audit = createAuditService({ prisma: db.prisma, sql, flushMs: 5, batchMax: 64 });
    const tenants = ['acme', 'globex', 'initech'];
    await Promise.all(Array.from({ length: 300 }, (_, i) => audit.record({ tenantId: tenants[i % 3]!, type: 'token.issued', outcome: 'success', jti: `j${i}` })));
    // Resolved means committed: the rows are there now, through another client.
    for (const t of tenants) expect(await db.prisma.auditEvent.count({ where: { tenantId: t } })).toBe(100);
    // 300 events, batches of at most 64, three tenants: a few statements per tenant, not 300.
    expect(counter.statements).toBeGreaterThanOrEqual(300 / 64);
    expect(counter.statements).toBeLessThan(40);
    for (const t of tenants) expect(await audit.verify(t)).toMatchObject({ ok: true, events: 100, head: { seq: 100 } });
  });

  it('two writers (two replicas) on one database append to one chain, one after the other', async () => {
    // On PostgreSQL a second connection pool, as another replica has; PGlite is one process's
    // database, so there the second writer is a second service over the same client.
    const second = kind === 'postgres' ? await openDatabase(empty.config) : undefined;
    const other = second ?? db;
    const a = createAuditService({ prisma: db.prisma, sql: db.driver, flushMs: 1, batchMax: 16 });
    const b = createAuditService({ prisma: other.prisma, sql: other.driver, flushMs: 3, batchMax: 7 });
    const before = (await a.verify('globex')).events;
    await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).record({ tenantId: 'globex', type: 'client.created', outcome: 'success', actor: `w${i % 2}` })));
    const report = await b.verify('globex');
    expect(report).toMatchObject({ ok: true, events: before + 200, head: { seq: before + 200 } });
    await second?.close();
  });

  it('events that cannot be written reject their record() with AuditUnavailable; other tenants in the same batch are still written', async () => {
    const audit = createAuditService({ prisma: db.prisma, sql: db.driver, flushMs: 5 });
    // An event for a tenant that does not exist violates the foreign key: its own events fail...
    const results = await Promise.allSettled([
      audit.record({ tenantId: 'nosuch', type: 'token.issued', outcome: 'success' }),
      audit.record({ tenantId: 'initech', type: 'token.issued', outcome: 'success', jti: 'survivor' }),
    ]);
    expect(results[0]).toMatchObject({ status: 'rejected', reason: expect.any(AuditUnavailable) });
    // ...and do not sink the other tenant's.
    expect(results[1]).toMatchObject({ status: 'fulfilled' });
    expect(await db.prisma.auditEvent.count({ where: { tenantId: 'initech', jti: 'survivor' } })).toBe(1);
    expect((await audit.verify('initech')).ok).toBe(true);

    const lost = () => Object.assign(new Error('connection lost'), { code: 'ECONNRESET' });
    const broken = createAuditService({ prisma: db.prisma, sql: { query: () => Promise.reject(lost()), transaction: () => Promise.reject(lost()) } });
    await expect(broken.record({ tenantId: 'acme', type: 'token.issued', outcome: 'success' })).rejects.toBeInstanceOf(AuditUnavailable);
  });

  it('close() writes what is still queued', async () => {
    const audit = createAuditService({ prisma: db.prisma, sql: db.driver, flushMs: 60_000, batchMax: 1000 });
    const before = await db.prisma.auditEvent.count({ where: { tenantId: 'acme' } });
    const pending = audit.record({ tenantId: 'acme', type: 'key.rotated', outcome: 'success' });
    await audit.close();
    await pending;
    expect(await db.prisma.auditEvent.count({ where: { tenantId: 'acme' } })).toBe(before + 1);
  });
});
