import compose from 'koa-compose';
import type { Middleware, ParameterizedContext } from 'koa';
import type { Provider } from 'oidc-provider';
import { TENANT_ID } from '../shared/ids.js';
import { NotFound, PayloadTooLarge } from '../shared/errors.js';
import { bufferedForm, checkFormForProvider } from '../http/body.js';
import { refuseOversizeAssertion } from './client-assertion.js';
import { publishedKeys } from '../keys/lifecycle.js';
import type { IssuerRegistry } from './registry.js';
import type { IssuerContext } from './context.js';
import type { TokenEndpoints } from '../tokens/endpoints.js';
import { enforceRateLimits, type RateLimits } from '../limits/index.js';
import type { AuditService } from '../audit/service.js';
import { auditedEndpoint, rateLimitEvent } from '../audit/http.js';

/**
 * Routes `/t/<tenant>/...` (and RFC 8414's `/.well-known/oauth-authorization-server/t/<tenant>`)
 * to that tenant's issuer. This is where the tenant boundary is first drawn: the tenant comes
 * from the path, the issuer built for it holds only its keys and clients, and nothing outside the
 * short list of routes below reaches oidc-provider. Unknown tenants and unknown routes get the
 * same 404 as any unknown path.
 */

const ROUTES: Record<string, 'discovery' | 'token' | 'jwks' | 'introspect' | 'revoke'> = {
  '/.well-known/openid-configuration': 'discovery',
  '/.well-known/oauth-authorization-server': 'discovery',
  '/token': 'token',
  '/jwks': 'jwks',
  '/introspect': 'introspect',
  '/revoke': 'revoke',
};

/** Metadata members for endpoints Bulkhead does not serve (no browser flows, no userinfo). */
const UNSERVED_METADATA = [
  'authorization_endpoint', 'claims_parameter_supported', 'claims_supported', 'code_challenge_methods_supported',
  'end_session_endpoint', 'id_token_signing_alg_values_supported', 'request_parameter_supported',
  'request_uri_parameter_supported', 'require_request_uri_registration', 'response_modes_supported',
  'subject_types_supported', 'userinfo_endpoint', 'claim_types_supported', 'pushed_authorization_request_endpoint',
  'authorization_response_iss_parameter_supported', 'registration_endpoint', 'scopes_supported',
];

interface Route {
  tenantId: string;
  rest: string;
}

/** `/t/acme/token` → { tenantId: 'acme', rest: '/token' }; RFC 8414 path insertion too. */
export function parseTenantPath(path: string): Route | undefined {
  const wk = '/.well-known/oauth-authorization-server/t/';
  if (path.startsWith(wk)) {
    const tenantId = path.slice(wk.length);
    return TENANT_ID.test(tenantId) ? { tenantId, rest: '/.well-known/oauth-authorization-server' } : undefined;
  }
  const m = /^\/t\/([^/]+)(\/.*)$/.exec(path);
  if (!m || !TENANT_ID.test(m[1]!)) return undefined;
  return { tenantId: m[1]!, rest: m[2]! };
}

type Downstream = (ctx: ParameterizedContext, next: () => Promise<void>) => Promise<void>;
const composed = new WeakMap<Provider, Downstream>();
/** oidc-provider is a Koa app; run its middleware on our context, as koa-mount does. */
function providerMiddleware(provider: Provider): Downstream {
  let mw = composed.get(provider);
  if (!mw) composed.set(provider, (mw = compose(provider.middleware as never) as unknown as Downstream));
  return mw;
}

function serveJwks(ctx: ParameterizedContext, issuer: IssuerContext): void {
  ctx.set('Cache-Control', 'public, max-age=60');
  ctx.type = 'application/jwk-set+json';
  ctx.body = { keys: publishedKeys(issuer.keys, new Date()).map((k) => k.publicJwk) };
}

/**
 * RFC 6749 §5.2 names a request with no client authentication at all as `invalid_client`;
 * oidc-provider answers it with `invalid_request`. Rewritten here to what an unknown client gets.
 */
function noCredentialsIsInvalidClient(ctx: ParameterizedContext): void {
  const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
  if (ctx.status !== 400 || body?.error !== 'invalid_request' || body.error_description !== 'no client authentication mechanism provided') return;
  ctx.status = 401;
  ctx.body = { error: 'invalid_client', error_description: 'client authentication failed' };
}

export interface DispatcherOptions {
  registry: IssuerRegistry;
  publicUrl: string;
  maxBodyBytes: number;
  endpoints: TokenEndpoints;
  /** Every decision at the token and revocation endpoints is recorded here before it is answered. */
  audit: AuditService;
  limits?: RateLimits;
}

