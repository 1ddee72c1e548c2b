import { Readable } from 'node:stream';
import type { ParameterizedContext } from 'koa';
import { InvalidInput, PayloadTooLarge } from '../shared/errors.js';

/**
 * Reads a JSON request body with a hard size limit (413 past it, checked before reading when
 * Content-Length says so, and while streaming otherwise). An empty body is `{}`.
 */
export async function readJson(ctx: ParameterizedContext, limit: number): Promise<unknown> {
  const body = await readRaw(ctx, limit);
  if (body.length === 0) return {};
  if (!ctx.is('application/json')) throw new InvalidInput('request body must be application/json');
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new InvalidInput('request body is not valid JSON');
  }
  const bad = unstorableString(value);
  if (bad !== undefined) throw new InvalidInput(`request body: ${bad}`);
  return value;
}

/**
 * Why a parsed JSON value cannot be stored as it is, or undefined: PostgreSQL refuses NUL in
 * text and jsonb, and jsonb refuses unpaired surrogates (which JSON's `\uD800` escapes can make).
 * Walked with an explicit stack, so no nesting depth can overflow the call stack.
 */
function unstorableString(root: unknown): string | undefined {
  const stack: unknown[] = [root];
  const check = (s: string) => {
    if (s.includes('\u0000')) return 'strings must not contain NUL characters';
    if (!s.isWellFormed()) return 'strings must not contain unpaired surrogates';
    return undefined;
  };
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === 'string') {
      const why = check(v);
      if (why) return why;
    } else if (Array.isArray(v)) {
      stack.push(...v);
    } else if (v !== null && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        const why = check(k);
        if (why) return why;
        stack.push(item);
      }
    }
  }
  return undefined;
}

/** The raw request body, refused with 413 past `limit` bytes (declared or streamed). */
export async function readRaw(ctx: ParameterizedContext, limit: number): Promise<Buffer> {
  const declared = ctx.request.length;
  if (declared !== undefined && declared > limit) throw new PayloadTooLarge(`request body must not exceed ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new PayloadTooLarge(`request body must not exceed ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

/**
 * Most `&`-separated pairs a form body may hold. oidc-provider parses forms with
 * `node:querystring`, which silently ignores every pair after the 1000th: a request padded
 * past that point would lose its later parameters (a `scope`, a `resource`) and mean something
 * else than what was sent. Bodies that long are refused instead.
 */
export const MAX_FORM_PAIRS = 1000;

const STREAM_MEMBERS = new Set<PropertyKey>(['readable', 'readableEncoding', 'iterator', Symbol.asyncIterator, 'read', 'on', 'once', 'pipe']);
const buffered = new WeakMap<ParameterizedContext, Buffer>();

/**
 * The request body, read once (413 past `limit`) and left readable for whoever parses it next:
 * `ctx.req` becomes a view of the original request whose body stream replays exactly these
 * bytes. Later calls on the same request return the same bytes without reading again, so the
 * rate limiter, the parameter count and oidc-provider all see one body.
 */
export async function bufferBody(ctx: ParameterizedContext, limit: number): Promise<Buffer> {
  const seen = buffered.get(ctx);
  if (seen) return seen;
  const raw = await readRaw(ctx, limit);
  buffered.set(ctx, raw);
  const replay = Readable.from([raw], { objectMode: false });
  ctx.req = new Proxy(ctx.req, {
    get(target, prop) {
      const from = STREAM_MEMBERS.has(prop) ? replay : target;
      const value = Reflect.get(from, prop, from) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(from) : value;
    },
  });
  return raw;
}

const forms = new WeakMap<ParameterizedContext, URLSearchParams>();

/**
 * The request body parsed as `application/x-www-form-urlencoded`, read once (see
 * {@link bufferBody}) and parsed once per request, for everyone who only looks at it before the
 * endpoint parses it itself: the rate limiter, the assertion size bound, the audit trail. Read it,
 * do not change it.
 */
export async function bufferedForm(ctx: ParameterizedContext, limit: number): Promise<URLSearchParams> {
  let form = forms.get(ctx);
  if (!form) forms.set(ctx, (form = new URLSearchParams((await bufferBody(ctx, limit)).toString('utf8'))));
  return form;
}

/**
 * Checks an `application/x-www-form-urlencoded` body ahead of oidc-provider (size, pair count)
 * and hands it on unchanged (see {@link bufferBody}), so oidc-provider parses exactly what was
 * checked.
 */
export async function checkFormForProvider(ctx: ParameterizedContext, limit: number): Promise<void> {
  const raw = await bufferBody(ctx, limit);
  let pairs = 1;
  for (let i = raw.indexOf(0x26); i !== -1; i = raw.indexOf(0x26, i + 1)) {
    if (++pairs > MAX_FORM_PAIRS) throw new InvalidInput(`the request body must not have more than ${MAX_FORM_PAIRS} parameters`);
  }
}

/**
 * HTTP Basic client credentials (RFC 6749 §2.3.1: both parts form-urlencoded before the Basic
 * encoding): `[id, secret]`, `undefined` when the header is not Basic, `null` when it is Basic
 * but malformed (no colon, bad percent-encoding).
 */
export function parseBasicCredentials(header: string | undefined): [string, string] | null | undefined {
  const m = header ? /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header) : null;
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return null;
  const formDecode = (v: string) => decodeURIComponent(v.replace(/\+/g, ' '));
  try {
    return [formDecode(decoded.slice(0, i)), formDecode(decoded.slice(i + 1))];
  } catch {
    return null;
  }
}
