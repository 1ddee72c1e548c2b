/**
 * The Cedar schema every tenant policy is validated against (DESIGN.md "Policy contract").
 * Entity types have no namespace:
 *
 * - `Tenant`: a tenant, by id.
 * - `Client` (a service) and `Agent` (a client of kind agent), by client id; parent: the tenant
 *   they are registered in and, for an agent installed by a delegation, the installing tenant.
 * - `Resource`, by its resource indicator (RFC 8707 URI), with attribute `uri` (the same URI);
 *   parent: its tenant.
 *
 * Actions: `Action::"issue"` (client credentials) and `Action::"exchange"` (token exchange).
 *
 * Context, set by Bulkhead from the request it is about to grant:
 * `scopes` (the scopes about to be granted), `ttl` (the token's lifetime, s), `dpop` (the token
 * will be DPoP-bound), `actorChain` (the `act` subjects, nearest first), `time` (epoch s),
 * `tenant` (the tenant issuing) and `ttlCap` (the tenant's cap on token lifetime, s); for an
 * exchange also `subject` (the subject token's `sub`) and `delegation` (the delegation's id,
 * present when the exchanging client is an agent installed here: test it with `has`).
 */
export const POLICY_SCHEMA = `
entity Tenant;
entity Client in [Tenant];
entity Agent in [Tenant];
entity Resource in [Tenant] {
  uri: String,
};

type IssueContext = {
  scopes: Set<String>,
  ttl: Long,
  dpop: Bool,
  actorChain: Set<String>,
  time: Long,
  tenant: Tenant,
  ttlCap: Long,
};

type ExchangeContext = {
  scopes: Set<String>,
  ttl: Long,
  dpop: Bool,
  actorChain: Set<String>,
  time: Long,
  tenant: Tenant,
  ttlCap: Long,
  subject: String,
  delegation?: String,
};

action issue appliesTo {
  principal: [Client, Agent],
  resource: [Resource],
  context: IssueContext,
};

action exchange appliesTo {
  principal: [Client, Agent],
  resource: [Resource],
  context: ExchangeContext,
};
`;

export type PolicyAction = 'issue' | 'exchange';
export const POLICY_ACTIONS: readonly PolicyAction[] = ['issue', 'exchange'];
export type PrincipalType = 'Client' | 'Agent';
