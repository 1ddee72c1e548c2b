/**
 * Sender-constrained tokens at the resource (RFC 9449 §7): the scheme must match the binding,
 * and a bound token needs a proof from the bound key, for this request, for this token.
 */
import { DPOP_ALGS, DpopError, verifyDpopProof } from '../dpop/proof.js';
import type { ReplayStore } from '../shared/replay.js';
import { PepError } from './errors.js';

/** What the request presented with the DPoP scheme (RFC 9449 §7.1). */
export interface DpopRequest {
  /** The request method, e.g. `GET` (the proof's `htm`). */
  method: string;
  /** The URL the client used, as the client saw it (the proof's `htu`; query and fragment are ignored). */
  url: string;
  /** The `DPoP` header value(s); several values are refused. */
  proof: string | readonly string[] | undefined;
}

export interface BindingCheck {
  token: string;
  cnf: unknown;
  /** Present when the request used the DPoP scheme; absent for Bearer. */
  request: DpopRequest | undefined;
  /** Refuse unbound tokens too (the resource's `dpop_bound_access_tokens_required`). */
  required: boolean;
  replay: ReplayStore;
  /** Replay namespace: proofs are single-use per tenant (and key). */
  replayScope: string;
  maxAgeSeconds: number;
  clockToleranceSeconds: number;
}

/** Proof algorithms this resource accepts, as offered in `algs` (RFC 9449 §7.1). */
export const PROOF_ALGORITHMS: readonly string[] = DPOP_ALGS;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The `cnf.jkt` a token is bound to; a `cnf` this resource cannot check makes the token unusable. */
function boundThumbprint(cnf: unknown, scheme: 'Bearer' | 'DPoP'): string | undefined {
  if (cnf === undefined) return undefined;
  if (!isObject(cnf) || typeof cnf.jkt !== 'string' || cnf.jkt.length === 0 || Object.keys(cnf).length !== 1) {
    throw new PepError('ERR_PEP_INVALID_TOKEN', 'unsupported confirmation method', { scheme, dpopAlgs: PROOF_ALGORITHMS });
  }
  return cnf.jkt;
}

/**
 * Checks the DPoP binding of an already verified token. Returns the bound thumbprint (`cnf.jkt`)
 * when the token is bound and the proof is good, undefined for an accepted Bearer token.
 */
export async function checkBinding(check: BindingCheck): Promise<string | undefined> {
  const dpop = { scheme: 'DPoP' as const, dpopAlgs: PROOF_ALGORITHMS };
  const jkt = boundThumbprint(check.cnf, check.request || check.required ? 'DPoP' : 'Bearer');
  if (!check.request) {
    // RFC 9449 §7.2: a bound token presented as a bearer token is refused, whatever else it carries.
    if (jkt) throw new PepError('ERR_PEP_DPOP_REQUIRED', 'this token is DPoP-bound and must be presented with the DPoP scheme', dpop);
    if (check.required) throw new PepError('ERR_PEP_DPOP_REQUIRED', 'this resource requires a DPoP-bound token', dpop);
    return undefined;
  }
  if (!jkt) throw new PepError('ERR_PEP_TOKEN_NOT_BOUND', 'this token is not DPoP-bound; present it with the Bearer scheme', dpop);

  const { proof } = check.request;
  if (proof === undefined || (Array.isArray(proof) && proof.length === 0)) {
    throw new PepError('ERR_PEP_DPOP_INVALID', 'a DPoP proof is required', dpop);
  }
  let result;
  try {
    result = await verifyDpopProof({
      header: typeof proof === 'string' ? proof : [...proof],
      htm: check.request.method,
      htu: check.request.url,
      accessToken: check.token,
      replay: check.replay,
      scope: check.replayScope,
      maxAgeSeconds: check.maxAgeSeconds,
      clockToleranceSeconds: check.clockToleranceSeconds,
    });
  } catch (err) {
    if (err instanceof DpopError) throw new PepError('ERR_PEP_DPOP_INVALID', err.message, { ...dpop, cause: err });
    throw err;
  }
  if (!result) throw new PepError('ERR_PEP_DPOP_INVALID', 'a DPoP proof is required', dpop);
  // §7.1: the proof's key is the one the token is bound to.
  if (result.jkt !== jkt) throw new PepError('ERR_PEP_DPOP_INVALID', 'DPoP proof key does not match the token binding', dpop);
  return jkt;
}
