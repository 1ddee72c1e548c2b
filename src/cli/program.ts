import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { createAdminClient, CliFailure, type AdminClient } from './admin-client.js';
import { cell, record, table } from './table.js';
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

const ISO_INSTANT_HINT = 'expected an ISO 8601 instant with an offset, such as 2030-01-31T18:00:00Z or 2030-01-31T19:00:00+01:00';
/**
 * An ISO 8601 instant: a calendar date, a time of day (seconds and fractions optional) and an
 * offset (`Z`, `±hh:mm` or `±hhmm`), e.g.
 * `2030-01-31T18:00:00Z`. A date alone or a time without an offset names no single instant, and
 * `Date.parse` quietly rolls `02-30` into March, so every field is checked here. Returned in
 * the canonical UTC form the admin API takes (`expires_at`).
 */
export function isoInstant(value: string): string {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(\.\d{1,9})?)?(?:Z|([+-])(\d\d):?(\d\d))$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError(ISO_INSTANT_HINT);
  const [year, month, day, hour, minute, second, offsetHours, offsetMinutes] = [1, 2, 3, 4, 5, 6, 9, 10].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number, number, number];
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const daysInMonth = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
  if (day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) {
    throw new InvalidArgumentError(ISO_INSTANT_HINT);
  }
  const offset = (m[8] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes);
  const at = new Date(0);
  at.setUTCFullYear(year, month - 1, day); // not Date.UTC, which reads years 0-99 as 1900-1999
  at.setUTCHours(hour, minute - offset, second, m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0);
  return at.toISOString();
}

/** Reads a public JWKS file for `--jwks` (a refusal, not a usage error, when it cannot be read). */
function readJwks(file: string | undefined): unknown {
  if (!file) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new CliFailure(`cannot read a JWKS from ${file}`);
  }
}

/** Reads a text file named on the command line (a refusal, not a usage error, when it cannot be read). */
function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    throw new CliFailure(`cannot read ${what} from ${file}`);
  }
}

