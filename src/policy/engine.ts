import * as bundled from '@cedar-policy/cedar-wasm/nodejs';
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import { BulkheadError } from '../shared/errors.js';

/**
 * The one cedar-wasm instance every policy call of this process goes through, and what happens
 * when it breaks.
 *
 * cedar-wasm runs in a single WebAssembly instance. Its functions report bad input as
 * `{ type: 'failure' }`; they throw only when the instance itself failed (a stack overflow
 * inside wasm: `RangeError: Maximum call stack size exceeded`, after which every call answers
 * `RuntimeError: memory access out of bounds`; or a Rust panic). ./guard.ts keeps the texts
 * known to do that away from Cedar; this is the defence behind it:
 *
 * - any throw from a Cedar call marks the engine unhealthy ({@link policyEngineHealthy}: false,
 *   for the readiness check), is logged at `fatal`, and surfaces as {@link PolicyEngineFailure}:
 *   the token path refuses (`access_denied`, never allow: ./evaluate.ts), the admin API answers
 *   503 `temporarily_unavailable`;
 * - the instance is then replaced by a fresh one (the module re-evaluated: a new
 *   WebAssembly.Instance, ~20-40 ms), at most once per {@link RELOAD_INTERVAL_MS}, after a
 *   sanity check; it is healthy again only once that worked. Policy sets preparsed in the old
 *   instance are preparsed again on their next decision ({@link engineGeneration}).
 */
export type CedarEngine = Pick<
  typeof bundled,
  'policySetTextToParts' | 'policyToJson' | 'validate' | 'preparsePolicySet' | 'preparseSchema' | 'statefulIsAuthorized' | 'isAuthorized' | 'checkParsePolicySet'
>;

/** Least time between two attempts to replace a broken instance, ms. */
export const RELOAD_INTERVAL_MS = 1000;

/** The policy engine failed (the request is refused; the admin API answers 503). */
export class PolicyEngineFailure extends BulkheadError {
  readonly code = 'ERR_POLICY_ENGINE';
  /** @param broke - this very call threw (rather than finding the engine already broken). */
  constructor(detail: string, readonly broke = false) {
    super(503, 'temporarily_unavailable', 'the policy engine is temporarily unavailable; try again later', detail);
  }
}

const require = createRequire(import.meta.url);

/** A fresh cedar-wasm: its module evaluated again, so a new WebAssembly instance. */
function freshCedar(): CedarEngine {
  const id = require.resolve('@cedar-policy/cedar-wasm/nodejs');
  delete require.cache[id];
  return require(id) as CedarEngine;
}

const state = {
  engine: bundled as CedarEngine,
  load: freshCedar,
  healthy: true,
  generation: 0,
  failures: 0,
  reloads: 0,
  lastAttempt: -Infinity,
  reloadIntervalMs: RELOAD_INTERVAL_MS,
  lastFailure: undefined as string | undefined,
  logger: pino({ level: 'error' }) as EngineLogger,
};

/** The process logger, or any with `error` (then `fatal` events are logged at `error`). */
export type EngineLogger = Pick<Logger, 'error'> & Partial<Pick<Logger, 'fatal'>>;
function fatal(obj: object, msg: string): void {
  if (state.logger.fatal) state.logger.fatal(obj, msg);
  else state.logger.error(obj, msg);
}

/**
 * Whether the policy engine can decide. False from the moment a Cedar call failed until a fresh
 * instance has replaced the broken one; while false every policy decision refuses. For /readyz.
 */
export function policyEngineHealthy(): boolean {
  return state.healthy;
}

/** The engine's state, for diagnostics: failures and reloads since the process started. */
export function policyEngineStatus() {
  return { healthy: state.healthy, generation: state.generation, failures: state.failures, reloads: state.reloads, lastFailure: state.lastFailure ?? null };
}

/** Where the engine logs its failures (the process logger; until set, pino at `error` on stdout). */
export function setPolicyEngineLogger(logger: EngineLogger): void {
  state.logger = logger;
}

/** Bumped whenever the instance is replaced: whatever was preparsed in an older one is gone. */
export function engineGeneration(): number {
  return state.generation;
}

function tryReload(): void {
  const now = Date.now();
  if (now - state.lastAttempt < state.reloadIntervalMs) return;
  state.lastAttempt = now;
  try {
    const fresh = state.load();
    const check = fresh.checkParsePolicySet({ staticPolicies: 'permit(principal, action, resource);' });
    if (check.type !== 'success') throw new Error('the fresh instance does not parse a trivial policy');
    state.engine = fresh;
    state.generation += 1;
    state.reloads += 1;
    state.healthy = true;
    state.logger.error({ reloads: state.reloads }, 'policy engine: replaced the broken cedar-wasm instance with a fresh one; policy decisions resume');
  } catch (err) {
    fatal({ err: { message: (err as Error).message } }, 'policy engine: could not load a fresh cedar-wasm instance; every policy decision refuses until it can');
  }
}

/**
 * Runs one Cedar call on the current instance. Throws {@link PolicyEngineFailure} when the
 * engine is broken (and could not be replaced yet) or when this call broke it.
 *
 * @param what - what is being done, for the log (never the policy text).
 */
export function withCedar<T>(what: string, call: (cedar: CedarEngine) => T): T {
  if (!state.healthy) tryReload();
  if (!state.healthy) throw new PolicyEngineFailure(`policy engine unhealthy (${what})`);
  const generation = state.generation;
  try {
    return call(state.engine);
  } catch (err) {
    const message = `${(err as Error)?.name ?? 'Error'}: ${(err as Error)?.message ?? String(err)}`;
    if (state.generation === generation) {
      state.healthy = false;
      state.failures += 1;
      state.lastFailure = message;
      fatal({ call: what, err: { message } }, 'policy engine: a cedar-wasm call threw; the instance is treated as broken and every policy decision refuses (fail closed) until it is replaced');
      tryReload();
    }
    throw new PolicyEngineFailure(`${what}: ${message}`, true);
  }
}

/**
 * For tests only: swap in an engine (e.g. one that throws) and the loader used to replace it,
 * without breaking the real instance in a shared test process. Returns a function that restores
 * the real ones.
 */
export function replacePolicyEngineForTests(opts: { engine?: CedarEngine; load?: () => CedarEngine; reloadIntervalMs?: number }): () => void {
  const saved = { engine: state.engine, load: state.load, reloadIntervalMs: state.reloadIntervalMs, healthy: state.healthy };
  if (opts.engine) {
    state.engine = opts.engine;
    state.generation += 1;
  }
  if (opts.load) state.load = opts.load;
  if (opts.reloadIntervalMs !== undefined) {
    state.reloadIntervalMs = opts.reloadIntervalMs;
    state.lastAttempt = -Infinity;
  }
  return () => {
    Object.assign(state, saved);
    state.generation += 1;
    state.lastAttempt = -Infinity;
  };
}
