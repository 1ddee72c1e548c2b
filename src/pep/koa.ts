/**
 * `requireToken`: the Koa middleware in front of a protected route. It takes the token only
 * from one Authorization header (RFC 6750 §2.1; DPoP per RFC 9449 §7.1), asks the route which
 * tenant the request is for, verifies, and either puts the claims on `ctx.state` or answers
 * with the RFC 6750 / RFC 9449 challenge and a JSON error body.
 */
import type { Middleware, ParameterizedContext } from 'koa';
import { challenge, PepError } from './errors.js';
import { parseAuthorization } from './rules.js';
import { createVerifier, type AccessTokenClaims, type Verifier, type VerifierOptions } from './verifier.js';

/** What `requireToken` puts on `ctx.state` for the routes behind it. */
export interface TokenState {
  /** The verified claims. */
  token: AccessTokenClaims;
  /** The tenant the request is for (and the token belongs to). */
  tenant: string;
  /** The DPoP key thumbprint, when the token is bound. */
  dpopJkt?: string;
}

/** The context `requireToken`'s callbacks see; `params` when mounted on a router (e.g. @koa/router). */
export type PepContext = ParameterizedContext<TokenState> & { params?: Record<string, string> };
type Ctx = PepContext;

export interface RequireTokenOptions {
  /** A shared verifier (keeps one JWKS cache and replay store across routes). */
  verifier?: Verifier<Ctx>;
  /** Or the options to create one for this middleware. */
  verifierOptions?: VerifierOptions<Ctx>;
  /** The tenant this request is for, e.g. `ctx => ctx.params?.tenant`. Never from the token. */
  tenantFrom: (ctx: Ctx) => string | undefined;
  /** Scopes the route needs (all of them). */
  scopes?: readonly string[] | ((ctx: Ctx) => readonly string[]);
  /** `realm` of the challenge. */
  realm?: string | ((ctx: Ctx) => string | undefined);
  /** RFC 9728 §5.1 `resource_metadata` of the challenge, e.g. from {@link protectedResourceMetadataUrl}. */
  resourceMetadata?: (ctx: Ctx) => string | undefined;
  /**
   * The URL the client used for this request, the DPoP proof's `htu`. Default
   * `${ctx.protocol}://${ctx.host}${ctx.path}` (behind a proxy, set `app.proxy` or give the
   * public URL here). Not `ctx.origin`, which in Koa 3 is the request's `Origin` header.
   */
  requestUrl?: (ctx: Ctx) => string;
}

/** Every value of one header as received, one per header line (node keeps only the first Authorization). */
function rawHeaderValues(ctx: Ctx, name: string): string[] {
  const raw = ctx.req.rawHeaders;
  const values: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  return values;
}

/** RFC 6750 §2.2/§2.3 allow tokens in the body and query; here they are refused (they leak into logs). */
function tokenOutsideHeader(ctx: Ctx): boolean {
  if (new URLSearchParams(ctx.querystring).has('access_token')) return true;
  const body = (ctx.request as { body?: unknown }).body;
  return typeof body === 'object' && body !== null && Object.hasOwn(body, 'access_token');
}

/**
 * Koa middleware that lets a request through only with a valid access token of the tenant the
 * route serves, carrying the route's scopes; see {@link createVerifier} for the checks.
 *
 * @example
 * router.get('/tenants/:tenant/tickets',
 *   requireToken({ verifier, tenantFrom: (ctx) => ctx.params?.tenant, scopes: ['tickets:read'] }),
 *   (ctx) => { ctx.body = tickets.list(ctx.state.tenant); });
 */
export function requireToken(options: RequireTokenOptions): Middleware<TokenState> {
  const verifier = options.verifier ?? (options.verifierOptions ? createVerifier(options.verifierOptions) : undefined);
  if (!verifier) throw new TypeError('requireToken needs a verifier or verifierOptions');
  const dpopAlgs = verifier.dpopAlgorithms;
  const scheme = verifier.dpopRequired ? 'DPoP' : 'Bearer';

  return async function requireAccessToken(ctx, next) {
    let scopes: readonly string[] = [];
    try {
      scopes = typeof options.scopes === 'function' ? options.scopes(ctx) : options.scopes ?? [];
      if (tokenOutsideHeader(ctx)) {
        throw new PepError('ERR_PEP_INVALID_REQUEST', 'access tokens are accepted only in the Authorization header', { scheme, dpopAlgs });
      }
      let presented;
      try {
        presented = parseAuthorization(rawHeaderValues(ctx, 'authorization'));
      } catch (err) {
        if (err instanceof PepError) throw new PepError(err.code, err.message, { scheme: err.scheme === 'DPoP' ? 'DPoP' : scheme, dpopAlgs });
        throw err;
      }
      if (!presented) throw new PepError('ERR_PEP_TOKEN_MISSING', 'an access token is required', { scheme, dpopAlgs });

      const tenant = options.tenantFrom(ctx);
      if (tenant === undefined) throw new PepError('ERR_PEP_WRONG_TENANT', 'this request is for no tenant', { scheme, dpopAlgs });
      const url = options.requestUrl?.(ctx) ?? `${ctx.protocol}://${ctx.host}${ctx.path}`;
      const verified = await verifier.verify(presented.token, {
        tenant,
        scopes,
        context: ctx,
        ...(presented.scheme === 'DPoP' ? { dpop: { method: ctx.method, url, proof: rawHeaderValues(ctx, 'dpop') } } : {}),
      });
      ctx.state.token = verified.claims;
      ctx.state.tenant = verified.tenant;
      if (verified.jkt) ctx.state.dpopJkt = verified.jkt;
    } catch (err) {
      if (!(err instanceof PepError)) throw err;
      const realm = typeof options.realm === 'function' ? options.realm(ctx) : options.realm;
      const resourceMetadata = options.resourceMetadata?.(ctx);
      const answer = challenge(err, { ...(realm ? { realm } : {}), ...(resourceMetadata ? { resourceMetadata } : {}) });
      ctx.status = answer.status;
      ctx.set(answer.headers);
      ctx.body = answer.body;
      return;
    }
    await next();
  };
}
