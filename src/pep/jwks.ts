/**
 * Tenant key sets: one jose `createRemoteJWKSet` per tenant issuer, in a bounded map, with every
 * limit on fetching spelled out, because a verifier that fetches on demand is an amplifier
 * pointed at the broker unless it is told when not to fetch:
 *
 * - a cached set is used for `cacheMaxAgeSeconds` (jose's `cacheMaxAge`);
 * - an unknown `kid` refetches at most once per `cooldownSeconds` after a successful fetch
 *   (jose's `cooldownDuration`); tokens with made-up kids inside that window fail without I/O;
 * - a failed fetch (network, timeout, non-200) is not retried for `failureBackoffSeconds`,
 *   which jose does not do on its own: without it every request during an outage is a fetch;
 * - at most `maxFetchesPerMinute` fetches leave this process across all tenants, so requests
 *   naming many different (made-up) tenants cannot turn into as many fetches;
 * - at most `maxTenants` key sets are kept, least recently used evicted first.
 *
 * Concurrent verifications share one in-flight fetch (jose does this).
 */
import { createRemoteJWKSet, customFetch, type JWTVerifyGetKey } from 'jose';
import { Lru } from '../shared/lru.js';

export interface JwksOptions {
  /** How long a fetched key set is used before it is fetched again, in seconds. Default 600. */
  cacheMaxAgeSeconds?: number;
  /** After a successful fetch, how long an unknown `kid` does not trigger another, in seconds. Default 30. */
  cooldownSeconds?: number;
  /** After a failed fetch, how long before this tenant's key set is fetched again, in seconds. Default 5. */
  failureBackoffSeconds?: number;
  /** Request timeout, in milliseconds. Default 5000. */
  timeoutMs?: number;
  /** Ceiling on JWKS fetches per minute from this verifier, all tenants together. Default 300. */
  maxFetchesPerMinute?: number;
  /** How many tenants' key sets are kept. Default 100. */
  maxTenants?: number;
}

/** Why a key set could not be had. `not_found`: the broker has no such tenant (404). */
export class JwksFetchError extends Error {
  override readonly name = 'JwksFetchError';
  constructor(readonly reason: 'not_found' | 'unavailable', message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

interface Entry {
  keys: JWTVerifyGetKey;
  failedAt?: number;
  failure?: JwksFetchError;
}

export interface TenantKeySets {
  /** The key resolver for one issuer's `${issuer}/jwks`. */
  forIssuer(issuer: string): JWTVerifyGetKey;
}

export function tenantKeySets(options: JwksOptions = {}, fetchImpl: typeof fetch = fetch, now: () => number = Date.now): TenantKeySets {
  const cacheMaxAge = seconds(options.cacheMaxAgeSeconds, 600, 'cacheMaxAgeSeconds') * 1000;
  const cooldown = seconds(options.cooldownSeconds, 30, 'cooldownSeconds') * 1000;
  const backoff = seconds(options.failureBackoffSeconds, 5, 'failureBackoffSeconds') * 1000;
  const timeout = Math.ceil(seconds(options.timeoutMs, 5000, 'timeoutMs'));
  const perMinute = seconds(options.maxFetchesPerMinute, 300, 'maxFetchesPerMinute');
  const sets = new Lru<string, Entry>(Math.max(1, seconds(options.maxTenants, 100, 'maxTenants')));
  const window = { start: 0, count: 0 };

  function takeFetchBudget(): boolean {
    const t = now();
    if (t - window.start >= 60_000) {
      window.start = t;
      window.count = 0;
    }
    if (window.count >= perMinute) return false;
    window.count++;
    return true;
  }

  function create(issuer: string): Entry {
    const entry = {} as Entry;
    const guardedFetch = async (url: string, init: RequestInit): Promise<Response> => {
      if (entry.failure && entry.failedAt !== undefined && now() - entry.failedAt < backoff) throw entry.failure;
      if (!takeFetchBudget()) throw new JwksFetchError('unavailable', 'JWKS fetch budget exhausted');
      let failure: JwksFetchError | undefined;
      try {
        const res = await fetchImpl(url, init);
        if (res.status === 200) {
          entry.failure = entry.failedAt = undefined;
          return res;
        }
        await res.body?.cancel();
        failure = res.status === 404
          ? new JwksFetchError('not_found', 'the broker has no such tenant')
          : new JwksFetchError('unavailable', `JWKS endpoint answered ${res.status}`);
      } catch (cause) {
        failure = new JwksFetchError('unavailable', 'JWKS endpoint unreachable', { cause });
      }
      entry.failure = failure;
      entry.failedAt = now();
      throw failure;
    };
    entry.keys = createRemoteJWKSet(new URL(`${issuer}/jwks`), {
      cacheMaxAge,
      cooldownDuration: cooldown,
      timeoutDuration: timeout,
      [customFetch]: guardedFetch,
    });
    return entry;
  }

  return {
    forIssuer(issuer) {
      let entry = sets.get(issuer);
      if (!entry) sets.set(issuer, (entry = create(issuer)));
      return entry.keys;
    },
  };
}

function seconds(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`jwks.${name} must be a non-negative number`);
  return value;
}
