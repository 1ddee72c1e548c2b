import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { CRASH_SHAPES } from './crash-shapes.js';

/**
 * The real cedar-wasm instance, in a child process (./crash-child.ts): every crash shape is
 * refused by compilePolicy and the instance stays intact; and a text handed to Cedar past the
 * guard really does break the instance, which the engine then replaces (fail closed meanwhile).
 */
const run = async (mode: 'guarded' | 'raw') => {
  const tsx = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));
  const script = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
  const { stdout } = await promisify(execFile)(tsx, [script, mode], { cwd: fileURLToPath(new URL('../..', import.meta.url)), timeout: 60_000, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
};

describe('cedar-wasm crash shapes against the real instance (child process)', () => {
  it('compilePolicy refuses every crash shape (400) and the instance still decides', async () => {
    const out = await run('guarded');
    expect(out.refused).toEqual(CRASH_SHAPES.map((s) => ({ name: s.name, outcome: 'invalid' })));
    expect(out).toMatchObject({ healthy: true, status: { failures: 0, reloads: 0 }, decision: 'allow', registrations: 'allow', logged: [] });
  });

  it('control: the repro text handed to Cedar past the guard breaks the instance; the engine fails closed, says so, replaces it, and decides again', async () => {
    const out = await run('raw');
    expect(out.raw).toBe('PolicyEngineFailure');
    expect(out.original).toBe('RuntimeError: memory access out of bounds');
    expect(out).toMatchObject({ healthy: true, status: { failures: 1, reloads: 1 }, decision: 'allow', registrations: 'allow' });
    expect(out.logged).toEqual([expect.stringMatching(/^fatal: policy engine: a cedar-wasm call threw/), expect.stringMatching(/^error: policy engine: replaced the broken/)]);
  });
});
