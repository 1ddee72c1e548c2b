import type { ParameterizedContext } from 'koa';
import { InvalidInput, PayloadTooLarge } from '../shared/errors.js';

/**
 * Reads a JSON request body with a hard size limit (413 past it, checked before reading when
 * Content-Length says so, and while streaming otherwise). An empty body is `{}`.
 */
export async function readJson(ctx: ParameterizedContext, limit: number): Promise<unknown> {
  const declared = ctx.request.length;
  if (declared !== undefined && declared > limit) throw new PayloadTooLarge(`request body must not exceed ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new PayloadTooLarge(`request body must not exceed ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  if (!ctx.is('application/json')) throw new InvalidInput('request body must be application/json');
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new InvalidInput('request body is not valid JSON');
  }
}
