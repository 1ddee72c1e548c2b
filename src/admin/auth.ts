import { createLocalJWKSet, decodeJwt, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import type { Middleware, ParameterizedContext } from 'koa';
import type Router from '@koa/router';
import { publishedKeys } from '../keys/lifecycle.js';
import { SYSTEM_TENANT, TENANT_ID } from '../shared/ids.js';
import { Forbidden, NotFound, Unauthorized } from '../shared/errors.js';
import type { IssuerRegistry } from '../issuer/registry.js';
import { MAX_JWT_LENGTH, exceedsJwtLength } from '../shared/jwt-size.js';

/** The resource indicator (RFC 8707) of Bulkhead's own admin API, and the scope it requires. */
export const ADMIN_AUDIENCE = 'urn:bulkhead:admin';
export const ADMIN_SCOPE = 'admin';

/**
 * Who is calling the admin API.
 *
 * - A **platform admin** holds a token from the `system` tenant's issuer: it manages every tenant.
 * - A **tenant admin** holds a token from tenant T's own issuer (T ≠ system), for the audience
 *   {@link ADMIN_AUDIENCE} with the {@link ADMIN_SCOPE} scope: it manages T, and only T.
 *
 * Every tenant is created with the resource `urn:bulkhead:admin` (scope `admin`) registered in
 * it, so T's issuer can mint such tokens; a platform admin gives T an admin client with
 * `bulkhead client create --tenant T --name admin --scopes admin --resources urn:bulkhead:admin`.
 */
export interface AdminPrincipal {
  /** `client_id` of the token: recorded as `created_by` on delegations. */
  clientId: string;
  /** The tenant whose issuer minted the token. */
  tenantId: string;
  scopes: string[];
  /** True for tokens of the `system` tenant: they manage every tenant. */
  platform: boolean;
}

const challenge = (ctx: ParameterizedContext, extra = '') => ctx.set('WWW-Authenticate', `Bearer realm="bulkhead-admin"${extra}`);

/** The tenant a token claims to come from, read (unverified) from its `iss`: `${PUBLIC_URL}/t/<tenant>`. */
function claimedTenant(token: string): string | undefined {
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    return undefined;
  }
  if (typeof iss !== 'string') return undefined;
  const at = iss.lastIndexOf('/t/');
  const tenant = at < 0 ? '' : iss.slice(at + 3);
  return TENANT_ID.test(tenant) ? tenant : undefined;
}

/**
 * Authenticates the admin API with Bulkhead's own tokens, checked exactly as a resource server
 * would: the token names its issuer, and must then verify against *that tenant's* published keys
 * with `iss` = that tenant's issuer exactly, `typ: at+jwt`, `aud` = the admin API, `tenant_id` =
 * that tenant, an unexpired `exp`, and the admin scope. A token of the `system` tenant makes a
 * platform admin; a token of another (active) tenant makes that tenant's admin. What the caller may
 * then do is decided by {@link authorizeAdmin}, in one place.
 */
export function requireAdmin(registry: IssuerRegistry): Middleware {
  return async function authenticateAdmin(ctx, next) {
    const header = ctx.get('authorization');
    const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header);
    if (!m) {
      challenge(ctx);
      throw new Unauthorized('a Bearer access token from Bulkhead (the system tenant, or the tenant administered) is required');
    }
    const token = m[1]!;
    // Before anything is decoded: no admin token of ours comes anywhere near this.
    if (exceedsJwtLength(token)) {
      const why = `the access token must not exceed ${MAX_JWT_LENGTH} characters`;
      challenge(ctx, `, error="invalid_token", error_description="${why}"`);
      throw new Unauthorized(why);
    }
    const tenantId = claimedTenant(token);
    const issuer = tenantId ? await registry.get(tenantId) : undefined;
    let payload: JWTPayload;
    try {
      if (!issuer) throw new Error('unknown issuer');
      const jwks = createLocalJWKSet({ keys: publishedKeys(issuer.keys, new Date()).map((k) => k.publicJwk as never) });
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: issuer.issuer,
        audience: ADMIN_AUDIENCE,
        typ: 'at+jwt',
        algorithms: ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256'],
        requiredClaims: ['exp', 'iat', 'client_id', 'tenant_id'],
        clockTolerance: 5,
      }));
      if (payload.tenant_id !== tenantId) throw new Error('tenant_id does not match the issuer');
    } catch (err) {
      const why = err instanceof joseErrors.JWTExpired ? 'the access token has expired' : 'the access token is invalid';
      challenge(ctx, `, error="invalid_token", error_description="${why}"`);
      throw new Unauthorized(why);
    }
    const platform = tenantId === SYSTEM_TENANT;
    // A suspended tenant issues nothing, and its admins manage nothing until the platform resumes it.
    if (!platform && issuer.tenant.status !== 'active') {
      challenge(ctx, `, error="invalid_token", error_description="the tenant is suspended"`);
      throw new Unauthorized('the tenant is suspended');
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
    if (!scopes.includes(ADMIN_SCOPE)) {
      challenge(ctx, `, error="insufficient_scope", scope="${ADMIN_SCOPE}"`);
      throw new Forbidden(`the ${ADMIN_SCOPE} scope is required`);
    }
    ctx.state.admin = { clientId: String(payload.client_id), tenantId: tenantId!, scopes, platform } satisfies AdminPrincipal;
    await next();
  };
}

