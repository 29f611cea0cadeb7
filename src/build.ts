/**
 * One build, end to end: parse → plan → solve → write the image → name it.
 * The library entry the CLI's `kiln build` uses.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { kilnPaths } from './paths.js';
import { createHash } from 'node:crypto';
import { KilnError } from './errors.js';
import { ignoreFileFor, readDockerfile } from './frontend/source.js';
import { planBuild, type BuildPlan, type ResolvedImage } from './frontend/plan.js';
import { executionProblem, formatPlatform, hostPlatform } from './oci/platform.js';
import { ContentStore, type Lease } from './oci/store.js';
import { prepareImage } from './oci/image.js';
import { writeIndex } from './oci/walk.js';
import { basePuller } from './base-images.js';
import type { Descriptor, ImageConfig, Platform } from './oci/types.js';
import { CacheRecords } from './cache/records.js';
import { enforceCacheLimit } from './cache/gc.js';
import { Snapshotter } from './snapshot/snapshotter.js';
import { BuildContext, readChecksumFiles } from './solver/context.js';
import { Solver, type ProgressEvent, type StepRecord } from './solver/solver.js';
import { explainSteps, type Explanation } from './solver/explain.js';
import { vertexInputs, type Vertex } from './graph/types.js';
import { trace } from './trace.js';
import { detectRuntime } from './exec/index.js';
import type { Ulimit } from './exec/spec.js';
import { writeFileAtomic } from './fsutil.js';
import { reapStale } from './lifecycle.js';
import { finalizeConfig, type SolvedStep } from './export/config.js';
import { imageStoreExporter } from './export/image-store.js';
import { sharedFilesystem } from './export/filesystem.js';
import { convertImage, persistConverted } from './export/convert.js';
import type { AnnotationSpec } from './export/output-spec.js';
import { CreatedAnnotation, RevisionAnnotation, SourceAnnotation, gitAnnotations } from './vcs.js';
import type { Exporter, ExportImage, ExportResult, ExportSource } from './export/types.js';
import { normalizeTagName } from './oci/reference.js';
import { CACHE_CONFIG_KEY } from './cache/format.js';
import type { CacheRegistry } from './cache/remote.js';
import { exportCaches, importCaches, inlineCacheRecords, type CacheExportOutcome, type CacheSessionDeps } from './cache/session.js';
import { blobSources, recordBlobSources } from './registry/sources.js';
import type { CacheExportSpec, CacheImportSpec } from './cache/spec.js';
import { registryClient } from './registry/settings.js';
import { attestBuild, dockerfileSource } from './attest/build.js';
import { invocationId } from './attest/provenance.js';
import { NamedContexts, parseBuildContexts } from './named-contexts.js';
import { gateExporter, type GateOptions } from './gate/index.js';
import { removeStaleSshDirs, startSshAgents, type SshAgents, type SshSpec } from './exec/ssh.js';

export { readDockerfile } from './frontend/source.js';
export { parseCacheFrom, parseCacheTo, type CacheExportSpec, type CacheImportSpec } from './cache/spec.js';
export { buildContextFlags } from './named-contexts.js';

export interface BuildOptions {
  root: string;
  contextDir: string;
  /** Dockerfile path (default <context>/Dockerfile); '-' is not handled here. */
  dockerfile?: string;
  /** Dockerfile text, when it does not come from a file (stdin). */
  dockerfileText?: string;
  tags?: string[];
  buildArgs?: Record<string, string>;
  target?: string;
  platform?: Platform;
  noCache?: boolean;
  noCacheFilter?: string[];
  parallelism?: number;
  /** Secret values by id (kept in memory; a RUN gets them on a tmpfs). */
  secrets?: Record<string, Uint8Array>;
  labels?: Record<string, string>;
  signal?: AbortSignal;
  progress?: (ev: ProgressEvent) => void;
  warn?: (message: string) => void;
  /** Compare with the previous build of the same Dockerfile and target, per executed step. */
  explain?: boolean;
  /**
   * Re-resolve every base image's tag against its registry and pull what changed (buildx
   * --pull). Without it a base image in the store is used as it is, and only one that is
   * missing is pulled.
   */
  pull?: boolean;
  /** Registry hosts spoken to over plain HTTP or unverified TLS (--insecure-registry). */
  insecureRegistries?: string[];
  /**
   * Sinks the image goes to besides the store (named by `tags` there), in order: an OCI or
   * docker archive, a local directory, a tar of the filesystem.
   */
  exporters?: Exporter[];
  /** Caches to write after the build (--cache-to): a directory, a registry, inline in the image. */
  cacheTo?: CacheExportSpec[];
  /** Caches to use (--cache-from), after the local cache: a directory, a registry cache or an image with an inline cache. */
  cacheFrom?: CacheImportSpec[];
  /** The registry client the cache uses (default: the root's settings, registry/settings.ts). */
  registry?: CacheRegistry;
  /** Entitlements granted to the build (--allow): 'network.host', 'security.insecure'. */
  entitlements?: string[];
  /** The network of RUN steps without --network (--network): default (sandboxed), none, host (needs network.host). */
  network?: 'default' | 'none' | 'host';
  /** Resource limits of every RUN (--ulimit). */
  ulimits?: Ulimit[];
  /** Memory limit of every RUN in bytes (--memory). */
  memory?: number;
  /**
   * Named contexts (--build-context NAME=VALUE): a directory, docker-image://REF or
   * oci-layout://PATH[:TAG][@DIGEST], for FROM NAME, COPY --from=NAME and RUN --mount from=NAME.
   */
  buildContexts?: Record<string, string>;
  /** SSH agents for RUN --mount=type=ssh (--ssh): $SSH_AUTH_SOCK, agent sockets, or key files loaded into an agent of the build. */
  ssh?: SshSpec[];
  /**
   * Annotations of the image (--annotation): on its manifest, or where each says (index,
   * manifest-descriptor); the store names the annotated image, and every exporter gets it.
   */
  annotations?: AnnotationSpec[];
  /**
   * Target platforms (--platform a,b): each is planned, all are solved in one solver (a step
   * every platform shares runs once), and the result is an OCI image index with one manifest
   * per platform. One platform (or none: `platform`, else this machine's) gives a plain manifest.
   */
  platforms?: Platform[];
  /** Attach an SPDX SBOM of each platform image as an in-toto attestation (--sbom=true). */
  sbom?: boolean;
  /** Attach SLSA v1 provenance of each platform image (--provenance=mode=min|max); builderId: runDetails.builder.id. */
  provenance?: { mode: 'min' | 'max'; builderId?: string };
  /**
   * The gate (gate/index.ts): right after the image store, the image is scanned and, when the
   * gate pushes, pushed and signed; an image that fails reaches no other sink.
   */
  gate?: GateOptions;
}

