/**
 * Signing-key lifecycle rules as pure functions: which keys are published, which one signs, and
 * what rotation and revocation change. The service applies these plans in one transaction.
 *
 * pending → active → retired → (gone from JWKS once every token it signed has expired);
 * revoked at any time, which removes the key from JWKS at once.
 */

export const KEY_ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];
export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = 'ES256';

export type KeyStatus = 'pending' | 'active' | 'retired' | 'revoked';

export interface KeyState {
  kid: string;
  alg: string;
  status: string;
  createdAt: Date;
  activatedAt: Date | null;
  publishUntil: Date | null;
}

/** Extra time a retired key stays published beyond the longest token it could have signed. */
export const RETIRED_KEY_GRACE_SECONDS = 60;

/** A key is in the JWKS while pending or active, or retired with tokens possibly still alive. */
export function isPublished(key: KeyState, now: Date): boolean {
  if (key.status === 'pending' || key.status === 'active') return true;
  return key.status === 'retired' && key.publishUntil !== null && key.publishUntil > now;
}

/** The keys a verifier may see, newest first; never a revoked one. */
export function publishedKeys<K extends KeyState>(keys: K[], now: Date): K[] {
  return keys.filter((k) => isPublished(k, now)).sort((a, b) => +b.createdAt - +a.createdAt);
}

/** The key that signs: the active one most recently activated. */
export function chooseSigningKey<K extends KeyState>(keys: K[]): K | undefined {
  return keys
    .filter((k) => k.status === 'active')
    .sort((a, b) => +(b.activatedAt ?? b.createdAt) - +(a.activatedAt ?? a.createdAt))[0];
}

/** The pending key of `alg` that has been published longest, the natural next signer. */
export function nextPendingKey<K extends KeyState>(keys: K[], alg: string): K | undefined {
  return keys
    .filter((k) => k.status === 'pending' && k.alg === alg)
    .sort((a, b) => +a.createdAt - +b.createdAt)[0];
}

export interface KeyPlan {
  /** Pending key to make active (already published, so verifiers know it before it signs). */
  promote?: string;
  /** No suitable pending key: generate one of this alg and make it active at once. */
  generateActive?: string;
  /** Keys to retire (published until `publishUntil`). */
  retire: string[];
  /** Pending keys that never signed and are no longer wanted: unpublished at once. */
  withdraw?: string[];
  /** Key to revoke (removed from JWKS at once). */
  revoke?: string;
  /** Generate a new pending key of this alg, published ahead of the next rotation. */
  generatePending?: string;
}

/**
 * Rotation: the pending key published ahead of time starts signing, the active key retires, and
 * a fresh pending key is published for the next rotation. Asking for an algorithm that has no
 * pending key yet generates one that signs at once (verifiers refresh their JWKS on unknown kid).
 */
export function planRotation(keys: KeyState[], alg: string): KeyPlan {
  const active = keys.filter((k) => k.status === 'active').map((k) => k.kid);
  const pending = nextPendingKey(keys, alg);
  const hasOtherPending = keys.some((k) => k.status === 'pending' && k.alg === alg && k.kid !== pending?.kid);
  // Pending keys of another algorithm will never be promoted now; they signed nothing.
  const withdraw = keys.filter((k) => k.status === 'pending' && k.alg !== alg).map((k) => k.kid);
  return {
    ...(pending ? { promote: pending.kid } : { generateActive: alg }),
    retire: active,
    ...(withdraw.length ? { withdraw } : {}),
    ...(hasOtherPending ? {} : { generatePending: alg }),
  };
}

/**
 * Revocation: the key leaves JWKS now. Revoking the active key is the emergency case: the oldest
 * pending key of the same algorithm (or a fresh one) signs from this moment, so the tenant never
 * stops issuing, and a new pending key is published for the next rotation.
 */
export function planRevocation(keys: KeyState[], kid: string): KeyPlan {
  const target = keys.find((k) => k.kid === kid);
  if (!target || target.status === 'revoked') return { retire: [] };
  if (target.status !== 'active') return { revoke: kid, retire: [] };
  const others = keys.filter((k) => k.kid !== kid);
  const stillActive = others.some((k) => k.status === 'active');
  if (stillActive) return { revoke: kid, retire: [] };
  const pending = nextPendingKey(others, target.alg);
  const hasOtherPending = others.some((k) => k.status === 'pending' && k.alg === target.alg && k.kid !== pending?.kid);
  return {
    revoke: kid,
    ...(pending ? { promote: pending.kid } : { generateActive: target.alg }),
    retire: [],
    ...(hasOtherPending ? {} : { generatePending: target.alg }),
  };
}
