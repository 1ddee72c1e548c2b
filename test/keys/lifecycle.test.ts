import { describe, expect, it } from 'vitest';
import { chooseSigningKey, isPublished, planRevocation, planRotation, publishedKeys, type KeyState } from '../../src/keys/lifecycle.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(+t0 + s * 1000);
const key = (kid: string, status: string, o: Partial<KeyState> = {}): KeyState => ({
  kid, alg: 'ES256', status, createdAt: t0, activatedAt: status === 'active' ? t0 : null, publishUntil: null, ...o,
});

describe('isPublished / publishedKeys', () => {
  it.each([
    ['pending', key('p', 'pending'), true],
    ['active', key('a', 'active'), true],
    ['retired with live tokens', key('r', 'retired', { publishUntil: at(100) }), true],
    ['retired after its last token expired', key('r', 'retired', { publishUntil: at(-1) }), false],
    ['retired with no horizon', key('r', 'retired'), false],
    ['revoked', key('x', 'revoked', { publishUntil: at(100) }), false],
  ])('%s → %s', (_n, k, expected) => expect(isPublished(k, t0)).toBe(expected));

  it('never includes a revoked key and lists newest first', () => {
    const keys = [key('old', 'retired', { publishUntil: at(10), createdAt: at(-100) }), key('x', 'revoked'), key('a', 'active', { createdAt: at(-10) }), key('p', 'pending')];
    expect(publishedKeys(keys, t0).map((k) => k.kid)).toEqual(['p', 'a', 'old']);
  });
});

describe('chooseSigningKey', () => {
  it('is the active key, never a pending or retired one', () => {
    expect(chooseSigningKey([key('p', 'pending'), key('a', 'active'), key('r', 'retired')])?.kid).toBe('a');
    expect(chooseSigningKey([key('p', 'pending'), key('r', 'retired')])).toBeUndefined();
  });
  it('prefers the most recently activated if two are active', () => {
    expect(chooseSigningKey([key('a1', 'active', { activatedAt: at(1) }), key('a2', 'active', { activatedAt: at(2) })])?.kid).toBe('a2');
  });
});

describe('planRotation (publish before signing)', () => {
  it('promotes the pre-published pending key, retires the active one, publishes a new pending', () => {
    expect(planRotation([key('a', 'active'), key('p', 'pending')], 'ES256')).toEqual({ promote: 'p', retire: ['a'], generatePending: 'ES256' });
  });
  it('promotes the oldest pending key of the requested algorithm', () => {
    const keys = [key('a', 'active'), key('p2', 'pending', { createdAt: at(5) }), key('p1', 'pending', { createdAt: at(1) })];
    expect(planRotation(keys, 'ES256')).toEqual({ promote: 'p1', retire: ['a'] });
  });
  it('generates a signing key at once when no pending key has the requested algorithm', () => {
    expect(planRotation([key('a', 'active'), key('p', 'pending')], 'EdDSA')).toEqual({ generateActive: 'EdDSA', retire: ['a'], withdraw: ['p'], generatePending: 'EdDSA' });
  });
});

describe('planRevocation', () => {
  it('revoking a pending or retired key only revokes it', () => {
    const keys = [key('a', 'active'), key('p', 'pending'), key('r', 'retired', { publishUntil: at(10) })];
    expect(planRevocation(keys, 'p')).toEqual({ revoke: 'p', retire: [] });
    expect(planRevocation(keys, 'r')).toEqual({ revoke: 'r', retire: [] });
  });
  it('revoking the active key promotes the pending key and publishes a new one: issuing never stops', () => {
    expect(planRevocation([key('a', 'active'), key('p', 'pending')], 'a')).toEqual({ revoke: 'a', promote: 'p', retire: [], generatePending: 'ES256' });
  });
  it('revoking the active key with nothing pending generates a fresh signer', () => {
    expect(planRevocation([key('a', 'active')], 'a')).toEqual({ revoke: 'a', generateActive: 'ES256', retire: [], generatePending: 'ES256' });
  });
  it('unknown or already revoked keys change nothing', () => {
    expect(planRevocation([key('a', 'active')], 'zzz')).toEqual({ retire: [] });
    expect(planRevocation([key('x', 'revoked')], 'x')).toEqual({ retire: [] });
  });
});