/**
 * Routes only platform admins may call, even on a tenant admin's own tenant: creating tenants,
 * suspending or resuming one (a tenant must not lift its own suspension, and suspending itself
 * would lock its admins out), and setting a tenant's own rate limit. Keys are `METHOD template` as the router declares them.
 */
export const PLATFORM_ONLY_ROUTES: ReadonlySet<string> = new Set([
  'POST /admin/tenants',
  'POST /admin/tenants/:tenant/suspend',
  'POST /admin/tenants/:tenant/resume',
  // A tenant's own rate limit is the platform's budget for it: its admins may read it and share it
  // out between their clients (PUT .../clients/:client/limits, capped by it), never raise it.
  'PUT /admin/tenants/:tenant/limits',
]);

/**
 * Routes without a `:tenant` that a tenant admin may call: the route itself narrows its answer
 * to the caller's tenant (`GET /admin/tenants` lists only the caller's own tenant).
 */
export const ANY_ADMIN_ROUTES: ReadonlySet<string> = new Set(['GET /admin/tenants']);

/**
 * The one authorization decision of the admin API, for a matched route (`METHOD template`) and
 * its `:tenant` parameter, if any:
 * - platform admins may do everything;
 * - a tenant admin may call any route whose `:tenant` is its own tenant, except the
 *   {@link PLATFORM_ONLY_ROUTES} (403 `insufficient_scope`);
 * - another tenant's routes answer 404 `not_found`, word for word what an unknown tenant gets,
 *   so a tenant admin learns nothing about which tenants exist (checked before the platform-only
 *   rule for the same reason);
 * - a route without `:tenant` is platform-only (403) unless listed in {@link ANY_ADMIN_ROUTES}:
 *   a new route is closed to tenant admins until someone decides otherwise.
 */
export function authorize(admin: AdminPrincipal, route: string, tenant: string | undefined): void {
  if (admin.platform) return;
  if (tenant !== undefined) {
    if (tenant !== admin.tenantId) throw new NotFound(`tenant ${tenant} not found`);
    if (PLATFORM_ONLY_ROUTES.has(route)) throw new Forbidden('only a platform admin (a token of the system tenant) may do this');
    return;
  }
  if (!ANY_ADMIN_ROUTES.has(route)) throw new Forbidden('only a platform admin (a token of the system tenant) may do this');
}

/**
 * Middleware applying {@link authorize} to every route of `router`, after {@link requireAdmin}:
 * it finds the route the request matched and its `:tenant` exactly as the router will (same
 * matching, same decoding), so the check cannot disagree with the handler about the tenant.
 */
export function authorizeAdmin(router: Router): Middleware {
  return async function authorizeAdminRoute(ctx, next) {
    const admin = ctx.state.admin as AdminPrincipal;
    const layer = router.match(ctx.path, ctx.method).pathAndMethod.filter((l) => l.methods.length > 0).at(-1);
    if (!layer) throw new NotFound('not found');
    const params = layer.params(ctx.path, layer.captures(ctx.path) ?? []) as Record<string, string | undefined>;
    const route = `${ctx.method === 'HEAD' ? 'GET' : ctx.method} ${String(layer.path)}`;
    // For the audit trail (src/audit/http.ts): which route was called.
    ctx.state.adminRoute = { route, tenant: params.tenant };
    authorize(admin, route, params.tenant);
    await next();
  };
}
