import type { Middleware, ParameterizedContext } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { decodeJwt } from 'jose';
import { claimedClientId } from '../limits/index.js';
import { bufferedForm } from '../http/body.js';
import { errorAnswer } from '../http/error-answer.js';
import type { AuditInput } from './event.js';
import type { AuditService } from './service.js';

/**
 * Where HTTP requests become audit events: one event per decision at a tenant's token and
 * revocation endpoints (issued, exchanged, refused, revoked), and one per admin API change.
 * Handlers say what they decided in `ctx.state.audit` ({@link AuditFacts}); everything else
 * (who asked, from where, which request) is read here, in one place.
 */

/** What a handler that decided something puts in `ctx.state.audit`. */
export interface AuditFacts {
  type?: string;
  subject?: string | undefined;
  jti?: string | undefined;
  scopes?: readonly string[] | undefined;
  audience?: string | undefined;
  clientId?: string | undefined;
  detail?: Record<string, unknown>;
}

/** What the policy engine decided for this request, when a tenant policy was evaluated (src/policy). */
interface PolicyDecision {
  effect: 'allow' | 'deny';
  policyIds: string[];
}

/** What the rate limiter decided when it answered 429 (src/limits). */
interface RateLimited {
  scope: 'client' | 'tenant';
  clientId?: string | undefined;
  limit?: number;
  firstInWindow: boolean;
}

const clip = (v: unknown, n = 200): string | undefined => (typeof v === 'string' && v !== '' ? v.slice(0, n) : undefined);

function requestFacts(ctx: ParameterizedContext): Pick<AuditInput, 'requestId' | 'clientIp'> {
  return { requestId: clip(ctx.state.requestId, 64), clientIp: clip(ctx.ip, 64) };
}

/** The request's form, if it was one (already buffered by the dispatcher: not read twice). */
async function formOf(ctx: ParameterizedContext, maxBodyBytes: number): Promise<URLSearchParams | undefined> {
  if (ctx.method !== 'POST' || !ctx.is('application/x-www-form-urlencoded')) return undefined;
  try {
    return await bufferedForm(ctx, maxBodyBytes);
  } catch {
    return undefined;
  }
}

function policyDetail(ctx: ParameterizedContext): Record<string, unknown> {
  const p = ctx.state.policyDecision as PolicyDecision | undefined;
  return p ? { policy: { effect: p.effect, policy_ids: p.policyIds } } : {};
}

/**
 * The event for a token-endpoint or revocation-endpoint request whose answer is in `ctx`: the
 * handler's facts on success; on a refusal the error code as reason, with who asked (the
 * authenticated client, else the one the request claimed) and what was asked for (scope,
 * resource, never a token).
 */
