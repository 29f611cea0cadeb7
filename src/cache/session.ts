/**
 * The shared cache in one build: the caches imported before the solve (--cache-from) and the
 * ones exported after it (--cache-to), with what each gathers from the solver: the steps of
 * the final stage (mode=min) or of every stage built (mode=max), and the cache mounts asked for.
 */
import { promises as fs } from 'node:fs';
import { KilnError } from '../errors.js';
import { layerEntriesFromDirectory, writeLayer, type VariantStore } from '../oci/layer.js';
import type { Lease, Provider, StagingIngester } from '../oci/content.js';
import type { Platform } from '../oci/types.js';
import type { Vertex } from '../graph/types.js';
import type { SolvedLayer, Solver } from '../solver/solver.js';
import { inlineMetadata, type CacheMetadata } from './format.js';
import { ImportedCache } from './imported.js';
import { exportCache, openCacheSources, type BlobSources, type CacheExportInput, type CacheExportResult, type CacheRegistry, type ExportLayer } from './remote.js';
import { describeCacheSpec, type CacheExportSpec, type CacheImportSpec } from './spec.js';

export interface CacheSessionDeps {
  store: VariantStore & StagingIngester & Pick<Provider, 'hasBlob'>;
  lease?: Lease;
  platform: Platform;
  registry: () => CacheRegistry;
  sources?: BlobSources;
  warn?: (message: string) => void;
}

/** Reads the --cache-from caches (manifests and configs only); undefined when none could be read. */
export async function importCaches(specs: CacheImportSpec[], deps: CacheSessionDeps): Promise<ImportedCache | undefined> {
  if (specs.length === 0) return undefined;
  const sources = await openCacheSources(specs, deps);
  return sources.length > 0 ? new ImportedCache(sources, { store: deps.store, lease: deps.lease }) : undefined;
}

function exportLayer(l: SolvedLayer, ready: { descriptor: ExportLayer['descriptor'] }): ExportLayer {
  return { diffId: l.diffId, descriptor: ready.descriptor, local: () => (l.fetch ? l.fetch() : l.ready) };
}

/** The solved steps under each target (a multi-platform build has one per platform), each key once. */
async function solvedStepsOf(solver: Solver, targets: Vertex[], finalStage: boolean): Promise<Awaited<ReturnType<Solver['solvedSteps']>>> {
  const seen = new Set<string>();
  const out: Awaited<ReturnType<Solver['solvedSteps']>> = [];
  for (const t of targets) {
    for (const s of await solver.solvedSteps(t, finalStage)) {
      if (seen.has(s.key)) continue;
      seen.add(s.key);
      out.push(s);
    }
  }
  return out;
}

async function stepsOf(solver: Solver, target: Vertex | Vertex[], mode: 'min' | 'max'): Promise<CacheExportInput['steps']> {
  const steps = await solvedStepsOf(solver, Array.isArray(target) ? target : [target], mode === 'min');
  const toExport = async (l: SolvedLayer): Promise<ExportLayer> => exportLayer(l, await l.ready);
  return Promise.all(
    steps.map(async (s) => ({
      key: s.key,
      createdAt: s.createdAt,
      description: s.description,
      layer: s.layer && (await toExport(s.layer)),
      ...(s.definitionKey !== undefined ? { definition: s.definitionKey, chain: await Promise.all(s.chain.map(toExport)) } : {}),
    })),
  );
}

/** Inline cache records (--cache-to type=inline) for the image of `target` with layers `diffIds`. */
export async function inlineCacheRecords(solver: Solver, target: Vertex, diffIds: string[]): Promise<CacheMetadata> {
  return inlineMetadata(await stepsOf(solver, target, 'min'), diffIds);
}

/** The layers of the cache mounts `spec` asks for: this build's contents, else what an imported cache held. */
async function mountsOf(spec: CacheExportSpec, solver: Solver, target: Vertex | Vertex[], deps: CacheSessionDeps, imported?: ImportedCache): Promise<CacheExportInput['mounts']> {
  if (!spec.cacheMounts) return [];
  const all = (Array.isArray(target) ? target : [target]).flatMap((t) => solver.cacheMounts(t));
  const mounts = all.filter((m, i) => all.findIndex((o) => o.id === m.id) === i);
  const wanted = spec.cacheMounts === 'all' ? mounts : mounts.filter((m) => (spec.cacheMounts as string[]).includes(m.id));
  if (spec.cacheMounts !== 'all') {
    for (const id of spec.cacheMounts) if (!mounts.some((m) => m.id === id)) deps.warn?.(`--cache-to ${describeCacheSpec(spec)}: no RUN --mount=type=cache in this build has the id ${id}`);
  }
  const out: CacheExportInput['mounts'] = [];
  for (const m of wanted) {
    const names = await fs.readdir(m.dir).catch(() => [] as string[]);
    if (names.length === 0) {
      const from = imported?.mount(m.id);
      if (from) out.push({ id: m.id, layer: { diffId: from.diffId, descriptor: from.descriptor, local: () => from.fetch() } });
      continue;
    }
    const written = await writeLayer(deps.store, layerEntriesFromDirectory(m.dir), { compression: spec.compression === 'uncompressed' ? 'none' : 'gzip' });
    await deps.lease?.add(written.descriptor.digest);
    const ref = { descriptor: written.descriptor, diffId: written.diffId };
    out.push({ id: m.id, layer: { ...ref, local: async () => ref } });
  }
  return out;
}

/** One --cache-to's outcome: its manifest digest (and how a registry got each blob), or why it failed. */
export interface CacheExportOutcome {
  spec: CacheExportSpec;
  manifest?: string;
  blobs?: CacheExportResult['blobs'];
  error?: string;
}

/**
 * Exports the build's cache to each of `specs` (inline ones are written into the image, not
 * here). A failed export is a warning unless the spec says ignore-error=false.
 */
export async function exportCaches(
  specs: CacheExportSpec[],
  solver: Solver,
  /** The final state, or each platform's of a multi-platform build (one cache holds them all). */
  target: Vertex | Vertex[],
  deps: CacheSessionDeps,
  imported?: ImportedCache,
): Promise<CacheExportOutcome[]> {
  const results: CacheExportOutcome[] = [];
  for (const spec of specs) {
    if (spec.type === 'inline') continue;
    try {
      const input: CacheExportInput = { steps: await stepsOf(solver, target, spec.mode ?? 'min'), mounts: await mountsOf(spec, solver, target, deps, imported) };
      const done = await exportCache(spec, input, deps);
      results.push({ spec, manifest: done.manifest.digest, blobs: done.blobs });
    } catch (e) {
      const message = (e as Error).message;
      if (spec.ignoreError === false) {
        throw new KilnError(`cache export to ${describeCacheSpec(spec)} failed: ${message}`, {
          code: e instanceof KilnError ? e.code : undefined,
          hint: 'fix the destination, or leave ignore-error=false out to make a failed export a warning',
          cause: e,
        });
      }
      deps.warn?.(`cache export to ${describeCacheSpec(spec)} failed (the image is built): ${message}`);
      results.push({ spec, error: message });
    }
  }
  return results;
}
