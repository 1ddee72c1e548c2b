/**
 * The verifier: everything a resource server must check before it trusts a Bulkhead access
 * token, in one call, in this order:
 *
 * 1. the tenant the request is for (from the resource server, never from the token);
 * 2. cheap checks on the unverified token, so garbage never causes a JWKS fetch: size, `alg` in
 *    the allowlist (asymmetric only), `typ` = `at+jwt` (RFC 9068 §4), `iss` exactly the tenant's
 *    issuer;
 * 3. the signature against that tenant's JWKS, and `iss`, `aud`, `typ`, `exp`/`nbf` (with a
 *    small clock tolerance) and the RFC 9068 §2.2 required claims, by jose;
 * 4. `tenant_id` = the request's tenant (the second, logical half of the tenant boundary);
 * 5. the DPoP binding (RFC 9449 §7): scheme matches `cnf.jkt`, proof from that key, `ath`,
 *    `htm`, `htu`, single use;
 * 6. optionally, that the issuer still calls the token active (RFC 7662);
 * 7. every required scope.
 */
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { memoryReplayStore, type ReplayStore } from '../shared/replay.js';
import { PepError, type PepErrorCode } from './errors.js';
import { checkBinding, PROOF_ALGORITHMS, type DpopRequest } from './dpop.js';
import { introspect, type IntrospectionOptions } from './introspection.js';
import { JwksFetchError, tenantKeySets, type JwksOptions } from './jwks.js';
import {
  ASYMMETRIC_ALGORITHMS, DEFAULT_ALGORITHMS, grantedScopes, isTenantId, issuerFor, missingScopes, normaliseBrokerUrl, tenantOfIssuer,
} from './rules.js';

/** RFC 8693 §4.1: the acting party, with prior actors nested. */
export interface ActClaim {
  sub: string;
  iss?: string;
  act?: ActClaim;
  [claim: string]: unknown;
}

/** The claims of a verified Bulkhead access token (RFC 9068 §2.2 plus Bulkhead's `tenant_id`). */
export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  tenant_id: string;
  scope?: string;
  act?: ActClaim;
  cnf?: { jkt: string };
}

export interface VerifierOptions<C = unknown> {
  /** The broker's public URL (its `PUBLIC_URL`); tenant T's issuer is `${brokerUrl}/t/T`. */
  brokerUrl: string;
  /** A resource server for one tenant: every token must be that tenant's. */
  tenant?: string;
  /**
   * A multi-tenant resource server: the tenant the request is for, from the `context` each
   * `verify` call passes (e.g. the path's `:tenant`). Never read from the token.
   */
  tenantFrom?: (context: C) => string | undefined;
  /** This resource's identifier, which `aud` must include; per tenant when a function. */
  audience: string | ((tenant: string) => string);
  /** Accepted token `alg`s; asymmetric only. Default ES256, EdDSA, RS256, PS256. */
  algorithms?: readonly string[];
  /** Allowed clock skew for `exp`/`nbf`/`iat` and DPoP proof `iat`, in seconds. Default 5. */
  clockToleranceSeconds?: number;
  /** The fetch used for JWKS and introspection (for proxies, custom agents, tests). Default global fetch. */
  fetch?: typeof fetch;
  /** JWKS caching and fetch limits (see {@link JwksOptions}). */
  jwks?: JwksOptions;
  dpop?: {
    /** Refuse tokens that are not DPoP-bound (RFC 9728 `dpop_bound_access_tokens_required`). Default false. */
    required?: boolean;
    /**
     * Where used proof `jti`s are remembered. Default: in memory, for this verifier. Several
     * replicas of a resource server need a shared store (the same contract, e.g. on Redis).
     */
    replay?: ReplayStore;
    /** How old a proof may be, in seconds. Default 60. */
    maxAgeSeconds?: number;
  };
  /** Also ask the tenant's issuer whether each token is still active (RFC 7662). Off by default. */
  introspection?: IntrospectionOptions;
}

export interface VerifyOptions<C = unknown> {
  /** Scopes the request needs; the token must carry all of them. */
  scopes?: readonly string[];
  /** Present when the request used the `DPoP` scheme; absent for `Bearer`. */
  dpop?: DpopRequest;
  /** The tenant the request is for; must agree with the verifier's `tenant` / `tenantFrom`. */
  tenant?: string;
  /** Passed to `tenantFrom`. */
  context?: C;
}

export interface VerifiedToken {
  claims: AccessTokenClaims;
  header: JWTHeaderParameters;
  tenant: string;
  scopes: string[];
  /** The DPoP key thumbprint the token is bound to, when it was presented with a valid proof. */
  jkt?: string;
  /** The RFC 7662 answer, when introspection is configured. */
  introspection?: Record<string, unknown>;
}

