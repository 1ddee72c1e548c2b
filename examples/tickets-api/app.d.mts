// Types of app.mjs, for TypeScript callers (the e2e test). Self-contained on purpose: it does
// not import bulkhead/pep's built types, so the project typechecks before it is built.
import type { Server } from 'node:http';
import type Koa from 'koa';

export interface Ticket {
  id: number;
  title: string;
  status: 'open' | 'closed';
  created_by?: string;
}

export interface TicketsAppOptions {
  /** The broker's public URL (its PUBLIC_URL); tenant T's issuer is `${brokerUrl}/t/T`. */
  brokerUrl: string;
  /**
   * The resource indicator tokens must carry in `aud`, as registered in each tenant. A string
   * is the same for every tenant, with `{tenant}` replaced by the tenant id. Default
   * `https://tickets.acme.example` (the README tour's).
   */
  audience?: string | ((tenant: string) => string);
  /** The tenants served; others are refused like a token of another tenant. Default: the seed's. */
  tenants?: readonly string[];
  /** Tickets to start with, per tenant (copied). Default {@link SEED_TICKETS}. */
  tickets?: Readonly<Record<string, readonly Ticket[]>>;
  /** Online checking (RFC 7662) at `${issuer}/introspect`, as this client of the tenant. */
  introspection?: { clientId: string; clientSecret: string; endpoint?: (issuer: string) => string; timeoutMs?: number };
  /** This API's public origin (DPoP `htu`, metadata URLs); default from the request's protocol and Host. */
  publicUrl?: string;
  /** Trust X-Forwarded-* (Koa `app.proxy`). */
  proxy?: boolean;
  /** One line per request (method, path, status, and the refusal's error). */
  log?: (line: string) => void;
}

export const SCOPES: readonly string[];
export const DEFAULT_AUDIENCE: string;
export const SEED_TICKETS: Readonly<Record<string, readonly Ticket[]>>;
export function audienceFor(audience: string | ((tenant: string) => string)): (tenant: string) => string;
export function createTicketsApp(options: TicketsAppOptions): Koa;
export function startTicketsApi(options: TicketsAppOptions & { port?: number; host?: string }): Promise<{
  app: Koa;
  server: Server;
  url: string;
  close(): Promise<void>;
}>;
