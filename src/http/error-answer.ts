import { BulkheadError } from '../shared/errors.js';
import { isDatabaseUnavailable } from '../db/errors.js';

export interface ErrorAnswer {
  status: number;
  body: { error: string; error_description: string };
  /** Why it is a 5xx, for the log: the database is unavailable, or something unexpected happened. */
  failure?: 'database' | 'unexpected';
}

/**
 * What a thrown error is answered with, decided in one place for the error serialiser
 * (src/http/app.ts) and for the audit trail, which records a refusal as the answer it becomes.
 * Bulkhead errors keep their status and code; client errors raised by Koa itself (a malformed
 * URL, say) stay 4xx; an unavailable database is a retryable 503; anything else is a bare
 * `server_error`, with no detail for the client.
 */
export function errorAnswer(err: unknown): ErrorAnswer {
  if (err instanceof BulkheadError) return { status: err.status, body: err.toJSON() };
  const e = err as { status?: number; expose?: boolean; message?: string };
  if (err instanceof URIError) return { status: 400, body: { error: 'invalid_request', error_description: 'malformed URL' } };
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500 && e.expose) {
    return { status: e.status, body: { error: 'invalid_request', error_description: String(e.message) } };
  }
  if (isDatabaseUnavailable(err)) {
    return { status: 503, body: { error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable' }, failure: 'database' };
  }
  return { status: 500, body: { error: 'server_error', error_description: 'an unexpected error occurred' }, failure: 'unexpected' };
}
