import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { localChangeEvents, type ChangeEvents } from './changes.js';
import type { ReplayStore } from './replay.js';

/**
 * Shared state between broker replicas when `REDIS_URL` is set (DESIGN.md "Scale-out"): the
 * one-time-use store for client assertions and DPoP proofs, and the bus that tells every replica
 * to drop what it cached about a tenant or client the moment another replica changes it.
 */

const CHANNEL = 'bulkhead:changes:v1';

export interface SharedState {
  changes: ChangeEvents;
  replay: ReplayStore;
  close(): Promise<void>;
}

export function redisSharedState(url: string, logger: Pick<Logger, 'warn' | 'error'>): SharedState {
  const opts = { maxRetriesPerRequest: 2, enableOfflineQueue: true, connectTimeout: 5_000 };
  const pub = new Redis(url, opts);
  const sub = new Redis(url, opts);
  const origin = randomBytes(8).toString('base64url');
  const local = localChangeEvents();
  for (const [name, conn] of [['commands', pub], ['subscriber', sub]] as const) {
    // ioredis reconnects by itself; an error event without a listener would crash the process.
    conn.on('error', (err: Error) => logger.warn({ redis: name, err: err.message }, 'redis connection error'));
  }

  void sub.subscribe(CHANNEL).catch((err: Error) => logger.error({ err: err.message }, 'redis subscribe failed'));
  sub.on('message', (_channel: string, message: string) => {
    try {
      const m = JSON.parse(message) as { o?: string; k?: string; t?: string; c?: string };
      if (m.o === origin || typeof m.t !== 'string') return;
      if (m.k === 'tenant') local.tenantChanged(m.t);
      else if (m.k === 'client' && typeof m.c === 'string') local.clientChanged(m.t, m.c);
      else if (m.k === 'revocations') local.revocationsChanged(m.t);
      else if (m.k === 'policy') local.policyChanged(m.t);
    } catch {
      logger.warn({}, 'ignoring a malformed change message');
    }
  });

  const publish = (body: object) => {
    pub.publish(CHANNEL, JSON.stringify({ o: origin, ...body })).catch((err: Error) => {
      // Other replicas then converge through their cache lifetimes (≤ 30 s), not at once.
      logger.warn({ err: err.message }, 'could not publish a change to other replicas');
    });
  };

  const changes: ChangeEvents = {
    tenantChanged(t) {
      local.tenantChanged(t);
      publish({ k: 'tenant', t });
    },
    clientChanged(t, c) {
      local.clientChanged(t, c);
      publish({ k: 'client', t, c });
    },
    revocationsChanged(t) {
      local.revocationsChanged(t);
      publish({ k: 'revocations', t });
    },
    policyChanged(t) {
      local.policyChanged(t);
      publish({ k: 'policy', t });
    },
    onTenantChanged: local.onTenantChanged,
    onClientChanged: local.onClientChanged,
    onRevocationsChanged: local.onRevocationsChanged,
    onPolicyChanged: local.onPolicyChanged,
  };

  const replay: ReplayStore = {
    // SET NX is atomic across replicas: exactly one of them sees the id first.
    async markUsed(id, expiresAt) {
      const key = `bulkhead:jti:${createHash('sha256').update(id).digest('base64url')}`;
      const ok = await pub.set(key, '1', 'EXAT', Math.max(Math.ceil(expiresAt), Math.floor(Date.now() / 1000) + 1), 'NX');
      return ok === 'OK';
    },
  };

  return {
    changes,
    replay,
    async close() {
      await Promise.allSettled([sub.quit(), pub.quit()]);
    },
  };
}
