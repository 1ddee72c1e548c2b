import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SignJWT, createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { freePort, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';
import { BIN, MIGRATIONS, runBin } from '../support/cli.js';
import { AUTH_METHODS, GRANT_TYPES } from '../../src/clients/service.js';
import { CLI_AUTH_METHODS, CLI_GRANT_TYPES } from '../../src/cli/program.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/**
 * The `bulkhead` command line as operators use it: the built `dist/cli/bin.js` run as a real
 * subprocess against a real broker. `npm test` builds dist/ first; this file builds nothing.
 * Subprocesses are spawned asynchronously, never with spawnSync: the broker runs in this process
 * and must keep serving while the CLI waits for it.
 */

/** Keys of every object in a JSON value, at any depth. */
function allKeys(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(allKeys);
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [k, ...allKeys(v)]);
  return [];
}

/** A `key  value` record as the CLI prints it (keys padded to one width, two spaces, value). */
function parseRecord(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^([a-z_]+) {2,}(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/**
 * An aligned table as the CLI prints it: each cell is cut at the column where its header starts,
 * so misaligned rows come out garbled and fail the assertions that read them.
 */
function parseTable(text: string): { header: string; rows: Record<string, string>[] } {
  const [header, ...lines] = text.split('\n').filter((l) => l.length > 0);
  const starts = [...header!.matchAll(/\S+/g)].map((m) => ({ name: m[0].toLowerCase(), at: m.index! }));
  const rows = lines.map((line) =>
    Object.fromEntries(starts.map((s, i) => [s.name, line.slice(s.at, starts[i + 1]?.at ?? line.length).trim()])),
  );
  return { header: header!.replace(/\s+/g, ' '), rows };
}

describe('bulkhead CLI against a running broker', { timeout: 60_000 }, () => {
  let b: TestBroker;
  let scratch: string;
  let env: Record<string, string>;
  const cli = (...args: string[]) => runBin(args, env);
  const cliEnv = (extra: Record<string, string | undefined>, ...args: string[]) => runBin(args, { ...env, ...extra });

  /** `args` with `--json`, placed before a `--` that ends the options (a kid may start with '-'). */
  const withJson = (args: string[]) => {
    const end = args.indexOf('--');
    return end < 0 ? [...args, '--json'] : [...args.slice(0, end), '--json', ...args.slice(end)];
  };
  /** Success with --json: exit 0, nothing on stderr, stdout exactly one JSON document in snake_case. */
  async function json<T = any>(...args: string[]): Promise<T> {
    const r = await cli(...withJson(args));
    expect(r.stderr, `stderr of ${args.join(' ')}`).toBe('');
    expect(r.code, `exit code of ${args.join(' ')}`).toBe(0);
    const doc = JSON.parse(r.stdout) as T;
    for (const k of allKeys(doc)) expect(k).toMatch(/^[a-z][a-z0-9_]*$/);
    return doc;
  }
  /** Success without --json: exit 0, nothing on stderr; returns stdout. */
  async function human(...args: string[]): Promise<string> {
    const r = await cli(...args);
    expect(r.stderr, `stderr of ${args.join(' ')}`).toBe('');
    expect(r.code, `exit code of ${args.join(' ')}`).toBe(0);
    expect(() => JSON.parse(r.stdout)).toThrow();
    return r.stdout;
  }
  /** A refused operation: exit 1, nothing on stdout (also with --json), one `bulkhead: ...` line. */
  async function refused(args: string[], message: RegExp | string, extraEnv: Record<string, string | undefined> = {}) {
    const variants = [args, withJson(args)];
    const results = await Promise.all(variants.map((v) => cliEnv(extraEnv, ...v)));
    for (const [i, r] of results.entries()) {
      const variant = variants[i]!;
      expect(r.code, `exit code of ${variant.join(' ')}: ${r.stderr}`).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^bulkhead: /);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      if (typeof message === 'string') expect(r.stderr).toContain(message);
      else expect(r.stderr).toMatch(message);
    }
  }
  /** A usage error: exit 2, nothing on stdout, commander's message and the --help hint on stderr. */
  async function usage(args: string[], message: RegExp | string) {
    // Pointed at a closed port: usage errors are found before any request is made.
    const r = await cliEnv({ BULKHEAD_URL: `http://127.0.0.1:${await freePort()}` }, ...args);
    expect(r.code, `exit code of ${args.join(' ')}: ${r.stderr}`).toBe(2);
    expect(r.stdout).toBe('');
    if (typeof message === 'string') expect(r.stderr).toContain(message);
    else expect(r.stderr).toMatch(message);
    return r;
  }

  const token = (tenant: string, form: Record<string, string>, basic?: [string, string]) =>
    tokenRequest(b, tenant, { grant_type: 'client_credentials', ...form }, basic ? { basic } : {});
  const jwksKids = async (tenant: string) =>
    ((await (await fetch(`${b.issuer(tenant)}/jwks`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    scratch = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-cli-'));
    env = { BULKHEAD_URL: b.url, KEYS_DIR: b.keysDir };
  });
  afterAll(async () => {
    await b?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('--help and help exit 0 and list every command group', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^Usage: bulkhead \[options\] \[command\]/);
    for (const cmd of ['serve', 'migrate', 'tenant', 'key', 'resource', 'client', 'agent', 'delegation', 'token', 'audit']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));

    const sub = await cli('client', 'create', '--help');
    expect(sub.code).toBe(0);
    for (const opt of ['--tenant <id>', '--name <name>', '--scopes <a,b>', '--resources <uri,uri>', '--auth <method>', '--jwks <file>', '--ttl <seconds>', '--grant-types <a,b>', '--json']) {
      expect(sub.stdout).toContain(opt);
    }
    const grant = await cli('delegation', 'grant', '--help');
    expect(grant.code).toBe(0);
    for (const opt of ['--tenant <id>', '--agent <client_id>', '--scopes <a,b>', '--resources <uri,uri>', '--ttl <seconds>', '--expires <iso8601>', '--require-dpop', '--json']) {
      expect(grant.stdout).toContain(opt);
    }
    const delegationHelp = await cli('delegation', '--help');
    for (const verb of ['grant', 'list', 'revoke']) expect(delegationHelp.stdout).toMatch(new RegExp(`^  ${verb} `, 'm'));
    const agentCreate = await cli('agent', 'create', '--help');
    for (const opt of ['--tenant <id>', '--name <name>', '--auth <method>', '--jwks <file>', '--ttl <seconds>', '--json']) expect(agentCreate.stdout).toContain(opt);
    expect((await cli('resource', 'create', '--help')).stdout).toContain('--require-dpop');
    const tokenHelp = await cli('token', '--help');
    expect(tokenHelp.code).toBe(0);
    for (const verb of ['revoke', 'revoke-all']) expect(tokenHelp.stdout).toMatch(new RegExp(`^  ${verb} `, 'm'));
    const revokeHelp = await cli('token', 'revoke', '--help');
    expect(revokeHelp.stdout).toMatch(/^Usage: bulkhead token revoke \[options\] <jti>/);
    for (const opt of ['--tenant <id>', '--expires <iso8601>', '--json']) expect(revokeHelp.stdout).toContain(opt);
    const revokeAllHelp = await cli('token', 'revoke-all', '--help');
    for (const opt of ['--tenant <id>', '--client <client_id>', '--delegation <id>', '--json']) expect(revokeAllHelp.stdout).toContain(opt);
    const helpCmd = await cli('help', 'tenant');
    expect(helpCmd.code).toBe(0);
    expect(helpCmd.stdout).toContain('Usage: bulkhead tenant');
  });

  it('usage errors exit 2 without contacting the broker', async () => {
    const client = ['client', 'create', '--tenant', 'acme', '--name', 'n', '--scopes', 'a', '--resources', 'https://x.test/'];
    const grant = ['delegation', 'grant', '--tenant', 'acme', '--agent', 'ag_x', '--scopes', 'a', '--resources', 'https://x.test/'];
    const [group] = await Promise.all([
      // A group without its subcommand, and no command at all: help on stderr, still a usage error.
      usage(['tenant'], 'Usage: bulkhead tenant'),
      usage([], 'Usage: bulkhead'),
      usage(['bogus'], "unknown command 'bogus'"),
      usage(['key', 'list'], "required option '--tenant <id>' not specified"),
      usage(['resource', 'create', '--tenant', 'acme', '--uri', 'https://x.test/', '--scopes', 'a', '--ttl', 'abc'], "'--ttl <seconds>' argument 'abc' is invalid"),
      usage(['tenant', 'create', 'x', '--ttl', '0'], 'expected a positive number of seconds'),
      usage(['key', 'rotate', '--tenant', 'acme', '--alg', 'HS256'], "argument 'HS256' is invalid. Allowed choices are ES256, EdDSA, RS256, PS256"),
      usage([...client, '--auth', 'none'], "argument 'none' is invalid"),
      usage([...client, '--grant-types', 'password'], 'password: allowed values are client_credentials'),
      usage(['resource', 'create', '--tenant', 'acme', '--uri', 'https://x.test/', '--scopes', ','], 'expected a comma-separated list'),
      usage(['tenant', 'show'], "missing required argument 'id'"),
      usage(['tenant', 'show', 'a', 'b'], 'too many arguments'),
      usage(['tenant', 'list', '--tenant', 'x'], "unknown option '--tenant'"),
      usage(['key', 'revoke', '--tenant', 'acme', '-FpNJR6IytCLDBEf_U0Q89'], "(a value that starts with '-', as a kid may, goes after '--': bulkhead key revoke --tenant T -- -FpNJR6IytCLDBEf_U0Q89)"),
      usage(['agent'], 'Usage: bulkhead agent'),
      usage(['agent', 'create', '--tenant', 'vendor'], "required option '--name <name>' not specified"),
      usage(['agent', 'create', '--tenant', 'vendor', '--name', 'a', '--auth', 'none'], "argument 'none' is invalid"),
      usage(['agent', 'create', '--tenant', 'vendor', '--name', 'a', '--ttl', '-1'], "'--ttl <seconds>' argument '-1' is invalid"),
      usage(['delegation'], 'Usage: bulkhead delegation'),
      usage(['delegation', 'grant', '--tenant', 'acme', '--scopes', 'a', '--resources', 'https://x.test/'], "required option '--agent <client_id>' not specified"),
      usage([...grant, '--expires', 'tomorrow'], "'--expires <iso8601>' argument 'tomorrow' is invalid. expected an ISO 8601 instant"),
      usage([...grant, '--expires', '2030-01-31'], "argument '2030-01-31' is invalid. expected an ISO 8601 instant"),
      usage([...grant, '--expires', '2030-01-31T18:00:00'], 'expected an ISO 8601 instant with an offset'),
      usage([...grant, '--expires', '2030-02-30T18:00:00Z'], 'expected an ISO 8601 instant'),
      usage([...grant, '--expires', '2030-01-31T24:00:00Z'], 'expected an ISO 8601 instant'),
      usage([...grant, '--ttl', '0'], 'expected a positive number of seconds'),
      usage([...grant, '--require-dpop', 'yes'], 'too many arguments'),
      usage(['delegation', 'list'], "required option '--tenant <id>' not specified"),
      usage(['delegation', 'revoke', '--tenant', 'acme'], "missing required argument 'id'"),
      usage(['resource', 'create', '--tenant', 'acme', '--uri', 'https://x.test/', '--scopes', 'a', '--require-dpop=false'], "unknown option '--require-dpop=false'"),
      usage(['token'], 'Usage: bulkhead token'),
      usage(['token', 'revoke', '--tenant', 'acme'], "missing required argument 'jti'"),
      usage(['token', 'revoke', 'some-jti'], "required option '--tenant <id>' not specified"),
      usage(['token', 'revoke', '--tenant', 'acme', 'a', 'b'], 'too many arguments'),
      usage(['token', 'revoke', '--tenant', 'acme', 'some-jti', '--expires', 'tomorrow'], "'--expires <iso8601>' argument 'tomorrow' is invalid. expected an ISO 8601 instant"),
      usage(['token', 'revoke', '--tenant', 'acme', 'some-jti', '--expires', '2030-01-31T18:00:00'], 'expected an ISO 8601 instant with an offset'),
      usage(['token', 'revoke', '--tenant', 'acme', '-FpNJR6IytCLDBEf_U0Q89'], "(a value that starts with '-', as a jti may, goes after '--': bulkhead token revoke --tenant T -- -FpNJR6IytCLDBEf_U0Q89)"),
      usage(['token', 'revoke-all', '--tenant', 'acme'], 'one of --client <client_id> or --delegation <id> is required'),
      usage(['token', 'revoke-all', '--tenant', 'acme', '--client', 'cl_x', '--delegation', 'dg_x'], "option '--client <client_id>' cannot be used with option '--delegation <id>'"),
      usage(['token', 'revoke-all', '--client', 'cl_x'], "required option '--tenant <id>' not specified"),
      usage(['token', 'revoke-all', '--tenant', 'acme', '--client'], "option '--client <client_id>' argument missing"),
      usage(['token', 'revoke-all', '--tenant', 'acme', 'cl_x'], 'too many arguments'),
    ]);
    expect(group.stderr).toContain('create [options] <id>');
    // A misspelt option gets no hint about values after '--'.
    expect((await usage(['tenant', 'list', '--jsn'], "unknown option '--jsn'")).stderr).not.toContain("after '--'");
  });

  it("the CLI's copies of the client service's choices are the same lists", () => {
    expect([...CLI_AUTH_METHODS]).toEqual([...AUTH_METHODS]);
    expect([...CLI_GRANT_TYPES]).toEqual([...GRANT_TYPES]);
  });

  it('tenant create: record output, --json document, and the refusals', async () => {
    const out = await human('tenant', 'create', 'acme', '--name', 'Acme Corp');
    expect(out.trimEnd().split('\n').map((l) => l.split(/ {2,}/)[0])).toEqual(['id', 'name', 'status', 'token_ttl', 'created_at']);
    expect(parseRecord(out)).toMatchObject({ id: 'acme', name: 'Acme Corp', status: 'active', token_ttl: '300' });
    expect(parseRecord(out).created_at).toMatch(/^\d{4}-\d\d-\d\dT/);

    const globex = await json('tenant', 'create', 'globex', '--ttl', '600');
    expect(Object.keys(globex).sort()).toEqual(['created_at', 'id', 'name', 'status', 'token_ttl', 'updated_at']);
    expect(globex).toMatchObject({ id: 'globex', name: 'globex', status: 'active', token_ttl: 600 });

    await refused(['tenant', 'create', 'acme'], /^bulkhead: tenant acme already exists\n$/);
    await refused(['tenant', 'create', 'Bad_ID'], 'id: tenant id must be 1-63 lowercase letters, digits or hyphens');
    await refused(['tenant', 'create', 'trailing-'], 'tenant id must be 1-63');
    await refused(['tenant', 'create', 'system'], 'tenant id "system" is reserved');
    await refused(['tenant', 'create', 'big', '--ttl', '999999'], 'token_ttl');
  });

  it('tenant list / show: table header, rows, and --json', async () => {
    const { header, rows } = parseTable(await human('tenant', 'list'));
    expect(header).toBe('ID NAME STATUS TOKEN_TTL CREATED_AT');
    expect(rows.map((r) => r.id)).toEqual(['acme', 'globex', 'system']);
    expect(rows.find((r) => r.id === 'acme')).toMatchObject({ name: 'Acme Corp', status: 'active', token_ttl: '300' });

    const tenants = await json<any[]>('tenant', 'list');
    expect(tenants.map((t) => t.id)).toEqual(['acme', 'globex', 'system']);
    expect(tenants.every((t) => t.status === 'active')).toBe(true);

    const shown = await human('tenant', 'show', 'globex');
    expect(parseRecord(shown)).toMatchObject({ id: 'globex', token_ttl: '600', status: 'active' });
    expect(parseRecord(shown).updated_at).toMatch(/^\d{4}-/);
    expect(await json('tenant', 'show', 'acme')).toMatchObject({ id: 'acme', name: 'Acme Corp' });
    await refused(['tenant', 'show', 'nope'], 'tenant nope not found');
  });

  it('tenant suspend / resume change the status; system cannot be suspended', async () => {
    expect(await json('tenant', 'suspend', 'globex')).toMatchObject({ id: 'globex', status: 'suspended' });
    expect((await json('tenant', 'show', 'globex')).status).toBe('suspended');
    expect(parseRecord(await human('tenant', 'resume', 'globex'))).toMatchObject({ id: 'globex', status: 'active' });
    expect(parseRecord(await human('tenant', 'suspend', 'globex')).status).toBe('suspended');
    expect((await json('tenant', 'resume', 'globex')).status).toBe('active');
    await refused(['tenant', 'suspend', 'system'], 'the system tenant cannot be suspended');
  });

  it('key list / rotate (--alg EdDSA, RS256) / revoke, as seen in the JWKS', async () => {
    const { header, rows } = parseTable(await human('key', 'list', '--tenant', 'acme'));
    expect(header).toBe('KID ALG STATUS PUBLISHED CREATED_AT PUBLISH_UNTIL');
    expect(rows.map((r) => `${r.alg} ${r.status} ${r.published}`).sort()).toEqual(['ES256 active true', 'ES256 pending true']);

    const keys = await json<any[]>('key', 'list', '--tenant', 'acme');
    expect(keys).toHaveLength(2);
    const pending = keys.find((k) => k.status === 'pending')!;
    const first = keys.find((k) => k.status === 'active')!;

    // Plain rotation promotes the key published ahead of time.
    const rotated = await human('key', 'rotate', '--tenant', 'acme');
    const [headline, blank, ...table] = rotated.trimEnd().split('\n');
    expect(headline).toBe(`active key is now ${pending.kid} (ES256)`);
    expect(blank).toBe('');
    const after = parseTable(table.join('\n'));
    expect(after.header).toBe('KID ALG STATUS PUBLISHED CREATED_AT PUBLISH_UNTIL');
    expect(after.rows.find((r) => r.kid === first.kid)).toMatchObject({ status: 'retired', published: 'true' });
    expect(after.rows.find((r) => r.kid === first.kid)!.publish_until).toMatch(/^\d{4}-/);

    const ed = await json('key', 'rotate', '--tenant', 'acme', '--alg', 'EdDSA');
    expect(Object.keys(ed).sort()).toEqual(['active', 'keys']);
    expect(ed.active).toMatchObject({ alg: 'EdDSA', status: 'active', published: true });
    expect(ed.keys.find((k: any) => k.kid === pending.kid)).toMatchObject({ status: 'retired' });
    expect(await jwksKids('acme')).toContain(ed.active.kid);

    const rs = await human('key', 'rotate', '--tenant', 'acme', '--alg', 'RS256');
    expect(rs.split('\n')[0]).toMatch(/^active key is now \S+ \(RS256\)$/);

    // Rotating to RS256 withdrew the EdDSA key that was pending: it can never sign, so it left
    // the JWKS; the pending key now is RS256.
    const listed = await json<any[]>('key', 'list', '--tenant', 'acme');
    const edWithdrawn = listed.find((k) => k.alg === 'EdDSA' && k.kid !== ed.active.kid)!;
    expect(edWithdrawn).toMatchObject({ status: 'retired', published: false });
    expect(await jwksKids('acme')).not.toContain(edWithdrawn.kid);

    // Revoke the pending RS256 key: gone from the JWKS at once.
    const rsPending = listed.find((k) => k.alg === 'RS256' && k.status === 'pending')!;
    expect(await jwksKids('acme')).toContain(rsPending.kid);
    // Kids are base64url thumbprints and may start with '-': after '--' they are never options.
    const revoked = await json('key', 'revoke', '--tenant', 'acme', '--', rsPending.kid);
    expect(revoked.revoked).toMatchObject({ kid: rsPending.kid, status: 'revoked', published: false });
    expect(revoked.revoked.revoked_at).toMatch(/^\d{4}-/);
    expect(revoked.keys.map((k: any) => k.status)).toContain('active');
    expect(await jwksKids('acme')).not.toContain(rsPending.kid);

    // Human revoke of the retired first key.
    const out = await human('key', 'revoke', '--tenant', 'acme', '--', first.kid);
    expect(out.split('\n')[0]).toBe(`revoked ${first.kid}`);
    expect(parseTable(out.split('\n').slice(2).join('\n')).rows.find((r) => r.kid === first.kid)).toMatchObject({ status: 'revoked', published: 'false' });

    await refused(['key', 'revoke', '--tenant', 'acme', '--', first.kid], `key ${first.kid} is already revoked`);
    await refused(['key', 'revoke', '--tenant', 'acme', '--', '-no-such-kid'], 'no key -no-such-kid in tenant acme');
    await refused(['key', 'revoke', '--tenant', 'acme', 'no-such-kid'], 'no key no-such-kid in tenant acme');
  });

  it('resource create (--ttl) / list, and the refusals naming the field', async () => {
    const out = await human('resource', 'create', '--tenant', 'acme', '--uri', 'https://api.acme.test/', '--scopes', 'tickets:read,tickets:write', '--ttl', '120');
    expect(out.trimEnd().split('\n').map((l) => l.split(/ {2,}/)[0])).toEqual(['uri', 'scopes', 'token_ttl', 'require_dpop', 'id']);
    expect(parseRecord(out)).toMatchObject({ uri: 'https://api.acme.test/', scopes: 'tickets:read,tickets:write', token_ttl: '120', require_dpop: 'false' });
    expect(parseRecord(out).id).toMatch(/^rs_/);

    const billing = await json('resource', 'create', '--tenant', 'acme', '--uri', 'https://billing.acme.test/', '--scopes', ' invoices:read , invoices:read ');
    expect(billing).toMatchObject({ uri: 'https://billing.acme.test/', scopes: ['invoices:read'], token_ttl: null, require_dpop: false });
    expect(Object.keys(billing).sort()).toEqual(['created_at', 'id', 'require_dpop', 'scopes', 'token_ttl', 'uri']);

    const { header, rows } = parseTable(await human('resource', 'list', '--tenant', 'acme'));
    expect(header).toBe('URI SCOPES TOKEN_TTL REQUIRE_DPOP ID');
    expect(rows.map((r) => [r.uri, r.scopes, r.token_ttl, r.require_dpop])).toEqual([
      ['https://api.acme.test/', 'tickets:read,tickets:write', '120', 'false'],
      ['https://billing.acme.test/', 'invoices:read', '-', 'false'],
      ['urn:bulkhead:admin', 'admin', '-', 'false'], // the admin API resource every tenant is created with
    ]);
    expect((await json<any[]>('resource', 'list', '--tenant', 'acme')).map((r) => r.uri)).toEqual(['https://api.acme.test/', 'https://billing.acme.test/', 'urn:bulkhead:admin']);
    // A tenant with no resources of its own lists only its admin API resource.
    expect(parseTable(await human('resource', 'list', '--tenant', 'globex')).rows.map((r) => [r.uri, r.scopes])).toEqual([['urn:bulkhead:admin', 'admin']]);
    expect((await json<any[]>('resource', 'list', '--tenant', 'globex')).map((r) => r.uri)).toEqual(['urn:bulkhead:admin']);

    await refused(['resource', 'create', '--tenant', 'acme', '--uri', 'https://x.test/', '--scopes', 'a b'], /scopes\.0: each scope must be .*without spaces/);
    await refused(['resource', 'create', '--tenant', 'acme', '--uri', 'https://x.test/', '--scopes', 'ok,x"y'], /scopes\.1: each scope must be .*quotes/);
    await refused(['resource', 'create', '--tenant', 'acme', '--uri', 'not a uri', '--scopes', 'a'], 'uri: must be an absolute URI');
    await refused(['resource', 'create', '--tenant', 'acme', '--uri', 'https://api.acme.test/', '--scopes', 'a'], 'resource https://api.acme.test/ already exists in tenant acme');
  });

  describe('clients', () => {
    let worker: { client_id: string; client_secret: string };

    it('client create shows the secret once (with the note), and it gets a token', async () => {
      const out = await human('client', 'create', '--tenant', 'acme', '--name', 'worker', '--scopes', 'tickets:read', '--resources', 'https://api.acme.test/');
      const [record, note] = out.trimEnd().split('\n\n');
      expect(record!.split('\n').map((l) => l.split(/ {2,}/)[0])).toEqual([
        'client_id', 'name', 'kind', 'token_endpoint_auth_method', 'scopes', 'resources', 'status', 'client_secret',
      ]);
      const rec = parseRecord(record!);
      expect(rec).toMatchObject({ name: 'worker', kind: 'service', token_endpoint_auth_method: 'client_secret_basic', scopes: 'tickets:read', status: 'active' });
      expect(rec.client_id).toMatch(/^cl_/);
      expect(rec.client_secret).toMatch(/^bhs_[A-Za-z0-9_-]{40,}$/);
      expect(note).toBe('Store the client_secret now: it is not shown again.');
      worker = { client_id: rec.client_id!, client_secret: rec.client_secret! };

      const ok = await token('acme', { scope: 'tickets:read' }, [worker.client_id, worker.client_secret]);
      expect(ok.status).toBe(200);
      expect(ok.body.access_token).toEqual(expect.any(String));
    });

    it('client create --json: client_secret in the document; --auth/--ttl/--grant-types are sent', async () => {
      const c = await json('client', 'create', '--tenant', 'acme', '--name', 'poster', '--scopes', 'tickets:read,invoices:read',
        '--resources', 'https://api.acme.test/,https://billing.acme.test/', '--auth', 'client_secret_post', '--ttl', '60',
        '--grant-types', 'client_credentials');
      expect(c).toMatchObject({
        name: 'poster',
        token_endpoint_auth_method: 'client_secret_post',
        token_ttl: 60,
        grant_types: ['client_credentials'],
        scopes: ['tickets:read', 'invoices:read'],
        resources: ['https://api.acme.test/', 'https://billing.acme.test/'],
        status: 'active',
      });
      expect(c.client_secret).toMatch(/^bhs_/);
      const ok = await token('acme', { client_id: c.client_id, client_secret: c.client_secret, scope: 'invoices:read', resource: 'https://billing.acme.test/' });
      expect(ok.status).toBe(200);
      expect(ok.body.expires_in).toBe(60);

      await refused(['client', 'create', '--tenant', 'acme', '--name', 'worker', '--scopes', 'tickets:read', '--resources', 'https://api.acme.test/'],
        'a client named "worker" already exists in tenant acme');
      await refused(['client', 'create', '--tenant', 'acme', '--name', 'w3', '--scopes', 'tickets:delete', '--resources', 'https://api.acme.test/'],
        "scopes: not offered by any of the client's resources: tickets:delete");
      await refused(['client', 'create', '--tenant', 'acme', '--name', 'w3', '--scopes', 'tickets:read', '--resources', 'https://nowhere.test/'],
        'resources: not registered in tenant acme: https://nowhere.test/');
    });

    it('client create --auth private_key_jwt --jwks FILE: no secret; the registered key authenticates', async () => {
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      const jwksFile = path.join(scratch, 'client.jwks.json');
      writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig' }] }));

      const out = await human('client', 'create', '--tenant', 'acme', '--name', 'jwt-svc', '--scopes', 'tickets:read',
        '--resources', 'https://api.acme.test/', '--auth', 'private_key_jwt', '--jwks', jwksFile);
      expect(out).not.toContain('client_secret');
      expect(out).not.toContain('not shown again');
      const rec = parseRecord(out);
      expect(rec.token_endpoint_auth_method).toBe('private_key_jwt');

      const now = Math.floor(Date.now() / 1000);
      const assertion = await new SignJWT({ jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer(rec.client_id!)
        .setSubject(rec.client_id!)
        .setAudience(b.issuer('acme'))
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .sign(privateKey);
      const ok = await token('acme', {
        client_id: rec.client_id!,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
        scope: 'tickets:read',
      });
      expect(ok.status).toBe(200);

      const args = ['client', 'create', '--tenant', 'acme', '--name', 'jwt-2', '--scopes', 'tickets:read', '--resources', 'https://api.acme.test/', '--auth', 'private_key_jwt'];
      await refused(args, 'jwks: private_key_jwt clients need a jwks');
      await refused([...args, '--jwks', path.join(scratch, 'missing.json')], 'cannot read a JWKS from');
      const privFile = path.join(scratch, 'private.jwks.json');
      writeFileSync(privFile, JSON.stringify({ keys: [await exportJWK(privateKey)] }));
      await refused([...args, '--jwks', privFile], 'jwks must contain public keys only');
    });

    it('client list: table header and rows, never a client_secret', async () => {
      const text = await human('client', 'list', '--tenant', 'acme');
      const { header, rows } = parseTable(text);
      expect(header).toBe('CLIENT_ID NAME KIND TOKEN_ENDPOINT_AUTH_METHOD SCOPES RESOURCES STATUS');
      expect(rows.map((r) => r.name)).toEqual(['jwt-svc', 'poster', 'worker']);
      expect(rows.find((r) => r.name === 'worker')).toMatchObject({ client_id: worker.client_id, status: 'active', token_endpoint_auth_method: 'client_secret_basic' });
      expect(text).not.toContain('bhs_');

      const r = await cli('client', 'list', '--tenant', 'acme', '--json');
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain('"client_secret"');
      expect(r.stdout).not.toContain(worker.client_secret);
      const list = JSON.parse(r.stdout) as any[];
      expect(list).toHaveLength(3);
      expect(list.every((c) => !('client_secret' in c))).toBe(true);
      expect(await human('client', 'list', '--tenant', 'globex')).toBe('(none)\n');
    });

    it('client rotate-secret: a new secret, shown once; the old one stops working at once', async () => {
      const out = await human('client', 'rotate-secret', '--tenant', 'acme', worker.client_id);
      expect(out).toContain('Store the client_secret now: it is not shown again.');
      const human1 = parseRecord(out).client_secret!;
      expect(human1).toMatch(/^bhs_/);
      expect(human1).not.toBe(worker.client_secret);

      const rotated = await json('client', 'rotate-secret', '--tenant', 'acme', worker.client_id);
      expect(rotated).toMatchObject({ client_id: worker.client_id, name: 'worker' });
      expect(rotated.client_secret).toMatch(/^bhs_/);
      expect(rotated.client_secret).not.toBe(human1);

      for (const stale of [worker.client_secret, human1]) {
        const old = await token('acme', { scope: 'tickets:read' }, [worker.client_id, stale]);
        expect(old.status).toBe(401);
        expect(old.body.error).toBe('invalid_client');
      }
      const fresh = await token('acme', { scope: 'tickets:read' }, [worker.client_id, rotated.client_secret]);
      expect(fresh.status).toBe(200);
      worker.client_secret = rotated.client_secret;

      await refused(['client', 'rotate-secret', '--tenant', 'acme', 'cl_nope'], 'client cl_nope not found in tenant acme');
      const jwtClient = (await json<any[]>('client', 'list', '--tenant', 'acme')).find((c) => c.name === 'jwt-svc');
      await refused(['client', 'rotate-secret', '--tenant', 'acme', jwtClient.client_id], 'authenticates with private_key_jwt and has no secret to rotate');
    });

    it('client disable: the client gets invalid_client; disabling twice is refused', async () => {
      expect((await token('acme', { scope: 'tickets:read' }, [worker.client_id, worker.client_secret])).status).toBe(200);
      const d = await json('client', 'disable', '--tenant', 'acme', worker.client_id);
      expect(d).toMatchObject({ client_id: worker.client_id, status: 'disabled' });
      expect(d).not.toHaveProperty('client_secret');
      const res = await token('acme', { scope: 'tickets:read' }, [worker.client_id, worker.client_secret]);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');

      const poster = (await json<any[]>('client', 'list', '--tenant', 'acme')).find((c) => c.name === 'poster');
      expect(parseRecord(await human('client', 'disable', '--tenant', 'acme', poster.client_id))).toMatchObject({ name: 'poster', status: 'disabled' });

      await refused(['client', 'disable', '--tenant', 'acme', worker.client_id], `client ${worker.client_id} is already disabled`);
      await refused(['client', 'rotate-secret', '--tenant', 'acme', worker.client_id], `client ${worker.client_id} is disabled`);
      await refused(['client', 'disable', '--tenant', 'acme', 'cl_nope'], 'client cl_nope not found in tenant acme');
    });
  });

  describe('agents and delegations', () => {
    let agent: { client_id: string; client_secret: string };
    let second: { client_id: string; client_secret: string };
    let delegationId: string;
    const api = 'https://api.acme.test/';
    const basic = (c: { client_id: string; client_secret: string }): [string, string] => [c.client_id, c.client_secret];

    /** The agent credential: client credentials at the home tenant with no resource. */
    async function agentCredential(c: { client_id: string; client_secret: string }): Promise<string> {
      const res = await token('vendor', {}, basic(c));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.access_token as string;
    }
    const exchange = (tenant: string, c: { client_id: string; client_secret: string }, subject: string, extra: Record<string, string> = {}) =>
      tokenRequest(b, tenant, { grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: api, ...extra }, { basic: basic(c) });

    it('resource create --require-dpop: require_dpop true in the record and the document', async () => {
      const out = await human('resource', 'create', '--tenant', 'acme', '--uri', 'https://dpop.acme.test/', '--scopes', 'tickets:read', '--require-dpop');
      expect(parseRecord(out)).toMatchObject({ uri: 'https://dpop.acme.test/', require_dpop: 'true' });
      const doc = await json('resource', 'create', '--tenant', 'globex', '--uri', 'https://dpop.globex.test/', '--scopes', 'x', '--require-dpop');
      expect(doc).toMatchObject({ uri: 'https://dpop.globex.test/', require_dpop: true });
      const listed = await json<any[]>('resource', 'list', '--tenant', 'acme');
      expect(Object.fromEntries(listed.map((r) => [r.uri, r.require_dpop]))).toEqual({
        'https://api.acme.test/': false, 'https://billing.acme.test/': false, 'https://dpop.acme.test/': true,
        'urn:bulkhead:admin': false, // the admin API resource every tenant is created with
      });
      await refused(['resource', 'create', '--tenant', 'acme', '--uri', `${b.url}/t/acme`, '--scopes', 'a'], `uri: ${b.url} and the URLs under it belong to Bulkhead itself`);
    });

    it('agent create shows the secret once (with the note); the agent gets its credential at home', async () => {
      await json('tenant', 'create', 'vendor');
      const out = await human('agent', 'create', '--tenant', 'vendor', '--name', 'triage-bot');
      const [rec, note] = out.trimEnd().split('\n\n');
      expect(rec!.split('\n').map((l) => l.split(/ {2,}/)[0])).toEqual(['client_id', 'name', 'kind', 'token_endpoint_auth_method', 'token_ttl', 'status', 'client_secret']);
      const r = parseRecord(rec!);
      expect(r).toMatchObject({ name: 'triage-bot', kind: 'agent', token_endpoint_auth_method: 'client_secret_basic', token_ttl: '-', status: 'active' });
      expect(r.client_id).toMatch(/^ag_/);
      expect(r.client_secret).toMatch(/^bhs_[A-Za-z0-9_-]{40,}$/);
      expect(note).toBe('Store the client_secret now: it is not shown again.');
      agent = { client_id: r.client_id!, client_secret: r.client_secret! };

      // The credential names the agent, at its home issuer, and grants nothing.
      const cred = await agentCredential(agent);
      const { payload } = await jwtVerify(cred, createRemoteJWKSet(new URL(`${b.issuer('vendor')}/jwks`)), { issuer: b.issuer('vendor'), audience: b.issuer('vendor'), typ: 'at+jwt' });
      expect(payload).toMatchObject({ sub: agent.client_id, client_id: agent.client_id, tenant_id: 'vendor' });
      expect(payload).not.toHaveProperty('scope');

      // Shown once: listings carry neither the secret nor the field.
      const listed = await cli('client', 'list', '--tenant', 'vendor', '--json');
      expect(listed.code).toBe(0);
      expect(listed.stdout).not.toContain(agent.client_secret);
      expect(JSON.parse(listed.stdout)).toEqual([expect.not.objectContaining({ client_secret: expect.anything() })]);
      expect(JSON.parse(listed.stdout)[0]).toMatchObject({ client_id: agent.client_id, kind: 'agent' });
    });

    it('agent create --json (--auth, --ttl are sent); duplicate names and bad auth are refused', async () => {
      const c = await json('agent', 'create', '--tenant', 'vendor', '--name', 'billing-bot', '--auth', 'client_secret_post', '--ttl', '600');
      expect(c).toMatchObject({
        name: 'billing-bot', kind: 'agent', token_endpoint_auth_method: 'client_secret_post', token_ttl: 600, scopes: [], resources: [],
        grant_types: ['client_credentials', TOKEN_EXCHANGE], status: 'active',
      });
      expect(c.client_id).toMatch(/^ag_/);
      expect(c.client_secret).toMatch(/^bhs_/);
      second = { client_id: c.client_id, client_secret: c.client_secret };
      // The secret in the body (client_secret_post) gets the agent credential.
      expect((await token('vendor', { client_id: c.client_id, client_secret: c.client_secret })).status).toBe(200);

      await refused(['agent', 'create', '--tenant', 'vendor', '--name', 'triage-bot'], 'a client named "triage-bot" already exists in tenant vendor');
      await refused(['agent', 'create', '--tenant', 'vendor', '--name', 'jwt-bot', '--auth', 'private_key_jwt'], 'jwks: private_key_jwt clients need a jwks');
      await refused(['agent', 'create', '--tenant', 'vendor', '--name', 'jwt-bot', '--auth', 'private_key_jwt', '--jwks', path.join(scratch, 'missing.json')], 'cannot read a JWKS from');
      expect((await json<any[]>('client', 'list', '--tenant', 'vendor')).map((x) => x.name)).toEqual(['billing-bot', 'triage-bot']);
    });

    it('agent create --auth private_key_jwt --jwks FILE: no secret, no note', async () => {
      const { publicKey } = await generateKeyPair('ES256', { extractable: true });
      const jwksFile = path.join(scratch, 'agent.jwks.json');
      writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig' }] }));
      const out = await human('agent', 'create', '--tenant', 'vendor', '--name', 'jwt-bot', '--auth', 'private_key_jwt', '--jwks', jwksFile);
      expect(out).not.toContain('client_secret');
      expect(out).not.toContain('not shown again');
      expect(parseRecord(out)).toMatchObject({ name: 'jwt-bot', kind: 'agent', token_endpoint_auth_method: 'private_key_jwt' });
    });

    it('delegation grant: the agent then exchanges its credential at acme, within the delegation', async () => {
      // Not installed yet: at acme the agent is nobody.
      const before = await exchange('acme', agent, await agentCredential(agent));
      expect(before.status).toBe(401);
      expect(before.body.error).toBe('invalid_client');

      const out = await human('delegation', 'grant', '--tenant', 'acme', '--agent', agent.client_id, '--scopes', 'tickets:read', '--resources', api, '--ttl', '120');
      expect(out.trimEnd().split('\n').map((l) => l.split(/ {2,}/)[0])).toEqual([
        'id', 'client_id', 'agent_tenant', 'scopes', 'resources', 'status', 'expires_at', 'token_ttl', 'require_dpop', 'created_by', 'created_at', 'revoked_at',
      ]);
      const d = parseRecord(out);
      expect(d).toMatchObject({
        client_id: agent.client_id, agent_tenant: 'vendor', scopes: 'tickets:read', resources: api, status: 'active',
        expires_at: '-', token_ttl: '120', require_dpop: 'false', created_by: b.adminCredentials().client_id, revoked_at: '-',
      });
      expect(d.id).toMatch(/^dg_/);
      expect(d.created_at).toMatch(/^\d{4}-\d\d-\d\dT/);
      delegationId = d.id!;

      const cred = await agentCredential(agent);
      const res = await exchange('acme', agent, cred, { scope: 'tickets:read' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({ issued_token_type: ACCESS_TOKEN_TYPE, scope: 'tickets:read' });
      expect(res.body.expires_in).toBeLessThanOrEqual(120);
      const { payload } = await jwtVerify(res.body.access_token, createRemoteJWKSet(new URL(`${b.issuer('acme')}/jwks`)), { issuer: b.issuer('acme'), audience: api, typ: 'at+jwt' });
      expect(payload).toMatchObject({ tenant_id: 'acme', client_id: agent.client_id, scope: 'tickets:read' });
      expect(payload.exp!).toBeLessThanOrEqual(decodeJwt(cred).exp!);
      // The delegation is the ceiling: tickets:write is offered by the resource, not delegated.
      expect((await exchange('acme', agent, cred, { scope: 'tickets:write' })).body.error).toBe('invalid_scope');
      // Installed in acme only.
      expect((await exchange('globex', agent, cred, { resource: 'https://dpop.globex.test/' })).body.error).toBe('invalid_client');
    });

    it('delegation grant --json (--expires with an offset, --require-dpop) and the refusals', async () => {
      const expires = new Date(Date.now() + 86_400_000);
      expires.setUTCMilliseconds(0);
      // The same instant written at +02:00: the CLI sends it as UTC.
      const local = new Date(expires.getTime() + 2 * 3_600_000).toISOString().replace(/\.000Z$/, '+02:00');
      const d = await json('delegation', 'grant', '--tenant', 'acme', '--agent', second.client_id, '--scopes', 'tickets:read,invoices:read',
        '--resources', `${api},https://billing.acme.test/`, '--expires', local, '--require-dpop');
      expect(Object.keys(d).sort()).toEqual(['agent_tenant', 'client_id', 'created_at', 'created_by', 'expires_at', 'id', 'require_dpop', 'resources', 'revoked_at', 'scopes', 'status', 'token_ttl']);
      expect(d).toMatchObject({
        client_id: second.client_id, agent_tenant: 'vendor', scopes: ['tickets:read', 'invoices:read'], resources: [api, 'https://billing.acme.test/'],
        token_ttl: null, expires_at: expires.toISOString(), require_dpop: true, status: 'active', revoked_at: null, created_by: b.adminCredentials().client_id,
      });

      const grant = (agentId: string, ...rest: string[]) => ['delegation', 'grant', '--tenant', 'acme', '--agent', agentId, ...rest];
      const third = await json('agent', 'create', '--tenant', 'vendor', '--name', 'third-bot');
      await refused(grant(agent.client_id, '--scopes', 'tickets:read', '--resources', api),
        `agent ${agent.client_id} already has an active delegation in tenant acme (${delegationId}); revoke it first`);
      await refused(grant('ag_nope', '--scopes', 'tickets:read', '--resources', api), 'client_id: no agent ag_nope');
      // A service client is not an agent.
      const svc = (await json<any[]>('client', 'list', '--tenant', 'acme')).find((c) => c.name === 'jwt-svc');
      await refused(grant(svc.client_id, '--scopes', 'tickets:read', '--resources', api), `client_id: no agent ${svc.client_id}`);
      await refused(grant(third.client_id, '--scopes', 'tickets:read', '--resources', 'https://nowhere.test/'), 'resources: not registered in tenant acme: https://nowhere.test/');
      // globex's resource is not acme's.
      await refused(grant(third.client_id, '--scopes', 'x', '--resources', 'https://dpop.globex.test/'), 'resources: not registered in tenant acme: https://dpop.globex.test/');
      await refused(grant(third.client_id, '--scopes', 'tickets:read,tickets:delete', '--resources', api), "scopes: not offered by any of the delegation's resources: tickets:delete");
      await refused(grant(third.client_id, '--scopes', 'tickets:read', '--resources', api, '--expires', '2020-01-01T00:00:00Z'), 'expires_at: must be in the future');
      await refused(grant(third.client_id, '--scopes', 'tickets:read', '--resources', api, '--ttl', '999999'), 'token_ttl');
      // Unparseable: refused locally, before the broker is asked.
      const bad = await cli(...grant(third.client_id, '--scopes', 'tickets:read', '--resources', api, '--expires', 'next tuesday'));
      expect(bad.code).toBe(2);
      expect(bad.stdout).toBe('');
      expect(bad.stderr).toContain("option '--expires <iso8601>' argument 'next tuesday' is invalid");

      // None of the refusals left a delegation behind.
      expect((await json<any[]>('delegation', 'list', '--tenant', 'acme')).map((x) => x.client_id)).toEqual([agent.client_id, second.client_id]);
    });

    it('delegation list: table header and rows, and --json', async () => {
      const { header, rows } = parseTable(await human('delegation', 'list', '--tenant', 'acme'));
      expect(header).toBe('ID CLIENT_ID AGENT_TENANT SCOPES RESOURCES STATUS EXPIRES_AT TOKEN_TTL REQUIRE_DPOP');
      expect(rows).toHaveLength(2);
      expect(rows[0]).toEqual({
        id: delegationId, client_id: agent.client_id, agent_tenant: 'vendor', scopes: 'tickets:read', resources: api,
        status: 'active', expires_at: '-', token_ttl: '120', require_dpop: 'false',
      });
      expect(rows[1]).toMatchObject({ client_id: second.client_id, scopes: 'tickets:read,invoices:read', resources: `${api},https://billing.acme.test/`, require_dpop: 'true', token_ttl: '-' });
      expect(rows[1]!.expires_at).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);

      const list = await json<any[]>('delegation', 'list', '--tenant', 'acme');
      expect(list.map((x) => [x.id, x.status])).toEqual([[delegationId, 'active'], [rows[1]!.id, 'active']]);
      expect(await human('delegation', 'list', '--tenant', 'globex')).toBe('(none)\n');
      expect(await json('delegation', 'list', '--tenant', 'globex')).toEqual([]);
    });

    it('delegation revoke: the next exchange is invalid_client; twice, unknown or foreign ids are refused', async () => {
      const cred = await agentCredential(agent);
      expect((await exchange('acme', agent, cred)).status).toBe(200);
      // globex cannot revoke acme's delegation.
      await refused(['delegation', 'revoke', '--tenant', 'globex', delegationId], `delegation ${delegationId} not found in tenant globex`);

      const out = await human('delegation', 'revoke', '--tenant', 'acme', delegationId);
      const [headline, blank, ...rest] = out.trimEnd().split('\n');
      expect(headline).toBe(`revoked ${delegationId}`);
      expect(blank).toBe('');
      expect(parseRecord(rest.join('\n'))).toMatchObject({ id: delegationId, status: 'revoked' });
      expect(parseRecord(rest.join('\n')).revoked_at).toMatch(/^\d{4}-\d\d-\d\dT/);

      const res = await exchange('acme', agent, cred);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');

      await refused(['delegation', 'revoke', '--tenant', 'acme', delegationId], `delegation ${delegationId} is already revoked`);
      await refused(['delegation', 'revoke', '--tenant', 'acme', 'dg_nope'], 'delegation dg_nope not found in tenant acme');

      const other = (await json<any[]>('delegation', 'list', '--tenant', 'acme')).find((x) => x.client_id === second.client_id);
      const revoked = await json('delegation', 'revoke', '--tenant', 'acme', other.id);
      expect(revoked).toMatchObject({ id: other.id, status: 'revoked', client_id: second.client_id });
      expect(revoked.revoked_at).toMatch(/^\d{4}-/);
      const { rows } = parseTable(await human('delegation', 'list', '--tenant', 'acme'));
      expect(rows.map((r) => r.status)).toEqual(['revoked', 'revoked']);

      // Revoked, the agent may be installed again.
      const again = await json('delegation', 'grant', '--tenant', 'acme', '--agent', agent.client_id, '--scopes', 'tickets:read', '--resources', api);
      expect(again.id).not.toBe(delegationId);
      expect((await exchange('acme', agent, await agentCredential(agent))).status).toBe(200);
    });
  });

  describe('tokens', () => {
    const api = 'https://api.acme.test/';
    type Creds = { client_id: string; client_secret: string };
    let service: Creds;
    let rs: Creds;
    let bot: Creds;
    let botDelegation: string;
    const basic = (c: Creds): [string, string] => [c.client_id, c.client_secret];
    const claims = (t: string) => decodeJwt(t) as { jti: string; exp: number };

    /** RFC 7662 over HTTP, as acme's resource server: a client of acme with Basic auth. */
    async function introspect(t: string, as: Creds = rs, tenant = 'acme'): Promise<Record<string, unknown>> {
      const res = await fetch(`${b.issuer(tenant)}/introspect`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${as.client_id}:${as.client_secret}`).toString('base64')}` },
        body: new URLSearchParams({ token: t }).toString(),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as Record<string, unknown>;
    }
    async function serviceToken(): Promise<string> {
      const res = await token('acme', { scope: 'tickets:read' }, basic(service));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.access_token as string;
    }
    async function botToken(): Promise<string> {
      const cred = await token('vendor', {}, basic(bot));
      expect(cred.status, JSON.stringify(cred.body)).toBe(200);
      const res = await tokenRequest(b, 'acme', { grant_type: TOKEN_EXCHANGE, subject_token: cred.body.access_token, subject_token_type: ACCESS_TOKEN_TYPE, resource: api }, { basic: basic(bot) });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.access_token as string;
    }

    beforeAll(async () => {
      const client = (name: string) => b.admin('POST', '/tenants/acme/clients', { name, scopes: ['tickets:read'], resources: [api] }).then((r) => r.body as Creds);
      service = await client('token-holder');
      rs = await client('tickets-rs');
      bot = (await b.admin('POST', '/tenants/vendor/agents', { name: 'revoke-bot' })).body;
      botDelegation = (await b.admin('POST', '/tenants/acme/delegations', { client_id: bot.client_id, scopes: ['tickets:read'], resources: [api] })).body.id;
    });

    it('token revoke: a record, then --json with --expires; the token is {active:false} at /t/acme/introspect', async () => {
      const first = await serviceToken();
      const second = await serviceToken();
      expect(await introspect(first)).toMatchObject({ active: true, jti: claims(first).jti });

      // A jti may start with '-': after '--' it is never an option.
      const out = await human('token', 'revoke', '--tenant', 'acme', '--', claims(first).jti);
      expect(out.trimEnd().split('\n').map((l) => l.split(/ {2,}/)[0])).toEqual(['tenant', 'jti', 'revoked']);
      expect(parseRecord(out)).toEqual({ tenant: 'acme', jti: claims(first).jti, revoked: 'true' });
      expect(await introspect(first)).toEqual({ active: false });
      expect((await introspect(second)).active).toBe(true);

      // --expires with an offset: the revocation is kept until exactly the token's exp.
      const { jti, exp } = claims(second);
      const atPlusOne = new Date((exp + 3600) * 1000).toISOString().replace(/\.\d{3}Z$/, '+01:00');
      const doc = await json('token', 'revoke', '--tenant', 'acme', '--expires', atPlusOne, '--', jti);
      expect(doc).toEqual({ jti, revoked: true });
      expect(await introspect(second)).toEqual({ active: false });
      const row = await b.broker.services.db.prisma.revokedToken.findFirst({ where: { tenantId: 'acme', jti } });
      expect(row!.expiresAt.getTime()).toBe(exp * 1000);
      // Idempotent.
      expect(await json('token', 'revoke', '--tenant', 'acme', '--', jti)).toEqual({ jti, revoked: true });

      await refused(['token', 'revoke', '--tenant', 'acme', 'not.a.jti'], 'jti: must be 1-64 characters of the base64url alphabet');
      await refused(['token', 'revoke', '--tenant', 'acme', '--', 'x'.repeat(65)], 'jti: must be 1-64 characters');
      await refused(['token', 'revoke', '--tenant', 'acme', '--expires', '2020-01-01T00:00:00Z', '--', jti], 'expires_at: must be in the future');
    });

    it('token revoke-all --client: --json, then a record; the refusals', async () => {
      const before = await serviceToken();
      expect((await introspect(before)).active).toBe(true);
      const t0 = Date.now();
      const doc = await json('token', 'revoke-all', '--tenant', 'acme', '--client', service.client_id);
      expect(Object.keys(doc).sort()).toEqual(['client_id', 'not_before']);
      expect(doc.client_id).toBe(service.client_id);
      expect(Date.parse(doc.not_before)).toBeGreaterThan(t0);
      expect(await introspect(before)).toEqual({ active: false });
      // Other clients' tokens are untouched.
      const other = await token('acme', { scope: 'tickets:read' }, basic(rs));
      expect((await introspect(other.body.access_token)).active).toBe(true);

      const out = await human('token', 'revoke-all', '--tenant', 'acme', '--client', service.client_id);
      expect(out.trimEnd().split('\n').map((l) => l.split(/ {2,}/)[0])).toEqual(['tenant', 'client_id', 'not_before']);
      expect(parseRecord(out)).toMatchObject({ tenant: 'acme', client_id: service.client_id });
      expect(parseRecord(out).not_before).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);

      await refused(['token', 'revoke-all', '--tenant', 'acme', '--client', 'cl_nope'], 'client cl_nope not found in tenant acme');
      // acme's client through globex: not found there.
      await refused(['token', 'revoke-all', '--tenant', 'globex', '--client', service.client_id], `client ${service.client_id} not found in tenant globex`);
    });

    it("token revoke-all --delegation: a record, then --json; the agent's tokens in acme are inactive; the refusals", async () => {
      const before = await botToken();
      expect(await introspect(before)).toMatchObject({ active: true, client_id: bot.client_id });

      const out = await human('token', 'revoke-all', '--tenant', 'acme', '--delegation', botDelegation);
      expect(out.trimEnd().split('\n').map((l) => l.split(/ {2,}/)[0])).toEqual(['tenant', 'delegation', 'client_id', 'not_before']);
      expect(parseRecord(out)).toMatchObject({ tenant: 'acme', delegation: botDelegation, client_id: bot.client_id });
      expect(await introspect(before)).toEqual({ active: false });
      // The delegation itself stays active.
      expect((await json<any[]>('delegation', 'list', '--tenant', 'acme')).find((d) => d.id === botDelegation).status).toBe('active');

      const doc = await json('token', 'revoke-all', '--tenant', 'acme', '--delegation', botDelegation);
      expect(Object.keys(doc).sort()).toEqual(['client_id', 'delegation', 'not_before']);
      expect(doc).toMatchObject({ delegation: botDelegation, client_id: bot.client_id });
      expect(Date.parse(doc.not_before)).toBeGreaterThanOrEqual(Date.parse(parseRecord(out).not_before!));

      await refused(['token', 'revoke-all', '--tenant', 'acme', '--delegation', 'dg_nope'], 'delegation dg_nope not found in tenant acme');
      await refused(['token', 'revoke-all', '--tenant', 'globex', '--delegation', botDelegation], `delegation ${botDelegation} not found in tenant globex`);
    });
  });

  it('an unknown tenant is refused by every tenant-scoped command', async () => {
    const commands = [
      ['tenant', 'show', 'nope'],
      ['tenant', 'suspend', 'nope'],
      ['tenant', 'resume', 'nope'],
      ['key', 'list', '--tenant', 'nope'],
      ['key', 'rotate', '--tenant', 'nope'],
      ['key', 'revoke', '--tenant', 'nope', 'some-kid'],
      ['resource', 'create', '--tenant', 'nope', '--uri', 'https://x.test/', '--scopes', 'a'],
      ['resource', 'list', '--tenant', 'nope'],
      ['client', 'create', '--tenant', 'nope', '--name', 'n', '--scopes', 'a', '--resources', 'https://x.test/'],
      ['client', 'list', '--tenant', 'nope'],
      ['client', 'rotate-secret', '--tenant', 'nope', 'cl_x'],
      ['client', 'disable', '--tenant', 'nope', 'cl_x'],
      ['agent', 'create', '--tenant', 'nope', '--name', 'n'],
      ['delegation', 'grant', '--tenant', 'nope', '--agent', 'ag_x', '--scopes', 'a', '--resources', 'https://x.test/'],
      ['delegation', 'list', '--tenant', 'nope'],
      ['delegation', 'revoke', '--tenant', 'nope', 'dg_x'],
      ['token', 'revoke', '--tenant', 'nope', 'some-jti'],
      ['token', 'revoke-all', '--tenant', 'nope', '--client', 'cl_x'],
      ['token', 'revoke-all', '--tenant', 'nope', '--delegation', 'dg_x'],
    ];
    const results = await Promise.all(commands.map((args) => cli(...args, '--json')));
    results.forEach((r, i) => {
      expect(r.code, commands[i]!.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe('bulkhead: tenant nope not found\n');
    });
  });

  it('a broker that is not running: exit 1, "cannot reach Bulkhead"', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    await refused(['tenant', 'list'], `cannot reach Bulkhead at ${url}`, { BULKHEAD_URL: url });
    await refused(['tenant', 'list'], 'BULKHEAD_URL must be an http(s) URL', { BULKHEAD_URL: 'localhost:8080' });
  });

  it('admin credentials: missing, from the environment, wrong, or half set', async () => {
    const empty = mkdtempSync(path.join(scratch, 'keys-'));
    await refused(['tenant', 'list'], /no admin credentials: .*admin-credentials\.json does not exist and BULKHEAD_ADMIN_CLIENT_ID\/BULKHEAD_ADMIN_CLIENT_SECRET are not set/, { KEYS_DIR: empty });

    const creds = b.adminCredentials();
    const viaEnv = await cliEnv({ KEYS_DIR: empty, BULKHEAD_ADMIN_CLIENT_ID: creds.client_id, BULKHEAD_ADMIN_CLIENT_SECRET: creds.client_secret }, 'tenant', 'list', '--json');
    expect(viaEnv.stderr).toBe('');
    expect(viaEnv.code).toBe(0);
    expect((JSON.parse(viaEnv.stdout) as any[]).map((t) => t.id)).toContain('acme');

    await refused(['tenant', 'list'], 'the broker refused the admin credentials: invalid_client',
      { KEYS_DIR: empty, BULKHEAD_ADMIN_CLIENT_ID: creds.client_id, BULKHEAD_ADMIN_CLIENT_SECRET: 'bhs_wrong' });
    await refused(['tenant', 'list'], 'BULKHEAD_ADMIN_CLIENT_ID is set but BULKHEAD_ADMIN_CLIENT_SECRET is not',
      { BULKHEAD_ADMIN_CLIENT_ID: creds.client_id });

    writeFileSync(path.join(empty, 'admin-credentials.json'), '{"client_id": 1}');
    await refused(['tenant', 'list'], 'admin-credentials.json is not a valid admin credentials file', { KEYS_DIR: empty });
  });

  it('migrate applies the migrations to a fresh DATA_DIR, reports it up to date; serve then starts on it', async () => {
    const dir = mkdtempSync(path.join(scratch, 'migrate-'));
    const keysDir = path.join(dir, 'keys');
    const menv = { DATA_DIR: path.join(dir, 'data'), KEYS_DIR: keysDir, LOG_LEVEL: 'silent' };
    expect(MIGRATIONS.length).toBeGreaterThan(0);

    const first = await runBin(['migrate'], menv);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(`applied ${MIGRATIONS.length} migration(s): ${MIGRATIONS.join(', ')}\n`);

    // One process at a time on a PGlite directory; the invalid one never opens it.
    const [second, bad] = await Promise.all([runBin(['migrate'], menv), runBin(['migrate'], { ...menv, DATABASE_URL: 'mysql://nope' })]);
    const asJson = await runBin(['migrate', '--json'], menv);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(`database is up to date (${MIGRATIONS.length} migration(s) applied)\n`);
    expect(asJson.code).toBe(0);
    expect(JSON.parse(asJson.stdout)).toEqual({ applied: [], already_applied: MIGRATIONS });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('invalid DATABASE_URL: must be a postgres:// or postgresql:// URL');

    // `bulkhead serve` on the migrated directory: bootstraps the admin credentials (0600, never
    // printed), answers the CLI, and stops cleanly on SIGTERM.
    const port = await freePort();
    const server = spawn(process.execPath, [BIN, 'serve'], {
      cwd: os.tmpdir(),
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...menv, PORT: String(port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    server.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    server.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exited = new Promise<number | null>((resolve) => server.once('close', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 30_000);
        server.stdout.on('data', () => out.includes('Bulkhead listening on') && (clearTimeout(timer), resolve()));
        void exited.then((code) => (clearTimeout(timer), reject(new Error(`serve exited with ${code}: ${out}`))));
      });
      expect(out).toContain(`Bulkhead listening on http://127.0.0.1:${port}`);
      const credsFile = path.join(keysDir, 'admin-credentials.json');
      expect(statSync(credsFile).mode & 0o777).toBe(0o600);
      const creds = JSON.parse(readFileSync(credsFile, 'utf8')) as { client_secret: string };
      expect(out).not.toContain(creds.client_secret);

      const listed = await runBin(['tenant', 'list', '--json'], { BULKHEAD_URL: `http://127.0.0.1:${port}`, KEYS_DIR: keysDir });
      expect(listed.stderr).toBe('');
      expect((JSON.parse(listed.stdout) as any[]).map((t) => t.id)).toEqual(['system']);
    } finally {
      server.kill('SIGTERM');
    }
    const killer = setTimeout(() => server.kill('SIGKILL'), 15_000);
    expect(await exited).toBe(0);
    clearTimeout(killer);
  });
});