export function tenantDispatcher(opts: DispatcherOptions): Middleware {
  const origin = new URL(opts.publicUrl);
  return async function dispatchToTenantIssuer(ctx, next) {
    const route = parseTenantPath(ctx.path);
    if (!route) return next();
    const kind = ROUTES[route.rest];
    if (!kind) throw new NotFound('not found');
    const issuer = await opts.registry.get(route.tenantId);
    if (!issuer) throw new NotFound('not found');
    ctx.state.tenantId = route.tenantId;

    if (kind === 'jwks') {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new NotFound('not found');
      return serveJwks(ctx, issuer);
    }
    // Every answer of the token and revocation endpoints is one audit event, committed first.
    const audited = kind === 'token' || kind === 'revoke' ? auditedEndpoint(opts.audit, kind, route.tenantId, opts.maxBodyBytes) : undefined;
    try {
      if (ctx.request.length !== undefined && ctx.request.length > opts.maxBodyBytes) {
        throw new PayloadTooLarge(`request body must not exceed ${opts.maxBodyBytes} bytes`);
      }
      // Quotas (src/limits): per claimed client and per tenant, before any authentication work.
      // A 429 is audited once per bucket window, without waiting: a flood must stay cheap.
      if (kind !== 'discovery' && opts.limits && (await enforceRateLimits(ctx, opts.limits, route.tenantId, opts.maxBodyBytes))) {
        const event = rateLimitEvent(ctx, route.tenantId);
        if (event) opts.audit.recordLater(event);
        return undefined;
      }
    } catch (err) {
      // Refused before the endpoint ran (a body too large): still that endpoint's one event.
      if (audited) return audited(ctx, () => Promise.reject(err));
      throw err;
    }
    if (kind === 'introspect') return opts.endpoints.introspect(ctx, issuer);
    if (kind === 'revoke') return audited!(ctx, () => opts.endpoints.revoke(ctx, issuer));
    if (kind === 'token') return audited!(ctx, () => runIssuer(ctx, issuer, route, kind, origin, opts.maxBodyBytes));
    return runIssuer(ctx, issuer, route, kind, origin, opts.maxBodyBytes);
  };
}

/** Runs the tenant's oidc-provider for a token or discovery request, and shapes its answer. */
async function runIssuer(ctx: ParameterizedContext, issuer: IssuerContext, route: Route, kind: 'token' | 'discovery', origin: URL, maxBodyBytes: number): Promise<void> {
  if (kind === 'token' && ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded')) {
    await checkFormForProvider(ctx, maxBodyBytes);
    // oidc-provider would decode a client assertion of any size: the JWT bound comes first.
    try {
      for (const a of (await bufferedForm(ctx, maxBodyBytes)).getAll('client_assertion')) refuseOversizeAssertion(a);
    } catch (err) {
      ctx.set('WWW-Authenticate', `Basic realm="${issuer.issuer}"`);
      throw err;
    }
  }

  // oidc-provider builds endpoint URLs from the request; make them the public ones, whatever
  // Host header this request came with.
  Object.defineProperty(ctx.request, 'origin', { value: origin.origin, configurable: true });
  Object.defineProperty(ctx.request, 'protocol', { value: origin.protocol.slice(0, -1), configurable: true });
  Object.defineProperty(ctx.request, 'host', { value: origin.host, configurable: true });

  const mountPath = `/t/${route.tenantId}`;
  const prev = ctx.path;
  ctx.path = route.rest;
  (ctx as { mountPath?: string }).mountPath = mountPath;
  try {
    await providerMiddleware(issuer.provider)(ctx, async () => {});
  } finally {
    ctx.path = prev;
  }
  if (ctx.status === 404 && !ctx.body) throw new NotFound('not found');
  if (kind === 'token') {
    noCredentialsIsInvalidClient(ctx);
    // RFC 9110 §15.5.2: every 401 carries a challenge. oidc-provider sends one only when the
    // client used the Authorization header (RFC 6749 §5.2); the other methods get it here.
    if (ctx.status === 401 && !ctx.response.get('WWW-Authenticate')) ctx.set('WWW-Authenticate', `Basic realm="${issuer.issuer}"`);
  }
  if (kind === 'discovery' && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
    const body = { ...(ctx.body as Record<string, unknown>) };
    for (const k of UNSERVED_METADATA) delete body[k];
    body.response_types_supported = [];
    // Bulkhead's own RFC 7662 / RFC 7009 endpoints (src/tokens/endpoints.ts), same client auth.
    const methods = body.token_endpoint_auth_methods_supported;
    Object.assign(body, {
      introspection_endpoint: `${issuer.issuer}/introspect`,
      introspection_endpoint_auth_methods_supported: methods,
      revocation_endpoint: `${issuer.issuer}/revoke`,
      revocation_endpoint_auth_methods_supported: methods,
    });
    ctx.body = body;
  }
}
