/**
 * `bulkhead/pep`: the policy enforcement point for resource servers that accept Bulkhead
 * access tokens. It makes the tenant boundary something a route states, not something it may
 * forget: the tenant comes from the route, and a token of any other tenant is refused by its
 * issuer, its keys and its `tenant_id`.
 *
 * - {@link createVerifier}: verifies a token for a tenant (signature against the tenant's JWKS,
 *   exact `iss`, `typ: at+jwt`, `aud`, `exp`/`nbf`, `tenant_id`, scopes, DPoP binding, and
 *   optionally RFC 7662 introspection). Refusals are {@link PepError}s with stable codes.
 * - {@link challenge}: a refusal as an HTTP answer (RFC 6750 §3 / RFC 9449 §7.1).
 * - {@link requireToken}: the same as Koa middleware; claims land on `ctx.state.token`.
 * - {@link protectedResourceMetadata} and {@link serveProtectedResourceMetadata}: RFC 9728.
 *
 * @example
 * import Koa from 'koa';
 * import Router from '@koa/router';
 * import { createVerifier, requireToken, serveProtectedResourceMetadata } from 'bulkhead/pep';
 *
 * const brokerUrl = 'https://bulkhead.example';
 * const verifier = createVerifier({
 *   brokerUrl,
 *   // each tenant registered this API as its own resource indicator
 *   audience: (tenant) => `https://tickets.example/tenants/${tenant}/tickets`,
 * });
 * const router = new Router();
 * router.get('/tenants/:tenant/tickets',
 *   requireToken({ verifier, tenantFrom: (ctx) => ctx.params?.tenant, scopes: ['tickets:read'] }),
 *   (ctx) => {
 *     // ctx.state.tenant is the route's tenant, and the token is that tenant's
 *     ctx.body = { tenant: ctx.state.tenant, client: ctx.state.token.client_id, tickets: [] };
 *   });
 * new Koa()
 *   .use(serveProtectedResourceMetadata({
 *     brokerUrl,
 *     resolve: (resource) => {
 *       const m = /^\/tenants\/([^/]+)\/tickets$/.exec(new URL(resource).pathname);
 *       return m ? { tenant: m[1]!, scopes: ['tickets:read'], dpop: true } : undefined;
 *     },
 *   }))
 *   .use(router.routes())
 *   .listen(3000);
 *
 * @packageDocumentation
 */
export {
  createVerifier,
  type AccessTokenClaims,
  type ActClaim,
  type Verifier,
  type VerifierOptions,
  type VerifyOptions,
  type VerifiedToken,
} from './verifier.js';
export { PepError, challenge, type PepErrorCode, type PepErrorOptions, type Challenge, type ChallengeOptions } from './errors.js';
export { requireToken, type RequireTokenOptions, type TokenState, type PepContext } from './koa.js';
export {
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  serveProtectedResourceMetadata,
  PROTECTED_RESOURCE_WELL_KNOWN,
  type ProtectedResourceMetadata,
  type ProtectedResourceMetadataOptions,
  type ServeProtectedResourceMetadataOptions,
} from './metadata.js';
export { PROOF_ALGORITHMS as DPOP_PROOF_ALGORITHMS, type DpopRequest } from './dpop.js';
export type { JwksOptions } from './jwks.js';
export type { IntrospectionOptions } from './introspection.js';
export { memoryReplayStore, type ReplayStore } from '../shared/replay.js';
export { DEFAULT_ALGORITHMS, issuerFor } from './rules.js';