export async function tokenEndpointEvent(ctx: ParameterizedContext, tenantId: string, endpoint: 'token' | 'revoke', maxBodyBytes: number): Promise<AuditInput | undefined> {
  const facts = ctx.state.audit as AuditFacts | undefined;
  const oidc = (ctx as unknown as Partial<KoaContextWithOIDC>).oidc;
  const form = await formOf(ctx, maxBodyBytes);
  const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
  // oidc-provider loads the client before it checks the credentials: an invalid_client answer
  // means the client it loaded did not authenticate.
  const authFailed = body?.error === 'invalid_client';
  const authenticated = clip(facts?.clientId) ?? (authFailed ? undefined : clip(oidc?.client?.clientId));
  const claimed = authenticated ?? clip(claimedClientId(ctx.get('authorization') || undefined, form));
  const grantType = clip(form?.get('grant_type'), 100);
  const base = { tenantId, ...requestFacts(ctx), actor: claimed, clientId: claimed };

  if (ctx.status < 400 && facts?.type) {
    return {
      ...base,
      type: facts.type,
      outcome: 'success',
      subject: facts.subject,
      jti: facts.jti,
      scopes: facts.scopes,
      audience: facts.audience,
      detail: { ...(endpoint === 'token' ? { grant_type: grantType } : {}), ...facts.detail, ...policyDetail(ctx) },
    };
  }
  if (ctx.status < 400) {
    // RFC 7009 §2.2: a token that is not ours (or not valid) is answered 200 and nothing is revoked.
    if (endpoint === 'revoke') return { ...base, type: 'token.revoke_ignored', outcome: 'success' };
    // A token in an answer whose handler said nothing about it (a grant that forgot): it is still
    // recorded, from its own claims, before it leaves.
    const token = (ctx.body as { access_token?: unknown } | undefined)?.access_token;
    if (typeof token === 'string') {
      let claims: ReturnType<typeof decodeJwt> = {};
      try {
        claims = decodeJwt(token);
      } catch {
        /* recorded without its claims rather than not at all */
      }
      return {
        ...base,
        type: 'token.issued',
        outcome: 'success',
        subject: clip(claims.sub, 500),
        jti: clip(claims.jti, 64),
        scopes: typeof claims.scope === 'string' ? claims.scope.split(' ') : [],
        audience: clip([claims.aud].flat()[0], 2048),
        detail: { grant_type: grantType, handler_facts: false, ...policyDetail(ctx) },
      };
    }
    // Nothing was decided (a CORS preflight, say): no event.
    return undefined;
  }
  const requestedScope = clip(form?.get('scope'), 2000);
  const resource = clip(form?.get('resource'), 2048) ?? clip(form?.get('audience'), 2048);
  const failed = ctx.status >= 500;
  return {
    ...base,
    type: endpoint === 'token' ? (failed ? 'token.failed' : 'token.refused') : (failed ? 'token.revoke_failed' : 'token.revoke_refused'),
    outcome: failed ? 'failed' : 'refused',
    reason: clip(body?.error, 64) ?? `http_${ctx.status}`,
    scopes: requestedScope ? requestedScope.split(' ').filter(Boolean) : undefined,
    audience: resource,
    detail: {
      ...(grantType ? { grant_type: grantType } : {}),
      status: ctx.status,
      ...(clip(body?.error_description, 300) ? { description: clip(body?.error_description, 300) } : {}),
      ...(authenticated ? {} : { client_authenticated: false }),
      ...policyDetail(ctx),
    },
  };
}

/**
 * The event for a 429, once per bucket window (not per refused request, so a flood does not
 * flood the trail): undefined for the other refusals of the window.
 */
export function rateLimitEvent(ctx: ParameterizedContext, tenantId: string): AuditInput | undefined {
  const r = ctx.state.rateLimited as RateLimited | undefined;
  if (!r?.firstInWindow) return undefined;
  const clientId = clip(r.clientId);
  return {
    tenantId,
    ...requestFacts(ctx),
    type: 'rate_limit.exceeded',
    outcome: 'refused',
    reason: 'rate_limited',
    actor: clientId,
    clientId,
    detail: { scope: r.scope, ...(r.limit !== undefined ? { limit_rps: r.limit } : {}), path: ctx.path.slice(0, 200) },
  };
}

/**
 * Answers 503 in place of whatever was about to be sent: what was decided could not be recorded,
 * so it is not delivered (a token minted but unaudited never leaves).
 */
