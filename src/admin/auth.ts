import { createLocalJWKSet, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import type { Middleware } from 'koa';
import { publishedKeys } from '../keys/lifecycle.js';
import { SYSTEM_TENANT } from '../shared/ids.js';
import { Forbidden, Unauthorized } from '../shared/errors.js';
import type { IssuerRegistry } from '../issuer/registry.js';

/** The resource indicator (RFC 8707) of Bulkhead's own admin API, and the scope it requires. */
export const ADMIN_AUDIENCE = 'urn:bulkhead:admin';
export const ADMIN_SCOPE = 'admin';

export interface AdminPrincipal {
  clientId: string;
  tenantId: string;
  scopes: string[];
}

/**
 * Guards the admin API with Bulkhead's own tokens, checked exactly as a resource server would:
 * signature against the `system` tenant's published keys, `typ: at+jwt`, `iss` = the system
 * issuer, `aud` = the admin API, `tenant_id` = system, an unexpired `exp`, and the admin scope.
 */
export function requireAdmin(registry: IssuerRegistry): Middleware {
  return async function authenticateAdmin(ctx, next) {
    const header = ctx.get('authorization');
    const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header);
    if (!m) {
      ctx.set('WWW-Authenticate', `Bearer realm="bulkhead-admin"`);
      throw new Unauthorized('a Bearer access token from the system tenant is required');
    }
    const system = await registry.get(SYSTEM_TENANT);
    if (!system) throw new Unauthorized('the system tenant is not provisioned');
    let payload: JWTPayload;
    try {
      const jwks = createLocalJWKSet({ keys: publishedKeys(system.keys, new Date()).map((k) => k.publicJwk as never) });
      ({ payload } = await jwtVerify(m[1]!, jwks, {
        issuer: system.issuer,
        audience: ADMIN_AUDIENCE,
        typ: 'at+jwt',
        algorithms: ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256'],
        requiredClaims: ['exp', 'iat', 'client_id', 'tenant_id'],
        clockTolerance: 5,
      }));
    } catch (err) {
      const why = err instanceof joseErrors.JWTExpired ? 'the access token has expired' : 'the access token is invalid';
      ctx.set('WWW-Authenticate', `Bearer realm="bulkhead-admin", error="invalid_token", error_description="${why}"`);
      throw new Unauthorized(why);
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
    if (payload.tenant_id !== SYSTEM_TENANT) throw new Unauthorized('the access token is invalid');
    if (!scopes.includes(ADMIN_SCOPE)) {
      ctx.set('WWW-Authenticate', `Bearer realm="bulkhead-admin", error="insufficient_scope", scope="${ADMIN_SCOPE}"`);
      throw new Forbidden(`the ${ADMIN_SCOPE} scope is required`);
    }
    ctx.state.admin = { clientId: String(payload.client_id), tenantId: SYSTEM_TENANT, scopes } satisfies AdminPrincipal;
    await next();
  };
}
