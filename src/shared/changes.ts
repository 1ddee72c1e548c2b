import { EventEmitter } from 'node:events';

/**
 * Invalidation signals for caches built from the database (issuers, client metadata, verified
 * secrets, revocations, policies). In one process an EventEmitter is enough; a shared bus
 * (Redis pub/sub) relays the same events between replicas.
 */
export interface ChangeEvents {
  /** Tenant settings, status or keys changed: rebuild its issuer. */
  tenantChanged(tenantId: string): void;
  /** A client's secret, status or grants changed: drop what was cached about it. */
  clientChanged(tenantId: string, clientId: string): void;
  /** A token of the tenant was revoked, or a client's tokens cut off: reload its revocations. */
  revocationsChanged(tenantId: string): void;
  onTenantChanged(fn: (tenantId: string) => void): void;
  onClientChanged(fn: (tenantId: string, clientId: string) => void): void;
  onRevocationsChanged(fn: (tenantId: string) => void): void;
  /** The tenant's Cedar policy was set or deleted: drop its prepared policy set. */
  policyChanged(tenantId: string): void;
  onPolicyChanged(fn: (tenantId: string) => void): void;
}

export function localChangeEvents(): ChangeEvents {
  const bus = new EventEmitter();
  bus.setMaxListeners(0);
  return {
    tenantChanged: (t) => void bus.emit('tenant', t),
    clientChanged: (t, c) => void bus.emit('client', t, c),
    revocationsChanged: (t) => void bus.emit('revocations', t),
    onTenantChanged: (fn) => void bus.on('tenant', fn),
    onClientChanged: (fn) => void bus.on('client', fn),
    onRevocationsChanged: (fn) => void bus.on('revocations', fn),
    policyChanged: (t) => void bus.emit('policy', t),
    onPolicyChanged: (fn) => void bus.on('policy', fn),
  };
}
