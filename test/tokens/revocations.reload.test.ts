import { describe, expect, it } from 'vitest';
import type { PrismaClient } from '../../src/generated/prisma/client.js';
import type { ChangeEvents } from '../../src/shared/changes.js';
import { createRevocationService, MAX_JTI_LENGTH } from '../../src/tokens/revocations.js';

/**
 * The in-memory revocation list of one replica under overlapping reloads. A reload replaces a
 * tenant's list with what the database held when it read; one that read before a revocation
 * and finished after it must not drop that revocation.
 */

interface Row {
  tenantId: string;
  jti: string;
  expiresAt: Date;
}

/** A stand-in for the two tables, whose reads can be held back to finish out of order. */
function fakeDatabase() {
  const rows: Row[] = [];
  const held: Array<() => void> = [];
  let hold = false;
  const read = <T>(value: () => T): Promise<T> => {
    const snapshot = value();
    if (!hold) return Promise.resolve(snapshot);
    return new Promise((resolve) => held.push(() => resolve(snapshot)));
  };
  const db = {
    revokedToken: {
      findMany: () => read(() => rows.map((r) => ({ ...r }))),
      upsert: async ({ create }: { create: Row }) => {
        if (!rows.some((r) => r.tenantId === create.tenantId && r.jti === create.jti)) rows.push(create);
      },
      deleteMany: async () => ({ count: 0 }),
    },
    tokenCutoff: { findMany: () => read(() => []), upsert: async () => undefined },
  };
  // forTenant() extends the client; the stand-in is already "one tenant's".
  const prisma = { ...db, $extends: () => db } as unknown as PrismaClient;
  return {
    prisma,
    holdReads: (on: boolean) => void (hold = on),
    releaseHeld: () => held.splice(0).forEach((release) => release()),
  };
}

function changeBus() {
  const handlers: Array<(tenantId: string) => void> = [];
  const bus: ChangeEvents = {
    tenantChanged: () => undefined,
    clientChanged: () => undefined,
    revocationsChanged: (t) => handlers.forEach((h) => h(t)),
    onTenantChanged: () => undefined,
    onClientChanged: () => undefined,
    onRevocationsChanged: (fn) => void handlers.push(fn),
    policyChanged: () => undefined,
    onPolicyChanged: () => undefined,
  };
  return bus;
}

const token = (jti: string) => ({ tenant_id: 'acme', client_id: 'cl_x', jti, iat: Math.floor(Date.now() / 1000) });
const settle = () => new Promise((r) => setTimeout(r, 10));

describe('revocation list reloads', () => {
  it('a reload that read before a revocation and finishes after it does not drop it', async () => {
    const db = fakeDatabase();
    const changes = changeBus();
    const revocations = createRevocationService({ prisma: db.prisma, changes });

    // Another replica announced a change: this one starts reading acme's list, slowly.
    db.holdReads(true);
    changes.revocationsChanged('acme');
    db.holdReads(false);

    // Meanwhile a token is revoked here; its own reload reads and finishes first.
    await revocations.revoke('acme', 'jti-revoked-in-between');
    await settle();
    expect(revocations.isInactive(token('jti-revoked-in-between'))).toBe(true);

    // The slow reload finishes last, with a list from before the revocation.
    db.releaseHeld();
    await settle();
    expect(revocations.isInactive(token('jti-revoked-in-between'))).toBe(true);
    expect(revocations.isInactive(token('never-revoked'))).toBe(false);
  });

  it('a jti longer than the list holds is refused before it reaches the database', async () => {
    const revocations = createRevocationService({ prisma: fakeDatabase().prisma, changes: changeBus() });
    await expect(revocations.revoke('acme', 'j'.repeat(MAX_JTI_LENGTH + 1))).rejects.toMatchObject({ status: 400, error: 'invalid_request' });
    await expect(revocations.revoke('acme', '')).rejects.toMatchObject({ status: 400 });
    await revocations.revoke('acme', 'j'.repeat(MAX_JTI_LENGTH));
    expect(revocations.isInactive(token('j'.repeat(MAX_JTI_LENGTH)))).toBe(true);
  });
});
