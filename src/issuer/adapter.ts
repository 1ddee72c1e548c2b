import type { Adapter, AdapterPayload } from 'oidc-provider';

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
      if (this.model === 'Client') return (await findClient(id)) as AdapterPayload | undefined;
      return undefined;
    }

    async upsert(): Promise<void> {}
    async findByUserCode(): Promise<undefined> { return undefined; }
    async findByUid(): Promise<undefined> { return undefined; }
    async consume(): Promise<void> {}
    async destroy(): Promise<void> {}
    async revokeByGrantId(): Promise<void> {}
  };
}
