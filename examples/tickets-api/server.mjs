#!/usr/bin/env node
// Starts the tickets API (`npm run demo`). Configuration by environment:
//   BROKER_URL        the broker's public URL                     default http://localhost:8080
//   PORT              port to listen on                            default 3000
//   HOST              address to listen on                         default 127.0.0.1
//   TICKETS_AUDIENCE  the resource indicator each tenant registered for this API; `{tenant}` is
//                     replaced by the tenant id                    default https://tickets.acme.example
//   TICKETS_TENANTS   comma-separated tenants served               default acme,globex
//   TICKETS_PUBLIC_URL this API's public origin, behind a proxy   default from the request
//   INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET
//                     turn on online checking (RFC 7662 at the tenant's /introspect) as this
//                     client. It must be a client of each tenant served: at a tenant that does
//                     not know it the check cannot be made, and the API answers 503 (fail
//                     closed). With one client, serve its tenant only (TICKETS_TENANTS=acme).
import { DEFAULT_AUDIENCE, SEED_TICKETS, startTicketsApi } from './app.mjs';

const env = process.env;
const problems = [];

const brokerUrl = (env.BROKER_URL || 'http://localhost:8080').replace(/\/+$/, '');
try {
  const u = new URL(brokerUrl);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') problems.push(`BROKER_URL must be an http(s) URL, got ${brokerUrl}`);
} catch {
  problems.push(`BROKER_URL is not a URL: ${brokerUrl}`);
}

const port = Number(env.PORT || 3000);
if (!Number.isInteger(port) || port < 0 || port > 65535) problems.push(`PORT must be an integer from 0 to 65535, got ${env.PORT}`);
const host = env.HOST || '127.0.0.1';

const audience = env.TICKETS_AUDIENCE || DEFAULT_AUDIENCE;
try {
  new URL(audience.replaceAll('{tenant}', 'acme'));
} catch {
  problems.push(`TICKETS_AUDIENCE is not a URI: ${audience}`);
}

const tenantId = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const tenants = (env.TICKETS_TENANTS || Object.keys(SEED_TICKETS).join(',')).split(',').map((t) => t.trim()).filter(Boolean);
if (tenants.length === 0) problems.push('TICKETS_TENANTS names no tenant');
for (const t of tenants) if (!tenantId.test(t) || t === 'system') problems.push(`TICKETS_TENANTS: ${t} is not a tenant id`);

const publicUrl = env.TICKETS_PUBLIC_URL || undefined;
if (publicUrl) {
  try {
    new URL(publicUrl);
  } catch {
    problems.push(`TICKETS_PUBLIC_URL is not a URL: ${publicUrl}`);
  }
}

const clientId = env.INTROSPECTION_CLIENT_ID;
const clientSecret = env.INTROSPECTION_CLIENT_SECRET;
if (Boolean(clientId) !== Boolean(clientSecret)) problems.push('INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET go together');
const introspection = clientId && clientSecret ? { clientId, clientSecret } : undefined;

if (problems.length) {
  for (const p of problems) console.error(`tickets-api: ${p}`);
  process.exit(1);
}

let api;
try {
  api = await startTicketsApi({
    port,
    host,
    brokerUrl,
    audience,
    tenants,
    ...(publicUrl ? { publicUrl } : {}),
    ...(introspection ? { introspection } : {}),
    log: (line) => console.log(`${new Date().toISOString()} ${line}`),
  });
} catch (err) {
  console.error(`tickets-api: cannot listen on ${host}:${port}: ${err.message}`);
  process.exit(1);
}

const base = publicUrl?.replace(/\/+$/, '') ?? api.url;
console.log(`tickets API listening on ${api.url}`);
console.log(`  tenants   ${tenants.join(', ')}: GET (tickets:read) and POST (tickets:write) ${base}/tenants/<tenant>/tickets`);
console.log(`  issuers   ${brokerUrl}/t/<tenant>`);
console.log(`  audience  ${audience}`);
console.log(`  metadata  ${base}/.well-known/oauth-protected-resource/tenants/<tenant>/tickets (RFC 9728)`);
console.log(introspection
  ? `  checking  signature and claims, then RFC 7662 introspection as ${clientId} (revoked tokens are refused)`
  : '  checking  offline: signature against the tenant JWKS and claims (set INTROSPECTION_CLIENT_ID/SECRET for online checking)');
if (introspection && tenants.length > 1) {
  console.log(`  note      ${clientId} must be a client of every tenant served; where it is not, token checks answer 503`);
}

let closing = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (closing) process.exit(1);
    closing = true;
    api.close().then(() => process.exit(0), () => process.exit(1));
  });
}
