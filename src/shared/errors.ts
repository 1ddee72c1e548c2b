/**
 * Bulkhead's one error vocabulary, shaped after oidc-provider's: every error knows its HTTP
 * `status`, its RFC-style `error` code, a client-safe `error_description`, and whether it may be
 * shown (`expose`). The HTTP error middleware serialises these; anything else becomes
 * `server_error` with no detail.
 *
 * @example
 * throw new NotFound('tenant not found');
 */
export class BulkheadError extends Error {
  readonly expose: boolean = true;
  constructor(
    readonly status: number,
    readonly error: string,
    readonly error_description: string,
    /** Server-side detail for logs; never sent to a client. */
    readonly detail?: string,
  ) {
    super(error_description);
    this.name = new.target.name;
  }

  toJSON(): { error: string; error_description: string } {
    return { error: this.error, error_description: this.error_description };
  }
}

const simple = (status: number, error: string) =>
  class extends BulkheadError {
    constructor(description: string, detail?: string) {
      super(status, error, description, detail);
    }
  };

/** Input that fails validation (400). */
export class InvalidInput extends simple(400, 'invalid_request') {}
/** Missing or invalid admin credentials (401). */
export class Unauthorized extends simple(401, 'invalid_token') {}
/** Authenticated but not allowed (403). */
export class Forbidden extends simple(403, 'insufficient_scope') {}
/** Unknown object, or one the caller may not know exists (404). */
export class NotFound extends simple(404, 'not_found') {}
/** Would violate uniqueness or the object's current state (409). */
export class Conflict extends simple(409, 'conflict') {}
/** Body larger than allowed (413). */
export class PayloadTooLarge extends simple(413, 'invalid_request') {}
/** A dependency (database) is unavailable (503). */
export class Unavailable extends simple(503, 'temporarily_unavailable') {}
