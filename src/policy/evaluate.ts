import type * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { engineGeneration, PolicyEngineFailure, withCedar } from './engine.js';
import { BASELINE_POLICIES, isBaselineId, REGISTRATIONS_POLICY } from './baseline.js';
import type { CompiledPolicy, DenialError } from './compile.js';
import { POLICY_SCHEMA, type PolicyAction, type PrincipalType } from './schema.js';

/**
 * One issuance or exchange as Cedar sees it: who asks (principal), what (action), for which
 * resource, in which tenant, with what context. Built by the grants from what they are about to
 * grant, after every structural check has passed.
 */
export interface PolicyRequest {
  /** The tenant that issues: the one whose policy decides. */
  tenantId: string;
  action: PolicyAction;
  principal: {
    type: PrincipalType;
    id: string;
    /** Its parents: the tenant it is registered in, and (an agent) the tenant that installed it. */
    tenants: string[];
  };
  resource: { uri: string; tenantId: string };
  context: {
    scopes: string[];
    ttl: number;
    dpop: boolean;
    actorChain: string[];
    time: number;
    /** The tenant's cap on token lifetime, s (the baseline's `bulkhead.ttl-cap`). */
    ttlCap: number;
    /** Exchanges: the subject token's `sub`. */
    subject?: string;
    /** Exchanges by an installed agent: the delegation's id. */
    delegation?: string;
  };
}

/**
 * What a policy decided: the effect and the determining policies (for `allow`, the permits that
 * were satisfied; for `deny`, the forbids that were, or none for Cedar's default deny, or the
 * policies that failed to evaluate). `error` is the OAuth error a refusal answers with
 * ({@link denialError}). This is what `ctx.state.policyDecision` records for the audit trail;
 * the policy ids never reach the client.
 */
export interface PolicyDecision {
  effect: 'allow' | 'deny';
  policyIds: string[];
  error?: DenialError;
}

const tenantUid = (id: string) => ({ type: 'Tenant', id });

/**
 * The principal and the resource with their parents. `Tenant` entities have no attributes, and
 * Cedar takes hierarchy from the children's parent lists, so they are not sent (a tenth of the
 * cost of a decision).
 */
export function policyEntities(req: PolicyRequest): cedar.EntityJson[] {
  return [
    { uid: { type: req.principal.type, id: req.principal.id }, attrs: {}, parents: [...new Set(req.principal.tenants)].map(tenantUid) },
    { uid: { type: 'Resource', id: req.resource.uri }, attrs: { uri: req.resource.uri }, parents: [tenantUid(req.resource.tenantId)] },
  ];
}

export function policyContext(req: PolicyRequest): cedar.Context {
  const c = req.context;
  return {
    scopes: c.scopes,
    ttl: c.ttl,
    dpop: c.dpop,
    actorChain: c.actorChain,
    time: c.time,
    tenant: { __entity: tenantUid(req.tenantId) },
    ttlCap: c.ttlCap,
    ...(req.action === 'exchange' ? { subject: c.subject ?? '' } : {}),
    ...(req.action === 'exchange' && c.delegation !== undefined ? { delegation: c.delegation } : {}),
  };
}

/** Everything Cedar is asked, in the JSON form cedar-wasm takes. */
function cedarCall(req: PolicyRequest) {
  return {
    principal: { type: req.principal.type, id: req.principal.id },
    action: { type: 'Action', id: req.action },
    resource: { type: 'Resource', id: req.resource.uri },
    context: policyContext(req),
    entities: policyEntities(req),
  };
}

/** A tenant's policy set ready to decide: the baseline plus the tenant's policies (or, without any, its registrations). */
export interface PreparedPolicySet {
  /** True when the tenant has a policy of its own. */
  readonly tenantPolicy: boolean;
  /** The stored version of the tenant's policy, or null. */
  readonly version: number | null;
  decide(req: PolicyRequest): PolicyDecision;
}

/** Which prepared set currently owns each preparsed (cedar-wasm, stateful) policy set id. */
const preparsedOwner = new Map<string, object>();

/**
 * Prepares a policy set: the platform baseline with the tenant's policies, or with the implicit
 * `bulkhead.registrations` permit when it has none. With `preparseAs`, the set is parsed once
 * into cedar-wasm's policy-set store under that id and every decision reuses it
 * (`statefulIsAuthorized`); an id preparsed again by a newer set makes this one fall back to
 * parsing per decision, so a set never decides with another's policies.
 */
