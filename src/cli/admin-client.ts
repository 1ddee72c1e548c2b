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

function loadCredentials(opts: AdminClientOptions): Credentials {
  const { BULKHEAD_ADMIN_CLIENT_ID: id, BULKHEAD_ADMIN_CLIENT_SECRET: secret } = opts.env;
  if (id && secret) return { client_id: id, client_secret: secret };
  // Half a pair is a mistake; silently falling back to the file would hide it.
  if (id || secret) {
    throw new CliFailure(`${id ? 'BULKHEAD_ADMIN_CLIENT_ID' : 'BULKHEAD_ADMIN_CLIENT_SECRET'} is set but ${id ? 'BULKHEAD_ADMIN_CLIENT_SECRET' : 'BULKHEAD_ADMIN_CLIENT_ID'} is not: set both, or neither to use ${path.join(opts.keysDir, 'admin-credentials.json')}`);
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
 * credentials at the system tenant, resource = the admin API) and then calls the admin API.
 */
export function createAdminClient(opts: AdminClientOptions) {
  const base = opts.baseUrl.replace(/\/+$/, '');
  if (!URL.canParse(base) || !/^https?:$/.test(new URL(base).protocol)) {
    throw new CliFailure(`BULKHEAD_URL must be an http(s) URL such as http://127.0.0.1:8080, not ${JSON.stringify(opts.baseUrl)}`);
  }
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
    const c = loadCredentials(opts);
    const basic = Buffer.from(`${encodeURIComponent(c.client_id)}:${encodeURIComponent(c.client_secret)}`).toString('base64');
    const res = await send(`${base}/t/system/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'urn:bulkhead:admin', scope: 'admin' }),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; error?: string; error_description?: string };
    if (!res.ok || !body.access_token) {
      throw new CliFailure(`the broker refused the admin credentials: ${body.error ?? res.status}${body.error_description ? ` (${body.error_description})` : ''}`);
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
