// Benchmark target: Bulkhead itself, started in-process by `startBroker` from ../../dist on the
// embedded PGlite database in a fresh temp dir, seeded through the admin API (tenant `bench`,
// one resource, one client_secret_basic client), exactly as an operator would.
// LOG_LEVEL defaults to `warn`: request lines (info) are not written, warnings and errors are.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { startBroker } from '../../dist/server.js';
import { loadConfig } from '../../dist/config/index.js';
import { RESOURCE, RESOURCE_SCOPES, SCOPE, freePort, serveUntilStopped, fail } from './common.mjs';

const TENANT = 'bench';
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'warn';

async function main() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-bench-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: url,
    DATA_DIR: path.join(dir, 'data'),
    KEYS_DIR: path.join(dir, 'keys'),
    LOG_LEVEL,
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

  const admin = async (route, body) => {
    const res = await fetch(`${url}/admin${route}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const parsed = await res.json().catch(() => undefined);
    if (!res.ok) throw new Error(`POST /admin${route} → ${res.status} ${JSON.stringify(parsed)}`);
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

  serveUntilStopped(
    {
      name: 'bulkhead',
      tokenUrl: `${url}/t/${TENANT}/token`,
      clientId: client.client_id,
      clientSecret: client.client_secret,
      notes: `startBroker from dist/, embedded PGlite, LOG_LEVEL=${LOG_LEVEL}, argon2id-hashed secret`,
    },
    async () => {
      await broker.close();
      rmSync(dir, { recursive: true, force: true });
    },
  );
}

main().catch((err) => fail('bulkhead', err));