export function preparePolicySet(compiled: CompiledPolicy | undefined, opts: { version?: number | null; preparseAs?: string } = {}): PreparedPolicySet {
  const staticPolicies: Record<string, string> = { ...BASELINE_POLICIES, ...(compiled ? compiled.policies : REGISTRATIONS_POLICY) };
  const errors = compiled?.errors ?? {};
  const self = {};
  const { preparseAs } = opts;
  /** The engine instance the set was preparsed in (a replaced instance has lost it). */
  let preparsedIn = -1;
  const preparse = (id: string) => {
    const parsed = withCedar('preparse a policy set', (c) => c.preparsePolicySet(id, { staticPolicies }));
    if (parsed.type === 'failure') throw new Error(`cedar could not preparse the policy set: ${parsed.errors.map((e) => e.message).join('; ')}`);
    preparsedIn = engineGeneration();
  };
  if (preparseAs !== undefined) {
    preparse(preparseAs);
    preparsedOwner.set(preparseAs, self);
  }

  const authorize = (req: PolicyRequest): cedar.AuthorizationAnswer => {
    const call = cedarCall(req);
    if (preparseAs !== undefined && preparsedOwner.get(preparseAs) === self) {
      // The instance was replaced since (./engine.ts): preparse again in the new one.
      if (preparsedIn !== engineGeneration()) preparse(preparseAs);
      return withCedar('decide (preparsed)', (c) => c.statefulIsAuthorized({ ...call, preparsedPolicySetId: preparseAs }));
    }
    return withCedar('decide', (c) => c.isAuthorized({ ...call, policies: { staticPolicies } }));
  };

  const evaluate = (req: PolicyRequest): PolicyDecision => {
    const answer = authorize(req);
    // A request Cedar cannot even read is refused (fail closed), never granted.
    if (answer.type === 'failure') return { effect: 'deny', policyIds: [] };
    const { decision, diagnostics } = answer.response;
    const errored = diagnostics.errors.map((e) => e.policyId);
    // A policy that fails to evaluate might have been the forbid that refuses: fail closed.
    if (errored.length > 0) {
      const forbids = decision === 'deny' ? diagnostics.reason : [];
      return { effect: 'deny', policyIds: [...new Set([...forbids, ...errored])].sort() };
    }
    return { effect: decision, policyIds: [...diagnostics.reason].sort() };
  };

  /**
   * Set when a decision with the tenant's policies broke the engine: this set is never handed to
   * Cedar again (until the tenant's policy is read again). Never for the set without a tenant
   * policy: its text is the platform's, and it decides for every such tenant (and `system`).
   */
  let quarantined = false;
  return {
    tenantPolicy: compiled !== undefined,
    version: opts.version ?? null,
    decide(req) {
      if (quarantined) return { effect: 'deny', policyIds: [], error: 'access_denied' };
      try {
        const d = evaluate(req);
        if (d.effect === 'allow') return d;
        return { ...d, error: denialError(d, errors, () => req.context.scopes.length > 0 && evaluate({ ...req, context: { ...req.context, scopes: [] } }).effect === 'allow') };
      } catch (err) {
        // The engine failed (logged, and visible to /readyz, in ./engine.ts): refuse, never allow.
        if (err instanceof PolicyEngineFailure) {
          quarantined ||= err.broke && compiled !== undefined;
          return { effect: 'deny', policyIds: [], error: 'access_denied' };
        }
        throw err;
      }
    },
  };
}

let registrations: PreparedPolicySet | undefined;
/** The one policy set of every tenant without a policy (baseline + registrations), parsed once per process. */
export function registrationsPolicySet(): PreparedPolicySet {
  return (registrations ??= preparePolicySet(undefined, { preparseAs: 'bulkhead:registrations' }));
}

/**
 * The OAuth error a refusal answers with, in this order:
 * 1. a baseline policy refused (cross-tenant, TTL over the cap): `access_denied`;
 * 2. a refusing `forbid` names its error with `@error("invalid_scope" | "invalid_target" |
 *    "invalid_request" | "access_denied")`: that one (the first by policy id);
 * 3. the same request asking for no scope at all would have been allowed, so it is the scopes
 *    the policy refuses: `invalid_scope`;
 * 4. otherwise `access_denied`.
 */
export function denialError(d: Pick<PolicyDecision, 'policyIds'>, errors: Record<string, DenialError>, allowedWithoutScopes: () => boolean): DenialError {
  if (d.policyIds.some(isBaselineId)) return 'access_denied';
  const chosen = d.policyIds.find((id) => Object.hasOwn(errors, id));
  if (chosen !== undefined) return errors[chosen]!;
  return allowedWithoutScopes() ? 'invalid_scope' : 'access_denied';
}

/**
 * Checks a request against the schema (for `policy test`, whose rows are written by hand): a
 * row Cedar would not accept is reported rather than silently decided.
 */
export function requestProblem(req: PolicyRequest): string | undefined {
  if (schemaPreparsedIn !== engineGeneration()) {
    const s = withCedar('preparse the schema', (c) => c.preparseSchema('bulkhead', POLICY_SCHEMA));
    const p = withCedar('preparse the empty set', (c) => c.preparsePolicySet('bulkhead:empty', { staticPolicies: {} }));
    if (s.type === 'failure' || p.type === 'failure') throw new Error('cedar could not preparse the policy schema');
    schemaPreparsedIn = engineGeneration();
  }
  const answer = withCedar('check a test request', (c) => c.statefulIsAuthorized({ ...cedarCall(req), preparsedSchemaName: 'bulkhead', validateRequest: true, preparsedPolicySetId: 'bulkhead:empty' }));
  return answer.type === 'failure' ? answer.errors.map((e) => e.message).join('; ') : undefined;
}
/** The engine instance the schema was preparsed in (-1: none yet). */
let schemaPreparsedIn = -1;
