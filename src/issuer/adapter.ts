import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { isDatabaseUnavailable } from '../db/errors.js';

/**
 * oidc-provider's storage adapter for one tenant. Bulkhead keeps nothing in it: clients come
 * from the tenant's own rows (`findClient`), JWT access tokens are self-contained, and client
 * assertion replay is checked atomically by Bulkhead's ReplayStore (see ./provider.ts), so
 * oidc-provider's own non-atomic find-then-save replay check is made a no-op here.
 */
export function tenantAdapter(findClient: (id: string) => Promise<Record<string, unknown> | undefined>) {
  return class TenantAdapter implements Adapter {
    constructor(readonly model: string) {}

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model !== 'Client') return undefined;
      try {
        return (await findClient(id)) as AdapterPayload | undefined;
      } catch (err) {
        // The client store is unreachable: a retryable 503, never a 500 with internals.
        throw isDatabaseUnavailable(err) ? temporarilyUnavailable() : err;
      }
    }

    async upsert(): Promise<void> {}
    async findByUserCode(): Promise<undefined> { return undefined; }
    async findByUid(): Promise<undefined> { return undefined; }
    async consume(): Promise<void> {}
    async destroy(): Promise<void> {}
    async revokeByGrantId(): Promise<void> {}
  };
}

/** oidc-provider's `temporarily_unavailable`, as a retryable 503 (RFC 6749 §5.2 names the code). */
export function temporarilyUnavailable(): Error {
  const err = new errors.TemporarilyUnavailable('the service is temporarily unavailable');
  Object.assign(err, { status: 503, statusCode: 503 });
  return err;
}
