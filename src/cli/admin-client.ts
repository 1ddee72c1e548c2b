import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

/** A refusal the CLI reports on stderr with exit code 1. */
export class CliFailure extends Error {
  readonly code = 'ERR_CLI_FAILURE';
}

export interface AdminClientOptions {
  baseUrl: string;
  keysDir: string;
  env: NodeJS.ProcessEnv;
}

interface Credentials {
  client_id: string;
  client_secret: string;
}

/** Tenant ids (src/shared/ids.ts `TENANT_ID`, repeated so the CLI does not load the services). */
const TENANT_ID = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The tenant whose token endpoint the CLI authenticates at: `BULKHEAD_ADMIN_TENANT`, default
 * `system` (a platform admin). Naming tenant T makes the CLI T's tenant admin, with the
 * credentials of T's admin client in BULKHEAD_ADMIN_CLIENT_ID / BULKHEAD_ADMIN_CLIENT_SECRET.
 */
export function adminTenant(env: NodeJS.ProcessEnv): string {
  const tenant = env.BULKHEAD_ADMIN_TENANT || 'system';
  if (!TENANT_ID.test(tenant)) {
    throw new CliFailure(`BULKHEAD_ADMIN_TENANT must be a tenant id (1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen), not ${JSON.stringify(tenant)}`);
  }
  return tenant;
}

function loadCredentials(opts: AdminClientOptions, tenant: string): Credentials {
  const { BULKHEAD_ADMIN_CLIENT_ID: id, BULKHEAD_ADMIN_CLIENT_SECRET: secret } = opts.env;
  if (id && secret) return { client_id: id, client_secret: secret };
  // Half a pair is a mistake; silently falling back to the file would hide it.
  if (id || secret) {
    throw new CliFailure(`${id ? 'BULKHEAD_ADMIN_CLIENT_ID' : 'BULKHEAD_ADMIN_CLIENT_SECRET'} is set but ${id ? 'BULKHEAD_ADMIN_CLIENT_SECRET' : 'BULKHEAD_ADMIN_CLIENT_ID'} is not: set both, or neither to use ${path.join(opts.keysDir, 'admin-credentials.json')}`);
  }
  // The credentials file holds the platform admin of the system tenant: using it at another
  // tenant's token endpoint could only fail, with a less helpful message.
  if (tenant !== 'system') {
    throw new CliFailure(`BULKHEAD_ADMIN_TENANT=${tenant} needs the credentials of ${tenant}'s admin client in BULKHEAD_ADMIN_CLIENT_ID and BULKHEAD_ADMIN_CLIENT_SECRET (${path.join(opts.keysDir, 'admin-credentials.json')} holds the platform admin of the system tenant); a platform admin creates one with \`bulkhead client create --tenant ${tenant} --name admin --scopes admin --resources urn:bulkhead:admin\``);
  }
  const file = path.join(opts.keysDir, 'admin-credentials.json');
  if (!existsSync(file)) {
    throw new CliFailure(`no admin credentials: ${file} does not exist and BULKHEAD_ADMIN_CLIENT_ID/BULKHEAD_ADMIN_CLIENT_SECRET are not set (run \`bulkhead serve\` once, or set KEYS_DIR)`);
  }
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as Credentials;
    if (typeof c.client_id !== 'string' || typeof c.client_secret !== 'string') throw new Error('fields');
    return c;
  } catch {
    throw new CliFailure(`${file} is not a valid admin credentials file`);
  }
}

/**
 * The CLI's view of a running broker: it authenticates like any other client (client
 * credentials at the system tenant, or at BULKHEAD_ADMIN_TENANT's, resource = the admin API)
 * and then calls the admin API.
 */
export function createAdminClient(opts: AdminClientOptions) {
  const base = opts.baseUrl.replace(/\/+$/, '');
  if (!URL.canParse(base) || !/^https?:$/.test(new URL(base).protocol)) {
    throw new CliFailure(`BULKHEAD_URL must be an http(s) URL such as http://127.0.0.1:8080, not ${JSON.stringify(opts.baseUrl)}`);
  }
  const tenant = adminTenant(opts.env);
  let token: string | undefined;

  async function send(url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
    } catch {
      throw new CliFailure(`cannot reach Bulkhead at ${base}: is \`bulkhead serve\` running there? (set BULKHEAD_URL to point elsewhere)`);
    }
  }

  async function accessToken(): Promise<string> {
    if (token) return token;
    const c = loadCredentials(opts, tenant);
    const basic = Buffer.from(`${encodeURIComponent(c.client_id)}:${encodeURIComponent(c.client_secret)}`).toString('base64');
    const res = await send(`${base}/t/${tenant}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'urn:bulkhead:admin', scope: 'admin' }),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; error?: string; error_description?: string };
    if (!res.ok || !body.access_token) {
      if (res.status === 404 && tenant !== 'system') throw new CliFailure(`tenant ${tenant} (BULKHEAD_ADMIN_TENANT) does not exist at ${base}, or is not served there`);
      const at = tenant === 'system' ? '' : ` of tenant ${tenant} (BULKHEAD_ADMIN_TENANT)`;
      throw new CliFailure(`the broker refused the admin credentials${at}: ${body.error ?? res.status}${body.error_description ? ` (${body.error_description})` : ''}`);
    }
    return (token = body.access_token);
  }

  return {
    async call<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', route: string, body?: unknown): Promise<T> {
      const res = await send(`${base}/admin${route}`, {
        method,
        headers: {
          authorization: `Bearer ${await accessToken()}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const payload = (await res.json().catch(() => undefined)) as (T & { error?: string; error_description?: string; problems?: unknown }) | undefined;
      if (!res.ok) {
        throw new CliFailure((payload?.error_description ?? `request failed with HTTP ${res.status}`) + problemLines(payload?.problems));
      }
      if (payload === undefined || payload === null || typeof payload !== 'object') {
        throw new CliFailure(`${base}/admin${route} did not answer with JSON: is BULKHEAD_URL a Bulkhead broker?`);
      }
      return payload as T;
    },
  };
}

export type AdminClient = ReturnType<typeof createAdminClient>;

/** An invalid policy's problems (Cedar's messages with their place in the text), one per line. */
function problemLines(problems: unknown): string {
  if (!Array.isArray(problems)) return '';
  return problems
    .map((p: { policy_id?: string; message?: string; help?: string; location?: { line?: number; column?: number } }) => {
      const at = p.location ? `line ${p.location.line}, column ${p.location.column}: ` : '';
      const id = p.policy_id ? `[${p.policy_id}] ` : '';
      return `\n  ${at}${id}${p.message ?? ''}${p.help ? ` (${p.help})` : ''}`;
    })
    .join('');
}
