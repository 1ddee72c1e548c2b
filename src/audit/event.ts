import { createHash } from 'node:crypto';
import { escapeControls } from '../shared/text.js';

/**
 * One audit event and the hash chain over a tenant's events. Pure: the writer (./writer.ts)
 * assigns `seq` and `prevHash` under the chain's lock, and `audit verify` (./service.ts) recomputes
 * every link with the same two functions, so the writer and the verifier cannot disagree.
 */

/** What a caller records: the facts of one decision or change. Never a token, secret or key. */
export interface AuditInput {
  tenantId: string;
  /** `token.issued`, `token.exchanged`, `token.refused`, `client.created`, ... (see README). */
  type: string;
  outcome: 'success' | 'refused' | 'failed';
  /** The refusal's error code. */
  reason?: string | undefined;
  /** Who asked: the (claimed, if it failed to authenticate) client id, or the admin's client id. */
  actor?: string | undefined;
  clientId?: string | undefined;
  subject?: string | undefined;
  jti?: string | undefined;
  scopes?: readonly string[] | undefined;
  audience?: string | undefined;
  requestId?: string | undefined;
  clientIp?: string | undefined;
  /** Event-specific facts; JSON values only (plain objects, arrays, strings, finite numbers, booleans, null). */
  detail?: Record<string, unknown> | undefined;
}

/** An event as stored: the input, normalised, with its place in the chain. */
export interface AuditRecord {
  tenantId: string;
  seq: number;
  time: Date;
  type: string;
  outcome: string;
  reason: string | null;
  actor: string | null;
  clientId: string | null;
  subject: string | null;
  jti: string | null;
  scopes: string[];
  audience: string | null;
  requestId: string | null;
  clientIp: string | null;
  detail: Record<string, unknown> | null;
  prevHash: string;
  hash: string;
}

/** The `prevHash` of a tenant's first event. */
export const GENESIS_HASH = '0'.repeat(64);

/** Column widths (see prisma/schema.prisma): longer values are cut, never refused. */
const WIDTH = { type: 64, reason: 64, actor: 200, clientId: 200, subject: 500, jti: 64, audience: 2048, requestId: 64, clientIp: 64 } as const;
const MAX_SCOPES = 100;
const MAX_SCOPE_LENGTH = 256;
const MAX_DETAIL_CHARS = 8192;

/**
 * Makes a caller-chosen string storable and printable: PostgreSQL refuses NUL in text and jsonb,
 * jsonb refuses a lone surrogate, and control characters in a trail forge lines on an operator's
 * terminal. Lone surrogates become U+FFFD (`toWellFormed`), control characters (C0, DEL, C1) are
 * escaped as `\uXXXX`, and the result is cut to `max` code units without splitting a pair.
 */
export function cleanString(value: string, max: number): string {
  let out = escapeControls(value.toWellFormed());
  if (out.length > max) {
    out = out.slice(0, max);
    // A high surrogate left without its pair by the cut goes too.
    if (/[\ud800-\udbff]$/.test(out)) out = out.slice(0, -1);
  }
  return out;
}

const cut = (v: string | undefined, n: number): string | null => (v === undefined || v === '' ? null : cleanString(v, n));

/** A JSON value with object keys sorted at every level: one spelling per value, whatever the storage did with key order. */
function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj).filter((k) => obj[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** Drops what JSON cannot hold exactly (undefined, functions, non-finite numbers), so the stored detail hashes like the recorded one. */
function jsonSafe(value: unknown, depth = 0): unknown {
  if (depth > 8) return null;
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'string') return cleanString(value, MAX_DETAIL_CHARS);
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (Array.isArray(value)) return value.map((v) => jsonSafe(v, depth + 1) ?? null);
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const safe = jsonSafe(v, depth + 1);
      if (safe !== undefined) out[cleanString(k, 200)] = safe;
    }
    return out;
  }
  return undefined;
}

/** Normalises an input into the stored shape (without chain fields): bounded sizes, JSON-exact detail. */
export function normalise(input: AuditInput, time: Date): Omit<AuditRecord, 'seq' | 'prevHash' | 'hash'> {
  let detail = input.detail ? (jsonSafe(input.detail) as Record<string, unknown>) : null;
  if (detail && !Object.keys(detail).length) detail = null;
  if (detail && canonicalJson(detail).length > MAX_DETAIL_CHARS) detail = { truncated: true };
  return {
    tenantId: cleanString(input.tenantId, 63),
    time: new Date(Math.floor(time.getTime())),
    type: cut(input.type, WIDTH.type) ?? 'unknown',
    outcome: cleanString(input.outcome, 16),
    reason: cut(input.reason, WIDTH.reason),
    actor: cut(input.actor, WIDTH.actor),
    clientId: cut(input.clientId, WIDTH.clientId),
    subject: cut(input.subject, WIDTH.subject),
    jti: cut(input.jti, WIDTH.jti),
    scopes: (input.scopes ?? []).slice(0, MAX_SCOPES).map((s) => cleanString(s, MAX_SCOPE_LENGTH)),
    audience: cut(input.audience, WIDTH.audience),
    requestId: cut(input.requestId, WIDTH.requestId),
    clientIp: cut(input.clientIp, WIDTH.clientIp),
    detail,
  };
}

/** An event's stored fields but its links, snake_case: what the hash covers and what the API shows. */
function eventFields(e: Omit<AuditRecord, 'hash' | 'prevHash'>) {
  return {
    seq: e.seq,
    time: e.time.toISOString(),
    tenant_id: e.tenantId,
    type: e.type,
    outcome: e.outcome,
    reason: e.reason,
    actor: e.actor,
    client_id: e.clientId,
    subject: e.subject,
    jti: e.jti,
    scopes: e.scopes,
    audience: e.audience,
    request_id: e.requestId,
    client_ip: e.clientIp,
    detail: e.detail,
  };
}

/** The bytes an event's hash covers: every stored field but the hash itself (keys sorted). */
export function canonicalEvent(e: Omit<AuditRecord, 'hash' | 'prevHash'>): string {
  return canonicalJson(eventFields(e));
}

/** `hash = SHA-256(prev_hash || canonical event)`, hex. */
export function chainHash(prevHash: string, e: Omit<AuditRecord, 'hash' | 'prevHash'>): string {
  return createHash('sha256').update(prevHash).update(canonicalEvent(e)).digest('hex');
}

/** The public (snake_case) shape of an event, as the admin API and `audit tail --json` show it. */
export function eventToJson(e: AuditRecord) {
  return { ...eventFields(e), prev_hash: e.prevHash, hash: e.hash };
}
