import type { Config } from '../config/index.js';
import { issuerFor } from '../config/index.js';
import type { TenantService } from '../tenants/service.js';
import type { KeyService } from '../keys/service.js';
import type { ChangeEvents } from '../shared/changes.js';
import { Lru } from '../shared/lru.js';
import { buildIssuer, type BuildIssuerDeps } from './provider.js';
import { snapshotTenant, type IssuerContext } from './context.js';

export interface IssuerRegistryDeps extends Omit<BuildIssuerDeps, 'peer' | 'maxActDepth'> {
  config: Pick<Config, 'publicUrl' | 'issuerCacheSize' | 'maxActDepth'>;
  tenants: TenantService;
  keys: KeyService;
  changes: ChangeEvents;
  /** Rebuild an issuer at least this often, so replicas converge without a shared bus, ms. */
  maxAgeMs?: number;
}

interface Entry {
  context: IssuerContext;
  builtAt: number;
}

/**
 * Tenant issuers, built lazily from the database and kept in a bounded LRU. A change to a
 * tenant's settings or keys drops its issuer (next request rebuilds it); a build that raced a
 * change is not cached, so a revoked key never signs again in this process.
 */
export function createIssuerRegistry(deps: IssuerRegistryDeps) {
  const cache = new Lru<string, Entry>(deps.config.issuerCacheSize);
  const building = new Map<string, Promise<IssuerContext | undefined>>();
  const generation = new Map<string, number>();
  const maxAgeMs = deps.maxAgeMs ?? 30_000;

  deps.changes.onTenantChanged((tenantId) => {
    generation.set(tenantId, (generation.get(tenantId) ?? 0) + 1);
    cache.delete(tenantId);
    building.delete(tenantId);
  });
  deps.changes.onClientChanged((tenantId, clientId) => deps.secrets.forget(tenantId, clientId));

  async function build(tenantId: string): Promise<IssuerContext | undefined> {
    const gen = generation.get(tenantId) ?? 0;
    const tenant = await deps.tenants.find(tenantId);
    if (!tenant) return undefined;
    const { keys, signer } = await deps.keys.loadForIssuer(tenantId);
    if (!signer) throw new Error(`tenant ${tenantId} has no active signing key`);
    const context = buildIssuer(issuerFor(deps.config, tenantId), snapshotTenant(tenant), signer, keys, {
      ...deps,
      maxActDepth: deps.config.maxActDepth,
      peer: (id) => registry.get(id),
    });
    if ((generation.get(tenantId) ?? 0) === gen) cache.set(tenantId, { context, builtAt: Date.now() });
    return context;
  }

  const registry = {
    /** The tenant's issuer, or undefined when no such tenant exists. */
    async get(tenantId: string): Promise<IssuerContext | undefined> {
      const hit = cache.get(tenantId);
      if (hit && Date.now() - hit.builtAt < maxAgeMs) return hit.context;
      let pending = building.get(tenantId);
      if (!pending) {
        const p: Promise<IssuerContext | undefined> = build(tenantId).finally(() => {
          if (building.get(tenantId) === p) building.delete(tenantId);
        });
        building.set(tenantId, (pending = p));
      }
      return pending;
    },
    get size() {
      return cache.size;
    },
  };
  return registry;
}

export type IssuerRegistry = ReturnType<typeof createIssuerRegistry>;
