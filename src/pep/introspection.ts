/**
 * Online revocation check: RFC 7662 token introspection at the tenant's issuer, authenticated
 * as a client of that tenant with `client_secret_basic` (RFC 6749 §2.3.1). Fails closed: an
 * answer that is not a 200 JSON object is "cannot tell" (503), never "active".
 */
import { PepError, type PepErrorOptions } from './errors.js';

export interface IntrospectionOptions {
  /** A client of the tenant allowed to introspect (its `client_id`). */
  clientId: string;
  clientSecret: string;
  /** The endpoint for an issuer. Default `${issuer}/introspect`, which Bulkhead serves per tenant. */
  endpoint?: (issuer: string) => string;
  /** Request timeout, in milliseconds. Default 5000. */
  timeoutMs?: number;
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined and base64-encoded. */
function basic(clientId: string, clientSecret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}`;
}

/**
 * Asks the issuer whether `token` is still active. Resolves with the introspection response
 * when it is `{"active": true, ...}`; refuses with `ERR_PEP_REVOKED` when `active` is anything
 * else, and with `ERR_PEP_UNAVAILABLE` when no trustworthy answer came back.
 */
export async function introspect(
  token: string,
  issuer: string,
  options: IntrospectionOptions,
  fetchImpl: typeof fetch,
  errorOptions: Pick<PepErrorOptions, 'scheme' | 'dpopAlgs'> = {},
): Promise<Record<string, unknown>> {
  const endpoint = options.endpoint?.(issuer) ?? `${issuer}/introspect`;
  let body: unknown;
  try {
    const res = await fetchImpl(endpoint, {
      method: 'POST',
      headers: {
        authorization: basic(options.clientId, options.clientSecret),
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      // Never follow a redirect with the client's credentials and the token in hand.
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`introspection endpoint answered ${res.status}`);
    }
    body = await res.json();
  } catch (cause) {
    throw new PepError('ERR_PEP_UNAVAILABLE', 'token status could not be checked', { ...errorOptions, cause });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new PepError('ERR_PEP_UNAVAILABLE', 'token status could not be checked', errorOptions);
  }
  const answer = body as Record<string, unknown>;
  // RFC 7662 §2.2: `active` is a boolean; only a literal true means active.
  if (answer.active !== true) throw new PepError('ERR_PEP_REVOKED', 'the access token is no longer active', errorOptions);
  return answer;
}
