/**
 * Why a request was refused, as a stable code (like jose's `ERR_JWT_EXPIRED`), and how that
 * refusal is said over HTTP: RFC 6750 §3 (`Bearer`) or RFC 9449 §7.1 (`DPoP`) challenges.
 */

/** Every reason the policy enforcement point refuses a request. Callers `switch` on these. */
export type PepErrorCode =
  /** No access token in the Authorization header (RFC 6750 §3.1: the challenge carries no error). */
  | 'ERR_PEP_TOKEN_MISSING'
  /** A malformed request: several Authorization headers, a token in the query string or body. */
  | 'ERR_PEP_INVALID_REQUEST'
  /** Malformed, badly signed, wrong `typ`, disallowed `alg`, unknown `kid`, missing claims. */
  | 'ERR_PEP_INVALID_TOKEN'
  /** `iss` is not exactly this tenant's issuer. */
  | 'ERR_PEP_WRONG_ISSUER'
  /** `aud` does not include this resource. */
  | 'ERR_PEP_WRONG_AUDIENCE'
  /** The token belongs to another tenant (its issuer or its `tenant_id`), or the tenant is unknown. */
  | 'ERR_PEP_WRONG_TENANT'
  | 'ERR_PEP_EXPIRED'
  /** `nbf` (or `iat`) is in the future beyond the clock tolerance. */
  | 'ERR_PEP_NOT_YET_VALID'
  /** Valid token, but it lacks one of the scopes this request needs (403). */
  | 'ERR_PEP_INSUFFICIENT_SCOPE'
  /** A DPoP-bound token presented as Bearer, or an unbound token where DPoP is required. */
  | 'ERR_PEP_DPOP_REQUIRED'
  /** An unbound (Bearer) token presented with the DPoP scheme. */
  | 'ERR_PEP_TOKEN_NOT_BOUND'
  /** The DPoP proof is missing, malformed, replayed, or does not match the token or the request. */
  | 'ERR_PEP_DPOP_INVALID'
  /** The authorization server says the token is no longer active (RFC 7662). */
  | 'ERR_PEP_REVOKED'
  /** The tenant's JWKS or introspection endpoint could not be reached: fail closed, retry later (503). */
  | 'ERR_PEP_UNAVAILABLE';

type Scheme = 'Bearer' | 'DPoP';

interface CodeSpec {
  status: number;
  /** The RFC 6750 §3.1 / RFC 9449 §7.1 error code, absent when the request carried no token. */
  error?: string;
}

const SPEC: Record<PepErrorCode, CodeSpec> = {
  ERR_PEP_TOKEN_MISSING: { status: 401 },
  ERR_PEP_INVALID_REQUEST: { status: 400, error: 'invalid_request' },
  ERR_PEP_INVALID_TOKEN: { status: 401, error: 'invalid_token' },
  ERR_PEP_WRONG_ISSUER: { status: 401, error: 'invalid_token' },
  ERR_PEP_WRONG_AUDIENCE: { status: 401, error: 'invalid_token' },
  ERR_PEP_WRONG_TENANT: { status: 401, error: 'invalid_token' },
  ERR_PEP_EXPIRED: { status: 401, error: 'invalid_token' },
  ERR_PEP_NOT_YET_VALID: { status: 401, error: 'invalid_token' },
  ERR_PEP_INSUFFICIENT_SCOPE: { status: 403, error: 'insufficient_scope' },
  ERR_PEP_DPOP_REQUIRED: { status: 401, error: 'invalid_token' },
  ERR_PEP_TOKEN_NOT_BOUND: { status: 401, error: 'invalid_token' },
  ERR_PEP_DPOP_INVALID: { status: 401, error: 'invalid_dpop_proof' },
  ERR_PEP_REVOKED: { status: 401, error: 'invalid_token' },
  ERR_PEP_UNAVAILABLE: { status: 503, error: 'temporarily_unavailable' },
};

