#!/usr/bin/env node
import { runCli } from './program.js';

/** `bulkhead` entry point. Serving pulls in the whole broker, so it is loaded only for serve/migrate. */
const code = await runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
  env: process.env,
  serve: async () => (await import('./serve.js')).serve(),
  migrate: async () => (await import('./serve.js')).migrateOnly(),
});
if (code !== 0) process.exitCode = code;
