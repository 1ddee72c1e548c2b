import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { createAdminClient, CliFailure, type AdminClient } from './admin-client.js';
import { record, table } from './table.js';
import { KEY_ALGORITHMS } from '../keys/lifecycle.js';

/**
 * The client service's `AUTH_METHODS` and `GRANT_TYPES`, repeated here because importing that
 * module loads zod, jose and argon2 and more than doubles the start-up time of every command.
 * test/cli/cli.test.ts asserts the two stay equal.
 */
export const CLI_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;
export const CLI_GRANT_TYPES = ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'] as const;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** Runs `bulkhead serve` / `migrate`; injected so the CLI module stays light. */
  serve(): Promise<void>;
  migrate(): Promise<MigrationSummary>;
}

/** What `bulkhead migrate` reports (snake_case, as every --json document). */
export interface MigrationSummary {
  applied: string[];
  already_applied: string[];
}

const list = (value: string) => {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list');
  return items;
};
/** A list whose every item must be one of `allowed` (a usage error otherwise, like `.choices()`). */
const listOf = (allowed: readonly string[]) => (value: string) => {
  const items = list(value);
  const bad = items.filter((i) => !allowed.includes(i));
  if (bad.length) throw new InvalidArgumentError(`${bad.join(', ')}: allowed values are ${allowed.join(', ')}`);
  return items;
};
const seconds = (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive number of seconds');
  return Number(value);
};

type Row = Record<string, unknown>;
const TENANT_COLUMNS = ['id', 'name', 'status', 'token_ttl', 'created_at'];
const KEY_COLUMNS = ['kid', 'alg', 'status', 'published', 'created_at', 'publish_until'];
const RESOURCE_COLUMNS = ['uri', 'scopes', 'token_ttl', 'id'];
const CLIENT_COLUMNS = ['client_id', 'name', 'kind', 'token_endpoint_auth_method', 'scopes', 'resources', 'status'];

/**
 * The `bulkhead` command line: `serve` and `migrate` act on the database; every other command is
 * a thin client of a running broker's admin API. `--json` prints one JSON document, otherwise a
 * table. Exit 0 on success, 1 when the broker refuses or fails, 2 on usage errors.
 */
