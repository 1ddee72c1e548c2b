import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { startBroker, type RunningBroker } from '../../src/server.js';
import { loadConfig, type Config } from '../../src/config/index.js';
import { freshPostgresDatabase, type DbKind } from './databases.js';

export interface TestBroker {
  kind: DbKind;
  /** Base URL, also the PUBLIC_URL: issuers are `${url}/t/<tenant>`. */
  url: string;
  config: Config;
  broker: RunningBroker;
  keysDir: string;
  issuer(tenant: string): string;
  adminCredentials(): { client_id: string; client_secret: string };
  /** An admin API access token, fetched once. */
  adminToken(): Promise<string>;
  /** Calls the admin API; throws with the response body on non-2xx unless `allowError`. */
  admin<T = any>(method: string, route: string, body?: unknown, opts?: { allowError?: boolean }): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a real broker over real HTTP on a free port, on PGlite or a fresh PostgreSQL database. */
export async function startTestBroker(kind: DbKind = 'pglite', env: Record<string, string> = {}, logger?: pino.Logger): Promise<TestBroker> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-test-'));
  const port = await freePort();
  const pgdb = kind === 'postgres' ? await freshPostgresDatabase() : undefined;
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: path.join(dir, 'data'),
    KEYS_DIR: path.join(dir, 'keys'),
    LOG_LEVEL: 'silent',
    ...(pgdb ? { DATABASE_URL: pgdb.url } : {}),
    ...env,
  });
  const broker = await startBroker(config, logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  const url = config.publicUrl;
  let token: string | undefined;
  const t: TestBroker = {
    kind,
    url,
    config,
    broker,
    keysDir: config.keysDir,
    issuer: (tenant) => `${url}/t/${tenant}`,
    adminCredentials: () => JSON.parse(readFileSync(path.join(config.keysDir, 'admin-credentials.json'), 'utf8')),
    async adminToken() {
      if (token) return token;
      const c = t.adminCredentials();
      const res = await fetch(`${url}/t/system/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'urn:bulkhead:admin', scope: 'admin' }),
      });
      const body = (await res.json()) as { access_token: string };
      if (!res.ok) throw new Error(`admin token refused: ${JSON.stringify(body)}`);
      return (token = body.access_token);
    },
    async admin(method, route, body, opts) {
      const res = await fetch(`${url}/admin${route}`, {
        method,
        headers: { authorization: `Bearer ${await t.adminToken()}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const parsed = await res.json().catch(() => undefined);
      if (!res.ok && !opts?.allowError) throw new Error(`${method} ${route} → ${res.status} ${JSON.stringify(parsed)}`);
      return { status: res.status, body: parsed as any };
    },
    async close() {
      await broker.close();
      await pgdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}

/** A tenant with one resource and one secret client, through the admin API. */
export async function seedTenant(
  b: TestBroker,
  tenant: string,
  opts: {
    resource?: string;
    resourceScopes?: string[];
    clientName?: string;
    clientScopes?: string[];
    auth?: string;
    jwks?: unknown;
    tokenTtl?: number;
    resourceTtl?: number;
    clientTtl?: number;
  } = {},
): Promise<{ tenant: string; resource: string; client_id: string; client_secret?: string }> {
  const resource = opts.resource ?? `https://api.${tenant}.test/`;
  const existing = await b.admin('GET', `/tenants/${tenant}`, undefined, { allowError: true });
  if (existing.status === 404) await b.admin('POST', '/tenants', { id: tenant, ...(opts.tokenTtl ? { token_ttl: opts.tokenTtl } : {}) });
  const resources = await b.admin('GET', `/tenants/${tenant}/resources`);
  if (!resources.body.resources.some((r: { uri: string }) => r.uri === resource)) {
    await b.admin('POST', `/tenants/${tenant}/resources`, {
      uri: resource,
      scopes: opts.resourceScopes ?? ['tickets:read', 'tickets:write'],
      ...(opts.resourceTtl ? { token_ttl: opts.resourceTtl } : {}),
    });
  }
  const { body } = await b.admin('POST', `/tenants/${tenant}/clients`, {
    name: opts.clientName ?? 'ticket-service',
    scopes: opts.clientScopes ?? ['tickets:read'],
    resources: [resource],
    token_endpoint_auth_method: opts.auth ?? 'client_secret_basic',
    ...(opts.jwks ? { jwks: opts.jwks } : {}),
    ...(opts.clientTtl ? { token_ttl: opts.clientTtl } : {}),
  });
  return { tenant, resource, client_id: body.client_id, client_secret: body.client_secret };
}

/** A raw token request (form body), for the cases real clients refuse to send. */
export async function tokenRequest(
  b: TestBroker,
  tenant: string,
  form: Record<string, string | string[]>,
  init: { basic?: [string, string]; headers?: Record<string, string>; rawBody?: string } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const item of Array.isArray(v) ? v : [v]) params.append(k, item);
  const res = await fetch(`${b.url}/t/${tenant}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(init.basic ? { authorization: `Basic ${Buffer.from(`${encodeURIComponent(init.basic[0])}:${encodeURIComponent(init.basic[1])}`).toString('base64')}` } : {}),
      ...init.headers,
    },
    body: init.rawBody ?? params.toString(),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* non-JSON bodies are asserted on as text */
  }
  return { status: res.status, headers: res.headers, body };
}
