/**
 * The BuildKit corpus (test/fixtures/buildkit-corpus/<case>/): reading cases and the
 * normalized view of a built image that both scripts/gen-buildkit-fixtures.ts (from
 * real BuildKit in dockerd) and test/frontend/buildkit-corpus.test.ts (from kiln) produce.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers.js';

/** The recorded cases: one directory each, with a Dockerfile, its context and expected.json. */
export const corpusDir = path.join(repoRoot, 'test', 'fixtures', 'buildkit-corpus');

export interface CaseArgs {
  buildArgs?: Record<string, string>;
  target?: string;
  /** false: dockerd 20.10's BuildKit cannot build it; expected.json is hand-written. */
  buildkit?: boolean;
  comment?: string;
  /**
   * Where current BuildKit (its source and docs) and dockerd 20.10's older BuildKit
   * disagree, kiln follows current BuildKit: each entry replaces the value at a JSON
   * pointer in what dockerd produced, and says why.
   */
  deviations?: Deviation[];
}

export interface Deviation {
  /** JSON pointer into expected.json, e.g. /history/3/created_by. */
  path: string;
  value: unknown;
  why: string;
}

export interface CaseChecks {
  /** Commands run in the built image (as root, entrypoint replaced); their stdout is compared. */
  run?: string[][];
}

export interface CorpusCase {
  name: string;
  dir: string;
  args: CaseArgs;
  checks: CaseChecks;
}

export interface NormalizedImage {
  /** Why this fixture deviates from (or was not produced by) dockerd's BuildKit. */
  comment?: string | string[];
  config: Record<string, unknown>;
  author?: string;
  history: Array<{ created_by: string; empty_layer: boolean }>;
  layers: number;
  /** Build args reported as not consumed, sorted. */
  unusedBuildArgs: string[];
  /** Command line → its stdout. */
  files?: Record<string, string>;
}

/** Files of a case directory that are corpus metadata, not build context. */
export const META_FILES = new Set(['args.json', 'checks.json', 'expected.json']);

const CONFIG_FIELDS = [
  'Env',
  'Cmd',
  'Entrypoint',
  'WorkingDir',
  'User',
  'Labels',
  'ExposedPorts',
  'Volumes',
  'StopSignal',
  'Healthcheck',
  'Shell',
  'OnBuild',
] as const;

export async function loadCases(corpusDir: string): Promise<CorpusCase[]> {
  const names = (await fs.readdir(corpusDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const out: CorpusCase[] = [];
  for (const name of names) {
    const dir = path.join(corpusDir, name);
    const args = (await readJson<CaseArgs>(path.join(dir, 'args.json'))) ?? {};
    const checks = (await readJson<CaseChecks>(path.join(dir, 'checks.json'))) ?? {};
    out.push({ name, dir, args, checks });
  }
  return out;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Copies a case's build context (everything but the metadata files) to `dest`. */
export async function copyContext(c: CorpusCase, dest: string): Promise<void> {
  await fs.cp(c.dir, dest, { recursive: true, filter: (src) => !(path.dirname(src) === c.dir && META_FILES.has(path.basename(src))) });
}

export function buildArgFlags(c: CorpusCase): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(c.args.buildArgs ?? {})) out.push('--build-arg', `${k}=${v}`);
  if (c.args.target) out.push('--target', c.args.target);
  return out;
}

export function checkKey(argv: string[]): string {
  return argv.map((a) => (/^[\w./:%=-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** "[Warning] One or more build-args [A B] were not consumed" (any case) → ["A", "B"]. */
export function parseUnusedBuildArgs(output: string): string[] {
  const m = /build-args \[([^\]]*)\] were not consumed/i.exec(output);
  return m ? m[1].split(/\s+/).filter(Boolean).sort() : [];
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '') return true;
  if (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0) return true;
  return false;
}

/**
 * The view of an image config compared between BuildKit and kiln. Missing, null, ""
 * and {} are the same (docker writes null where kiln omits); [] is kept (CMD []).
 */
export function normalizeConfig(image: {
  config?: Record<string, unknown> | null;
  author?: string;
  history?: Array<{ created_by?: string; empty_layer?: boolean }>;
  rootfs?: { diff_ids?: string[] };
}): Pick<NormalizedImage, 'config' | 'author' | 'history' | 'layers'> {
  const config: Record<string, unknown> = {};
  const cc = image.config ?? {};
  for (const f of CONFIG_FIELDS) {
    let v = cc[f];
    if (isEmpty(v)) continue;
    if (f === 'ExposedPorts' || f === 'Volumes') v = Object.keys(v as object).sort();
    if (f === 'Labels') v = Object.fromEntries(Object.entries(v as Record<string, string>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    config[f] = v;
  }
  const out: Pick<NormalizedImage, 'config' | 'author' | 'history' | 'layers'> = {
    config,
    history: (image.history ?? []).map((h) => ({ created_by: h.created_by ?? '', empty_layer: h.empty_layer === true })),
    layers: image.rootfs?.diff_ids?.length ?? 0,
  };
  if (image.author) out.author = image.author;
  return out;
}

/** Applies a case's deviations to what dockerd produced (JSON pointers, RFC 6901). */
export function applyDeviations(image: NormalizedImage, deviations: Deviation[]): NormalizedImage {
  const out = structuredClone(image) as unknown as Record<string, unknown>;
  for (const d of deviations) {
    const keys = d.path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    let node: Record<string, unknown> = out;
    for (const k of keys.slice(0, -1)) {
      if (node[k] === undefined || node[k] === null || typeof node[k] !== 'object') throw new Error(`deviation path ${d.path}: no ${k}`);
      node = node[k] as Record<string, unknown>;
    }
    const last = keys[keys.length - 1];
    if (d.value === null) delete node[last];
    else node[last] = d.value;
  }
  return out as unknown as NormalizedImage;
}
