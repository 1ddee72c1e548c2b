/**
 * The enforcement point's decisions that need no I/O, as pure functions with table tests
 * (test/pep/rules.test.ts): which issuer a tenant has, which tenant an issuer names, which
 * required scopes a token lacks, and what an Authorization header presents.
 */
import { TENANT_ID } from '../shared/ids.js';
import { PepError } from './errors.js';

/** Access token algorithms accepted by default: Bulkhead's key algorithms (asymmetric only). */
export const DEFAULT_ALGORITHMS: readonly string[] = Object.freeze(['ES256', 'EdDSA', 'RS256', 'PS256']);

/** Every algorithm a caller may allow: asymmetric signatures only, never `none` or a MAC. */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = Object.freeze([
  'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
]);

/** A tenant id as Bulkhead defines it (DNS-label shaped); anything else cannot have an issuer. */
export function isTenantId(value: unknown): value is string {
  return typeof value === 'string' && TENANT_ID.test(value);
}

/** The broker URL without trailing slashes; the issuer of tenant T is `${brokerUrl}/t/T`. */
export function normaliseBrokerUrl(brokerUrl: string): string {
  const url = new URL(brokerUrl);
  if (url.search || url.hash) throw new TypeError('brokerUrl must not carry a query or fragment');
  if (url.username || url.password) throw new TypeError('brokerUrl must not carry credentials');
  return url.href.replace(/\/+$/, '');
}

/** `issuerFor('https://bulkhead.example', 'acme')` → `https://bulkhead.example/t/acme`. */
export function issuerFor(brokerUrl: string, tenant: string): string {
  return `${brokerUrl}/t/${tenant}`;
}

/**
 * The tenant an issuer string names, if it is exactly one of this broker's tenant issuers
 * (no trailing slash, no extra path); otherwise undefined. Only used to tell "another tenant's
 * token" from "not a token of this broker" in the error code; never to choose the tenant.
 */
export function tenantOfIssuer(brokerUrl: string, iss: unknown): string | undefined {
  const prefix = `${brokerUrl}/t/`;
  if (typeof iss !== 'string' || !iss.startsWith(prefix)) return undefined;
  const tenant = iss.slice(prefix.length);
  return isTenantId(tenant) ? tenant : undefined;
}

/** The scopes of a `scope` claim (RFC 9068 §2.2.3: space-separated); anything else grants none. */
export function grantedScopes(scope: unknown): string[] {
  return typeof scope === 'string' ? scope.split(' ').filter(Boolean) : [];
}

/** The required scopes the token does not carry. Every required scope must be granted. */
export function missingScopes(scope: unknown, required: readonly string[]): string[] {
  const granted = new Set(grantedScopes(scope));
  return required.filter((s) => !granted.has(s));
}

export interface PresentedToken {
  scheme: 'Bearer' | 'DPoP';
  token: string;
}

/** RFC 6750 §2.1 b64token; the same syntax carries DPoP tokens (RFC 9449 §7.1). */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * What the request's Authorization header(s) present. `values` are the raw header values (one
 * per header line). No header, or a scheme other than Bearer/DPoP: undefined (no token). Several
 * headers, or a Bearer/DPoP header whose credentials are not one b64token: invalid_request.
 * Scheme names are case-insensitive (RFC 9110 §11.1).
 */
export function parseAuthorization(values: readonly string[]): PresentedToken | undefined {
  if (values.length === 0) return undefined;
  if (values.length > 1) throw new PepError('ERR_PEP_INVALID_REQUEST', 'more than one Authorization header');
  const value = values[0]!;
  const space = value.indexOf(' ');
  const name = (space === -1 ? value : value.slice(0, space)).toLowerCase();
  const scheme = name === 'bearer' ? 'Bearer' : name === 'dpop' ? 'DPoP' : undefined;
  if (!scheme) return undefined;
  const token = space === -1 ? '' : value.slice(space + 1).replace(/^ +/, '');
  if (!B64TOKEN.test(token)) throw new PepError('ERR_PEP_INVALID_REQUEST', 'malformed Authorization header', { scheme });
  return { scheme, token };
}