export function unaudited(ctx: ParameterizedContext): void {
  ctx.status = 503;
  ctx.set('Retry-After', '5');
  ctx.set('Cache-Control', 'no-store');
  ctx.remove('WWW-Authenticate');
  ctx.body = { error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable' };
}

/** Builds an event from the answer a thrown error will become, leaving `ctx` as it was. */
async function asAnswered<T>(ctx: ParameterizedContext, err: unknown, build: () => T | Promise<T>): Promise<T> {
  const saved = { status: ctx.status, body: ctx.body };
  const answer = errorAnswer(err);
  ctx.status = answer.status;
  ctx.body = answer.body;
  try {
    return await build();
  } finally {
    ctx.status = saved.status;
    ctx.body = saved.body;
  }
}

/**
 * Runs a tenant-endpoint request and records its one event, waiting for the commit. When a
 * success (a token, a revocation) cannot be recorded, the answer becomes a 503: nothing leaves
 * unaudited. A refusal stands whether or not its record could be written (nothing was granted);
 * a thrown error is recorded as the answer it will become, then rethrown for the serialiser.
 */
export function auditedEndpoint(audit: AuditService, endpoint: 'token' | 'revoke', tenantId: string, maxBodyBytes: number) {
  return async (ctx: ParameterizedContext, run: () => Promise<void>): Promise<void> => {
    try {
      await run();
    } catch (err) {
      const event = await asAnswered(ctx, err, () => tokenEndpointEvent(ctx, tenantId, endpoint, maxBodyBytes));
      if (event) await audit.record(event).catch(() => {});
      throw err;
    }
    const event = await tokenEndpointEvent(ctx, tenantId, endpoint, maxBodyBytes);
    if (!event) return;
    const recorded = await audit.record(event).then(() => true, () => false);
    if (!recorded && ctx.status < 400) unaudited(ctx);
  };
}

/** What an admin API route changed, for its event (set by the router's audit hook). */
export interface AdminRouteFacts {
  route: string;
  tenant?: string | undefined;
}

/**
 * The admin API's audit hook: every request that changes something (every method but GET/HEAD),
 * allowed or refused, is one event in the trail of the tenant it targeted, or, when it was
 * refused before reaching a tenant (another tenant's route, a platform-only route), in the
 * caller's own tenant. The event type comes from {@link adminEventType}. Runs after
 * authentication (so the actor is known) and around authorization.
 */
export function auditAdminChanges(audit: AuditService, adminEventType: (route: string) => string): Middleware {
  return async function auditAdminChange(ctx, next) {
    if (ctx.method === 'GET' || ctx.method === 'HEAD' || ctx.method === 'OPTIONS') return next();
    const admin = ctx.state.admin as { clientId: string; tenantId: string; platform: boolean };
    const event = (outcome: AuditInput['outcome'], reason?: string): AuditInput | undefined => {
      const matched = ctx.state.adminRoute as AdminRouteFacts | undefined;
      if (!matched) return undefined;
      const body = (ctx.body ?? {}) as Record<string, unknown>;
      // A new tenant's first event is its creation.
      const created = matched.route === 'POST /admin/tenants' && outcome === 'success' ? clip(body.id, 63) : undefined;
      // The tenant the handler found (it exists); else, refused before reaching one (another
      // tenant's route, a platform-only route, an unknown tenant), the caller's own tenant.
      const tenantId = created ?? (ctx.state.adminTenant as string | undefined) ?? admin.tenantId;
      const facts = (ctx.state.audit ?? {}) as AuditFacts;
      return {
        tenantId,
        ...requestFacts(ctx),
        type: facts.type ?? adminEventType(matched.route),
        outcome,
        reason,
        actor: admin.clientId,
        clientId: facts.clientId ?? clip(body.client_id) ?? clip(ctx.params?.client),
        jti: facts.jti ?? clip(body.jti, 64),
        scopes: facts.scopes ?? (Array.isArray(body.scopes) ? (body.scopes as unknown[]).filter((s): s is string => typeof s === 'string') : undefined),
        audience: facts.audience ?? clip(body.uri, 2048),
        detail: {
          route: matched.route,
          admin_tenant: admin.tenantId,
          ...(matched.tenant && matched.tenant !== tenantId ? { target_tenant: matched.tenant } : {}),
          ...pick(body, ['id', 'kid', 'alg', 'status', 'name', 'kind', 'auth_method', 'revoked', 'resources', 'rate_limit_rps', 'effective_rps', 'deleted']),
          ...facts.detail,
          ...(outcome !== 'success' ? { status: ctx.status } : {}),
        },
      };
    };
    try {
      await next();
    } catch (err) {
      const refused = await asAnswered(ctx, err, () => event(outcomeOf(ctx.status), errorAnswer(err).body.error));
      if (refused) await audit.record(refused).catch(() => {});
      throw err;
    }
    const done = event(outcomeOf(ctx.status), ctx.status < 400 ? undefined : clip((ctx.body as { error?: unknown } | undefined)?.error, 64) ?? `http_${ctx.status}`);
    if (!done) return;
    const recorded = await audit.record(done).then(() => true, () => false);
    // The change is made but its record is not: say so (503), do not pretend all is well.
    if (!recorded && ctx.status < 400) unaudited(ctx);
  };
}

const outcomeOf = (status: number): AuditInput['outcome'] => (status >= 500 ? 'failed' : status >= 400 ? 'refused' : 'success');

/** Copies the named members that are strings, numbers, booleans or string arrays (identifiers, never secrets). */
function pick(body: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const v = body[k];
    if (typeof v === 'string') out[k] = v.slice(0, 500);
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = (v as string[]).slice(0, 50);
  }
  return out;
}
