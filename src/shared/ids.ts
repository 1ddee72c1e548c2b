import { randomBytes } from 'node:crypto';

/** Tenant ids: DNS-label shaped, so they fit in URLs and hostnames. `system` is reserved. */
export const TENANT_ID = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const SYSTEM_TENANT = 'system';

/** A scope token per RFC 6749 §3.3 (NQCHAR without space, quote or backslash). */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/;

/**
 * An unguessable identifier: 128 random bits, base64url, behind a readable prefix.
 *
 * @example
 * randomId('cl') // 'cl_Qm9vdHN0cmFwcGVkIGl0'
 */
export function randomId(prefix: string, bytes = 16): string {
  return `${prefix}_${randomBytes(bytes).toString('base64url')}`;
}

/** A client secret: 256 random bits, base64url, with a prefix that secret scanners can match. */
export function newClientSecret(): string {
  return `bhs_${randomBytes(32).toString('base64url')}`;
}

/**
 * The shape any client, agent or other Bulkhead identifier can have: printable ASCII, at most 64
 * characters (they are minted as `prefix_base64url`). Lookups refuse anything else before a query
 * is made: a NUL byte, for one, is not a missing client but a database error.
 */
export const LOOKUP_ID = /^[\x21-\x7e]{1,64}$/;
