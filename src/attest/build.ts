/**
 * What `build()` asks of attestations: the image's layers made the form a registry gets (so the
 * platform manifests the statements name are the ones a push sends), one provenance statement
 * (and an SBOM statement, when asked) per platform manifest, attached as BuildKit does.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import { convertImage, persistConverted } from '../export/convert.js';
import { locateDockerfile, type DefinitionOptions } from '../frontend/source.js';
import { isSource, vertexInputs, type Vertex } from '../graph/types.js';
import type { ContentStore, Lease } from '../oci/store.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from '../oci/types.js';
import { isIndexType } from '../oci/walk.js';
import { attachAttestations, isAttestationEntry } from './attach.js';
import { imageSubjects, makeStatement, SLSA_PROVENANCE_V1, type Statement } from './intoto.js';
import { provenancePredicate, type BaseImageUse, type ProvenanceInput, type ProvenanceStep } from './provenance.js';

export interface PlatformTarget {
  platform: Platform;
  /** The plan's target state: its graph names the base images and the steps. */
  target: Vertex;
}

export interface AttestBuildOptions {
  store: ContentStore;
  lease: Lease;
  /** The image's names (-t): the statements' subjects. */
  names: string[];
  provenance?: { mode: 'min' | 'max' };
  /** An SBOM statement per platform manifest is asked for (`extra` makes it). */
  sbom?: boolean;
  /** One statement of another kind per platform manifest (the SBOM). */
  extra?: (manifest: Descriptor, platform: Platform, subjects: Statement['subject']) => Promise<Statement[]>;
  /** Every target, in the order of the build's platforms. */
  targets: PlatformTarget[];
  /** What every platform's provenance shares. */
  common: Omit<ProvenanceInput, 'mode' | 'bases' | 'steps' | 'layers' | 'finishedOn'>;
  /** A step's solved state (the solver's memo): its cache key and whether it came from the cache. */
  solved: (v: Vertex) => Promise<{ key: string; cached: boolean }>;
}

/**
 * The Dockerfile as provenance names it: its path relative to the context when it lies inside
 * (else as given; "Dockerfile" for stdin) and the sha256 of its bytes.
 */
export async function dockerfileSource(opts: DefinitionOptions): Promise<{ path: string; digest: string }> {
  const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  if (opts.dockerfileText !== undefined) return { path: 'Dockerfile', digest: sha(opts.dockerfileText) };
  const { file } = await locateDockerfile(opts);
  const rel = path.relative(path.resolve(opts.contextDir), path.resolve(file));
  return { path: rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file, digest: sha(await fs.readFile(file)) };
}

/** The base images under `target` (FROM, COPY --from and mounts of images), each once. */
export function baseImages(target: Vertex): BaseImageUse[] {
  const out: BaseImageUse[] = [];
  walkGraph(target, (v) => {
    if (v.kind === 'image') out.push({ ref: v.ref, platform: v.platform, digest: v.manifestDigest });
  });
  return out;
}

/** The steps under `target`, inputs first. */
export async function buildSteps(target: Vertex, solved: AttestBuildOptions['solved']): Promise<ProvenanceStep[]> {
  const steps: Vertex[] = [];
  walkGraph(target, (v) => {
    if (v.kind === 'exec' || v.kind === 'file') steps.push(v);
  });
  const out: ProvenanceStep[] = [];
  for (const v of steps) {
    const s = await solved(v);
    out.push({ name: v.name, digest: v.digest, cacheKey: s.key, cached: s.cached, ...(v.stage ? { stage: v.stage } : {}) });
  }
  return out;
}

function walkGraph(target: Vertex, visit: (v: Vertex) => void): void {
  const seen = new Set<string>();
  const go = (v: Vertex): void => {
    if (seen.has(v.digest)) return;
    seen.add(v.digest);
    for (const input of vertexInputs(v)) if (!isSource(input)) go(input);
    visit(v);
  };
  go(target);
}

/** The image manifests of `top` with their platforms (a lone manifest's from its config). */
async function platformManifests(store: ContentStore, top: Descriptor): Promise<Array<{ descriptor: Descriptor; platform: Platform; manifest: ImageManifest }>> {
  const entries: Descriptor[] = isIndexType(top.mediaType) ? (await store.readJSON<ImageIndex>(top.digest)).manifests.filter((m) => !isAttestationEntry(m)) : [top];
  return Promise.all(
    entries.map(async (d) => {
      const manifest = await store.readJSON<ImageManifest>(d.digest);
      const config = await store.readJSON<ImageConfig>(manifest.config.digest);
      const platform = d.platform ?? { architecture: config.architecture, os: config.os, ...(config.variant ? { variant: config.variant } : {}) };
      return { descriptor: d, platform, manifest };
    }),
  );
}

/**
 * The image `top` with gzip layers (what a push, an OCI archive and BuildKit's store hold: the
 * attested manifest digests are then the ones that travel) and its attestations attached.
 */
export async function attestBuild(top: Descriptor, opts: AttestBuildOptions): Promise<Descriptor> {
  const { store, lease } = opts;
  if (opts.sbom && !opts.extra) throw new KilnError('--sbom is not available in this kiln yet (the SBOM cataloguer is not built in)', { code: 'unsupported', hint: 'build without --sbom, or with --provenance alone' });
  const converted = await convertImage(store, top, { compression: { compression: 'gzip' } });
  for (const digest of converted.documents.keys()) await lease.add(digest);
  const image = await persistConverted(store, converted);
  const finishedOn = new Date().toISOString();
  const statements = new Map<string, Statement[]>();
  const manifests = await platformManifests(store, image);
  for (const [i, m] of manifests.entries()) {
    const subjects = imageSubjects(opts.names, m.platform, m.descriptor.digest);
    const list: Statement[] = opts.extra ? await opts.extra(m.descriptor, m.platform, subjects) : [];
    if (opts.provenance) {
      const target = opts.targets[i]?.target;
      const max = opts.provenance.mode === 'max';
      const predicate = provenancePredicate({
        ...opts.common,
        mode: opts.provenance.mode,
        finishedOn: opts.common.reproducible ? opts.common.startedOn : finishedOn,
        bases: target ? baseImages(target) : [],
        ...(max && target ? { steps: await buildSteps(target, opts.solved), layers: m.manifest.layers } : {}),
      });
      list.push(makeStatement(subjects, SLSA_PROVENANCE_V1, predicate));
    }
    if (list.length) statements.set(m.descriptor.digest, list);
  }
  return statements.size ? attachAttestations(store, lease, image, statements) : image;
}
