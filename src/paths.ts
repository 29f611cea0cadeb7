/**
 * The one place that names what lives under a kiln root. The root is an OCI image layout
 * (oci-layout, index.json, blobs/) that kiln's own state sits beside; every other module
 * asks here for a path instead of joining names of its own.
 */
import path from 'node:path';

export interface KilnPaths {
  root: string;
  /** The OCI layout marker file. */
  ociLayout: string;
  /** The layout's index.json: the named images (the ref store). */
  index: string;
  /** blobs/sha256: content-addressed blobs. */
  blobs: string;
  /**
   * Compression variants of layers (diff id → gzip, zstd, … descriptors): store metadata
   * beside the blobs, read by the store's GC (see oci/variants.ts).
   */
  variants: string;
  /** Temp files on the store's filesystem (a rename into blobs/ is atomic), owned-named. */
  tmp: string;
  /** Leases of running processes (one file each). */
  leases: string;
  /** Inter-process lock files, <name>.lock. */
  locks: string;
  /** Registration of the processes working on the root (for the reaper). */
  procs: string;
  /** The snapshotter's root, with layers/ (unpacked layers by diff id) and active/ (mounts). */
  snapshots: string;
  snapshotLayers: string;
  snapshotActive: string;
  /** Build cache: cache records, RUN cache mounts, context indexes, checksums, build history. */
  cache: string;
  cacheRecords: string;
  cacheMounts: string;
  cacheContexts: string;
  cacheChecksums: string;
  cacheBuilds: string;
  /** The last full count of cache disk use. */
  cacheUsage: string;
  /** ADD sources: what URLs last gave (content, ETag, Last-Modified) and fetched git repositories. */
  cacheHttp: string;
  cacheGit: string;
  /** Container runtime state: run/runtime (the runtime's --root), run/bundles, run/runtime.json. */
  run: string;
  runBundles: string;
  runRuntime: string;
  runRuntimeProbe: string;
  /** The root's settings (cacheMaxSize, insecureRegistries, …). */
  config: string;
  /** What kiln knows of registries: where blobs came from (for cross-repository mounts), repo digests. */
  registry: string;
  registrySources: string;
  registryRepoDigests: string;
}

/** The paths under the kiln root `root` (made absolute). Nothing is created. */
export function kilnPaths(root: string): KilnPaths {
  const abs = path.resolve(root);
  const at = (...parts: string[]): string => path.join(abs, ...parts);
  return {
    root: abs,
    ociLayout: at('oci-layout'),
    index: at('index.json'),
    blobs: at('blobs', 'sha256'),
    variants: at('variants', 'sha256'),
    tmp: at('tmp'),
    leases: at('leases'),
    locks: at('locks'),
    procs: at('procs'),
    snapshots: at('snapshots'),
    snapshotLayers: at('snapshots', 'layers'),
    snapshotActive: at('snapshots', 'active'),
    cache: at('cache'),
    cacheRecords: at('cache', 'records'),
    cacheMounts: at('cache', 'mounts'),
    cacheContexts: at('cache', 'contexts'),
    cacheChecksums: at('cache', 'checksums'),
    cacheBuilds: at('cache', 'builds'),
    cacheUsage: at('cache', 'usage.json'),
    cacheHttp: at('cache', 'http'),
    cacheGit: at('cache', 'git'),
    run: at('run'),
    runBundles: at('run', 'bundles'),
    runRuntime: at('run', 'runtime'),
    runRuntimeProbe: at('run', 'runtime.json'),
    config: at('config.json'),
    registry: at('registry'),
    registrySources: at('registry', 'sources'),
    registryRepoDigests: at('registry', 'repodigests'),
  };
}
