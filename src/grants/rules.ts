/**
 * The security decisions of issuance as pure functions, each readable and tested on its own
 * (test/grants/rules.test.ts). HTTP plumbing lives in the grant handlers; nothing here does I/O.
 */

export interface ResourceGrantable {
  uri: string;
  scopes: string[];
  tokenTtl: number | null;
  /** Tokens for it must be DPoP-bound (RFC 9449). */
  requireDpop?: boolean;
}

export interface ClientGrantable {
  scopes: string[];
  tokenTtl: number | null;
  resources: ResourceGrantable[];
}

export type Refusal = { ok: false; error: 'invalid_target' | 'invalid_scope' | 'invalid_request'; description: string };
export type Decision<T> = ({ ok: true } & T) | Refusal;

const refuse = (error: Refusal['error'], description: string): Refusal => ({ ok: false, error, description });

/**
 * Scopes named in an error description: at most five, each cut to 64 characters, so a request
 * cannot make the error response grow with its own size (ASCII only, as RFC 6749 §5.2 requires).
 */
export function scopesForError(scopes: string[]): string {
  const shown = scopes.slice(0, 5).map((s) => (s.length > 64 ? `${s.slice(0, 64)}...` : s));
  return scopes.length > 5 ? `${shown.join(' ')} (and ${scopes.length - 5} more)` : shown.join(' ');
}

/**
 * RFC 8707 audience choice for client credentials: exactly one resource, and it must be one the
 * client is registered for in this tenant. A missing `resource` defaults to the client's only
 * resource; with several, the client must say which. Unknown and foreign resources get the same
 * answer, so a caller learns nothing about other tenants' resources.
 */
export function chooseResource(
  requested: string[],
  client: Pick<ClientGrantable, 'resources'>,
): Decision<{ resource: ResourceGrantable }> {
  if (requested.length > 1) return refuse('invalid_target', 'only one resource may be requested per token');
  if (requested.length === 0) {
    if (client.resources.length === 1) return { ok: true, resource: client.resources[0]! };
    return refuse(
      'invalid_target',
      client.resources.length === 0
        ? 'this client has no resource it may obtain tokens for'
        : 'the resource parameter is required: this client may use several resources',
    );
  }
  const resource = client.resources.find((r) => r.uri === requested[0]);
  if (!resource) return refuse('invalid_target', 'the requested resource is not available to this client');
  return { ok: true, resource };
}

/**
 * Scopes granted = requested ∩ client's allowed ∩ resource's scopes. Asking for anything outside
 * that set is `invalid_scope`, never a silently smaller token. No `scope` means every scope the
 * client may hold at this resource; if that is nothing, there is no token to issue.
 */
export function grantScopes(
  requested: string[] | undefined,
  allowed: string[],
  offered: string[],
): Decision<{ scopes: string[] }> {
  const allow = new Set(allowed);
  const offer = new Set(offered);
  if (requested === undefined || requested.length === 0) {
    const scopes = allowed.filter((s) => offer.has(s));
    if (scopes.length === 0) return refuse('invalid_scope', 'no scope is available to this client at this resource');
    return { ok: true, scopes };
  }
  const unique = [...new Set(requested)];
  const notAllowed = unique.filter((s) => !allow.has(s));
  if (notAllowed.length) return refuse('invalid_scope', `scope not allowed for this client: ${scopesForError(notAllowed)}`);
  const notOffered = unique.filter((s) => !offer.has(s));
  if (notOffered.length) return refuse('invalid_scope', `scope not offered by the requested resource: ${scopesForError(notOffered)}`);
  return { ok: true, scopes: unique };
}

/** Lifetime: the most restrictive of every cap that applies (undefined/null = no cap at that level). */
export function capTtl(...caps: Array<number | null | undefined>): number {
  const finite = caps.filter((c): c is number => typeof c === 'number' && Number.isFinite(c) && c > 0);
  if (finite.length === 0) throw new TypeError('capTtl needs at least one positive cap (the tenant cap)');
  return Math.floor(Math.min(...finite));
}

/** Splits an RFC 6749 §3.3 scope string; `undefined` when the parameter was absent. */
export function parseScopeParam(scope: unknown): string[] | undefined {
  if (typeof scope !== 'string') return undefined;
  return scope.split(' ').filter(Boolean);
}

/** The whole client-credentials decision: audience, scopes and lifetime, or an RFC error. */
export function decideClientCredentials(input: {
  requestedResources: string[];
  requestedScopes: string[] | undefined;
  client: ClientGrantable;
  tenantTtl: number;
}): Decision<{ audience: string; scopes: string[]; ttl: number; requireDpop: boolean }> {
  const r = chooseResource(input.requestedResources, input.client);
  if (!r.ok) return r;
  const s = grantScopes(input.requestedScopes, input.client.scopes, r.resource.scopes);
  if (!s.ok) return s;
  return {
    ok: true,
    audience: r.resource.uri,
    scopes: s.scopes,
    ttl: capTtl(input.tenantTtl, input.client.tokenTtl, r.resource.tokenTtl),
    requireDpop: r.resource.requireDpop === true,
  };
}
