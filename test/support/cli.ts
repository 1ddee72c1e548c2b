import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The built `bulkhead` CLI (`dist/cli/bin.js`, built by `npm test` before the suites run) as a real
 * subprocess. Subprocesses are spawned asynchronously, never with spawnSync: the broker runs in
 * the test process and must keep serving while the CLI waits for it.
 */

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = path.join(ROOT, 'dist/cli/bin.js');
export const MIGRATIONS = readdirSync(path.join(ROOT, 'prisma/migrations'), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `bulkhead ...args` with only the given environment (plus PATH/HOME). */
export function runBin(args: string[], env: Record<string, string | undefined>, opts: { timeoutMs?: number; onStdout?: (chunk: string) => void; signal?: AbortSignal } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: os.tmpdir(),
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      opts.onStdout?.(s);
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    // An abort (the caller stopping a command that runs until interrupted) ends it like Ctrl-C.
    child.once('error', (err) => (err.name === 'AbortError' ? undefined : reject(err)));
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