/** One platform's image of a build (BuildResult.platforms). */
export interface PlatformImage {
  platform: Platform;
  manifestDescriptor: Descriptor;
  configDescriptor: Descriptor;
  config: ImageConfig;
}

export interface BuildResult {
  manifestDescriptor: Descriptor;
  configDescriptor: Descriptor;
  /** Image id as docker shows it: the config digest. */
  imageId: string;
  names: string[];
  config: ImageConfig;
  steps: StepRecord[];
  plan: BuildPlan;
  /** What each exporter wrote: the image store's first, then `exporters`' in order. */
  exports: ExportResult[];
  /** With `explain`: why each step ran (or that it was cached). */
  explanations?: Explanation[];
  /** With `cacheFrom`: the blobs fetched from the imported caches. */
  cacheFetched?: string[];
  /** With `cacheTo`: each export's cache manifest digest, or why it failed (a warning). */
  cacheExports?: CacheExportOutcome[];
  /**
   * With several `platforms`: each platform's image, in the order asked for; then
   * `manifestDescriptor` (and `imageId`) is the index listing them, `configDescriptor` and
   * `config` the first platform's, and `plans` has every platform's plan.
   */
  platforms?: PlatformImage[];
  /** Every platform's plan, in the order of `platforms` (one element for a single-platform build). */
  plans?: BuildPlan[];
}

/**
 * The platforms a build targets, duplicates (after normalising) dropped: `platforms`, else
 * `platform`; [undefined] for the build platform.
 */
export function targetPlatforms(opts: Pick<BuildOptions, 'platform' | 'platforms'>): Array<Platform | undefined> {
  const list = opts.platforms?.length ? opts.platforms : opts.platform ? [opts.platform] : [];
  const seen = new Set<string>();
  const out: Platform[] = [];
  for (const p of list) {
    const key = formatPlatform(p);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
  }
  return out.length ? out : [undefined];
}

