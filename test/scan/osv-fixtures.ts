/**
 * Advisory fixtures for the scan tests: OSV records built in code, each validated against the
 * official OSV schema (../shared/conformance/supplychain/osv/schema.json, draft 2020-12) before
 * it is written, so no test runs on a record osv.dev could not publish.
 */
import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2020Module from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import { zipSync } from 'fflate';
import type { OsvRecord } from '../../src/scan/osv.js';
import { repoRoot } from '../helpers.js';

type Ajv2020Class = typeof Ajv2020Module.default;
const Ajv2020: Ajv2020Class = (Ajv2020Module as unknown as { default?: Ajv2020Class }).default ?? (Ajv2020Module as unknown as Ajv2020Class);

export const osvSchemaPath = path.resolve(repoRoot, '..', 'shared', 'conformance', 'supplychain', 'osv', 'schema.json');

let validator: ValidateFunction | undefined;

/** Schema errors of an OSV record (empty = valid). */
export function osvSchemaErrors(record: unknown): string[] {
  if (validator === undefined) {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    ajv.addFormat('date-time', { type: 'string', validate: (s: string) => !Number.isNaN(Date.parse(s)) });
    validator = ajv.compile(JSON.parse(readFileSync(osvSchemaPath, 'utf8')) as object);
  }
  if (validator(record)) return [];
  return (validator.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`);
}

export const MODIFIED = '2026-01-01T00:00:00Z';

/** An OSV record with the fields every test needs; `extra` adds or replaces fields. */
export function advisory(id: string, affected: OsvRecord['affected'], extra: Partial<OsvRecord> = {}): OsvRecord {
  return { schema_version: '1.6.0', id, modified: MODIFIED, published: MODIFIED, summary: `${id} summary`, affected, ...extra };
}

/** One affected package with one range of introduced/fixed events. */
export function fixedIn(ecosystem: string, name: string, fixed: string | undefined, type: 'ECOSYSTEM' | 'SEMVER' = 'ECOSYSTEM', introduced = '0'): NonNullable<OsvRecord['affected']>[number] {
  const events: Array<Record<string, string>> = [{ introduced }];
  if (fixed !== undefined) events.push({ fixed });
  return { package: { ecosystem, name }, ranges: [{ type, events }] };
}

function checked(records: OsvRecord[]): void {
  for (const r of records) assert.deepEqual(osvSchemaErrors(r), [], `fixture ${r.id} is not a valid OSV record`);
}

/** Writes records as DIR/<ecosystem>/<id>.json (a tree, as osv.dev's buckets are laid out). */
export async function writeOsvDir(dir: string, records: OsvRecord[]): Promise<string> {
  checked(records);
  for (const r of records) {
    const eco = (r.affected?.[0]?.package.ecosystem ?? 'none').replace(/[^A-Za-z0-9.]/g, '_');
    await fs.mkdir(path.join(dir, eco), { recursive: true });
    await fs.writeFile(path.join(dir, eco, `${r.id}.json`), JSON.stringify(r, null, 2));
  }
  return dir;
}

/** Writes records into one zip (osv.dev's all.zip: <id>.json entries at the top). */
export async function writeOsvZip(file: string, records: OsvRecord[]): Promise<string> {
  checked(records);
  const entries: Record<string, Uint8Array> = {};
  for (const r of records) entries[`${r.id}.json`] = Buffer.from(JSON.stringify(r));
  await fs.writeFile(file, zipSync(entries));
  return file;
}
