import { createHash } from 'node:crypto';
import type { ParameterizedContext } from 'koa';
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Logger } from 'pino';
import { bufferedForm, parseBasicCredentials } from '../http/body.js';
import { effectiveRps, type RateLimitService } from './overrides.js';
import { exceedsJwtLength } from '../shared/jwt-size.js';

/**
 * Quotas on the token, introspection and revocation endpoints (issue 5, "Quotas and rate
 * limits"): one bucket per client of a tenant and one per tenant, so a noisy client or tenant
 * cannot starve the others.
 *
 * Buckets: rate-limiter-flexible counters over one-second windows; a key may make `rps` requests
 * per window (a bucket that holds one second's worth and refills every second). `0` turns a
 * bucket off. Counters live in
 * memory (one replica), or in Redis when `REDIS_URL` is set, so N replicas enforce one limit.
 * Keys are prefixed with a hash of `PUBLIC_URL`: replicas of one broker share it, other brokers on
 * the same Redis do not share their buckets.
 *
 * Order: the client bucket is consumed first and a request it refuses never reaches the tenant
 * bucket, so one flooding client drains at most its own rate from its tenant's budget.
 *
 * The client key is the client id the request CLAIMS (Basic user, form `client_id`, or the `sub`
 * of a client assertion): it has to be known before oidc-provider authenticates anything, and
 * counting only authenticated requests would leave floods of bad credentials unmetered. So
 * someone can burn a victim client's bucket by sending requests in its name; that is bounded to
 * the victim's tenant (the tenant bucket caps the total, other tenants are untouched), and is the
 * same exposure any pre-authentication limiter has. Requests that claim no client at all share
 * one client-sized bucket per tenant (`-`).
 *
 * Store outage (Redis down or slow): fail OPEN to this replica's in-memory buckets, with a warning
 * log (at most every 30 s). A limiter is a protection, not a dependency: its outage must not stop
 * issuance (no 5xx from here), and the in-memory fallback still bounds each replica.
 *
 * Rates: the environment defaults (`RATE_LIMIT_CLIENT_RPS`, `RATE_LIMIT_TENANT_RPS`), or a tenant's
 * or client's override (./overrides.ts: who may set what, and what `null` and `0` mean), read from
 * memory on this path. The counters do not depend on the rate: each scope has one counter per key
 * and window, and the rate in force is compared with it here, so an override takes effect on the
 * next request without a limiter per distinct rate.
 *
 * Refusals are logged, and reported to the caller (`firstInWindow`), once per bucket window: the
 * audit trail records the first refusal of each window, not every refused request.
 */

export interface RateLimitDecision {
  /** Whole seconds until the refusing bucket refills (≥ 1). */
  retryAfter: number;
  scope: 'client' | 'tenant';
  /** The refusing bucket's rate, requests per second. */
  limit: number;
  /** True for exactly the first refused request of this bucket's window (per key). */
  firstInWindow: boolean;
}

export interface RateLimits {
  /** Counts one request of `clientId` (claimed, maybe absent) at tenant `tenantId`; undefined = allowed. */
  take(tenantId: string, clientId: string | undefined): Promise<RateLimitDecision | undefined>;
  /** False when nothing can be limited: both defaults off (`RATE_LIMIT_*_RPS=0`) and no overrides. */
  readonly enabled: boolean;
  close(): Promise<void>;
}

export interface RateLimitOptions {
  clientRps: number;
  tenantRps: number;
  /** Shared counters between replicas; unset keeps them in memory. */
  redisUrl?: string | undefined;
  /** Names this broker's keys in Redis (replicas share it). */
  publicUrl: string;
  logger: Pick<Logger, 'warn'>;
  /** Per-tenant and per-client overrides (./overrides.ts); without them the defaults apply to all. */
  overrides?: Pick<RateLimitService, 'forTenant'>;
}

