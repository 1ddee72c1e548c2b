// Types of ./common.mjs, for the TypeScript tests that share its constants (test/policy/guard.test.ts
// checks that the bench's tenant policy passes the policy guard).
export declare const RESOURCE: string;
export declare const SCOPE: string;
export declare const RESOURCE_SCOPES: string[];
export declare const TOKEN_TTL: number;
export declare const TENANT: string;
export declare const AGENT_TENANT: string;
export declare const TOKEN_EXCHANGE: string;
export declare const ACCESS_TOKEN_TYPE: string;
export declare const BENCH_POLICY: string;
export declare function freePort(): Promise<number>;
export declare function serveUntilStopped(target: Record<string, unknown>, close: () => Promise<void>): void;
export declare function fail(name: string, err: unknown): never;
