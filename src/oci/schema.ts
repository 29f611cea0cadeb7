import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import AjvDraft04 from 'ajv-draft-04';
import type { ValidateFunction } from 'ajv';

// ajv-draft-04 is CommonJS: under NodeNext its default import is module.exports (the class itself).
type AjvClass = typeof AjvDraft04.default;
const Ajv: AjvClass = ((AjvDraft04 as unknown as { default?: AjvClass }).default ?? (AjvDraft04 as unknown as AjvClass));

export type OCIKind = 'manifest' | 'index' | 'config' | 'layout';

const FILES: Record<OCIKind, string> = {
  manifest: 'image-manifest-schema.json',
  index: 'image-index-schema.json',
  config: 'config-schema.json',
  layout: 'image-layout-schema.json',
};

/** The repo root: the nearest ancestor of this module holding package.json (works from src/ and dist/src/). */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      readFileSync(path.join(dir, 'package.json'));
      return dir;
    } catch {
      const up = path.dirname(dir);
      if (up === dir) throw new Error('cannot locate the kiln repository root from ' + import.meta.url);
      dir = up;
    }
  }
}

export function schemaDir(): string {
  return process.env.KILN_OCI_SCHEMA_DIR ?? path.resolve(repoRoot(), '..', 'shared', 'conformance', 'oci-image-spec-schema');
}

/**
 * The OCI schemas refer to each other by relative file name ("defs-descriptor.json#/...") under
 * several different base ids, which a plain draft-04 resolver cannot follow. We load each file
 * under the key "oci:<file>", rewrite every file-relative $ref to that key and drop the
 * nested ids, so all refs resolve to the files on disk exactly as the spec's Go loader does.
 */
function rewrite(node: unknown, isRoot: boolean): unknown {
  if (Array.isArray(node)) return node.map((n) => rewrite(n, false));
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    if (k === 'id' && typeof v === 'string') continue;
    if (k === '$schema' && !isRoot) continue;
    if (k === '$ref' && typeof v === 'string' && !v.startsWith('#')) {
      out[k] = `oci:${v}`;
      continue;
    }
    // "id" may also be a property name inside "properties"; only string ids are schema ids
    out[k] = rewrite(v, false);
  }
  return out;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

let validators: Record<OCIKind, ValidateFunction> | undefined;

function load(): Record<OCIKind, ValidateFunction> {
  if (validators) return validators;
  const dir = schemaDir();
  const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false });
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => DATE_TIME.test(s) && !Number.isNaN(Date.parse(s)) });
  ajv.addFormat('uri', { type: 'string', validate: (s: string) => /^[a-zA-Z][a-zA-Z0-9+.-]*:\S*$/.test(s) });
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const schema = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as unknown;
    ajv.addSchema(rewrite(schema, true) as object, `oci:${file}`);
  }
  const compile = (kind: OCIKind): ValidateFunction => {
    const v = ajv.getSchema(`oci:${FILES[kind]}`);
    if (!v) throw new Error(`OCI schema ${FILES[kind]} not found in ${dir}`);
    return v;
  };
  validators = { manifest: compile('manifest'), index: compile('index'), config: compile('config'), layout: compile('layout') };
  return validators;
}

/** Validates a document against the OCI image-spec JSON schema; returns readable errors (empty = valid). */
export function validateOCI(kind: OCIKind, value: unknown): string[] {
  const validate = load()[kind];
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e) => `${kind}${e.instancePath || ''}: ${e.message ?? 'invalid'}${e.params ? ' ' + JSON.stringify(e.params) : ''}`);
}
