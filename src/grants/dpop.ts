import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { DpopError, verifyDpopProof } from '../dpop/proof.js';
import type { IssuerContext } from '../issuer/context.js';
import type { ReplayStore } from '../shared/replay.js';

/**
 * The DPoP proof (RFC 9449 §4) sent to a tenant's token endpoint, if any: its key's
 * thumbprint, which the grant binds the new token to (`cnf.jkt`, `token_type: DPoP`). A proof
 * that is present but wrong is `invalid_dpop_proof` (§5); the proof's `jti` is single-use in
 * the same replay store as client assertions.
 */
export async function tokenEndpointProof(ctx: KoaContextWithOIDC, issuer: IssuerContext, replay: ReplayStore): Promise<string | undefined> {
  try {
    const proof = await verifyDpopProof({
      header: ctx.request.headers.dpop,
      htm: ctx.method,
      htu: `${issuer.issuer}/token`,
      replay,
      scope: issuer.tenant.id,
    });
    return proof?.jkt;
  } catch (err) {
    if (err instanceof DpopError) throw new errors.InvalidDpopProof(err.message);
    throw err;
  }
}
