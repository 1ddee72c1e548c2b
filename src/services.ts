import type { Config } from './config/index.js';
import type { Database } from './db/index.js';
import { loadKek } from './keys/kek.js';
import { createKeyService } from './keys/service.js';
import { createTenantService } from './tenants/service.js';
import { createResourceService } from './resources/service.js';
import { createClientService } from './clients/service.js';
import { createAgentService } from './agents/service.js';
import { createRevocationService } from './tokens/revocations.js';
import { createSecretVerifier } from './clients/secrets.js';
import { createIssuerRegistry } from './issuer/registry.js';
import type { IssuerObserver } from './issuer/provider.js';
import { localChangeEvents } from './shared/changes.js';
import { memoryReplayStore } from './shared/replay.js';
import { redisSharedState } from './shared/redis.js';
import { createRateLimits } from './limits/index.js';
import { createAuditService } from './audit/service.js';
import { createRateLimitService } from './limits/overrides.js';
import { createPolicyService } from './policy/service.js';
import { pino, type Logger } from 'pino';

/**
 * The composition root: one instance of every domain service over one database. The HTTP app,
 * the admin API and the CLI (through the admin API) all use these and nothing else.
 */
export function createServices(config: Config, db: Database, observer?: IssuerObserver, logger: Pick<Logger, 'warn' | 'error'> = pino({ level: 'silent' })) {
  // One replica keeps shared state in memory; with REDIS_URL every replica shares it.
  const shared = config.redisUrl ? redisSharedState(config.redisUrl, logger) : undefined;
  const changes = shared?.changes ?? localChangeEvents();
  const kek = loadKek(config);
  const keys = createKeyService({ prisma: db.prisma, kek, changes });
  const tenants = createTenantService({ prisma: db.prisma, keys, changes });
  const resources = createResourceService({ prisma: db.prisma, changes, publicUrl: config.publicUrl });
  const clients = createClientService({ prisma: db.prisma, changes });
  const revocations = createRevocationService({ prisma: db.prisma, changes });
  const agents = createAgentService({ prisma: db.prisma, clients, changes, revocations });
  const secrets = createSecretVerifier();
  const replay = shared?.replay ?? memoryReplayStore();
  // Tenant Cedar policies (issue #5): asked by the grants last before minting.
  const policies = createPolicyService({ prisma: db.prisma, changes, tenantTtl: async (id) => (await tenants.get(id)).token_ttl, logger });
  const issuers = createIssuerRegistry({ config, tenants, keys, clients, agents, revocations, secrets, replay, changes, observer, policies });
  // Rate-limit overrides (per tenant, per client), cached per replica and dropped on the change bus.
  const rateLimits = createRateLimitService({
    prisma: db.prisma,
    changes,
    defaults: { clientRps: config.rateLimitClientRps, tenantRps: config.rateLimitTenantRps },
    onLoadError: (tenant, err) => logger.warn({ tenant, err: err.message }, 'rate-limit overrides unavailable; limiting with the defaults'),
  });
  const limits = createRateLimits({
    clientRps: config.rateLimitClientRps,
    tenantRps: config.rateLimitTenantRps,
    redisUrl: config.redisUrl,
    publicUrl: config.publicUrl,
    logger,
    overrides: rateLimits,
  });
  const audit = createAuditService({ prisma: db.prisma, sql: db.driver, logger });
  return {
    config, db, changes, keys, tenants, resources, clients, agents, revocations, secrets, replay, issuers, limits, rateLimits, policies, audit,
    /** Writes the audit events still queued, then releases what the services hold besides the database (the Redis connections). */
    close: async () => {
      await audit.close();
      await Promise.all([shared?.close(), limits.close()]);
    },
  };
}

export type Services = ReturnType<typeof createServices>;