type Row = Record<string, unknown>;
const POLICY_COLUMNS = ['tenant', 'version', 'policy_ids', 'updated_at', 'updated_by'];
const POLICY_TEST_COLUMNS = ['row', 'name', 'action', 'principal', 'resource', 'decision', 'policies', 'error', 'expect', 'ok'];
const TENANT_COLUMNS = ['id', 'name', 'status', 'token_ttl', 'created_at'];
const KEY_COLUMNS = ['kid', 'alg', 'status', 'published', 'created_at', 'publish_until'];
const RESOURCE_COLUMNS = ['uri', 'scopes', 'token_ttl', 'require_dpop', 'id'];
const CLIENT_COLUMNS = ['client_id', 'name', 'kind', 'token_endpoint_auth_method', 'scopes', 'resources', 'status'];
const AGENT_COLUMNS = ['client_id', 'name', 'kind', 'token_endpoint_auth_method', 'token_ttl', 'status'];
const DELEGATION_COLUMNS = ['id', 'client_id', 'agent_tenant', 'scopes', 'resources', 'status', 'expires_at', 'token_ttl', 'require_dpop'];
const DELEGATION_RECORD = [...DELEGATION_COLUMNS, 'created_by', 'created_at', 'revoked_at'];
const AUDIT_COLUMNS = ['seq', 'time', 'type', 'outcome', 'reason', 'actor', 'subject', 'scopes', 'audience', 'jti'];
const positive = (max: number) => (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) throw new InvalidArgumentError(`expected a whole number from 1 to ${max}`);
  return Number(value);
};
const SECRET_NOTE = 'Store the client_secret now: it is not shown again.';

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
    .option('--require-dpop', 'only DPoP-bound tokens (RFC 9449) are issued for this resource')
    .action(async (o) => {
      const r = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/resources`, {
        uri: o.uri,
        scopes: o.scopes,
        token_ttl: o.ttl,
        require_dpop: o.requireDpop,
      });
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
      const c = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/clients`, {
        name: o.name,
        scopes: o.scopes,
        resources: o.resources,
        token_endpoint_auth_method: o.auth,
        jwks: readJwks(o.jwks),
        token_ttl: o.ttl,
        grant_types: o.grantTypes,
      });
      emit(o, c, () => `${record(c, [...CLIENT_COLUMNS, 'client_secret'])}${c.client_secret ? `\n\n${SECRET_NOTE}` : ''}`);
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
      emit(o, c, () => `${record(c, ['client_id', 'name', 'client_secret'])}\n\n${SECRET_NOTE}`);
    });
  sub(clientCmd, 'disable', 'stop a client from obtaining tokens')
    .requiredOption('--tenant <id>', 'tenant')
    .argument('<client_id>')
    .action(async (id: string, o) => {
      const c = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/clients/${enc(id)}/disable`);
      emit(o, c, () => record(c, CLIENT_COLUMNS));
    });

  // agent
  const agent = group('agent', 'register AI agents (clients of kind agent)');
  sub(agent, 'create', 'register an agent in its home tenant (a secret is shown once)')
    .requiredOption('--tenant <id>', "the agent's home tenant")
    .requiredOption('--name <name>', 'unique client name in the home tenant')
    .addOption(new Option('--auth <method>', 'token endpoint authentication').choices(CLI_AUTH_METHODS).default('client_secret_basic'))
    .option('--jwks <file>', 'public JWKS file (private_key_jwt)')
    .option('--ttl <seconds>', "upper bound on the lifetime of the agent's tokens", seconds)
    .action(async (o) => {
      const c = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/agents`, {
        name: o.name,
        token_endpoint_auth_method: o.auth,
        jwks: readJwks(o.jwks),
        token_ttl: o.ttl,
      });
      emit(o, c, () => `${record(c, [...AGENT_COLUMNS, 'client_secret'])}${c.client_secret ? `\n\n${SECRET_NOTE}` : ''}`);
    });

  // delegation
  const delegation = group('delegation', 'install agents into tenants, within scopes and resources');
  sub(delegation, 'grant', 'let an agent exchange its credential for tokens in this tenant, within these bounds')
    .requiredOption('--tenant <id>', 'tenant the agent is installed into')
    .requiredOption('--agent <client_id>', 'client_id of the agent (registered with `agent create`)')
    .requiredOption('--scopes <a,b>', 'scopes the agent may ever obtain here', list)
    .requiredOption('--resources <uri,uri>', "resources of this tenant the agent may obtain tokens for", list)
    .option('--ttl <seconds>', "upper bound on the lifetime of the agent's tokens here", seconds)
    .option('--expires <iso8601>', 'the delegation ends at this instant, e.g. 2030-01-31T18:00:00Z', isoInstant)
    .option('--require-dpop', "the agent's tokens here must be DPoP-bound (RFC 9449)")
    .action(async (o) => {
      const d = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/delegations`, {
        client_id: o.agent,
        scopes: o.scopes,
        resources: o.resources,
        token_ttl: o.ttl,
        expires_at: o.expires,
        require_dpop: o.requireDpop,
      });
      emit(o, d, () => record(d, DELEGATION_RECORD));
    });
  sub(delegation, 'list', "list a tenant's delegations (active, revoked and expired)").requiredOption('--tenant <id>', 'tenant').action(async (o) => {
    const { delegations } = await admin().call<{ delegations: Row[] }>('GET', `/tenants/${enc(o.tenant)}/delegations`);
    emit(o, delegations, () => table(delegations, DELEGATION_COLUMNS));
  });
  sub(delegation, 'revoke', 'end a delegation: the agent can exchange nothing more in this tenant')
    .requiredOption('--tenant <id>', 'tenant')
    .argument('<id>', 'delegation id')
    .action(async (id: string, o) => {
      const d = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/delegations/${enc(id)}/revoke`);
      emit(o, d, () => `revoked ${id}\n\n${record(d, DELEGATION_RECORD)}`);
    });

  // token
  const tokenCmd = group('token', 'revoke access tokens: by jti, or all of a client or delegation');
  sub(tokenCmd, 'revoke', 'revoke one access token of the tenant (and every token exchanged from it)')
    .requiredOption('--tenant <id>', 'tenant that issued the token')
    .argument('<jti>', "the token's jti claim (one that starts with '-' goes after '--')")
    .option('--expires <iso8601>', "when the token expires (its exp claim), e.g. 2030-01-31T18:00:00Z: the revocation is kept until then (default: the longest lifetime a token can have)", isoInstant)
    .action(async (jti: string, o) => {
      const r = await admin().call<Row>('POST', `/tenants/${enc(o.tenant)}/tokens/revoke`, { jti, expires_at: o.expires });
      emit(o, r, () => record({ tenant: o.tenant, ...r }, ['tenant', 'jti', 'revoked']));
    });
  sub(tokenCmd, 'revoke-all', 'revoke every token a client, or a delegated agent, obtained in the tenant until now')
    .requiredOption('--tenant <id>', 'tenant')
    .addOption(new Option('--client <client_id>', 'a client of the tenant (an agent in its home tenant included)').conflicts('delegation'))
    .addOption(new Option('--delegation <id>', "a delegation of the tenant: its agent's tokens here").conflicts('client'))
    .action(async (o, cmd: Command) => {
      if (!o.client && !o.delegation) cmd.error('error: one of --client <client_id> or --delegation <id> is required', { code: 'commander.missingMandatoryOptionValue', exitCode: 2 });
      const route = o.client
        ? `/tenants/${enc(o.tenant)}/clients/${enc(o.client)}/revoke-tokens`
        : `/tenants/${enc(o.tenant)}/delegations/${enc(o.delegation)}/revoke-tokens`;
      const r = await admin().call<Row>('POST', route);
      emit(o, r, () => record({ tenant: o.tenant, ...r }, ['tenant', 'delegation', 'client_id', 'not_before']));
    });

  // audit
  const audit = group('audit', "read and verify a tenant's tamper-evident audit trail");
  sub(audit, 'tail', "print a tenant's newest audit events (oldest first); --follow keeps printing new ones")
    .requiredOption('--tenant <id>', 'tenant')
    .option('--limit <n>', 'how many of the newest events (1-1000)', positive(1000), 20)
    .option('--follow', 'keep polling for new events until interrupted (with --json: one JSON document per line, per event)')
    .option('--interval <ms>', 'how often --follow polls, in milliseconds', positive(60_000), 1000)
    .action(async (o) => {
      const base = `/tenants/${enc(o.tenant)}/audit`;
      const { events } = await admin().call<{ events: Row[] }>('GET', `${base}?limit=${o.limit}`);
      if (!o.follow) {
        emit(o, events, () => (events.length ? table(events, AUDIT_COLUMNS) : '(no audit events)'));
        return;
      }
      // One line per event as it comes (a table cannot be aligned ahead of rows not yet seen).
      const print = (batch: Row[]) => {
        for (const e of batch) io.out(o.json ? JSON.stringify(e) : AUDIT_COLUMNS.map((c) => cell(e[c])).join('  '));
      };
      if (!o.json) io.out(AUDIT_COLUMNS.map((c) => c.toUpperCase()).join('  '));
      print(events);
      let after = Number(events.at(-1)?.seq ?? 0);
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, o.interval));
        const { events: next } = await admin().call<{ events: Row[] }>('GET', `${base}?after=${after}&limit=1000`);
        print(next);
        if (next.length) after = Number(next.at(-1)!.seq);
      }
    });
  sub(audit, 'verify', "recompute a tenant's audit hash chain and report the first broken link (exit 1 if broken)")
    .requiredOption('--tenant <id>', 'tenant')
    .action(async (o) => {
      const r = await admin().call<{ ok: boolean; events: number; head: { seq: number }; broken?: { seq: number; problem: string } }>('GET', `/tenants/${enc(o.tenant)}/audit/verify`);
      emit(o, r, () =>
        r.ok
          ? `audit trail of ${o.tenant} verified: ${r.events} event(s), chain intact up to event ${r.head.seq}`
          : `audit trail of ${o.tenant} is BROKEN at event ${r.broken!.seq}: ${r.broken!.problem} (${r.events} event(s) before it verified)`,
      );
      if (!r.ok) throw new CliFailure(`audit trail of ${o.tenant} is broken at event ${r.broken!.seq}`);
    });

  // limits
  const limitsCmd = group('limits', 'show and override rate limits of a tenant and its clients');
  sub(limitsCmd, 'show', "show a tenant's rate, the default client rate, and every client override")
    .requiredOption('--tenant <id>', 'tenant')
    .action(async (o) => {
      const l = await admin().call<TenantLimits>('GET', `/tenants/${enc(o.tenant)}/limits`);
      emit(o, l, () => limitsTable(l));
    });
  sub(limitsCmd, 'set', "override the tenant's rate (platform admins) or one client's rate (at most the tenant's)")
    .requiredOption('--tenant <id>', 'tenant')
    .option('--client <client_id>', "a client of the tenant; without it, the tenant's own rate")
    .addOption(new Option('--rps <n>', 'requests per second (a whole number, at least 1)').argParser(rps).conflicts('default'))
    .addOption(new Option('--default', 'remove the override: the environment default applies again').conflicts('rps'))
    .action(async (o, cmd: Command) => {
      if (o.rps === undefined && !o.default) cmd.error('error: one of --rps <n> or --default is required', { code: 'commander.missingMandatoryOptionValue', exitCode: 2 });
      const input = { rate_limit_rps: o.default ? null : o.rps };
      if (o.client) {
        const c = await admin().call<Row>('PUT', `/tenants/${enc(o.tenant)}/clients/${enc(o.client)}/limits`, input);
        emit(o, c, () => record({ tenant: o.tenant, ...c, effective_rps: rate(c.effective_rps) }, ['tenant', 'client_id', 'name', 'rate_limit_rps', 'effective_rps']));
      } else {
        const l = await admin().call<TenantLimits>('PUT', `/tenants/${enc(o.tenant)}/limits`, input);
        emit(o, l, () => limitsTable(l));
      }
    });

  // policy
  const policy = group('policy', "set, show and test a tenant's Cedar policy");
  sub(policy, 'set', "validate a Cedar policy file and make it the tenant's policy (default deny from then on)")
    .requiredOption('--tenant <id>', 'tenant')
    .argument('<file>', 'Cedar policy text')
    .action(async (file: string, o) => {
      const p = await admin().call<Row>('PUT', `/tenants/${enc(o.tenant)}/policy`, { policy: readText(file, 'a Cedar policy') });
      emit(o, p, () => record(p, POLICY_COLUMNS));
    });
  sub(policy, 'show', "print the tenant's policy").requiredOption('--tenant <id>', 'tenant').action(async (o) => {
    const p = await admin().call<Row>('GET', `/tenants/${enc(o.tenant)}/policy`);
    emit(o, p, () =>
      p.text === null ? `tenant ${o.tenant} has no policy: its registrations (clients, resources, delegations) decide` : `${record(p, POLICY_COLUMNS)}\n\n${String(p.text)}`,
    );
  });
  sub(policy, 'delete', "remove the tenant's policy: its registrations alone decide again").requiredOption('--tenant <id>', 'tenant').action(async (o) => {
    const p = await admin().call<Row>('DELETE', `/tenants/${enc(o.tenant)}/policy`);
    emit(o, p, () => (p.deleted ? `deleted the policy of tenant ${o.tenant}` : `tenant ${o.tenant} had no policy`));
  });
  sub(policy, 'test', 'decide a table of requests (JSON, see README) with the tenant\'s policy; exit 1 when a row misses its "expect"')
    .requiredOption('--tenant <id>', 'tenant')
    .argument('<file>', 'JSON: an array of requests, or {"requests": [...]}')
    .option('--policy <file>', 'test this Cedar policy file instead of the stored policy (nothing is stored)')
    .action(async (file: string, o) => {
      let table_: unknown;
      try {
        table_ = JSON.parse(readText(file, 'a request table'));
      } catch (err) {
        if (err instanceof CliFailure) throw err;
        throw new CliFailure(`${file} is not JSON: ${(err as Error).message}`);
      }
      const requests = Array.isArray(table_) ? table_ : (table_ as { requests?: unknown } | null)?.requests;
      const r = await admin().call<{ results: Row[]; passed: boolean; policy: string; version: number | null }>('POST', `/tenants/${enc(o.tenant)}/policy/test`, {
        requests,
        ...(o.policy ? { policy: readText(o.policy, 'a Cedar policy') } : {}),
      });
      emit(o, r, () => `policy: ${r.policy}${r.version !== null ? ` (version ${r.version})` : ''}\n\n${table(r.results, POLICY_TEST_COLUMNS)}`);
      const missed = r.results.filter((x) => x.ok === false).map((x) => String(x.row));
      if (missed.length > 0) throw new CliFailure(`${missed.length} request(s) did not get the expected decision: row(s) ${missed.join(', ')}`);
    });

  return program;
}

