import { z } from 'zod';
import * as path from 'node:path';

/**
 * Bulkhead's configuration, read once from the environment. Every option is documented here and
 * nowhere else; an invalid value stops the process at start with one line per problem.
 *
 * @example
 * const config = loadConfig(process.env);
 */
export interface Config {
  /** TCP port the broker listens on. */
  port: number;
  /** Interface to bind; loopback by default so a fresh install is not exposed by accident. */
  host: string;
  /** Externally visible base URL; every tenant issuer is `${publicUrl}/t/<tenant>`. No trailing slash. */
  publicUrl: string;
  /** PostgreSQL URL; unset selects the embedded PGlite database in `dataDir`. */
  databaseUrl: string | undefined;
  /** Where the embedded database lives. */
  dataDir: string;
  /** Where the key-encryption key and the admin credentials live. */
  keysDir: string;
  /** Base64 of 32 bytes; unset means `${keysDir}/master.key`, created on first start. */
  masterKey: string | undefined;
  /** Redis URL for shared state between replicas; unset keeps it in memory (one replica). */
  redisUrl: string | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** How many tenant issuers are kept built in memory (LRU); the rest are rebuilt on demand. */
  issuerCacheSize: number;
  /** Largest request body accepted, bytes; larger gets 413 before any parsing. */
  maxBodyBytes: number;
  /** Most actors a token-exchange `act` chain may hold (RFC 8693 §4.1). */
  maxActDepth: number;
  /**
   * Token/introspection/revocation requests per second one client of a tenant may make (a bucket
   * of one second's worth, refilled every second); 0 = unlimited. Shared between replicas through
   * Redis when `REDIS_URL` is set. See src/limits.
   */
  rateLimitClientRps: number;
  /** The same, for all clients of one tenant together; 0 = unlimited. */
  rateLimitTenantRps: number;
  /**
   * How many reverse proxies stand in front of the broker: the client IP recorded in the audit
   * trail is then read from `X-Forwarded-For` (the entry that many hops back). 0 (the default):
   * the socket's address, and `X-Forwarded-For` is ignored (a caller could write anything there).
   */
  trustProxy: number;
}

const tenantUrl = z
  .string()
  .url()
  .refine((u) => /^https?:$/.test(new URL(u).protocol), 'must be an http(s) URL')
  .refine((u) => !new URL(u).search && !new URL(u).hash, 'must not have a query or fragment')
  // Issuers are `${PUBLIC_URL}/t/<tenant>` and the broker routes `/t/<tenant>` at its root, so a
  // base path would make the advertised endpoints (and DPoP `htu`) differ from the served ones.
  .refine((u) => new URL(u).pathname === '/', 'must not have a path (the broker is served at the root of its origin)')
  .transform((u) => u.replace(/\/+$/, ''));

const schema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  PUBLIC_URL: tenantUrl.optional(),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  KEYS_DIR: z.string().min(1).default('./keys'),
  BULKHEAD_MASTER_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be base64 of exactly 32 bytes')
    .optional(),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ISSUER_CACHE_SIZE: z.coerce.number().int().min(1).max(100_000).default(1000),
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(1_048_576).default(32 * 1024),
  MAX_ACT_DEPTH: z.coerce.number().int().min(1).max(16).default(4),
  // Generous: one busy service is not throttled; they are a guard against floods, not a tariff.
  RATE_LIMIT_CLIENT_RPS: z.coerce.number().int().min(0).max(1_000_000).default(200),
  RATE_LIMIT_TENANT_RPS: z.coerce.number().int().min(0).max(10_000_000).default(2000),
  TRUST_PROXY: z.coerce.number().int().min(0).max(10).default(0),
});

/** Thrown by {@link loadConfig}; `problems` holds one human line per invalid variable. */
export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

const emptyToUndefined = (env: NodeJS.ProcessEnv) =>
  Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));

/** Parses the environment into a {@link Config}, or throws {@link ConfigError}. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(emptyToUndefined(env));
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => `invalid ${i.path.join('.')}: ${i.message}`),
    );
  }
  const e = parsed.data;
  return {
    port: e.PORT,
    host: e.HOST,
    publicUrl: e.PUBLIC_URL ?? `http://localhost:${e.PORT}`,
    databaseUrl: e.DATABASE_URL,
    dataDir: path.resolve(e.DATA_DIR),
    keysDir: path.resolve(e.KEYS_DIR),
    masterKey: e.BULKHEAD_MASTER_KEY,
    redisUrl: e.REDIS_URL,
    logLevel: e.LOG_LEVEL,
    issuerCacheSize: e.ISSUER_CACHE_SIZE,
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxActDepth: e.MAX_ACT_DEPTH,
    rateLimitClientRps: e.RATE_LIMIT_CLIENT_RPS,
    rateLimitTenantRps: e.RATE_LIMIT_TENANT_RPS,
    trustProxy: e.TRUST_PROXY,
  };
}

/** The issuer identifier of a tenant: the one place the URL shape is decided. */
export function issuerFor(config: Pick<Config, 'publicUrl'>, tenantId: string): string {
  return `${config.publicUrl}/t/${tenantId}`;
}

/** The audience of tokens for Bulkhead's own admin API. */
export function adminAudience(config: Pick<Config, 'publicUrl'>): string {
  return `${config.publicUrl}/admin`;
}
