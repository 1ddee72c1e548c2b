/**
 * OAuth 2.0 Protected Resource Metadata (RFC 9728): how a client (an MCP client, an agent)
 * learns from the resource itself which tenant issuer protects it, which scopes exist, and
 * whether tokens must be DPoP-bound.
 */
import type { Middleware, ParameterizedContext } from 'koa';
import { PROOF_ALGORITHMS } from './dpop.js';
import { isTenantId, issuerFor, normaliseBrokerUrl } from './rules.js';

/** RFC 9728 §3: the well-known path; a resource with a path puts it after this one (§3.1). */
export const PROTECTED_RESOURCE_WELL_KNOWN = '/.well-known/oauth-protected-resource';

export interface ProtectedResourceMetadataOptions {
  /** The resource identifier: the `aud` its tokens carry, as registered in the tenant. */
  resource: string;
  brokerUrl: string;
  /** The tenant whose issuer protects this resource. */
  tenant: string;
  /** Scopes this resource understands (`scopes_supported`). */
  scopes?: readonly string[];
  /** Whether this resource accepts DPoP (`true`), or requires DPoP-bound tokens (`{ required: true }`). */
  dpop?: boolean | { required?: boolean };
  /** Human-readable name (`resource_name`). */
  resourceName?: string;
}

/** The RFC 9728 §2 members Bulkhead's resources use. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported?: string[];
  bearer_methods_supported: string[];
  resource_name?: string;
  dpop_signing_alg_values_supported?: string[];
  dpop_bound_access_tokens_required?: boolean;
}

/**
 * The metadata document for one resource of one tenant.
 *
 * @example
 * protectedResourceMetadata({ resource: 'https://api.example/tenants/acme/tickets', brokerUrl: 'https://bulkhead.example', tenant: 'acme', scopes: ['tickets:read'] })
 * // { resource: 'https://api.example/tenants/acme/tickets', authorization_servers: ['https://bulkhead.example/t/acme'],
 * //   scopes_supported: ['tickets:read'], bearer_methods_supported: ['header'] }
 */
export function protectedResourceMetadata(options: ProtectedResourceMetadataOptions): ProtectedResourceMetadata {
  if (!isTenantId(options.tenant)) throw new TypeError(`tenant ${options.tenant} is not a valid tenant id`);
  const dpop = options.dpop === undefined || options.dpop === false ? undefined : options.dpop === true ? {} : options.dpop;
  return {
    resource: options.resource,
    authorization_servers: [issuerFor(normaliseBrokerUrl(options.brokerUrl), options.tenant)],
    ...(options.scopes ? { scopes_supported: [...options.scopes] } : {}),
    // Only the Authorization header: query and body tokens are refused by requireToken.
    bearer_methods_supported: ['header'],
    ...(options.resourceName ? { resource_name: options.resourceName } : {}),
    ...(dpop
      ? { dpop_signing_alg_values_supported: [...PROOF_ALGORITHMS], dpop_bound_access_tokens_required: dpop.required ?? false }
      : {}),
  };
}

/**
 * RFC 9728 §3.1: the metadata URL of a resource identifier, the well-known path inserted
 * between the host and the resource's path (a lone `/` path dropped).
 *
 * @example
 * protectedResourceMetadataUrl('https://api.example/tenants/acme/tickets')
 * // 'https://api.example/.well-known/oauth-protected-resource/tenants/acme/tickets'
 */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}${PROTECTED_RESOURCE_WELL_KNOWN}${path}${url.search}`;
}

type Ctx = ParameterizedContext;

export interface ServeProtectedResourceMetadataOptions {
  brokerUrl: string;
  /**
   * Which tenant (and scopes, DPoP) protects a resource, or undefined for an unknown one (404).
   * `resource` is derived from the request (RFC 9728 §3.1 reversed): the public origin, plus the
   * path after the well-known prefix. Return `resource` too if yours is spelled differently
   * (e.g. with a trailing slash); §3.3 says clients check it.
   */
  resolve: (resource: string, ctx: Ctx) =>
    | (Omit<ProtectedResourceMetadataOptions, 'brokerUrl' | 'resource'> & { resource?: string })
    | undefined
    | Promise<(Omit<ProtectedResourceMetadataOptions, 'brokerUrl' | 'resource'> & { resource?: string }) | undefined>;
  /** The public origin of this resource server. Default `${ctx.protocol}://${ctx.host}` (honours `app.proxy`). */
  origin?: string;
  /** `Cache-Control: max-age`, in seconds. Default 300. */
  maxAgeSeconds?: number;
}

/**
 * Koa middleware serving RFC 9728 metadata at `/.well-known/oauth-protected-resource` and at
 * its path-suffixed forms (`/.well-known/oauth-protected-resource/tenants/acme/tickets`).
 * Other paths pass through.
 *
 * @example
 * app.use(serveProtectedResourceMetadata({
 *   brokerUrl,
 *   resolve: (resource) => {
 *     const m = /\/tenants\/([^/]+)\/tickets$/.exec(new URL(resource).pathname);
 *     return m ? { tenant: m[1]!, scopes: ['tickets:read'] } : undefined;
 *   },
 * }));
 */
export function serveProtectedResourceMetadata(options: ServeProtectedResourceMetadataOptions): Middleware {
  const brokerUrl = normaliseBrokerUrl(options.brokerUrl);
  const maxAge = options.maxAgeSeconds ?? 300;
  return async function protectedResourceMetadataEndpoint(ctx, next) {
    const path = ctx.path;
    if (path !== PROTECTED_RESOURCE_WELL_KNOWN && !path.startsWith(`${PROTECTED_RESOURCE_WELL_KNOWN}/`)) return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      return;
    }
    const origin = (options.origin ?? `${ctx.protocol}://${ctx.host}`).replace(/\/+$/, '');
    const resource = `${origin}${path.slice(PROTECTED_RESOURCE_WELL_KNOWN.length)}`;
    const found = await options.resolve(resource, ctx);
    if (!found || !isTenantId(found.tenant)) {
      ctx.status = 404;
      ctx.body = { error: 'not_found', error_description: 'no protected resource here' };
      return;
    }
    ctx.set('Cache-Control', `public, max-age=${maxAge}`);
    ctx.body = protectedResourceMetadata({ ...found, resource: found.resource ?? resource, brokerUrl });
  };
}
