import { CLOCK_TOLERANCE_SECONDS, MAX_ASSERTION_LIFETIME_SECONDS } from './constants.js';
import { MAX_JWT_LENGTH, exceedsJwtLength } from '../shared/jwt-size.js';
import { BulkheadError } from '../shared/errors.js';

/** Client assertion ids are single-use and remembered; longer ones are refused. */
export const MAX_ASSERTION_JTI_LENGTH = 256;

/**
 * What Bulkhead requires of an RFC 7523 client assertion beyond its signature, wherever a
 * client authenticates with one (the token endpoint through oidc-provider, introspection and
 * revocation directly): the audience is exactly this issuer, it lives at most
 * MAX_ASSERTION_LIFETIME_SECONDS, and its `jti` is a bounded string. Returns why an assertion
 * is refused, or undefined; the caller then marks {@link assertionReplayId} used.
 */
export function assertionProblem(claims: { aud?: unknown; exp?: unknown; jti?: unknown }, issuer: string, now = Date.now()): string | undefined {
  if (claims.aud !== issuer) return 'client assertion audience must be the issuer identifier';
  if (typeof claims.exp !== 'number' || claims.exp - Math.floor(now / 1000) > MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_TOLERANCE_SECONDS) {
    return `client assertion must expire within ${MAX_ASSERTION_LIFETIME_SECONDS} seconds`;
  }
  if (typeof claims.jti !== 'string' || claims.jti.length === 0 || claims.jti.length > MAX_ASSERTION_JTI_LENGTH) {
    return `client assertion jti must be a string of at most ${MAX_ASSERTION_JTI_LENGTH} characters`;
  }
  return undefined;
}

/** A client assertion longer than the broker-wide JWT bound: 401 `invalid_client` (RFC 7523 §3.2). */
export class OversizeAssertion extends BulkheadError {
  constructor() {
    super(401, 'invalid_client', `client_assertion must not exceed ${MAX_JWT_LENGTH} characters`);
  }
}

/**
 * Refuses a client assertion longer than {@link MAX_JWT_LENGTH} before anything decodes it, at
 * every endpoint that accepts one. The caller adds the 401's challenge.
 *
 * @throws {OversizeAssertion}
 */
export function refuseOversizeAssertion(assertion: string | null | undefined): void {
  if (assertion && exceedsJwtLength(assertion)) throw new OversizeAssertion();
}

/** The one-time-use id of an assertion, the same at every endpoint of the tenant. */
export function assertionReplayId(tenantId: string, clientId: string, jti: string): string {
  return `assertion\0${tenantId}\0${clientId}\0${jti}`;
}

/** How long an assertion's id must be remembered (epoch seconds). */
export const assertionReplayUntil = (exp: number): number => exp + CLOCK_TOLERANCE_SECONDS;
