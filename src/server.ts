import { createServer, type Server } from 'node:http';
import { existsSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { issuerFor, type Config } from './config/index.js';
import { openDatabase } from './db/index.js';
import { migrate } from './db/migrator.js';
import { createServices, type Services } from './services.js';
import { createMetrics } from './http/metrics.js';
import { createApp } from './http/app.js';
import { ADMIN_AUDIENCE, ADMIN_SCOPE } from './admin/auth.js';
import { SYSTEM_TENANT } from './shared/ids.js';
import { forTenant } from './db/tenant-scope.js';
import { PLATFORM_ADMIN_CLIENT } from './clients/service.js';

/**
 * Largest request head (request line and every header) the broker reads, bytes; Node answers
 * `431 Request Header Fields Too Large` itself past it, before any of Bulkhead's code runs. Set
 * here, not left to Node's default (16 KiB, changeable by `--max-http-header-size`): room for
 * one maximal JWT in a header (a DPoP proof or an admin bearer token, 8 KiB: MAX_JWT_LENGTH)
 * plus 4 KiB for everything else a client or proxy sends.
 */
export const MAX_HEADER_BYTES = 12 * 1024;

export interface RunningBroker {
  url: string;
  services: Services;
  server: Server;
  adminCredentialsFile: string;
  close(): Promise<void>;
}

/**
 * First start: the reserved `system` tenant, the admin API as its resource, and a platform-admin
 * client whose credentials go to `$KEYS_DIR/admin-credentials.json` (0600), never to a log.
 * Later starts change nothing, except that a missing credentials file gets a fresh secret.
 */
export async function bootstrapPlatform(services: Services, logger: Logger): Promise<string> {
  const { tenants, resources, clients, config } = services;
  await tenants.ensureSystem();
  const db = forTenant(services.db.prisma, SYSTEM_TENANT);
  if (!(await db.resource.findFirst({ where: { uri: ADMIN_AUDIENCE } }))) {
    await resources.create(SYSTEM_TENANT, { uri: ADMIN_AUDIENCE, scopes: [ADMIN_SCOPE] });
  }
  const file = path.join(config.keysDir, 'admin-credentials.json');
  if (existsSync(file)) return file;
  const existing = await db.client.findFirst({ where: { name: PLATFORM_ADMIN_CLIENT } });
  const client = existing
    ? await clients.rotateSecret(SYSTEM_TENANT, existing.id)
    : await clients.create(SYSTEM_TENANT, { name: PLATFORM_ADMIN_CLIENT, scopes: [ADMIN_SCOPE], resources: [ADMIN_AUDIENCE] });
  // In the system tenant's trail like any admin change: a re-issued secret invalidates the old one
  // (on every replica), which operators must be able to see. Recorded before the file is written:
  // if it cannot be, start-up fails and the next start issues (and records) again.
  await services.audit.record({
    tenantId: SYSTEM_TENANT,
    type: existing ? 'client.secret_rotated' : 'client.created',
    outcome: 'success',
    actor: 'bulkhead serve',
    clientId: client.client_id,
    scopes: [ADMIN_SCOPE],
    audience: ADMIN_AUDIENCE,
    detail: { bootstrap: true, reason: existing ? 'the platform-admin credentials file was missing' : 'first start' },
  });
  mkdirSync(config.keysDir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(
    tmp,
    `${JSON.stringify({
      client_id: client.client_id,
      client_secret: client.client_secret,
      issuer: issuerFor(config, SYSTEM_TENANT),
      resource: ADMIN_AUDIENCE,
      scope: ADMIN_SCOPE,
    }, null, 2)}\n`,
    { mode: 0o600 },
  );
  renameSync(tmp, file);
  logger.warn({ file, reissued: Boolean(existing) }, 'platform-admin credentials written');
  return file;
}

/** Opens the database, applies migrations, bootstraps, and serves. Used by `bulkhead serve` and tests. */
export async function startBroker(config: Config, logger: Logger = pino({ level: config.logLevel })): Promise<RunningBroker> {
  const db = await openDatabase(config);
  let services: Services | undefined;
  try {
    await migrate(db.driver, undefined, (msg) => logger.info(msg));
    const metrics = createMetrics();
    services = createServices(config, db, metrics.observer, logger);
    const adminCredentialsFile = await bootstrapPlatform(services, logger);
    await services.revocations.load();
    // Revocations of tokens that have expired anyway are forgotten, here and in the database.
    const sweep = setInterval(() => {
      services!.revocations.cleanup().catch((err: Error) => logger.warn({ err: err.message }, 'revocation cleanup failed'));
    }, 10 * 60_000);
    sweep.unref();
    const app = createApp(services, metrics, logger);
    const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, app.callback());
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    server.maxHeadersCount = 100;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    return {
      url: `http://${host}:${port}`,
      services,
      server,
      adminCredentialsFile,
      async close() {
        clearInterval(sweep);
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await services!.close();
        await db.close();
      },
    };
  } catch (err) {
    await services?.close();
    await db.close();
    throw err;
  }
}