export function buildProgram(io: CliIo): Command {
  const program = new Command('bulkhead')
    .description('Bulkhead: tenant-bound OAuth 2.0 credentials for services and AI agents')
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, '')), writeErr: (s) => io.err(s.replace(/\n$/, '')) })
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');

  let client: AdminClient | undefined;
  const admin = () =>
    (client ??= createAdminClient({
      baseUrl: io.env.BULKHEAD_URL || 'http://127.0.0.1:8080',
      keysDir: path.resolve(io.env.KEYS_DIR || './keys'),
      env: io.env,
    }));

  /** Prints `value` as JSON with --json, else via `human`. */
  const emit = (opts: { json?: boolean }, value: unknown, human: () => string) => io.out(opts.json ? JSON.stringify(value, null, 2) : human());
  const sub = (parent: Command, name: string, description: string) =>
    parent.command(name).description(description).option('--json', 'print one JSON document');
  const group = (name: string, description: string) => program.command(name).description(description);
  const enc = encodeURIComponent;

  program.command('serve').description('apply migrations and serve every tenant').action(() => io.serve());
  program
    .command('migrate')
    .description('apply pending database migrations and exit')
    .option('--json', 'print one JSON document')
    .action(async (o) => {
      const r = await io.migrate();
      emit(o, r, () =>
        r.applied.length
          ? `applied ${r.applied.length} migration(s): ${r.applied.join(', ')}`
          : `database is up to date (${r.already_applied.length} migration(s) applied)`,
      );
    });

  // tenant
  const tenant = group('tenant', 'create, list and suspend tenants');
  sub(tenant, 'create', 'create a tenant with its own issuer and signing keys')
    .argument('<id>', 'tenant id (lowercase letters, digits, hyphens)')
    .option('--name <name>', 'display name')
    .option('--ttl <seconds>', 'upper bound on token lifetime in this tenant', seconds)
    .addOption(new Option('--alg <alg>', 'signing algorithm').choices(KEY_ALGORITHMS))
    .action(async (id: string, o) => {
      const t = await admin().call<Row>('POST', '/tenants', { id, name: o.name, token_ttl: o.ttl, alg: o.alg });
      emit(o, t, () => record(t, TENANT_COLUMNS));
    });
  sub(tenant, 'list', 'list tenants').action(async (o) => {
    const { tenants } = await admin().call<{ tenants: Row[] }>('GET', '/tenants');
    emit(o, tenants, () => table(tenants, TENANT_COLUMNS));
  });
  sub(tenant, 'show', 'show a tenant').argument('<id>').action(async (id: string, o) => {
    const t = await admin().call<Row>('GET', `/tenants/${enc(id)}`);
    emit(o, t, () => record(t, [...TENANT_COLUMNS, 'updated_at']));
  });
  for (const [verb, desc] of [['suspend', 'stop a tenant from issuing tokens (its JWKS stays published)'], ['resume', 'let a suspended tenant issue tokens again']] as const) {
    sub(tenant, verb, desc).argument('<id>').action(async (id: string, o) => {
      const t = await admin().call<Row>('POST', `/tenants/${enc(id)}/${verb}`);
      emit(o, t, () => record(t, TENANT_COLUMNS));
    });
  }

  // key
  const key = group('key', "list, rotate and revoke a tenant's signing keys");
  sub(key, 'list', 'list signing keys').requiredOption('--tenant <id>', 'tenant').action(async (o) => {
    const { keys } = await admin().call<{ keys: Row[] }>('GET', `/tenants/${enc(o.tenant)}/keys`);
    emit(o, keys, () => table(keys, KEY_COLUMNS));
  });
  sub(key, 'rotate', 'promote the pre-published key and retire the active one')
    .requiredOption('--tenant <id>', 'tenant')
    .addOption(new Option('--alg <alg>', 'algorithm of the new signing key').choices(KEY_ALGORITHMS))
    .action(async (o) => {
      const r = await admin().call<{ active: Row; keys: Row[] }>('POST', `/tenants/${enc(o.tenant)}/keys/rotate`, o.alg ? { alg: o.alg } : {});
      emit(o, r, () => `active key is now ${String(r.active.kid)} (${String(r.active.alg)})\n\n${table(r.keys, KEY_COLUMNS)}`);
    });
  sub(key, 'revoke', 'remove a key from the JWKS at once; its tokens stop verifying')
    .requiredOption('--tenant <id>', 'tenant')
    .argument('<kid>')
    .action(async (kid: string, o) => {
      const r = await admin().call<{ revoked: Row; keys: Row[] }>('POST', `/tenants/${enc(o.tenant)}/keys/${enc(kid)}/revoke`);
      emit(o, r, () => `revoked ${kid}\n\n${table(r.keys, KEY_COLUMNS)}`);
    });

  // resource
  const resource = group('resource', 'register resources (RFC 8707) and their scopes');
  sub(resource, 'create', 'register a resource')
    .requiredOption('--tenant <id>', 'tenant')
    .requiredOption('--uri <uri>', 'resource indicator (absolute URI)')
    .requiredOption('--scopes <a,b>', 'scopes this resource accepts', list)
    .option('--ttl <seconds>', 'upper bound on token lifetime for this resource', seconds)
    .action(async (o) => {
      const r = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/resources`, { uri: o.uri, scopes: o.scopes, token_ttl: o.ttl });
      emit(o, r, () => record(r, RESOURCE_COLUMNS));
    });
  sub(resource, 'list', 'list resources').requiredOption('--tenant <id>', 'tenant').action(async (o) => {
    const { resources } = await admin().call<{ resources: Row[] }>('GET', `/tenants/${enc(o.tenant)}/resources`);
    emit(o, resources, () => table(resources, RESOURCE_COLUMNS));
  });

  // client
  const clientCmd = group('client', 'register and manage clients');
  sub(clientCmd, 'create', 'register a client (a secret is shown once)')
    .requiredOption('--tenant <id>', 'tenant')
    .requiredOption('--name <name>', 'unique name in the tenant')
    .requiredOption('--scopes <a,b>', 'scopes the client may request', list)
    .requiredOption('--resources <uri,uri>', 'resources the client may request tokens for', list)
    .addOption(new Option('--auth <method>', 'token endpoint authentication').choices(CLI_AUTH_METHODS).default('client_secret_basic'))
    .option('--jwks <file>', 'public JWKS file (private_key_jwt)')
    .option('--ttl <seconds>', 'upper bound on token lifetime for this client', seconds)
    .option('--grant-types <a,b>', `grant types (${CLI_GRANT_TYPES.join(', ')})`, listOf(CLI_GRANT_TYPES))
    .action(async (o) => {
      let jwks: unknown;
      if (o.jwks) {
        try {
          jwks = JSON.parse(readFileSync(o.jwks, 'utf8'));
        } catch {
          throw new CliFailure(`cannot read a JWKS from ${o.jwks}`);
        }
      }
      const c = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/clients`, {
        name: o.name,
        scopes: o.scopes,
        resources: o.resources,
        token_endpoint_auth_method: o.auth,
        jwks,
        token_ttl: o.ttl,
        grant_types: o.grantTypes,
      });
      emit(o, c, () => `${record(c, [...CLIENT_COLUMNS, 'client_secret'])}${c.client_secret ? '\n\nStore the client_secret now: it is not shown again.' : ''}`);
    });
  sub(clientCmd, 'list', 'list clients').requiredOption('--tenant <id>', 'tenant').action(async (o) => {
    const { clients } = await admin().call<{ clients: Row[] }>('GET', `/tenants/${enc(o.tenant)}/clients`);
    emit(o, clients, () => table(clients, CLIENT_COLUMNS));
  });
  sub(clientCmd, 'rotate-secret', 'replace the secret (the old one stops working at once)')
    .requiredOption('--tenant <id>', 'tenant')
    .argument('<client_id>')
    .action(async (id: string, o) => {
      const c = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/clients/${enc(id)}/rotate-secret`);
      emit(o, c, () => `${record(c, ['client_id', 'name', 'client_secret'])}\n\nStore the client_secret now: it is not shown again.`);
    });
  sub(clientCmd, 'disable', 'stop a client from obtaining tokens')
    .requiredOption('--tenant <id>', 'tenant')
    .argument('<client_id>')
    .action(async (id: string, o) => {
      const c = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/clients/${enc(id)}/disable`);
      emit(o, c, () => record(c, CLIENT_COLUMNS));
    });

  return program;
}

/** Runs the CLI and returns the exit code (0 ok, 1 refused/failed, 2 usage). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      // `commander.help` is both `bulkhead help` (exit code 0) and the help commander prints
      // when a command is missing (`bulkhead`, `bulkhead tenant`): the latter is a usage error.
      if (err.code === 'commander.help') return err.exitCode === 0 ? 0 : 2;
      if (err.code === 'commander.executeSubCommandAsync') return 1;
      return 2;
    }
    if (err instanceof CliFailure) {
      io.err(`bulkhead: ${err.message}`);
      return 1;
    }
    io.err(`bulkhead: ${(err as Error).message ?? String(err)}`);
    return 1;
  }
}