/** A scope's counters: a store and its in-memory fallback. */
interface Bucket {
  scope: RateLimitDecision['scope'];
  primary: RateLimiterAbstract;
  fallback?: RateLimiterAbstract;
}

const WARN_EVERY_MS = 30_000;
/**
 * The counters' own ceiling, far above any rate: they only count (points consumed in the window)
 * and never refuse by themselves; the rate in force for the key is compared in `take`.
 */
const COUNT_ONLY = 2 ** 31 - 1;

export function createRateLimits(opts: RateLimitOptions): RateLimits {
  const prefix = `bulkhead:rl:${createHash('sha256').update(opts.publicUrl).digest('base64url').slice(0, 12)}`;
  const enabled = opts.clientRps > 0 || opts.tenantRps > 0 || opts.overrides !== undefined;
  // Own connection, failing fast: no offline queue (a command while disconnected fails at once)
  // and a short command timeout, so a Redis outage costs a request milliseconds, not seconds.
  const redis = enabled && opts.redisUrl
    ? new Redis(opts.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 5_000, commandTimeout: 500 })
    : undefined;
  let lastWarn = 0;
  const warnOutage = (err: Error) => {
    const now = Date.now();
    if (now - lastWarn < WARN_EVERY_MS) return;
    lastWarn = now;
    opts.logger.warn({ err: err.message }, 'rate-limit store unavailable; limiting with this replica\'s memory');
  };
  // ioredis reconnects by itself; an error event without a listener would crash the process.
  redis?.on('error', warnOutage);

  const buckets: Bucket[] = (['client', 'tenant'] as const).map((scope) => {
    const keyPrefix = `${prefix}:${scope}`;
    const memory = new RateLimiterMemory({ points: COUNT_ONLY, duration: 1, keyPrefix });
    return redis
      ? { scope, primary: new RateLimiterRedis({ storeClient: redis, points: COUNT_ONLY, duration: 1, keyPrefix, rejectIfRedisNotReady: true }), fallback: memory }
      : { scope, primary: memory };
  });

  /** Counts one request against `key`: what the window holds now, this request included. */
  async function count(bucket: Bucket, key: string): Promise<RateLimiterRes> {
    try {
      return await bucket.primary.consume(key);
    } catch (err) {
      if (err instanceof RateLimiterRes) return err;
      if (!bucket.fallback) throw err;
      warnOutage(err as Error);
      try {
        return await bucket.fallback.consume(key);
      } catch (ferr) {
        if (ferr instanceof RateLimiterRes) return ferr;
        throw ferr;
      }
    }
  }

  return {
    enabled,
    async take(tenantId, clientId) {
      const overrides = await opts.overrides?.forTenant(tenantId);
      const rates = {
        client: effectiveRps(clientId === undefined ? undefined : overrides?.clients.get(clientId), opts.clientRps),
        tenant: effectiveRps(overrides?.tenantRps, opts.tenantRps),
      };
      for (const bucket of buckets) {
        const limit = rates[bucket.scope];
        if (limit === 0) continue;
        const key = bucket.scope === 'tenant' ? tenantId : `${tenantId}:${clientKey(clientId)}`;
        const counted = await count(bucket, key);
        if (counted.consumedPoints <= limit) continue;
        // Counts are atomic (one INCR in Redis, synchronous in memory): exactly one request sees
        // the first count past the limit in each window.
        const firstInWindow = counted.consumedPoints === limit + 1;
        if (firstInWindow) {
          opts.logger.warn({ tenant: tenantId, client: clientId === undefined ? undefined : clientKey(clientId), scope: bucket.scope, limit_rps: limit }, 'rate limit exceeded');
        }
        return { scope: bucket.scope, limit, firstInWindow, retryAfter: Math.max(1, Math.ceil(counted.msBeforeNext / 1000)) };
      }
      return undefined;
    },
    async close() {
      if (redis) await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** A bounded, printable key for a claimed client id (which is attacker-chosen). */
function clientKey(clientId: string | undefined): string {
  if (!clientId) return '-';
  return /^[\x21-\x7e]{1,128}$/.test(clientId) ? clientId : `#${createHash('sha256').update(clientId).digest('base64url')}`;
}

/**
 * The client id a request claims, before anything is verified: the Basic user (RFC 6749
 * §2.3.1, form-encoded), the form `client_id`, or the `sub` of a client assertion (RFC 7523 §3,
 * `sub` is the client id). Malformed input yields undefined; authentication refuses it later.
 */
export function claimedClientId(authorization: string | undefined, form: URLSearchParams | undefined): string | undefined {
  const basic = parseBasicCredentials(authorization);
  if (basic?.[0]) return basic[0];
  const id = form?.get('client_id');
  if (id) return id;
  const assertion = form?.get('client_assertion');
  // An oversize assertion is not decoded here either (it is refused as invalid_client later).
  if (assertion && !exceedsJwtLength(assertion)) {
    const payload = assertion.split('.')[1];
    try {
      const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as { sub?: unknown; iss?: unknown };
      if (typeof claims.sub === 'string' && claims.sub) return claims.sub;
      if (typeof claims.iss === 'string' && claims.iss) return claims.iss;
    } catch {
      /* not a JWT */
    }
  }
  return undefined;
}

/**
 * What {@link enforceRateLimits} leaves in `ctx.state.rateLimited` when it answers 429, for the
 * audit trail, which records an event only when `firstInWindow` is true (once per bucket window
 * and key, not per refused request).
 */
export interface RateLimited {
  /** The bucket that refused: the claimed client's, or the whole tenant's. */
  scope: 'client' | 'tenant';
  /**
   * The client id the request claimed (whichever bucket refused), undefined when it claimed none.
   * Unverified and attacker-chosen: printable ids of up to 128 characters as sent, anything else
   * as `#` + its SHA-256 (base64url), so it is bounded and safe to log.
   */
  clientId: string | undefined;
  /** The refusing bucket's rate in force, requests per second. */
  limit: number;
  /** True for exactly the first refused request of the bucket's window (per key). */
  firstInWindow: boolean;
}

/**
 * Applies the limits to one request at a tenant endpoint: allowed → returns false and the request
 * goes on; refused → the 429 response is written, `ctx.state.rateLimited` ({@link RateLimited})
 * is set, and this returns true.
 *
 * The error code: RFC 6749 §5.2 has no rate-limit error for the token endpoint. `slow_down` is
 * RFC 8628's device-flow polling signal and `invalid_request` would blame a request that is
 * fine. `temporarily_unavailable` (RFC 6749 §4.1.2.1, registered in the OAuth Extensions Error
 * registry) says exactly "not now, try again later", is what Bulkhead already answers when its
 * database is down, and clients that know it retry; the HTTP status (429) and `Retry-After`
 * carry the precise meaning.
 */
export async function enforceRateLimits(ctx: ParameterizedContext, limits: RateLimits, tenantId: string, maxBodyBytes: number): Promise<boolean> {
  if (!limits.enabled) return false;
  const authorization = ctx.get('authorization') || undefined;
  let clientId = claimedClientId(authorization, undefined);
  if (clientId === undefined && ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded')) {
    clientId = claimedClientId(undefined, await bufferedForm(ctx, maxBodyBytes));
  }
  const refused = await limits.take(tenantId, clientId);
  if (!refused) return false;
  ctx.state.rateLimited = {
    scope: refused.scope,
    clientId: clientId === undefined ? undefined : clientKey(clientId),
    limit: refused.limit,
    firstInWindow: refused.firstInWindow,
  } satisfies RateLimited;
  ctx.status = 429;
  ctx.set('Retry-After', String(refused.retryAfter));
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: 'temporarily_unavailable', error_description: `rate limit exceeded; retry after ${refused.retryAfter} s` };
  return true;
}
