import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ port: 8080, host: '127.0.0.1', publicUrl: 'http://localhost:8080', databaseUrl: undefined, redisUrl: undefined, logLevel: 'info' });
    expect(c.dataDir).toMatch(/\/data$/);
    expect(c.keysDir).toMatch(/\/keys$/);
    expect(loadConfig({ PORT: '9000' }).publicUrl).toBe('http://localhost:9000');
    expect(loadConfig({ PUBLIC_URL: 'https://auth.example.com/' }).publicUrl).toBe('https://auth.example.com');
    expect(c.trustProxy).toBe(0);
  });

  it('TRUST_PROXY is a number of proxy hops, 0 to 10', () => {
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
    for (const bad of ['-1', '11', 'yes', '1.5']) expect(() => loadConfig({ TRUST_PROXY: bad }), bad).toThrow(/invalid TRUST_PROXY/);
  });

  it('reports one line per problem', () => {
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', BULKHEAD_MASTER_KEY: 'short', PUBLIC_URL: 'ftp://x', LOG_LEVEL: 'loud' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems;
      expect(problems).toHaveLength(5);
      for (const v of ['PORT', 'DATABASE_URL', 'BULKHEAD_MASTER_KEY', 'PUBLIC_URL', 'LOG_LEVEL']) {
        expect(problems.some((p) => p.startsWith(`invalid ${v}:`))).toBe(true);
      }
      expect(problems.join('\n')).not.toContain('short');
    }
  });

  it('refuses a PUBLIC_URL with a path: issuers and DPoP htu are built from it and must be served as advertised', () => {
    expect(() => loadConfig({ PUBLIC_URL: 'https://example.com/auth' })).toThrow(/PUBLIC_URL: must not have a path/);
    expect(loadConfig({ PUBLIC_URL: 'https://example.com:8443' }).publicUrl).toBe('https://example.com:8443');
  });
});
