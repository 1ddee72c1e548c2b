// A multi-tenant "tickets" API protected only by bulkhead/pep. Each tenant's tickets live at
// /tenants/<tenant>/tickets; a request gets through only with an access token of that tenant
// (its issuer, its keys, its tenant_id), for this API (aud), with the route's scope. The tenant
// comes from the path, never from the token, so a token of acme is refused at globex's route.
//
// Types: app.d.mts. Started from the command line by server.mjs (`npm run demo`).
import { createServer } from 'node:http';
import Koa from 'koa';
import Router from '@koa/router';
import {
  createVerifier,
  PROTECTED_RESOURCE_WELL_KNOWN,
  requireToken,
  serveProtectedResourceMetadata,
} from 'bulkhead/pep';

/** The scopes this API understands (each tenant registers them with its resource). */
export const SCOPES = Object.freeze(['tickets:read', 'tickets:write']);

/** The resource indicator of the README tour, which each tenant registers for this API. */
export const DEFAULT_AUDIENCE = 'https://tickets.acme.example';

/** The tickets the demo starts with. */
export const SEED_TICKETS = Object.freeze({
  acme: Object.freeze([
    { id: 1, title: 'Printer on the third floor is on fire', status: 'open' },
    { id: 2, title: 'VPN drops every hour', status: 'open' },
  ]),
  globex: Object.freeze([
    { id: 1, title: 'Doomsday device delivery overdue', status: 'open' },
    { id: 2, title: 'Hammock in the lobby needs repair', status: 'closed' },
  ]),
});

const TICKETS_PATH = /^\/tenants\/([^/]+)\/tickets$/;
const MAX_BODY_BYTES = 16 * 1024;
const MAX_TITLE_LENGTH = 200;

/**
 * `audience` as a function of the tenant: a string is one resource indicator for every tenant,
 * in which `{tenant}` (if present) is replaced by the tenant id.
 */
export function audienceFor(audience) {
  if (typeof audience === 'function') return audience;
  if (typeof audience !== 'string' || audience.length === 0) throw new TypeError('audience must be a non-empty string or a function');
  return (tenant) => audience.replaceAll('{tenant}', tenant);
}

/** Reads a small JSON object body; 415/413/400 otherwise. */
async function readJsonObject(ctx) {
  if (!ctx.is('application/json')) ctx.throw(415, 'send the ticket as application/json');
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > MAX_BODY_BYTES) ctx.throw(413, 'the request body is too large');
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) ctx.throw(413, 'the request body is too large');
    chunks.push(chunk);
  }
  let value;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    ctx.throw(400, 'the request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) ctx.throw(400, 'the request body must be a JSON object');
  return value;
}

/**
 * Creates the tickets API as a Koa application (mount it with `app.callback()` or `app.listen()`).
 * See app.d.mts for the options.
 */