export interface Verifier<C = unknown> {
  /** Verifies a token for one request; resolves with its claims or rejects with a {@link PepError}. */
  verify(token: string | undefined, options?: VerifyOptions<C>): Promise<VerifiedToken>;
  /** Whether this resource refuses tokens that are not DPoP-bound. */
  readonly dpopRequired: boolean;
  /** Proof algorithms offered in DPoP challenges (RFC 9449 §7.1 `algs`). */
  readonly dpopAlgorithms: readonly string[];
}

/** Bulkhead's tokens are far smaller; the limit keeps a hostile header from costing anything. */
const MAX_TOKEN_LENGTH = 16_384;
/** RFC 9068 §2.2, plus `tenant_id`, which the tenant boundary is checked against. */
const REQUIRED_CLAIMS = ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti', 'tenant_id'];

/** jose compares `typ` without `application/` and case-insensitively (RFC 7515 §4.1.9); so do we. */
const normaliseTyp = (typ: unknown) => (typeof typ === 'string' ? typ.toLowerCase().replace(/^application\//, '') : undefined);

function joseCode(err: unknown): { code: PepErrorCode; message: string } {
  if (err instanceof JwksFetchError) {
    return err.reason === 'not_found'
      ? { code: 'ERR_PEP_WRONG_TENANT', message: 'no such tenant' }
      : { code: 'ERR_PEP_UNAVAILABLE', message: 'the tenant\'s signing keys could not be fetched' };
  }
  if (err instanceof errors.JWTExpired) return { code: 'ERR_PEP_EXPIRED', message: 'the access token has expired' };
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
      case 'iat':
        return err.reason === 'check_failed'
          ? { code: 'ERR_PEP_NOT_YET_VALID', message: 'the access token is not valid yet' }
          : { code: 'ERR_PEP_INVALID_TOKEN', message: `the access token's ${err.claim} claim is invalid` };
      case 'aud':
        return { code: 'ERR_PEP_WRONG_AUDIENCE', message: 'the access token is not meant for this resource' };
      case 'iss':
        return { code: 'ERR_PEP_WRONG_ISSUER', message: 'the access token has the wrong issuer' };
      case 'typ':
        return { code: 'ERR_PEP_INVALID_TOKEN', message: 'the access token must have typ at+jwt' };
      default:
        return { code: 'ERR_PEP_INVALID_TOKEN', message: 'the access token lacks a required claim' };
    }
  }
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) {
    return { code: 'ERR_PEP_UNAVAILABLE', message: 'the tenant\'s signing keys could not be fetched' };
  }
  if (err instanceof errors.JWKSNoMatchingKey) return { code: 'ERR_PEP_INVALID_TOKEN', message: 'the access token was not signed by a key of this tenant' };
  if (err instanceof errors.JWSSignatureVerificationFailed) return { code: 'ERR_PEP_INVALID_TOKEN', message: 'the access token signature is invalid' };
  if (err instanceof errors.JOSEError) {
    // jose's own failure to fetch/parse the JWKS carries no subclass; everything else is the token.
    if (err.code === 'ERR_JOSE_GENERIC') return { code: 'ERR_PEP_UNAVAILABLE', message: 'the tenant\'s signing keys could not be fetched' };
    return { code: 'ERR_PEP_INVALID_TOKEN', message: 'the access token is invalid' };
  }
  return { code: 'ERR_PEP_UNAVAILABLE', message: 'the access token could not be verified' };
}

/**
 * Creates a verifier for Bulkhead access tokens at one resource (see the module doc for the
 * checks). Configuration errors (a symmetric algorithm, an invalid broker URL) throw at once.
 */
