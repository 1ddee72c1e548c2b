/**
 * The downscoping rules of token exchange (RFC 8693) as pure functions: which subject tokens a
 * tenant accepts, who may present them, which audience, scopes and lifetime the new token gets,
 * and how the actor chain grows. Each is one of the invariants in DESIGN.md and has a table of
 * tests in test/grants/exchange-rules.test.ts. Nothing here does I/O; signatures, revocation
 * and storage are the handler's (./token-exchange.ts) business.
 */
import type { ActClaim } from '../issuer/context.js';
import type { Ancestor } from '../tokens/revocations.js';
import { capTtl, scopesForError, type Decision, type Refusal, type ResourceGrantable } from './rules.js';

/** RFC 8693 §3 token type identifiers. */
export const TOKEN_TYPE = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
} as const;

/** Default for how many actors an `act` chain may hold (configurable per broker). */
export const DEFAULT_MAX_ACT_DEPTH = 4;

const refuse = (error: Refusal['error'], description: string): Refusal => ({ ok: false, error, description });

/** A verified Bulkhead access token offered as subject or actor token. */
export interface PresentedToken {
  iss: string;
  sub: string;
  aud: string[];
  client_id: string;
  tenant_id: string;
  /** Scopes it carries; empty for an agent credential. */
  scopes: string[];
  exp: number;
  iat: number;
  jti: string;
  act?: ActClaim;
  /** The tokens this one was exchanged from, nearest first. */
  exchanged_from?: Ancestor[];
  /** RFC 8693 §4.4: who may act for this subject. */
  may_act?: { sub?: unknown; iss?: unknown };
  /** RFC 9449 §6.1 confirmation: the DPoP key the token is bound to. */
  jkt?: string;
}

/**
 * RFC 8693 §2.1 token types. Subject and actor tokens are Bulkhead access tokens (JWTs), and
 * the only token type issued is an access token: refresh tokens never are.
 */
export function checkTokenTypes(p: {
  subjectTokenType: unknown;
  actorToken: unknown;
  actorTokenType: unknown;
  requestedTokenType: unknown;
}): Decision<object> {
  const accepted: unknown[] = [TOKEN_TYPE.accessToken, TOKEN_TYPE.jwt];
  if (!accepted.includes(p.subjectTokenType)) {
    return refuse('invalid_request', 'subject_token_type must be urn:ietf:params:oauth:token-type:access_token or urn:ietf:params:oauth:token-type:jwt');
  }
  if (p.actorToken !== undefined && !accepted.includes(p.actorTokenType)) {
    return refuse('invalid_request', 'actor_token_type must be urn:ietf:params:oauth:token-type:access_token or urn:ietf:params:oauth:token-type:jwt');
  }
  if (p.actorToken === undefined && p.actorTokenType !== undefined) {
    return refuse('invalid_request', 'actor_token_type must not be sent without actor_token');
  }
  if (p.requestedTokenType !== undefined && p.requestedTokenType !== TOKEN_TYPE.accessToken) {
    return refuse('invalid_request', 'requested_token_type: only urn:ietf:params:oauth:token-type:access_token is issued');
  }
  return { ok: true };
}

export type SubjectKind = 'agent-credential' | 'tenant-token';

/**
 * Tenant match. The subject token must come from this tenant's own issuer (re-exchange) or be
 * the exchanging agent's credential from its home issuer; nothing else crosses a tenant
 * boundary. An agent credential is recognised by its audience being its issuer and its
 * carrying no scope; it is only ever good for the agent it was issued to.
 */
