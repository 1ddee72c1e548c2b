import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { PolicyDecision, PolicyRequest } from '../policy/evaluate.js';
import type { DenialError } from '../policy/compile.js';
import type { GrantDeps } from '../issuer/context.js';
import { scopesForError } from './rules.js';

/**
 * What the audit trail reads after a grant: the tenant policy's decision on this request, set on
 * `ctx.state.policyDecision` whenever a policy set was evaluated (allow or deny). The policy ids
 * are for the audit event only; the error response never names them.
 */
export interface PolicyDecisionRecord {
  effect: 'allow' | 'deny';
  policyIds: string[];
}

/** The refusal a policy denial answers with (see `denialError` in src/policy/evaluate.ts for the rule). */
export function policyRefusal(error: DenialError | undefined, scopes: string[]): Error {
  switch (error) {
    case 'invalid_scope':
      // No `scope` member in the response, as for every other invalid_scope (see ./client-credentials.ts).
      return new errors.InvalidScope(`scope not allowed by the tenant's policy: ${scopesForError(scopes)}`, undefined as unknown as string);
    case 'invalid_target':
      return new errors.InvalidTarget("the tenant's policy does not allow a token for this resource");
    case 'invalid_request':
      return new errors.InvalidRequest("the tenant's policy refuses this request");
    default:
      return new errors.AccessDenied("the tenant's policy does not allow this request");
  }
}

/**
 * Asks the tenant's policy set (its Cedar policies with the platform baseline, or its
 * registrations alone when it has none) about a request that has passed every structural check,
 * records the decision, and throws the refusal when it denies. Called last before minting.
 */
export async function enforcePolicy(ctx: KoaContextWithOIDC, deps: Pick<GrantDeps, 'policies'>, request: PolicyRequest): Promise<PolicyDecision> {
  const set = await deps.policies.forTenant(request.tenantId);
  const decision = set.decide(request);
  ctx.state.policyDecision = { effect: decision.effect, policyIds: decision.policyIds } satisfies PolicyDecisionRecord;
  if (decision.effect === 'deny') throw policyRefusal(decision.error, request.context.scopes);
  return decision;
}

/** The `act` subjects of a chain, nearest (the current actor) first. */
export function actorSubjects(act: { sub: string; act?: unknown } | undefined): string[] {
  const subs: string[] = [];
  for (let a = act; a; a = a.act as typeof a) subs.push(a.sub);
  return subs;
}