export function createVerifier<C = unknown>(options: VerifierOptions<C>): Verifier<C> {
  const brokerUrl = normaliseBrokerUrl(options.brokerUrl);
  const algorithms = [...(options.algorithms ?? DEFAULT_ALGORITHMS)];
  if (algorithms.length === 0) throw new TypeError('algorithms must not be empty');
  for (const alg of algorithms) {
    if (!ASYMMETRIC_ALGORITHMS.includes(alg)) throw new TypeError(`algorithm ${alg} is not an allowed asymmetric JWS algorithm`);
  }
  if (options.tenant !== undefined && !isTenantId(options.tenant)) throw new TypeError(`tenant ${options.tenant} is not a valid tenant id`);
  const clockTolerance = options.clockToleranceSeconds ?? 5;
  if (!(clockTolerance >= 0 && clockTolerance <= 300)) throw new TypeError('clockToleranceSeconds must be between 0 and 300');
  const fetchImpl = options.fetch ?? fetch;
  const keySets = tenantKeySets(options.jwks, fetchImpl);
  const replay = options.dpop?.replay ?? memoryReplayStore();
  const dpopRequired = options.dpop?.required ?? false;
  const dpopMaxAge = options.dpop?.maxAgeSeconds ?? 60;

  function tenantFor(verify: VerifyOptions<C>, refuse: (code: PepErrorCode, message: string) => PepError): string {
    const claimed: Array<string | undefined> = [options.tenant, verify.tenant];
    if (options.tenantFrom) {
      const fromContext = options.tenantFrom(verify.context as C);
      if (fromContext === undefined) throw refuse('ERR_PEP_WRONG_TENANT', 'this request is for no tenant');
      claimed.push(fromContext);
    }
    const named = claimed.filter((t): t is string => t !== undefined);
    if (named.length === 0) throw new TypeError('verify needs a tenant: configure tenant or tenantFrom, or pass { tenant }');
    const tenant = named[0]!;
    if (named.some((t) => t !== tenant)) throw refuse('ERR_PEP_WRONG_TENANT', 'the request names conflicting tenants');
    if (!isTenantId(tenant)) throw refuse('ERR_PEP_WRONG_TENANT', 'no such tenant');
    return tenant;
  }

  async function verify(token: string | undefined, verifyOptions: VerifyOptions<C> = {}): Promise<VerifiedToken> {
    const required = verifyOptions.scopes ?? [];
    const challengeScheme = verifyOptions.dpop || dpopRequired ? 'DPoP' : 'Bearer';
    const refuse = (code: PepErrorCode, message: string, cause?: unknown) =>
      new PepError(code, message, {
        scheme: challengeScheme,
        dpopAlgs: PROOF_ALGORITHMS,
        ...(code === 'ERR_PEP_INSUFFICIENT_SCOPE' ? { scope: required } : {}),
        ...(cause === undefined ? {} : { cause }),
      });

    const tenant = tenantFor(verifyOptions, refuse);
    if (typeof token !== 'string' || token.length === 0) throw refuse('ERR_PEP_TOKEN_MISSING', 'an access token is required');
    if (token.length > MAX_TOKEN_LENGTH) throw refuse('ERR_PEP_INVALID_TOKEN', 'the access token is too large');

    const issuer = issuerFor(brokerUrl, tenant);
    const audience = typeof options.audience === 'function' ? options.audience(tenant) : options.audience;

    // Unverified, and only to refuse early: nothing read here is trusted or returned.
    let unverifiedHeader: JWTHeaderParameters;
    let unverified: JWTPayload;
    try {
      unverifiedHeader = decodeProtectedHeader(token) as JWTHeaderParameters;
      unverified = decodeJwt(token);
    } catch (cause) {
      throw refuse('ERR_PEP_INVALID_TOKEN', 'the access token is malformed', cause);
    }
    if (typeof unverifiedHeader.alg !== 'string' || !algorithms.includes(unverifiedHeader.alg)) {
      throw refuse('ERR_PEP_INVALID_TOKEN', 'the access token alg is not allowed');
    }
    if (normaliseTyp(unverifiedHeader.typ) !== 'at+jwt') throw refuse('ERR_PEP_INVALID_TOKEN', 'the access token must have typ at+jwt');
    if (unverified.iss !== issuer) {
      const other = tenantOfIssuer(brokerUrl, unverified.iss);
      throw other !== undefined && other !== tenant
        ? refuse('ERR_PEP_WRONG_TENANT', 'the access token belongs to another tenant')
        : refuse('ERR_PEP_WRONG_ISSUER', 'the access token has the wrong issuer');
    }

    let claims: AccessTokenClaims;
    let header: JWTHeaderParameters;
    try {
      const verified = await jwtVerify(token, keySets.forIssuer(issuer), {
        issuer,
        audience,
        algorithms,
        typ: 'at+jwt',
        clockTolerance,
        requiredClaims: REQUIRED_CLAIMS,
      });
      claims = verified.payload as AccessTokenClaims;
      header = verified.protectedHeader;
    } catch (err) {
      const { code, message } = joseCode(err);
      throw refuse(code, message, err);
    }
    if (typeof claims.client_id !== 'string' || typeof claims.jti !== 'string' || typeof claims.sub !== 'string') {
      throw refuse('ERR_PEP_INVALID_TOKEN', 'the access token lacks a required claim');
    }
    // The logical half of the tenant boundary: a key and issuer are not enough, the token must say so too.
    if (claims.tenant_id !== tenant) throw refuse('ERR_PEP_WRONG_TENANT', 'the access token belongs to another tenant');

    const jkt = await checkBinding({
      token,
      cnf: claims.cnf,
      request: verifyOptions.dpop,
      required: dpopRequired,
      replay,
      replayScope: `pep\0${tenant}`,
      maxAgeSeconds: dpopMaxAge,
      clockToleranceSeconds: clockTolerance,
    });

    const introspection = options.introspection
      ? await introspect(token, issuer, options.introspection, fetchImpl, { scheme: challengeScheme, dpopAlgs: PROOF_ALGORITHMS })
      : undefined;

    if (missingScopes(claims.scope, required).length) throw refuse('ERR_PEP_INSUFFICIENT_SCOPE', 'the access token lacks a required scope');

    return {
      claims,
      header,
      tenant,
      scopes: grantedScopes(claims.scope),
      ...(jkt ? { jkt } : {}),
      ...(introspection ? { introspection } : {}),
    };
  }

  return { verify, dpopRequired, dpopAlgorithms: PROOF_ALGORITHMS };
}
