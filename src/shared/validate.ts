import type { z } from 'zod';
import { InvalidInput } from './errors.js';

/**
 * Validates untrusted input with a zod schema; a failure becomes one `invalid_request` naming
 * every problem by field, e.g. `scopes: scope "a b" is not a valid scope token`.
 */
export function parseInput<S extends z.ZodType>(schema: S, raw: unknown): z.infer<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => {
    const where = i.path.length ? `${i.path.join('.')}: ` : '';
    if (i.code === 'unrecognized_keys') return `${where}unknown field(s) ${i.keys.join(', ')}`;
    return `${where}${i.message}`;
  });
  throw new InvalidInput(problems.join('; '));
}
