import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { IssuerObserver } from '../issuer/provider.js';

/** Prometheus metrics of one broker instance (own registry, so tests can run several). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const issued = new Counter({
    name: 'bulkhead_tokens_issued_total',
    help: 'Access tokens issued, by tenant and grant type',
    labelNames: ['tenant', 'grant_type'] as const,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'bulkhead_tokens_refused_total',
    help: 'Token requests refused, by tenant and OAuth error code',
    labelNames: ['tenant', 'reason'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'bulkhead_http_request_duration_seconds',
    help: 'HTTP request latency by route class, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const observer: IssuerObserver = {
    issued: (tenant, grantType) => issued.inc({ tenant, grant_type: grantType }),
    refused: (tenant, reason) => refused.inc({ tenant, reason }),
  };
  return { registry, issued, refused, latency, observer };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** A low-cardinality label for a path: never a tenant id or client id. */
export function routeClass(path: string): string {
  if (path.startsWith('/admin')) return 'admin';
  if (path.startsWith('/.well-known/oauth-authorization-server/t/')) return 'discovery';
  const m = /^\/t\/[^/]+(\/.*)$/.exec(path);
  if (m) {
    const rest = m[1]!;
    if (rest === '/token') return 'token';
    if (rest === '/jwks') return 'jwks';
    if (rest.startsWith('/.well-known/')) return 'discovery';
    return 'tenant_other';
  }
  if (path === '/healthz' || path === '/readyz' || path === '/metrics') return path.slice(1);
  return 'other';
}
