import { EventEmitter } from 'node:events';

/**
 * Invalidation signals for caches built from the database (issuers, client metadata, verified
 * secrets). In one process an EventEmitter is enough; a shared bus (Redis pub/sub) can relay
 * the same two events between replicas.
 */
export interface ChangeEvents {
  /** Tenant settings, status or keys changed: rebuild its issuer. */
  tenantChanged(tenantId: string): void;
  /** A client's secret, status or grants changed: drop what was cached about it. */
  clientChanged(tenantId: string, clientId: string): void;
  onTenantChanged(fn: (tenantId: string) => void): void;
  onClientChanged(fn: (tenantId: string, clientId: string) => void): void;
}

export function localChangeEvents(): ChangeEvents {
  const bus = new EventEmitter();
  bus.setMaxListeners(0);
  return {
    tenantChanged: (t) => void bus.emit('tenant', t),
    clientChanged: (t, c) => void bus.emit('client', t, c),
    onTenantChanged: (fn) => void bus.on('tenant', fn),
    onClientChanged: (fn) => void bus.on('client', fn),
  };
}