export function classifySubject(
  subject: Pick<PresentedToken, 'iss' | 'aud' | 'scopes' | 'tenant_id'>,
  at: { tenantId: string; issuer: string; clientHomeTenant: string; clientHomeIssuer: string; clientIsAgent: boolean },
): Decision<{ kind: SubjectKind }> {
  const isCredential = subject.aud.length === 1 && subject.aud[0] === subject.iss && subject.scopes.length === 0;
  if (subject.iss === at.issuer && subject.tenant_id === at.tenantId) {
    if (isCredential) {
      return at.clientIsAgent && at.clientHomeIssuer === at.issuer
        ? { ok: true, kind: 'agent-credential' }
        : refuse('invalid_request', 'an agent credential can only be exchanged by that agent');
    }
    return { ok: true, kind: 'tenant-token' };
  }
  if (at.clientIsAgent && subject.iss === at.clientHomeIssuer && subject.tenant_id === at.clientHomeTenant) {
    return isCredential
      ? { ok: true, kind: 'agent-credential' }
      : refuse('invalid_request', "from the agent's home issuer only its agent credential is accepted");
  }
  return refuse('invalid_request', 'the subject token was not issued by this tenant or by the agent\'s home issuer');
}

/**
 * RFC 8693 §5 and §4.4: a token may only be exchanged by the client it was issued to, or by a
 * client its `may_act` claim names. A stolen token is useless to anyone else.
 */
export function checkHolder(token: Pick<PresentedToken, 'client_id' | 'may_act'>, clientId: string, clientIssuer: string): boolean {
  if (token.client_id === clientId) return true;
  const m = token.may_act;
  if (!m || typeof m !== 'object' || m.sub !== clientId) return false;
  return m.iss === undefined || m.iss === clientIssuer;
}

/** How many actors an `act` claim holds (0 for none); stops counting past `limit`. */
export function actDepth(act: ActClaim | undefined, limit = 64): number {
  let depth = 0;
  for (let a = act; a && depth <= limit; a = a.act) depth++;
  return depth;
}

/**
 * The new token's actor chain (RFC 8693 §4.1): the subject's chain is never dropped; a new
 * actor goes on the outside, with the previous chain nested under it. Past `maxDepth` actors
 * the exchange is refused.
 */
export function chainActors(subjectAct: ActClaim | undefined, actor: ActClaim | undefined, maxDepth: number): Decision<{ act?: ActClaim }> {
  const act = actor ? { ...actor, ...(subjectAct ? { act: subjectAct } : {}) } : subjectAct;
  if (actDepth(act, maxDepth) > maxDepth) {
    return refuse('invalid_request', `the delegation chain would exceed ${maxDepth} actors`);
  }
  return { ok: true, ...(act ? { act } : {}) };
}

/**
 * The audience: exactly one resource, registered in this tenant and within the ceiling (the
 * delegation's or the client's resources). A tenant token re-exchanged keeps to its own
 * audience: it can be narrowed, never pointed at another resource. `resource` (RFC 8707) and
 * `audience` (RFC 8693 §2.1) both name it; together they must name the same one.
 */
export function chooseExchangeAudience(
  requested: { resources: string[]; audiences: string[] },
  ceiling: ResourceGrantable[],
  subject: { kind: SubjectKind; aud: string[] },
): Decision<{ resource: ResourceGrantable }> {
  const targets = [...new Set([...requested.resources, ...requested.audiences])];
  if (targets.length > 1) return refuse('invalid_target', 'only one resource may be requested per token');
  const available = subject.kind === 'tenant-token' ? ceiling.filter((r) => subject.aud.includes(r.uri)) : ceiling;
  if (targets.length === 0) {
    if (available.length === 1) return { ok: true, resource: available[0]! };
    return refuse('invalid_target', available.length === 0
      ? 'no resource is available for this exchange'
      : 'the resource parameter is required: several resources are available');
  }
  const resource = available.find((r) => r.uri === targets[0]);
  if (!resource) return refuse('invalid_target', 'the requested resource is not available for this exchange');
  return { ok: true, resource };
}

/**
 * scopes(new) = requested ∩ subject ∩ ceiling ∩ resource. An agent credential carries no
 * scopes because it grants nothing: for it the ceiling (the delegation) is the bound. Asking
 * for anything outside the intersection is `invalid_scope`, never a silently smaller token;
 * asking for nothing yields the whole intersection.
 */