export function sourceDateEpoch(): number | undefined {
  const raw = process.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new KilnError(`SOURCE_DATE_EPOCH must be a number of seconds, got "${raw}"`);
  return Number(raw);
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  // the environment's SOURCE_DATE_EPOCH is a build arg unless one is given, as buildx passes
  // it; a --build-arg, then it, then the Dockerfile's ARG default decide (the plan reads them)
  const envEpoch = sourceDateEpoch();
  const buildArgs = { ...opts.buildArgs };
  if (envEpoch !== undefined && !('SOURCE_DATE_EPOCH' in buildArgs)) buildArgs.SOURCE_DATE_EPOCH = String(envEpoch);
  let created = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const startedOn = new Date().toISOString();
  trace('build: start');
  const namedSpecs = parseBuildContexts(opts.buildContexts ?? {});
  // opened first: it starts walking the context in the background while the rest starts up
  const ctxKey = createHash('sha256').update(path.resolve(opts.contextDir)).digest('hex').slice(0, 32);
  const hashCacheFile = path.join(kilnPaths(opts.root).cacheContexts, `${ctxKey}.json`);
  const context = await BuildContext.open(opts.contextDir, { hashCacheFile, ignoreFile: await ignoreFileFor(opts) });
  const df = await readDockerfile(opts);
  // the context's git checkout, read while the build runs: annotations of the image
  const vcs = gitAnnotations(opts.contextDir);
  // the OCI runtime is looked up (and remembered) while the build is planned, not at the
  // first RUN; its errors surface there, where they belong
  if (df.instructions.some((i) => i.keyword === 'run' || i.keyword === 'onbuild')) detectRuntime(kilnPaths(opts.root).run).catch(() => undefined);
  const store = await ContentStore.open(opts.root);
  const buildPlatform = hostPlatform();

  const pulls = basePuller(opts, store);
  const resolveImage = async (ref: string, platform: Platform): Promise<ResolvedImage> => {
    const img = await pulls.resolve(ref, platform);
    return { ref: img.name, manifestDigest: img.manifestDescriptor.digest, config: img.config, layers: img.manifest.layers };
  };
  const named = new NamedContexts(namedSpecs, { store, resolveImage });
  const platforms = targetPlatforms(opts);
  const multi = platforms.length > 1;
  // every platform is planned from the same Dockerfile and args; a stage whose steps do not
  // depend on the target platform (FROM --platform=$BUILDPLATFORM) gets the same vertex
  // digests in each plan, so the solver below runs it once
  const planFor = (platform: Platform | undefined) => planBuild(df, {
    buildArgs,
    target: opts.target,
    platform,
    buildPlatform,
    resolveImage,
    noCache: opts.noCache,
    noCacheFilter: opts.noCacheFilter,
    created,
    executionProblem: (p) => executionProblem(p, buildPlatform),
    entitlements: opts.entitlements,
    network: opts.network,
    ulimits: opts.ulimits,
    memory: opts.memory,
    namedContext: namedSpecs.size > 0 ? (name, platform) => named.lookup(name, platform) : undefined,
  });
  const plans = await Promise.all(platforms.map(planFor))
    .catch(async (e: unknown) => {
      await named.close();
      throw e;
    })
    .finally(() => pulls.close());
  const namedContexts = new Map<string, BuildContext>();
  for (const [source, dir] of named.usedDirectories()) {
    // each named directory has its own .dockerignore and its own remembered checksums
    const key = createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 32);
    namedContexts.set(source, await BuildContext.open(dir, { hashCacheFile: path.join(kilnPaths(opts.root).cacheContexts, `${key}.json`), ignoreFile: path.join(dir, '.dockerignore') }));
  }
  trace('build: planned');
  if (multi) labelPlatforms(plans, platforms as Platform[]);
  const plan = plans[0];
  const epoch = plan.sourceDateEpoch;
  if (epoch !== undefined) created = new Date(epoch * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  // a warning every platform's plan gives is said once; an arg is unused when no platform used it
  for (const w of new Set(plans.flatMap((p) => p.warnings))) opts.warn?.(w);
  const unused = plan.unusedBuildArgs.filter((a) => plans.every((p) => p.unusedBuildArgs.includes(a)));
  if (unused.length) {
    opts.warn?.(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed`);
  }

  trace('build: context opened');
  const snapshotter = new Snapshotter(opts.root);
  // what killed builds left (the CLI has done this already: then it costs nothing)
  reapStale(opts.root);
  removeStaleSshDirs();
  const lease = await store.lease();
  let client: CacheRegistry | undefined;
  const cacheDeps: CacheSessionDeps = {
    store,
    lease,
    platform: platforms[0] ?? buildPlatform,
    ...(multi ? { platforms: platforms as Platform[] } : {}),
    registry: () => (client ??= opts.registry ?? registryClient({ root: opts.root, insecureRegistries: opts.insecureRegistries, signal: opts.signal })),
    sources: { known: (host, digest) => blobSources(opts.root, host, digest), record: (host, repo, digests) => recordBlobSources(opts.root, host, repo, digests) },
    warn: opts.warn,
  };
  let ssh: SshAgents | undefined;
  try {
    ssh = opts.ssh?.length ? await startSshAgents(opts.ssh) : undefined;
    const imported = await importCaches(opts.cacheFrom ?? [], cacheDeps);
    const solver = new Solver({
      root: opts.root,
      store,
      snapshotter,
      records: new CacheRecords(opts.root),
      context,
      namedContexts,
      parallelism: opts.parallelism ?? 4,
      sourceDateEpoch: epoch,
      signal: opts.signal,
      secrets: opts.secrets,
      // the solver numbers its steps from 1: after the pulls' progress ids
      progress: opts.progress && pulls.count() > 0 ? (ev) => opts.progress?.({ ...ev, id: ev.id + pulls.count() }) : opts.progress,
      lease,
      imported,
      definitionKeys: (opts.cacheFrom?.length ?? 0) > 0 || (opts.cacheTo?.length ?? 0) > 0,
      ssh,
    });
    const platformKey = multi ? `\0${platforms.map((p) => formatPlatform(p ?? buildPlatform)).join(',')}` : '';
    const historyKey = `${path.resolve(opts.contextDir)}\0${opts.dockerfile ? path.resolve(opts.dockerfile) : '-'}\0${opts.target ?? ''}${platformKey}`;
    const historyFile = path.join(kilnPaths(opts.root).cacheBuilds, `${createHash('sha256').update(historyKey).digest('hex').slice(0, 32)}.json`);
    const previous = opts.explain ? await readSteps(historyFile) : undefined;
    trace('build: solving');
    let solved;
    try {
      for (const p of plans) await solver.resetCacheMounts(p.target.state);
      // every platform at once: the scheduler runs each vertex digest once, under one parallelism limit
      solved = await Promise.all(plans.map((p) => solver.solve(p.target.state)));
      // layers still being stored in the background
      await solver.drain();
      if (solver.firstError !== undefined) throw solver.firstError;
    } catch (e) {
      // cancelled steps still hold mounts and containers: let them clean up before reporting;
      // what finished is kept for the next try, unless the build was interrupted
      await solver.settle(!opts.signal?.aborted).catch(() => undefined);
      throw solver.firstError ?? e;
    } finally {
      await context.saveHashCache().catch(() => undefined);
      for (const c of namedContexts.values()) await c.saveHashCache().catch(() => undefined);
    }
    trace('build: solved');
    await writeSteps(historyFile, solver.steps).catch(() => undefined);

    const names = opts.tags ?? [];
    trace('build: writing image');
    const images = await Promise.all(
      plans.map(async (p, i) => {
        const layers = await solver.layersOf(solved[i]);
        const config = finalizeConfig(p.target.config, {
          baseHistoryLength: p.target.baseHistoryLength,
          diffIds: layers.map((l) => l.diffId),
          chain: await solvedChain(solver, p.target.state),
          epochTime: epoch === undefined ? undefined : created,
          labels: opts.labels,
        });
        if (opts.cacheTo?.some((c) => c.type === 'inline')) {
          (config as unknown as Record<string, unknown>)[CACHE_CONFIG_KEY] = await inlineCacheRecords(solver, p.target.state, config.rootfs.diff_ids);
        }
        return { config, written: await prepareImage(store, { config, layers: layers.map((l) => l.descriptor) }) };
      }),
    );
    // the images' configs and manifests are made durable in the same fsync round as the
    // layers, then the cache records are written, then the index (several platforms), then
    // the image is named and exported
    await solver.flush(images.flatMap((im) => im.written.unsynced));
    const perPlatform: PlatformImage[] = images.map(({ config, written }) => ({
      platform: { architecture: config.architecture, os: config.os, ...(config.variant ? { variant: config.variant } : {}) },
      manifestDescriptor: written.manifestDescriptor,
      configDescriptor: written.configDescriptor,
      config,
    }));
    const top = multi ? await writePlatformIndex(store, lease, perPlatform) : images[0].written.manifestDescriptor;
    const { config, written } = images[0];
    const annotations = [...vcsAnnotationSpecs(await vcs, config.created, multi), ...(opts.annotations ?? [])];
    const annotated = annotations.length ? await persistConverted(store, await convertImage(store, top, { annotations })) : top;
    // attestations (src/attest/): the layers as a registry gets them, then an attestation manifest per platform
    const attested = opts.sbom || opts.provenance ? await attestBuild(annotated, {
      store,
      lease,
      names,
      provenance: opts.provenance,
      sbom: opts.sbom,
      targets: plans.map((p, i) => ({ platform: perPlatform[i].platform, target: p.target.state })),
      solved: (v) => solver.solve(v),
      common: {
        ...(await dockerfileSource(opts).then((d) => ({ dockerfilePath: d.path, dockerfileDigest: d.digest, ...(opts.provenance?.mode === 'max' ? { dockerfileText: d.text } : {}) }))),
        target: opts.target,
        platforms: platforms.filter((p): p is Platform => p !== undefined),
        builderPlatform: buildPlatform,
        buildArgs,
        labels: opts.labels ?? {},
        namedContexts: Object.keys(opts.buildContexts ?? {}),
        vcs: await vcs.then((a) => ({ revision: a[RevisionAnnotation], source: a[SourceAnnotation] })),
        invocationId: invocationId(epoch === undefined ? undefined : `${annotated.digest}\0${JSON.stringify(opts.provenance)}`),
        startedOn: epoch === undefined ? startedOn : created,
        reproducible: epoch !== undefined,
        ...(opts.provenance?.builderId ? { builderId: opts.provenance.builderId } : {}),
      },
    }) : annotated;
    const image = { descriptor: attested, names: names.map((n) => normalizeTagName(n)) };
    const exports = await exportBuild(store, snapshotter, lease, image, [imageStoreExporter({ names }), ...(opts.gate ? [gateExporter(opts.gate)] : []), ...(opts.exporters ?? [])], opts.signal);
    const cacheExports = opts.cacheTo?.length ? await exportCaches(opts.cacheTo, solver, plans.map((p) => p.target.state), cacheDeps, imported) : undefined;
    // the build no longer uses its layers and cache mounts: the limit below may evict them
    await lease.release();
    // the image is named: evicting cache down to the limit cannot touch it. A build that ran
    // nothing added nothing, so it skips the accounting.
    const ranSomething = solver.steps.some((s) => !s.cached);
    const added = solver.addedBytes;
    const evicted = !ranSomething ? undefined : await enforceCacheLimit(opts.root, added).catch((e: unknown) => {
      opts.warn?.(`could not enforce the cache size limit: ${(e as Error).message}`);
      return undefined;
    });
    trace('build: image written, cache limit checked');
    if (evicted && evicted.freedBytes > 0) opts.warn?.(`cache over its size limit: evicted ${evicted.records} records, freed ${(evicted.freedBytes / 1e6).toFixed(1)} MB`);
    return {
      manifestDescriptor: attested,
      configDescriptor: written.configDescriptor,
      // buildx's image id of a multi-platform result (or one with attestations) is the index digest (there is no one config)
      imageId: multi || attested !== annotated ? attested.digest : written.configDescriptor.digest,
      names,
      config,
      steps: solver.steps,
      plan,
      plans,
      ...(multi ? { platforms: perPlatform } : {}),
      exports,
      cacheFetched: imported?.fetched,
      cacheExports,
      explanations: opts.explain ? explainSteps(await withFiles(hashCacheFile, solver.steps), previous && (await withFiles(hashCacheFile, previous)), { noCache: opts.noCache }) : undefined,
    };
  } finally {
    await ssh?.close();
    await lease.release();
    await named.close();
  }
}

/**
 * Puts each step's platform into its progress label ("[linux/arm64 stage 2/3] RUN …"), as
 * BuildKit does when a build has several: the same step of two platforms is told apart. The
 * label is not part of a vertex's digest, so a step every platform shares stays one.
 */
function labelPlatforms(plans: BuildPlan[], targets: Platform[]): void {
  const seen = new Set<Vertex>();
  const visit = (v: Vertex, target: Platform): void => {
    if (seen.has(v)) return;
    seen.add(v);
    if (v.platform && v.name.startsWith('[')) {
      // a stage of another platform than the target (FROM --platform=$BUILDPLATFORM) says both
      const own = formatPlatform(v.platform);
      const label = own === formatPlatform(target) ? own : `${own}->${formatPlatform(target).replace(/^linux\//, '')}`;
      v.name = `[${label} ${v.name.slice(1)}`;
    }
    for (const input of vertexInputs(v)) visit(input, target);
  };
  plans.forEach((p, i) => visit(p.target.state, targets[i]));
}

/**
 * Writes the OCI image index of a multi-platform build: one entry per platform, in the order
 * asked for, each with its platform (variant included), as BuildKit's image exporter writes it.
 * Kept under the build's lease until it is named.
 */
async function writePlatformIndex(store: ContentStore, lease: Lease, images: PlatformImage[]): Promise<Descriptor> {
  const index = await writeIndex(
    store,
    images.map((im) => ({ ...im.manifestDescriptor, platform: im.platform })),
  );
  await lease.add(index.digest);
  return index;
}

/**
 * Runs the exporters in order on the image just written (its blobs durable in the store,
 * under the build's lease); the image's filesystem is mounted once, for the first exporter
 * that reads it, and released when all are done.
 */
async function exportBuild(store: ContentStore, snapshotter: Snapshotter, lease: Lease, image: ExportImage, exporters: Exporter[], signal?: AbortSignal): Promise<ExportResult[]> {
  const fs = sharedFilesystem(store, snapshotter, image.descriptor, lease);
  const source: ExportSource = { images: [image], store, filesystem: fs.filesystem };
  const results: ExportResult[] = [];
  try {
    for (const exporter of exporters) {
      if (signal?.aborted) throw new KilnError('build interrupted', { exitCode: 130 });
      results.push(await exporter.export(source, { signal }));
    }
  } catch (e) {
    // an export stopped half-way by the interrupt: what it wrote to a file is removed
    if (signal?.aborted && !(e instanceof KilnError)) throw new KilnError('build interrupted', { exitCode: 130, cause: e });
    throw e;
  } finally {
    await fs.release();
  }
  return results;
}

/**
 * The git checkout's revision and source, with the image's created time, as annotations of
 * every manifest (and of the index, for several platforms); none outside a checkout. An
 * --annotation of the same key, after them, wins.
 */
function vcsAnnotationSpecs(vcs: Record<string, string>, created: string | undefined, multi: boolean): AnnotationSpec[] {
  if (Object.keys(vcs).length === 0) return [];
  const all = { ...(created ? { [CreatedAnnotation]: created } : {}), ...vcs };
  const targets: AnnotationSpec['target'][] = multi ? ['manifest', 'index'] : ['manifest'];
  return targets.flatMap((target) => Object.entries(all).map(([key, value]) => ({ target, key, value })));
}

/** For each exec/file vertex on the target's parent chain (base first): did it add a layer, and when was it made? */
async function solvedChain(solver: Solver, target: Vertex): Promise<SolvedStep[]> {
  const chain: Vertex[] = [];
  let cur: Vertex = target;
  while (cur.kind === 'exec' || cur.kind === 'file') {
    chain.unshift(cur);
    cur = cur.parent;
  }
  const out: SolvedStep[] = [];
  for (const v of chain) {
    const s = await solver.solve(v);
    out.push({ added: s.addedLayer, createdAt: s.createdAt });
  }
  return out;
}

/** Steps with the per-file maps of what they read loaded (for --explain). */
async function withFiles(hashCacheFile: string, steps: StepRecord[]): Promise<StepRecord[]> {
  return Promise.all(steps.map(async (s) => (s.files || !s.filesDigest ? s : { ...s, files: await readChecksumFiles(hashCacheFile, s.filesDigest) })));
}

async function readSteps(file: string): Promise<StepRecord[] | undefined> {
  const raw = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw) as StepRecord[];
  } catch {
    return undefined;
  }
}

function writeSteps(file: string, steps: StepRecord[]): Promise<void> {
  return writeFileAtomic(file, JSON.stringify(steps));
}

