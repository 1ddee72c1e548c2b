import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startTestBroker, type TestBroker } from '../support/broker.js';
import { runBin, type Run } from '../support/cli.js';

/**
 * `bulkhead limits` and the CLI acting as a tenant admin (BULKHEAD_ADMIN_TENANT), as operators
 * use them: the built CLI as a real subprocess against a real broker.
 */
describe('bulkhead limits, and the CLI as a tenant admin', { timeout: 60_000 }, () => {
  let b: TestBroker;
  let env: Record<string, string>;
  let svc: { client_id: string };
  let acmeAdmin: { BULKHEAD_ADMIN_TENANT: string; BULKHEAD_ADMIN_CLIENT_ID: string; BULKHEAD_ADMIN_CLIENT_SECRET: string };
  const cli = (...args: string[]) => runBin(args, env);
  const as = (extra: Record<string, string | undefined>, ...args: string[]) => runBin(args, { ...env, ...extra });

  const ok = (r: Run, label: string) => {
    expect(r.stderr, label).toBe('');
    expect(r.code, label).toBe(0);
    return r.stdout;
  };
  /** A refused operation: exit 1, nothing on stdout, one `bulkhead: ...` line. */
  const refusedWith = (r: Run, message: string | RegExp) => {
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    if (typeof message === 'string') expect(r.stderr).toBe(`bulkhead: ${message}\n`);
    else expect(r.stderr).toMatch(message);
  };
  /** A usage error: exit 2 before any request (the broker URL is a closed port). */
  const usage = async (args: string[], message: string) => {
    const r = await as({ BULKHEAD_URL: `http://127.0.0.1:${await freePort()}` }, ...args);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(message);
  };
  /** `SCOPE  CLIENT_ID ...` table rows as arrays of cells. */
  const rows = (out: string) => out.trimEnd().split('\n').map((l) => l.split(/ {2,}/));

  beforeAll(async () => {
    // Rates well above what the CLI's own admin-token requests need (each command fetches one).
    b = await startTestBroker('pglite', { RATE_LIMIT_CLIENT_RPS: '100', RATE_LIMIT_TENANT_RPS: '500' });
    env = { BULKHEAD_URL: b.url, KEYS_DIR: b.keysDir };
    for (const t of ['acme', 'globex']) await b.admin('POST', '/tenants', { id: t });
    await b.admin('POST', '/tenants/acme/resources', { uri: 'https://tickets.acme.test/', scopes: ['tickets:read'] });
    svc = (await b.admin('POST', '/tenants/acme/clients', { name: 'ticket-sync', scopes: ['tickets:read'], resources: ['https://tickets.acme.test/'] })).body;
    // A tenant admin, created through the CLI exactly as the README says.
    const admin = JSON.parse(ok(await cli('client', 'create', '--tenant', 'acme', '--name', 'admin', '--scopes', 'admin', '--resources', 'urn:bulkhead:admin', '--json'), 'client create'));
    acmeAdmin = { BULKHEAD_ADMIN_TENANT: 'acme', BULKHEAD_ADMIN_CLIENT_ID: admin.client_id, BULKHEAD_ADMIN_CLIENT_SECRET: admin.client_secret };
  });
  afterAll(() => b?.close());

  it('help lists limits show/set and their options', async () => {
    expect(ok(await cli('--help'), 'help')).toMatch(/^ {2}limits /m);
    const help = ok(await cli('limits', '--help'), 'limits --help');
    for (const verb of ['show', 'set']) expect(help).toMatch(new RegExp(`^  ${verb} `, 'm'));
    const set = ok(await cli('limits', 'set', '--help'), 'limits set --help');
    for (const opt of ['--tenant <id>', '--client <client_id>', '--rps <n>', '--default', '--json']) expect(set).toContain(opt);
  });

  it('usage errors exit 2', async () => {
    await Promise.all([
      usage(['limits', 'show'], "required option '--tenant <id>' not specified"),
      usage(['limits', 'set', '--tenant', 'acme'], 'one of --rps <n> or --default is required'),
      usage(['limits', 'set', '--tenant', 'acme', '--rps', '0'], '0 is not a rate: use --default for the environment default'),
      usage(['limits', 'set', '--tenant', 'acme', '--rps', 'lots'], 'expected a whole number of requests per second'),
      usage(['limits', 'set', '--tenant', 'acme', '--rps', '-3'], "'--rps <n>' argument '-3' is invalid"),
      usage(['limits', 'set', '--tenant', 'acme', '--rps', '5', '--default'], "option '--rps <n>' cannot be used with option '--default'"),
    ]);
  });

  it('limits show: a table of the buckets, and the --json document of the admin API', async () => {
    expect(rows(ok(await cli('limits', 'show', '--tenant', 'acme'), 'show'))).toEqual([
      ['SCOPE', 'CLIENT_ID', 'NAME', 'OVERRIDE', 'EFFECTIVE_RPS'],
      ['tenant', '-', '-', '-', '500'],
      ['client', '(default)', '-', '-', '100'],
    ]);
    const doc = JSON.parse(ok(await cli('limits', 'show', '--tenant', 'acme', '--json'), 'show --json'));
    expect(doc).toEqual((await b.admin('GET', '/tenants/acme/limits')).body);
  });

  it("limits set: the tenant's rate, a client's rate under it (refused above it), and --default", async () => {
    expect(rows(ok(await cli('limits', 'set', '--tenant', 'acme', '--rps', '30'), 'set tenant'))[1]).toEqual(['tenant', '-', '-', '30', '30']);
    const client = JSON.parse(ok(await cli('limits', 'set', '--tenant', 'acme', '--client', svc.client_id, '--rps', '7', '--json'), 'set client'));
    expect(client).toEqual({ client_id: svc.client_id, name: 'ticket-sync', rate_limit_rps: 7, effective_rps: 7 });
    refusedWith(await cli('limits', 'set', '--tenant', 'acme', '--client', svc.client_id, '--rps', '31'), "rate_limit_rps: must not exceed the tenant's rate (30 requests/s); a platform admin sets the tenant's rate");
    expect(rows(ok(await cli('limits', 'show', '--tenant', 'acme'), 'show'))[3]).toEqual(['client', svc.client_id, 'ticket-sync', '7', '7']);
    const cleared = ok(await cli('limits', 'set', '--tenant', 'acme', '--client', svc.client_id, '--default'), 'clear client');
    expect(cleared).toMatch(new RegExp(`^rate_limit_rps +-$`, 'm'));
    expect(cleared).toMatch(/^effective_rps +100$/m);
    ok(await cli('limits', 'set', '--tenant', 'acme', '--default'), 'clear tenant');
    expect((await b.admin('GET', '/tenants/acme/limits')).body).toMatchObject({ tenant: { rate_limit_rps: null, effective_rps: 500 }, clients: [] });
    refusedWith(await cli('limits', 'set', '--tenant', 'acme', '--client', 'cl_nosuch', '--rps', '3'), 'client cl_nosuch not found in tenant acme');
    for (const args of [['limits', 'show', '--tenant', 'nope'], ['limits', 'set', '--tenant', 'nope', '--rps', '3'], ['limits', 'set', '--tenant', 'nope', '--client', 'cl_x', '--default']]) {
      refusedWith(await cli(...args), 'tenant nope not found');
    }
  });

  it('as acme\'s admin (BULKHEAD_ADMIN_TENANT=acme): lists and creates clients in acme, sets its clients\' rates', async () => {
    const list = JSON.parse(ok(await as(acmeAdmin, 'client', 'list', '--tenant', 'acme', '--json'), 'client list'));
    expect(list.map((c: { name: string }) => c.name).sort()).toEqual(['admin', 'ticket-sync']);
    const created = JSON.parse(ok(await as(acmeAdmin, 'client', 'create', '--tenant', 'acme', '--name', 'made-by-acme', '--scopes', 'tickets:read', '--resources', 'https://tickets.acme.test/', '--json'), 'client create'));
    expect(created.client_secret).toMatch(/^bhs_/);
    expect((await b.admin('GET', '/tenants/acme/clients')).body.clients.map((c: { name: string }) => c.name)).toContain('made-by-acme');
    expect(JSON.parse(ok(await as(acmeAdmin, 'tenant', 'list', '--json'), 'tenant list')).map((t: { id: string }) => t.id)).toEqual(['acme']);
    expect(JSON.parse(ok(await as(acmeAdmin, 'limits', 'set', '--tenant', 'acme', '--client', created.client_id, '--rps', '20', '--json'), 'set')).rate_limit_rps).toBe(20);
  });

  it("as acme's admin: another tenant is not found, platform-only commands are refused, and nothing changes", async () => {
    const before = { clients: (await b.admin('GET', '/tenants/globex/clients')).body, tenants: (await b.admin('GET', '/tenants')).body, limits: (await b.admin('GET', '/tenants/acme/limits')).body };
    refusedWith(await as(acmeAdmin, 'client', 'list', '--tenant', 'globex'), 'tenant globex not found');
    refusedWith(await as(acmeAdmin, 'client', 'create', '--tenant', 'globex', '--name', 'x', '--scopes', 'a', '--resources', 'https://x.test/'), 'tenant globex not found');
    refusedWith(await as(acmeAdmin, 'tenant', 'create', 'acme-2'), 'only a platform admin (a token of the system tenant) may do this');
    refusedWith(await as(acmeAdmin, 'tenant', 'suspend', 'acme'), 'only a platform admin (a token of the system tenant) may do this');
    refusedWith(await as(acmeAdmin, 'limits', 'set', '--tenant', 'acme', '--rps', '100000'), 'only a platform admin (a token of the system tenant) may do this');
    refusedWith(await as(acmeAdmin, 'limits', 'show', '--tenant', 'globex'), 'tenant globex not found');
    expect({ clients: (await b.admin('GET', '/tenants/globex/clients')).body, tenants: (await b.admin('GET', '/tenants')).body, limits: (await b.admin('GET', '/tenants/acme/limits')).body }).toEqual(before);
  });

  it('BULKHEAD_ADMIN_TENANT: invalid ids, missing or wrong credentials, unknown tenants get clear messages', async () => {
    refusedWith(await as({ ...acmeAdmin, BULKHEAD_ADMIN_TENANT: 'Acme_Corp' }, 'tenant', 'list'),
      'BULKHEAD_ADMIN_TENANT must be a tenant id (1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen), not "Acme_Corp"');
    refusedWith(await as({ BULKHEAD_ADMIN_TENANT: 'acme' }, 'tenant', 'list'),
      /^bulkhead: BULKHEAD_ADMIN_TENANT=acme needs the credentials of acme's admin client in BULKHEAD_ADMIN_CLIENT_ID and BULKHEAD_ADMIN_CLIENT_SECRET .*`bulkhead client create --tenant acme --name admin --scopes admin --resources urn:bulkhead:admin`\n$/);
    refusedWith(await as({ ...acmeAdmin, BULKHEAD_ADMIN_TENANT: 'nosuch' }, 'tenant', 'list'), `tenant nosuch (BULKHEAD_ADMIN_TENANT) does not exist at ${b.url}, or is not served there`);
    refusedWith(await as({ ...acmeAdmin, BULKHEAD_ADMIN_CLIENT_SECRET: 'bhs_wrong' }, 'tenant', 'list'),
      'the broker refused the admin credentials of tenant acme (BULKHEAD_ADMIN_TENANT): invalid_client (client authentication failed)');
    // The platform admin's credentials are not acme's.
    const platform = b.adminCredentials();
    refusedWith(await as({ BULKHEAD_ADMIN_TENANT: 'acme', BULKHEAD_ADMIN_CLIENT_ID: platform.client_id, BULKHEAD_ADMIN_CLIENT_SECRET: platform.client_secret }, 'tenant', 'list'),
      /^bulkhead: the broker refused the admin credentials of tenant acme \(BULKHEAD_ADMIN_TENANT\): invalid_client/);
    // An ordinary client of acme has no admin scope: refused by acme's token endpoint.
    refusedWith(await as({ ...acmeAdmin, BULKHEAD_ADMIN_CLIENT_ID: svc.client_id }, 'tenant', 'list'), /^bulkhead: the broker refused the admin credentials of tenant acme/);
    // system, named or by default, is the platform admin with the credentials file.
    expect(JSON.parse(ok(await as({ BULKHEAD_ADMIN_TENANT: 'system' }, 'tenant', 'list', '--json'), 'system')).map((t: { id: string }) => t.id)).toEqual(expect.arrayContaining(['acme', 'globex', 'system']));
  });
});
