/**
 * Whether an error means "the database cannot be reached or used right now" (so the caller
 * should get a retryable 503), as opposed to a bug or bad data. Prisma's connection-class codes:
 * P1001 unreachable, P1002 timed out, P1003 database missing, P1008 operation timeout,
 * P1017 connection closed, P2024 pool timeout; plus raw driver network errors.
 */
const PRISMA_UNAVAILABLE = new Set(['P1001', 'P1002', 'P1003', 'P1008', 'P1017', 'P2024']);
const DRIVER_UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '53300', '3D000', '08006', '08001', '08003']);

export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err as { code?: unknown; name?: string; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (e.name === 'PrismaClientInitializationError') return true;
    const code = String(e.code);
    if (PRISMA_UNAVAILABLE.has(code) || DRIVER_UNAVAILABLE.has(code)) return true;
  }
  return false;
}