export function createTicketsApp(options) {
  const { brokerUrl } = options ?? {};
  if (typeof brokerUrl !== 'string') throw new TypeError('brokerUrl is required');
  const audience = audienceFor(options.audience ?? DEFAULT_AUDIENCE);
  const seed = options.tickets ?? SEED_TICKETS;
  const tenants = [...new Set(options.tenants ?? Object.keys(seed))];
  const publicUrl = options.publicUrl?.replace(/\/+$/, '');
  const log = options.log;

  // tenant → tickets; a Map, so a path segment like __proto__ is just an unknown tenant.
  const store = new Map(tenants.map((t) => [t, (seed[t] ?? []).map((ticket) => ({ ...ticket }))]));
  const served = (tenant) => (typeof tenant === 'string' && store.has(tenant) ? tenant : undefined);
  const origin = (ctx) => publicUrl ?? `${ctx.protocol}://${ctx.host}`;
  const metadataUrl = (ctx, tenant) => `${origin(ctx)}${PROTECTED_RESOURCE_WELL_KNOWN}/tenants/${tenant}/tickets`;

  // One verifier for every tenant: it takes the tenant from each request (requireToken passes
  // it) and keeps one JWKS cache per tenant issuer. With introspection, it also asks the
  // tenant's /introspect whether the token is still active (RFC 7662).
  const verifier = createVerifier({
    brokerUrl,
    audience,
    ...(options.introspection ? { introspection: options.introspection } : {}),
  });

  const guard = (scopes) => requireToken({
    verifier,
    // The route's tenant, and only a tenant this API serves; anything else is refused as "no tenant".
    tenantFrom: (ctx) => served(ctx.params?.tenant),
    scopes,
    realm: 'tickets',
    // RFC 9728 §5.1: the challenge says where to learn which issuer protects this resource.
    resourceMetadata: (ctx) => (served(ctx.params?.tenant) ? metadataUrl(ctx, ctx.params.tenant) : undefined),
    ...(publicUrl ? { requestUrl: (ctx) => `${publicUrl}${ctx.path}` } : {}),
  });

  const router = new Router();
  router.get('/tenants/:tenant/tickets', guard(['tickets:read']), (ctx) => {
    const { token, tenant } = ctx.state;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      tenant,
      client_id: token.client_id,
      ...(token.act ? { act: token.act } : {}),
      tickets: store.get(tenant),
    };
  });
  router.post('/tenants/:tenant/tickets', guard(['tickets:write']), async (ctx) => {
    const { token, tenant } = ctx.state;
    const { title } = await readJsonObject(ctx);
    if (typeof title !== 'string' || title.trim().length === 0 || title.length > MAX_TITLE_LENGTH) {
      ctx.throw(400, `title must be a non-empty string of at most ${MAX_TITLE_LENGTH} characters`);
    }
    const list = store.get(tenant);
    const ticket = {
      id: list.reduce((max, t) => Math.max(max, t.id), 0) + 1,
      title: title.trim(),
      status: 'open',
      created_by: token.client_id,
    };
    list.push(ticket);
    ctx.status = 201;
    ctx.set('Location', `/tenants/${tenant}/tickets/${ticket.id}`);
    ctx.body = ticket;
  });

  const app = new Koa();
  if (options.proxy) app.proxy = true;
  app.use(async function errorsAsJson(ctx, next) {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = { error: 'not_found', error_description: 'no such route' };
      }
    } catch (err) {
      const status = Number.isInteger(err?.status) && err.status >= 400 && err.status < 600 ? err.status : 500;
      ctx.status = status;
      ctx.body = status < 500 && err.expose
        ? { error: 'invalid_request', error_description: err.message }
        : { error: 'server_error', error_description: 'the request could not be handled' };
      if (status >= 500) log?.(`error: ${err?.stack ?? err}`);
    } finally {
      if (log) {
        const body = ctx.body && typeof ctx.body === 'object' ? ctx.body : undefined;
        const why = body?.error ? ` ${body.error}${body.error_description ? ` (${body.error_description})` : ''}` : '';
        log(`${ctx.method} ${ctx.path} ${ctx.status}${why}`);
      }
    }
  });
  // RFC 9728: GET /.well-known/oauth-protected-resource/tenants/<tenant>/tickets names the
  // tenant's issuer and the resource indicator a client must ask that issuer for.
  app.use(serveProtectedResourceMetadata({
    brokerUrl,
    ...(publicUrl ? { origin: publicUrl } : {}),
    resolve: (resource) => {
      const tenant = served(TICKETS_PATH.exec(new URL(resource).pathname)?.[1]);
      if (!tenant) return undefined;
      return { tenant, resource: audience(tenant), scopes: SCOPES, dpop: true, resourceName: `Tickets (${tenant})` };
    },
  }));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/**
 * Creates the app and listens; resolves with its URL and a `close()`. `port` 0 picks a free port.
 */
export async function startTicketsApi({ port = 3000, host = '127.0.0.1', ...options }) {
  const app = createTicketsApp(options);
  const server = createServer(app.callback());
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    app,
    server,
    url: `http://${shownHost}:${address.port}`,
    close: () => new Promise((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeIdleConnections?.();
    }),
  };
}