export function exchangeScopes(
  requested: string[] | undefined,
  subject: { kind: SubjectKind; scopes: string[] },
  ceiling: string[],
  offered: string[],
): Decision<{ scopes: string[] }> {
  const sets: Array<[string, Set<string>]> = [
    ['allowed for this client here', new Set(ceiling)],
    ['offered by the requested resource', new Set(offered)],
  ];
  if (subject.kind === 'tenant-token') sets.unshift(['held by the subject token', new Set(subject.scopes)]);
  if (requested === undefined || requested.length === 0) {
    const scopes = ceiling.filter((s) => sets.every(([, set]) => set.has(s)));
    if (scopes.length === 0) return refuse('invalid_scope', 'no scope is available for this exchange');
    return { ok: true, scopes };
  }
  const unique = [...new Set(requested)];
  for (const [what, set] of sets) {
    const outside = unique.filter((s) => !set.has(s));
    if (outside.length) return refuse('invalid_scope', `scope not ${what}: ${scopesForError(outside)}`);
  }
  return { ok: true, scopes: unique };
}

/**
 * exp(new) ≤ min(exp(subject), now + every lifetime cap, the delegation's own expiry). A
 * subject that would leave less than a second is refused rather than minted already dead.
 */
export function exchangeExpiry(p: {
  now: number;
  subjectExp: number;
  caps: Array<number | null | undefined>;
  notAfter?: number | null;
}): Decision<{ exp: number }> {
  const exp = Math.min(p.subjectExp, p.now + capTtl(...p.caps), p.notAfter ?? Number.POSITIVE_INFINITY);
  if (exp - p.now < 1) return refuse('invalid_request', 'the subject token expires too soon to be exchanged');
  return { ok: true, exp: Math.floor(exp) };
}

/**
 * DPoP (RFC 9449) at the exchange: a bound subject or actor token may only be exchanged with a
 * proof by the same key; a delegation or resource that requires DPoP gets bound tokens only.
 * The new token is bound to the proof's key whenever a proof was presented.
 */
export function dpopBinding(p: { proofJkt?: string; boundTo: Array<string | undefined>; required: boolean }): Decision<{ jkt?: string }> {
  for (const jkt of p.boundTo) {
    if (jkt !== undefined && jkt !== p.proofJkt) {
      return refuse('invalid_request', p.proofJkt ? 'the DPoP proof is not from the key the presented token is bound to' : 'the presented token is DPoP-bound: a DPoP proof from its key is required');
    }
  }
  if (p.required && !p.proofJkt) return refuse('invalid_request', 'a DPoP proof is required: tokens here must be DPoP-bound');
  return { ok: true, ...(p.proofJkt ? { jkt: p.proofJkt } : {}) };
}

/** Most tokens an exchanged token may descend from (each re-exchange adds one). */
export const MAX_EXCHANGE_LINEAGE = 8;

/**
 * The lineage of the new token: the subject, then everything the subject was exchanged from.
 * Revoking any of them revokes the new token. Bounded, so a token cannot grow without end.
 */
export function exchangeLineage(subject: Pick<PresentedToken, 'tenant_id' | 'client_id' | 'jti' | 'iat' | 'exchanged_from'>): Decision<{ lineage: Ancestor[] }> {
  const lineage: Ancestor[] = [
    { tenant_id: subject.tenant_id, client_id: subject.client_id, jti: subject.jti, iat: subject.iat },
    ...(subject.exchanged_from ?? []),
  ];
  if (lineage.length > MAX_EXCHANGE_LINEAGE) {
    return refuse('invalid_request', `subject_token: has been exchanged ${MAX_EXCHANGE_LINEAGE} times already; start from a fresh token`);
  }
  return { ok: true, lineage };
}
