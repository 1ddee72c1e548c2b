import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

/**
 * `bulkhead policy set | show | test | delete` as operators run them: the built CLI as a real
 * subprocess against a real broker (`npm test` builds dist/ first).
 */
const BIN = path.join(fileURLToPath(new URL('../..', import.meta.url)), 'dist/cli/bin.js');

function runBin(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: os.tmpdir(), env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const DESIGN_EXAMPLE = 'permit(principal, action, resource) unless { context.scopes.contains("tickets:write") };\n';

describe('bulkhead policy (CLI)', { timeout: 60_000 }, () => {
  let b: TestBroker;
  let dir: string;
  let env: Record<string, string>;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  const cli = (...args: string[]) => runBin(args, env);
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const token = (scope: string) => tokenRequest(b, 'acme', { grant_type: 'client_credentials', scope }, { basic: [acme.client_id, acme.client_secret!] });

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    dir = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-policy-cli-'));
    env = { BULKHEAD_URL: b.url, KEYS_DIR: b.keysDir };
    acme = await seedTenant(b, 'acme', { resource: 'https://tickets.acme.test/', clientScopes: ['tickets:read', 'tickets:write'] });
  });
  afterAll(async () => {
    await b?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('show without a policy; set; show; the token endpoint follows', async () => {
    const none = await cli('policy', 'show', '--tenant', 'acme');
    expect(none).toMatchObject({ code: 0, stderr: '' });
    expect(none.stdout).toMatch(/tenant acme has no policy/);
    expect((await token('tickets:write')).status).toBe(200);

    const set = await cli('policy', 'set', '--tenant', 'acme', file('design.cedar', DESIGN_EXAMPLE), '--json');
    expect(set).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(set.stdout)).toMatchObject({ tenant: 'acme', version: 1, policy_ids: ['policy0'], text: DESIGN_EXAMPLE, updated_by: b.adminCredentials().client_id });
    expect((await token('tickets:write')).body.error).toBe('invalid_scope');

    const shown = await cli('policy', 'show', '--tenant', 'acme');
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^tenant +acme$/m);
    expect(shown.stdout).toMatch(/^version +1$/m);
    expect(shown.stdout).toContain(DESIGN_EXAMPLE.trim());
    expect(JSON.parse((await cli('policy', 'show', '--tenant', 'acme', '--json')).stdout).text).toBe(DESIGN_EXAMPLE);
  });

  it("an invalid policy: exit 1, Cedar's message with line and column on stderr, nothing on stdout, nothing changed", async () => {
    const bad = file('bad.cedar', 'permit(principal, action, resource);\npermit(principal, action, resource) when { context.ttl > "x" };\n');
    for (const extra of [[], ['--json']]) {
      const r = await cli('policy', 'set', '--tenant', 'acme', bad, ...extra);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^bulkhead: invalid policy: /);
      expect(r.stderr).toMatch(/line 2, column \d+: \[policy1\] /);
    }
    expect(JSON.parse((await cli('policy', 'show', '--tenant', 'acme', '--json')).stdout).version).toBe(1);
    expect((await cli('policy', 'set', '--tenant', 'acme', path.join(dir, 'missing.cedar'))).code).toBe(1);
  });

  it('test FILE: a table of allow/deny per row; exit 1 when a row misses its expectation', async () => {
    const rows = [
      { name: 'read', principal: { id: acme.client_id }, action: 'issue', resource: acme.resource, context: { scopes: ['tickets:read'] }, expect: 'allow' },
      { name: 'write', principal: { id: acme.client_id }, action: 'issue', resource: acme.resource, context: { scopes: ['tickets:write'] }, expect: 'deny' },
      { name: 'agent', principal: { type: 'Agent', id: 'ag_x', tenant: 'vendor' }, action: 'exchange', resource: acme.resource, context: { scopes: ['tickets:read'], delegation: 'dl_x' } },
    ];
    const table = file('table.json', JSON.stringify(rows));
    const human = await cli('policy', 'test', '--tenant', 'acme', table);
    expect(human.stderr).toBe('');
    expect(human.code).toBe(0);
    const lines = human.stdout.split('\n');
    expect(lines[0]).toBe('policy: stored (version 1)');
    expect(lines[2]).toMatch(/^ROW +NAME +ACTION +PRINCIPAL +RESOURCE +DECISION +POLICIES +ERROR +EXPECT +OK$/);
    expect(lines[3]).toMatch(/^0 +read +issue +Client::"[^"]+" +\S+ +allow +policy0 +- +allow +true$/);
    expect(lines[4]).toMatch(/^1 +write +issue .* deny +- +invalid_scope +deny +true$/);
    expect(lines[5]).toMatch(/^2 +agent +exchange +Agent::"ag_x" .* allow +policy0 +- +- +-$/);

    const json = await cli('policy', 'test', '--tenant', 'acme', file('wrapped.json', JSON.stringify({ requests: rows })), '--json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ passed: true, results: [{ decision: 'allow' }, { decision: 'deny', error: 'invalid_scope' }, { decision: 'allow' }] });

    // A candidate policy, stored nowhere, that the expectations disagree with: exit 1.
    const stop = file('stop.cedar', '@id("stop")\nforbid(principal, action, resource);');
    const failed = await cli('policy', 'test', '--tenant', 'acme', table, '--policy', stop, '--json');
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.stdout)).toMatchObject({ policy: 'candidate', passed: false, results: [{ decision: 'deny', policies: ['stop'], ok: false }, { ok: true }, {}] });
    expect(failed.stderr).toMatch(/^bulkhead: 1 request\(s\) did not get the expected decision: row\(s\) 0$/m);
    expect(JSON.parse((await cli('policy', 'show', '--tenant', 'acme', '--json')).stdout).version).toBe(1);

    expect((await cli('policy', 'test', '--tenant', 'acme', file('notjson.json', 'nope'))).code).toBe(1);
    expect((await cli('policy', 'test', '--tenant', 'acme', file('badrow.json', '[{"principal":{"id":"x"},"action":"fly","resource":"x"}]'))).code).toBe(1);
  });

  it('delete: back to no policy; usage errors exit 2', async () => {
    const del = await cli('policy', 'delete', '--tenant', 'acme');
    expect(del).toMatchObject({ code: 0, stderr: '' });
    expect(del.stdout).toBe('deleted the policy of tenant acme\n');
    expect((await token('tickets:write')).status).toBe(200);
    expect(JSON.parse((await cli('policy', 'delete', '--tenant', 'acme', '--json')).stdout)).toMatchObject({ deleted: false, text: null });
    expect((await cli('policy', 'set', '--tenant', 'acme')).code).toBe(2);
    expect((await cli('policy', 'show')).code).toBe(2);
    expect((await cli('policy', 'test', '--tenant', 'acme')).code).toBe(2);
    expect((await cli('policy', 'nope')).code).toBe(2);
  });
});
