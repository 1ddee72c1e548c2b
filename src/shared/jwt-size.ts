/**
 * The one size bound on every JWT the broker parses (issue 5: "JWT size limits enforced before
 * parsing work"): subject and actor tokens, client assertions (token endpoint, introspection,
 * revocation, and the rate limiter's look at the claimed client), DPoP proofs, admin bearer
 * tokens and the `token` of introspection and revocation. Checked on the raw string, before any
 * base64 decoding, JSON parsing or signature work.
 *
 * 8 KiB: Bulkhead's own access tokens are well under 2 KiB even with a full `act` chain and
 * lineage; an RS512 client assertion or DPoP proof with a 4096-bit key embedded is under 3 KiB.
 * Anything longer is no token anyone here needs to send, and parsing it is work for nothing.
 */
export const MAX_JWT_LENGTH = 8192;

/** Whether a presented JWT is longer than {@link MAX_JWT_LENGTH} (refuse it without parsing). */
export function exceedsJwtLength(value: string): boolean {
  return value.length > MAX_JWT_LENGTH;
}