/** `GET /admin/tenants/T/limits` (src/limits/overrides.ts `TenantLimitsView`). */
interface TenantLimits {
  tenant_id: string;
  tenant: { rate_limit_rps: number | null; effective_rps: number };
  client_default_rps: number;
  clients: Array<{ client_id: string; name: string; rate_limit_rps: number | null; effective_rps: number }>;
}
const rate = (n: unknown) => (n === 0 ? 'unlimited' : n);
const rps = (value: string) => {
  if (value === '0') throw new InvalidArgumentError('0 is not a rate: use --default for the environment default (to stop a tenant, suspend it; to stop a client, disable it)');
  if (!/^\d+$/.test(value) || Number(value) > 10_000_000) throw new InvalidArgumentError('expected a whole number of requests per second, 1 to 10000000');
  return Number(value);
};
/** One row per bucket: the tenant's, the default for clients, and each client override. */
function limitsTable(l: TenantLimits): string {
  return table(
    [
      { scope: 'tenant', client_id: '-', override: l.tenant.rate_limit_rps, effective_rps: rate(l.tenant.effective_rps) },
      { scope: 'client', client_id: '(default)', override: null, effective_rps: rate(l.client_default_rps) },
      ...l.clients.map((c) => ({ scope: 'client', client_id: c.client_id, name: c.name, override: c.rate_limit_rps, effective_rps: rate(c.effective_rps) })),
    ],
    ['scope', 'client_id', 'name', 'override', 'effective_rps'],
  );
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
      if (err.code === 'commander.unknownOption') {
        // A kid (a base64url thumbprint) or a jti (base64url): one in 64 starts with '-' and
        // reads as an option.
        const flag = /'([^']*)'/.exec(err.message)?.[1] ?? '';
        if (flag.length > 2 && !/^--[a-z][a-z-]*$/.test(flag)) {
          const [what, example] = argv[0] === 'token' ? ['a jti', 'bulkhead token revoke'] : ['a kid', 'bulkhead key revoke'];
          io.err(`(a value that starts with '-', as ${what} may, goes after '--': ${example} --tenant T -- ${flag})`);
        }
      }
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
