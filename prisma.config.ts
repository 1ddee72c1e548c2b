import { defineConfig } from 'prisma/config';

// Bulkhead applies migrations with its own migrator (src/db/migrator.ts); this file exists so
// the Prisma CLI (generate, and `migrate deploy` where its engine is available) finds the schema.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://localhost:5432/bulkhead' },
});