export interface PepErrorOptions {
  /** The scheme the challenge is for: the one the request used, or `DPoP` when DPoP is what it lacked. */
  scheme?: Scheme;
  /** The scopes the request needed (the `scope` attribute of an `insufficient_scope` challenge). */
  scope?: readonly string[];
  /** DPoP proof algorithms this resource accepts; when set, the challenge offers DPoP (RFC 9449 §7.1). */
  dpopAlgs?: readonly string[];
  cause?: unknown;
}

/**
 * A refused request. `message` is client-safe: it never contains the token, its claims or the
 * proof. `cause` (for logs only) may hold the underlying jose or DPoP error.
 */
export class PepError extends Error {
  override readonly name = 'PepError';
  /** HTTP status: 401, 403 (insufficient scope), 400 (invalid request) or 503 (unavailable). */
  readonly status: number;
  /** The RFC error code (`invalid_token`, `insufficient_scope`, ...), absent for a missing token. */
  readonly error: string | undefined;
  readonly scheme: Scheme;
  readonly scope: readonly string[] | undefined;
  readonly dpopAlgs: readonly string[] | undefined;

  constructor(readonly code: PepErrorCode, message: string, options: PepErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const spec = SPEC[code];
    this.status = spec.status;
    this.error = spec.error;
    this.scheme = options.scheme ?? 'Bearer';
    this.scope = options.scope;
    this.dpopAlgs = options.dpopAlgs;
  }
}

export interface ChallengeOptions {
  /** The `realm` auth-param (RFC 6750 §3), e.g. the API's name or its resource identifier. */
  realm?: string;
  /** RFC 9728 §5.1: the URL of this resource's protected resource metadata. */
  resourceMetadata?: string;
}

export interface Challenge {
  status: number;
  headers: Record<string, string>;
  body: { error?: string; error_description: string; scope?: string };
}

/** RFC 6750 §3: error_description and scope are limited to %x20-21 / %x23-5B / %x5D-7E. */
function quoted(value: string): string {
  return `"${value.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '')}"`;
}

function authParams(pairs: Array<[string, string | undefined]>): string {
  return pairs.filter((p): p is [string, string] => p[1] !== undefined).map(([k, v]) => `${k}=${quoted(v)}`).join(', ');
}

/**
 * The HTTP answer for a refusal: status, `WWW-Authenticate` (RFC 6750 §3, or RFC 9449 §7.1 for
 * DPoP), and a JSON body with the same error. A request without a token gets a challenge
 * without an error code (RFC 6750 §3.1); 503 gets `Retry-After` and no challenge.
 *
 * @example
 * try {
 *   await verifier.verify(token, { tenant: 'acme', scopes: ['tickets:read'] });
 * } catch (err) {
 *   if (!(err instanceof PepError)) throw err;
 *   const { status, headers, body } = challenge(err, { realm: 'tickets' });
 *   res.writeHead(status, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(body));
 * }
 */
export function challenge(err: PepError, options: ChallengeOptions = {}): Challenge {
  const body: Challenge['body'] = {
    ...(err.error ? { error: err.error } : {}),
    error_description: err.message,
    ...(err.scope?.length ? { scope: err.scope.join(' ') } : {}),
  };
  const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
  if (err.status === 503) return { status: err.status, headers: { ...headers, 'Retry-After': '5' }, body };

  const describe = err.code !== 'ERR_PEP_TOKEN_MISSING';
  const params = authParams([
    ['realm', options.realm],
    ['error', err.error],
    ['error_description', describe ? err.message : undefined],
    ['scope', err.scope?.length ? err.scope.join(' ') : undefined],
    ['resource_metadata', options.resourceMetadata],
  ]);
  const algs = err.dpopAlgs?.length ? authParams([['algs', err.dpopAlgs.join(' ')]]) : undefined;
  let value: string;
  if (err.scheme === 'DPoP') {
    value = `DPoP ${[params, algs].filter(Boolean).join(', ')}`.trimEnd();
  } else {
    // The Bearer challenge, and DPoP offered beside it when this resource accepts DPoP.
    value = [`Bearer${params ? ` ${params}` : ''}`, ...(algs ? [`DPoP ${algs}`] : [])].join(', ');
  }
  headers['WWW-Authenticate'] = value;
  return { status: err.status, headers, body };
}
