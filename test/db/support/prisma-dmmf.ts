import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

/**
 * Prisma's own schema parser, as the installed Prisma CLI runs it: the `prisma_schema_build`
 * WebAssembly module shipped in `node_modules/prisma/build`, called through its `get_dmmf`
 * export. The CLI bundles the wasm-bindgen glue without exporting it, so the few lines of glue
 * this module needs (UTF-8 strings in and out, errors out) are reproduced here; any import the
 * module asks for that is not understood fails loudly rather than being stubbed.
 */

export interface DmmfField {
  name: string;
  dbName: string | null;
  kind: 'scalar' | 'object' | 'enum' | 'unsupported';
  isList: boolean;
  isRequired: boolean;
  isUnique: boolean;
  isId: boolean;
  isUpdatedAt: boolean;
  hasDefaultValue: boolean;
  default?: unknown;
  type: string;
  nativeType?: [string, string[]] | null;
  relationName?: string | null;
  relationFromFields?: string[];
  relationToFields?: string[];
  relationOnDelete?: string;
  relationOnUpdate?: string;
}

export interface DmmfModel {
  name: string;
  dbName: string | null;
  fields: DmmfField[];
  primaryKey: { name: string | null; fields: string[] } | null;
  uniqueFields: string[][];
  uniqueIndexes: { name: string | null; fields: string[] }[];
}

export interface DmmfIndex {
  model: string;
  type: 'id' | 'normal' | 'unique' | 'fulltext';
  isDefinedOnField: boolean;
  name?: string;
  dbName?: string;
  fields: { name: string; sortOrder?: string; length?: number; operatorClass?: string }[];
}

export interface Dmmf {
  datamodel: { models: DmmfModel[]; enums: unknown[]; types: unknown[]; indexes: DmmfIndex[] };
}

interface SchemaWasm {
  memory: WebAssembly.Memory;
  __wbindgen_externrefs: WebAssembly.Table;
  __wbindgen_malloc(size: number, align: number): number;
  __wbindgen_realloc(ptr: number, oldSize: number, newSize: number, align: number): number;
  __wbindgen_free(ptr: number, size: number, align: number): void;
  __externref_table_dealloc(idx: number): void;
  __wbindgen_start(): void;
  get_dmmf(ptr: number, len: number): [number, number, number, number];
}

let wasm: SchemaWasm | undefined;
/** What the Rust side said when it last panicked (a panic surfaces as a bare RuntimeError). */
let panicMessage: string | undefined;

function load(): SchemaWasm {
  if (wasm) return wasm;
  const require = createRequire(import.meta.url);
  const buildDir = path.dirname(require.resolve('prisma/package.json'));
  const module = new WebAssembly.Module(readFileSync(path.join(buildDir, 'build/prisma_schema_build_bg.wasm')));
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const str = (ptr: number, len: number) => decoder.decode(new Uint8Array(instance.memory.buffer, ptr >>> 0, len));
  const handlers: [string, (...a: number[]) => unknown][] = [
    ['__wbg_Error_', (p, l) => new Error(str(p, l))],
    ['__wbg___wbindgen_throw_', (p, l) => { throw new Error(str(p, l)); }],
    ['__wbg_set_message_', (p, l) => { panicMessage = str(p, l); }],
    ['__wbindgen_init_externref_table', () => {
      const t = instance.__wbindgen_externrefs;
      const base = t.grow(4);
      t.set(0, undefined);
      t.set(base, undefined);
      t.set(base + 1, null);
      t.set(base + 2, true);
      t.set(base + 3, false);
    }],
  ];
  const imports: Record<string, Record<string, unknown>> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    const handler = handlers.find(([prefix]) => imp.name.startsWith(prefix));
    if (!handler) throw new Error(`prisma_schema_build wasm wants an unknown import ${imp.module}.${imp.name}; update test/db/support/prisma-dmmf.ts`);
    (imports[imp.module] ??= {})[imp.name] = handler[1];
  }
  const instance = new WebAssembly.Instance(module, imports as WebAssembly.Imports).exports as unknown as SchemaWasm;
  instance.__wbindgen_start();
  return (wasm = instance);
}

/** The DMMF of `schemaPath`, exactly as `prisma generate` sees it. */
export function getDmmf(schemaPath: string): Dmmf {
  const w = load();
  const input = new TextEncoder().encode(
    JSON.stringify({ prismaSchema: [[schemaPath, readFileSync(schemaPath, 'utf8')]], noColor: true }),
  );
  const inPtr = w.__wbindgen_malloc(input.length, 1) >>> 0;
  new Uint8Array(w.memory.buffer, inPtr, input.length).set(input);
  let result: [number, number, number, number];
  try {
    result = w.get_dmmf(inPtr, input.length);
  } catch (err) {
    wasm = undefined; // a panicked instance is not reusable
    throw new Error(`Prisma's schema parser panicked on ${schemaPath}: ${panicMessage ?? String(err)}`);
  }
  const [ptr, len, errIdx, isErr] = result;
  if (isErr) {
    const err = w.__wbindgen_externrefs.get(errIdx) as Error;
    w.__externref_table_dealloc(errIdx);
    throw new Error(`Prisma could not parse ${schemaPath}: ${err?.message ?? String(err)}`);
  }
  try {
    return JSON.parse(new TextDecoder().decode(new Uint8Array(w.memory.buffer, ptr >>> 0, len))) as Dmmf;
  } finally {
    w.__wbindgen_free(ptr, len, 1);
  }
}
