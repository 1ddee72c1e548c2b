import pino from 'pino';
import { ConfigError, issuerFor, loadConfig, type Config } from '../config/index.js';
import { openDatabase } from '../db/index.js';
import { migrate } from '../db/migrator.js';
import { startBroker } from '../server.js';
import { SYSTEM_TENANT } from '../shared/ids.js';
import { CliFailure } from './admin-client.js';
import type { MigrationSummary } from './program.js';

function config(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliFailure(`invalid configuration:\n  ${err.problems.join('\n  ')}`);
    throw err;
  }
}

/** `bulkhead serve`: migrate, bootstrap, serve until SIGINT/SIGTERM. */
export async function serve(): Promise<void> {
  const cfg = config();
  const logger = pino({ level: cfg.logLevel });
  const broker = await startBroker(cfg, logger);
  process.stdout.write(
    [
      `Bulkhead listening on ${broker.url} (public URL ${cfg.publicUrl})`,
      `  system issuer:      ${issuerFor(cfg, SYSTEM_TENANT)}`,
      `  admin credentials:  ${broker.adminCredentialsFile}`,
      `  database:           ${cfg.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `embedded PGlite in ${cfg.dataDir}`}`,
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  logger.info('shutting down');
  await broker.close();
}

/** `bulkhead migrate`: apply pending migrations; the CLI prints the report and exits. */
export async function migrateOnly(): Promise<MigrationSummary> {
  const cfg = config();
  const db = await openDatabase(cfg);
  try {
    const report = await migrate(db.driver);
    return { applied: report.applied, already_applied: report.alreadyApplied };
  } finally {
    await db.close();
  }
}
