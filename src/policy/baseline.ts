/**
 * The platform baseline: policies Bulkhead evaluates in the same policy set as every tenant's
 * own, so that a tenant `permit` can never override them (in Cedar a satisfied `forbid` wins
 * over any `permit`). Ids under `bulkhead.` are reserved: a tenant policy may not use them.
 *
 * - `bulkhead.cross-tenant`: the principal and the resource must both belong to the tenant that
 *   issues (`context.tenant`): its own client, an agent installed into it, its own resource.
 * - `bulkhead.ttl-cap`: no token may live longer than the tenant's cap (`context.ttlCap`).
 *
 * The grant rules (src/grants/rules.ts, exchange-rules.ts) already refuse both structurally; the
 * baseline states them again where a tenant's policy is decided, so a mistake on either side
 * cannot widen what is issued.
 */
export const RESERVED_PREFIX = 'bulkhead.';

export const BASELINE_POLICIES: Readonly<Record<string, string>> = {
  'bulkhead.cross-tenant':
    'forbid(principal, action, resource) unless { principal in context.tenant && resource in context.tenant };',
  'bulkhead.ttl-cap': 'forbid(principal, action, resource) when { context.ttl > context.ttlCap };',
};

/**
 * The policy of a tenant that has none: its registrations (clients, resources, delegations),
 * checked by the grant rules before any policy runs, are its policy. Evaluated with the baseline.
 */
export const REGISTRATIONS_POLICY: Readonly<Record<string, string>> = {
  'bulkhead.registrations': 'permit(principal, action, resource);',
};

export const isBaselineId = (id: string) => id.startsWith(RESERVED_PREFIX);
