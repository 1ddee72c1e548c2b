// Benchmark target: Bulkhead itself, started in-process by `startBroker` from ../../dist on the
// embedded PGlite database in a fresh temp dir, seeded through the admin API exactly as an
// operator would: tenant `bench` with one resource and one client_secret_basic client (the
// client_credentials workload), and an agent registered in tenant `vendor` and installed in
// `bench` by a delegation for that resource and scope (the token-exchange workload). Every run
// gets the same seed, whichever workload it measures.
// LOG_LEVEL defaults to `warn`: request lines (info) are not written, warnings and errors are.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import pg from 'pg';
import { startBroker } from '../../dist/server.js';
import { loadConfig } from '../../dist/config/index.js';
import { AGENT_TENANT, BENCH_POLICY, RESOURCE, RESOURCE_SCOPES, SCOPE, TENANT, freePort, serveUntilStopped, fail } from './common.mjs';

const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'warn';

/**
 * The `postgres` workload runs on PostgreSQL instead of the embedded PGlite: a fresh database on
 * BENCH_POSTGRES_URL's server (default the local one), dropped when the target stops.
 */
async function freshPostgres() {
  const adminUrl = process.env.BENCH_POSTGRES_URL || 'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `bulkhead_bench_${process.pid}_${Date.now()}`;
  const run = async (sql) => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await run(`CREATE DATABASE "${name}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => run(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}

async function main() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-bench-'));
  const postgres = process.env.BENCH_WORKLOAD === 'postgres' ? await freshPostgres() : undefined;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: url,
    DATA_DIR: path.join(dir, 'data'),
    KEYS_DIR: path.join(dir, 'keys'),
    LOG_LEVEL,
    // The rate limiter stays on (its cost is part of every token request) but far above what
    // one machine can drive, so the bench measures issuing tokens, not answering 429s.
    RATE_LIMIT_CLIENT_RPS: '1000000',
    RATE_LIMIT_TENANT_RPS: '10000000',
    ...(postgres ? { DATABASE_URL: postgres.url } : {}),
  });
  // Logs go to stderr so that they never mix with the parent's table on stdout.
  const broker = await startBroker(config, pino({ level: LOG_LEVEL }, pino.destination(2)));

  const creds = JSON.parse(readFileSync(broker.adminCredentialsFile, 'utf8'));
  const tokenRes = await fetch(`${url}/t/system/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${creds.client_id}:${creds.client_secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: creds.resource, scope: creds.scope }),
  });
  const { access_token: adminToken } = await tokenRes.json();
  if (!tokenRes.ok || !adminToken) throw new Error(`admin token refused: ${tokenRes.status}`);

  const admin = async (route, body, method = 'POST') => {
    const res = await fetch(`${url}/admin${route}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const parsed = await res.json().catch(() => undefined);
    if (!res.ok) throw new Error(`${method} /admin${route} → ${res.status} ${JSON.stringify(parsed)}`);
    return parsed;
  };
  await admin('/tenants', { id: TENANT });
  await admin(`/tenants/${TENANT}/resources`, { uri: RESOURCE, scopes: RESOURCE_SCOPES });
  const client = await admin(`/tenants/${TENANT}/clients`, {
    name: 'bench-service',
    scopes: [SCOPE],
    resources: [RESOURCE],
    token_endpoint_auth_method: 'client_secret_basic',
  });
  // The agent keeps the defaults (client_secret_basic, argon2id-hashed secret; its credential
  // lives as long as tenant `vendor`'s token_ttl, 300 s), as does the delegation.
  await admin('/tenants', { id: AGENT_TENANT });
  const agent = await admin(`/tenants/${AGENT_TENANT}/agents`, { name: 'bench-agent' });
  await admin(`/tenants/${TENANT}/delegations`, { client_id: agent.client_id, scopes: [SCOPE], resources: [RESOURCE] });
  // The `policy` workload: the same tenant with a Cedar policy of its own (issue #5).
  const withPolicy = process.env.BENCH_WORKLOAD === 'policy';
  if (withPolicy) await admin(`/tenants/${TENANT}/policy`, { policy: BENCH_POLICY }, 'PUT');

  serveUntilStopped(
    {
      name: 'bulkhead',
      issuer: `${url}/t/${TENANT}`,
      tokenUrl: `${url}/t/${TENANT}/token`,
      jwksUrl: `${url}/t/${TENANT}/jwks`,
      clientId: client.client_id,
      clientSecret: client.client_secret,
      agent: {
        clientId: agent.client_id,
        clientSecret: agent.client_secret,
        homeIssuer: `${url}/t/${AGENT_TENANT}`,
        homeTokenUrl: `${url}/t/${AGENT_TENANT}/token`,
        homeJwksUrl: `${url}/t/${AGENT_TENANT}/jwks`,
      },
      notes: `startBroker from dist/, ${postgres ? 'PostgreSQL (local server)' : 'embedded PGlite'}, LOG_LEVEL=${LOG_LEVEL}, argon2id-hashed secret${withPolicy ? ', tenant Cedar policy (BENCH_POLICY)' : ''}`,
    },
    async () => {
      await broker.close();
      await postgres?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  );
}

main().catch((err) => fail('bulkhead', err));
