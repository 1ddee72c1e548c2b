// Benchmark target: a bare oidc-provider 9, configured to do what Bulkhead's token endpoint does
// and nothing more: client_credentials, RFC 9068 JWT access tokens via resourceIndicators, ES256,
// one static client with a PLAINTEXT client_secret (client_secret_basic), a default resource.
// It adds the same `tenant_id` claim Bulkhead adds, so both tokens are the same size.
// The provider is served at the root (token endpoint /token); the request body is identical.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';
import { RESOURCE, RESOURCE_SCOPES, TOKEN_TTL, freePort, serveUntilStopped, fail } from './common.mjs';

class NoStore {
  async find() { return undefined; }
  async findByUserCode() { return undefined; }
  async findByUid() { return undefined; }
  async upsert() {}
  async consume() {}
  async destroy() {}
  async revokeByGrantId() {}
}

async function main() {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const jwk = { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };
  const clientId = 'bench-service';
  const clientSecret = randomBytes(32).toString('base64url');

  const provider = new Provider(url, {
    // JWT access tokens are never stored; a no-op adapter (as Bulkhead's) instead of the
    // development in-memory one, which only adds a start-up warning.
    adapter: NoStore,
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    }],
    jwks: { keys: [jwk] },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    clientDefaults: { id_token_signed_response_alg: 'ES256', grant_types: ['client_credentials'], response_types: [] },
    responseTypes: ['none'],
    clientAuthMethods: ['client_secret_basic'],
    scopes: [],
    claims: {},
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo(_ctx, resourceIndicator) {
          if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: RESOURCE_SCOPES.join(' '),
            audience: RESOURCE,
            accessTokenTTL: TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    extraTokenClaims: () => ({ tenant_id: 'bench' }),
    ttl: { ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_TTL },
  });

  const server = createServer(provider.callback());
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });

  serveUntilStopped(
    {
      name: 'baseline',
      issuer: url,
      tokenUrl: `${url}/token`,
      jwksUrl: `${url}/jwks`,
      clientId,
      clientSecret,
      notes: 'bare oidc-provider 9, static client, plaintext secret, no database, no logging',
    },
    async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  );
}

main().catch((err) => fail('baseline', err));
