import { PrismaClient } from '../generated/prisma/client.js';
import type { Config } from '../config/index.js';
import { openDriver, type SqlDriver } from './driver.js';

export type { SqlDriver } from './driver.js';
export { Prisma } from '../generated/prisma/client.js';
export type Db = PrismaClient;

export interface Database {
  prisma: PrismaClient;
  driver: SqlDriver;
  close(): Promise<void>;
}

/** Opens the configured database with one Prisma client over the chosen driver adapter. */
export async function openDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir'>): Promise<Database> {
  const { driver, adapter } = await openDriver(config);
  const prisma = new PrismaClient({ adapter: adapter as never });
  return {
    prisma,
    driver,
    async close() {
      await prisma.$disconnect().catch(() => {});
      await driver.close().catch(() => {});
    },
  };
}
