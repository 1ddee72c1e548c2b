import type { JWK } from 'jose';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { SigningKey } from '../generated/prisma/client.js';
import { forTenant } from '../db/tenant-scope.js';
import type { Prisma } from '../generated/prisma/client.js';
import { NotFound, Conflict } from '../shared/errors.js';
import type { ChangeEvents } from '../shared/changes.js';
import { openPrivateKey, sealPrivateKey } from './kek.js';
import { generateKeyMaterial } from './material.js';
import {
  DEFAULT_KEY_ALGORITHM,
  RETIRED_KEY_GRACE_SECONDS,
  chooseSigningKey,
  planRevocation,
  planRotation,
  publishedKeys,
  type KeyAlgorithm,
  type KeyPlan,
} from './lifecycle.js';

/** What operators see of a key; never key material. */
export interface SigningKeyView {
  kid: string;
  alg: string;
  status: string;
  published: boolean;
  created_at: string;
  activated_at: string | null;
  retired_at: string | null;
  publish_until: string | null;
  revoked_at: string | null;
}

export interface KeyServiceDeps {
  prisma: PrismaClient;
  kek: Buffer;
  changes: ChangeEvents;
  now?: () => Date;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toKeyView(k: SigningKey, now: Date): SigningKeyView {
  return {
    kid: k.kid,
    alg: k.alg,
    status: k.status,
    published: publishedKeys([k], now).length === 1,
    created_at: k.createdAt.toISOString(),
    activated_at: iso(k.activatedAt),
    retired_at: iso(k.retiredAt),
    publish_until: iso(k.publishUntil),
    revoked_at: iso(k.revokedAt),
  };
}

/** Applies a lifecycle plan inside a transaction; returns the kids it created. */
/** The only table writes a plan needs; every one names its tenantId explicitly. */
type KeyWriter = Pick<Prisma.TransactionClient, 'signingKey'>;

async function applyPlan(
  db: KeyWriter,
  deps: KeyServiceDeps,
  tenantId: string,
  plan: KeyPlan,
  retireFor: number,
  now: Date,
): Promise<string[]> {
  const created: string[] = [];
  const make = async (alg: string, status: 'active' | 'pending') => {
    const m = await generateKeyMaterial(alg as KeyAlgorithm);
    await db.signingKey.create({
      data: {
        tenantId,
        kid: m.kid,
        alg: m.alg,
        status,
        publicJwk: m.publicJwk as object,
        privateJwkEnc: sealPrivateKey(deps.kek, tenantId, m.kid, JSON.stringify(m.privateJwk)),
        createdAt: now,
        activatedAt: status === 'active' ? now : null,
      },
    });
    created.push(m.kid);
  };
  if (plan.revoke) {
    await db.signingKey.update({
      where: { tenantId_kid: { tenantId, kid: plan.revoke } },
      data: { status: 'revoked', revokedAt: now, publishUntil: null },
    });
  }
  for (const kid of plan.retire) {
    await db.signingKey.update({
      where: { tenantId_kid: { tenantId, kid } },
      data: { status: 'retired', retiredAt: now, publishUntil: new Date(+now + retireFor * 1000) },
    });
  }
  for (const kid of plan.withdraw ?? []) {
    await db.signingKey.update({
      where: { tenantId_kid: { tenantId, kid } },
      data: { status: 'retired', retiredAt: now, publishUntil: now },
    });
  }
  if (plan.promote) {
    await db.signingKey.update({
      where: { tenantId_kid: { tenantId, kid: plan.promote } },
      data: { status: 'active', activatedAt: now },
    });
  }
  if (plan.generateActive) await make(plan.generateActive, 'active');
  if (plan.generatePending) await make(plan.generatePending, 'pending');
  return created;
}

/**
 * Tenant signing keys: provisioning at tenant creation, rotation, revocation, the published JWKS
 * and the decrypted key that signs. Every query is tenant-scoped by {@link forTenant}.
 */
export function createKeyService(deps: KeyServiceDeps) {
  const now = deps.now ?? (() => new Date());

  async function lockedPlan(tenantId: string, plan: (keys: SigningKey[], tokenTtl: number) => KeyPlan) {
    const db = forTenant(deps.prisma, tenantId);
    const t = now();
    const result = await db.$transaction(async (tx) => {
      // Serialise key changes per tenant: two rotations at once must not leave two active keys.
      const locked = await tx.$queryRaw<{ tokenTtl: number }[]>`SELECT "tokenTtl" FROM "Tenant" WHERE id = ${tenantId} FOR UPDATE`;
      if (locked.length === 0) throw new NotFound('tenant not found');
      const keys = await tx.signingKey.findMany();
      const p = plan(keys, locked[0]!.tokenTtl);
      const created = await applyPlan(tx as unknown as KeyWriter, deps, tenantId, p, locked[0]!.tokenTtl + RETIRED_KEY_GRACE_SECONDS, t);
      return { plan: p, created };
    });
    deps.changes.tenantChanged(tenantId);
    return result;
  }

  return {
    /** A new tenant's first key (active) and the next one (pending, published ahead). */
    async provision(db: KeyWriter, tenantId: string, alg: KeyAlgorithm = DEFAULT_KEY_ALGORITHM) {
      return applyPlan(db, deps, tenantId, { generateActive: alg, generatePending: alg, retire: [] }, 0, now());
    },

    async list(tenantId: string): Promise<SigningKeyView[]> {
      const keys = await forTenant(deps.prisma, tenantId).signingKey.findMany({ orderBy: { createdAt: 'desc' } });
      const t = now();
      return keys.map((k) => toKeyView(k, t));
    },

    async rotate(tenantId: string, alg?: KeyAlgorithm): Promise<{ active: SigningKeyView; keys: SigningKeyView[] }> {
      await lockedPlan(tenantId, (keys) => planRotation(keys, alg ?? chooseSigningKey(keys)?.alg ?? DEFAULT_KEY_ALGORITHM));
      const keys = await this.list(tenantId);
      return { active: keys.find((k) => k.status === 'active')!, keys };
    },

    async revoke(tenantId: string, kid: string): Promise<{ revoked: SigningKeyView; keys: SigningKeyView[] }> {
      await lockedPlan(tenantId, (keys) => {
        const target = keys.find((k) => k.kid === kid);
        if (!target) throw new NotFound(`no key ${kid} in tenant ${tenantId}`);
        if (target.status === 'revoked') throw new Conflict(`key ${kid} is already revoked`);
        return planRevocation(keys, kid);
      });
      const keys = await this.list(tenantId);
      return { revoked: keys.find((k) => k.kid === kid)!, keys };
    },

    /** Everything the issuer needs about keys: the published public JWKs and the signer. */
    async loadForIssuer(tenantId: string): Promise<{ keys: SigningKey[]; signer: { kid: string; alg: string; privateJwk: JWK } | undefined }> {
      const keys = await forTenant(deps.prisma, tenantId).signingKey.findMany({
        where: { status: { in: ['pending', 'active', 'retired'] } },
      });
      const active = chooseSigningKey(keys);
      const signer = active && {
        kid: active.kid,
        alg: active.alg,
        privateJwk: JSON.parse(openPrivateKey(deps.kek, tenantId, active.kid, active.privateJwkEnc)) as JWK,
      };
      return { keys, signer };
    },
  };
}

export type KeyService = ReturnType<typeof createKeyService>;
