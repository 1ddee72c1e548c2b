import Koa, { type Middleware } from 'koa';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Services } from '../services.js';
import { NotFound } from '../shared/errors.js';
import { errorAnswer } from './error-answer.js';
import { adminRouter } from '../admin/routes.js';
import { tokenEndpoints } from '../tokens/endpoints.js';
import { tenantDispatcher } from '../issuer/dispatcher.js';
import { pendingMigrations } from '../db/migrator.js';
import { routeClass, type Metrics } from './metrics.js';
import { policyEngineHealthy } from '../policy/engine.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Request id, latency metric and one log line per request: method, path (no query), status. */
function observe(metrics: Metrics, logger: Logger): Middleware {
  return async function observeRequest(ctx, next) {
    const started = process.hrtime.bigint();
    const inbound = ctx.get('x-request-id');
    const id = REQUEST_ID.test(inbound) ? inbound : randomUUID();
    ctx.state.requestId = id;
    ctx.set('X-Request-Id', id);
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeClass(ctx.path);
      metrics.latency.observe({ route, method: ctx.method, status: String(ctx.status) }, seconds);
      logger.info({
        req_id: id,
        method: ctx.method,
        path: ctx.path,
        status: ctx.status,
        ms: Math.round(seconds * 1e4) / 10,
        tenant: ctx.state.tenantId,
        error: ctx.status >= 400 ? (ctx.body as { error?: string } | undefined)?.error : undefined,
      }, 'request');
    }
  };
}

/**
 * Serialises every error as `{ error, error_description }`. Bulkhead errors keep their status;
 * client errors raised by Koa itself (e.g. a malformed URL) stay 4xx; everything else is logged
 * here and becomes a bare `server_error`, with no detail or stack reaching the client.
 */
function errors(logger: Logger): Middleware {
  return async function serialiseErrors(ctx, next) {
    try {
      await next();
    } catch (err) {
      const answer = errorAnswer(err);
      ctx.set('Cache-Control', 'no-store');
      if (answer.failure === 'database') {
        logger.error({ req_id: ctx.state.requestId, err: { message: (err as Error).message } }, 'database unavailable');
        ctx.set('Retry-After', '5');
      } else if (answer.failure === 'unexpected') {
        logger.error({ req_id: ctx.state.requestId, err }, 'unhandled error');
      }
      ctx.status = answer.status;
      ctx.body = answer.body;
    }
  };
}

function securityHeaders(): Middleware {
  return async function setSecurityHeaders(ctx, next) {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    await next();
  };
}

function health(services: Services, metrics: Metrics): Middleware {
  return async function healthEndpoints(ctx, next) {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    switch (ctx.path) {
      case '/healthz':
        ctx.body = { status: 'ok' };
        return undefined;
      case '/readyz': {
        ctx.set('Cache-Control', 'no-store');
        try {
          const pending = await pendingMigrations(services.db.driver);
          // The policy engine decides every token: while it is broken (and reloading) this replica
          // refuses them all, so a load balancer should send requests elsewhere.
          const engine = policyEngineHealthy();
          ctx.status = pending.length || !engine ? 503 : 200;
          ctx.body = pending.length ? { status: 'migrations pending', pending } : engine ? { status: 'ready' } : { status: 'policy engine unavailable' };
        } catch {
          ctx.status = 503;
          ctx.body = { status: 'database unreachable' };
        }
        return undefined;
      }
      case '/metrics':
        ctx.type = metrics.registry.contentType;
        ctx.body = await metrics.registry.metrics();
        return undefined;
      default:
        return next();
    }
  };
}

/** Assembles the broker: observation, errors, health, admin API, tenant issuers, 404. */
export function createApp(services: Services, metrics: Metrics, logger: Logger): Koa {
  // Behind N trusted reverse proxies, ctx.ip is the address the N-th one saw (X-Forwarded-For);
  // otherwise the socket's. Only the audit trail's client IP reads it.
  const hops = services.config.trustProxy;
  const app = new Koa({ proxy: hops > 0, maxIpsCount: hops });
  app.silent = true;
  app.on('error', (err) => logger.debug({ err: { message: (err as Error).message } }, 'koa error'));
  const admin = adminRouter(services, { maxBodyBytes: services.config.maxBodyBytes });
  app.use(observe(metrics, logger));
  app.use(errors(logger));
  app.use(securityHeaders());
  app.use(health(services, metrics));
  app.use(admin.routes());
  app.use(admin.allowedMethods({ throw: false }));
  const endpoints = tokenEndpoints({
    clients: services.clients,
    agents: services.agents,
    secrets: services.secrets,
    replay: services.replay,
    revocations: services.revocations,
    maxBodyBytes: services.config.maxBodyBytes,
  });
  app.use(tenantDispatcher({ registry: services.issuers, publicUrl: services.config.publicUrl, maxBodyBytes: services.config.maxBodyBytes, endpoints, limits: services.limits, audit: services.audit }));
  app.use(async function notFound() {
    throw new NotFound('not found');
  });
  return app;
}
