/**
 * The exporter interface: every sink a build result or a stored image can go to (the image
 * store, a docker or OCI archive, a local directory, a tar of the filesystem; a registry and
 * `--load` later) takes the same source and gives back the same kind of result, as BuildKit's
 * exporters do. An exporter is made with its options (where to write, what to name) and then
 * asked to export one source; it reads blobs through the source's store and, when it writes
 * files rather than blobs, the final filesystem through `filesystem()`.
 */
import type { ContentStore } from '../oci/store.js';
import type { Descriptor } from '../oci/types.js';

/**
 * Where an exporter's bytes go: a file path (written to a temp name beside it and renamed
 * when complete), or a stream (stdout; left open when it is process.stdout).
 */
export type ExportDestination = string | NodeJS.WritableStream;

/** One image to export: its manifest (or index) descriptor, with every blob it names in the store. */
export interface ExportImage {
  descriptor: Descriptor;
  /** Full names ("app:1", "example.com/r/app:2") the sink records for it; may be empty. */
  names: string[];
}

/** The final filesystem of an image, mounted read-only (whiteouts applied) until released. */
export interface MountedFilesystem {
  /** The root directory of the filesystem. */
  dir: string;
  release(): Promise<void>;
}

/** What an exporter receives. */
export interface ExportSource {
  /** The images to export, in order: a build gives one, `kiln save` one per name given. */
  images: ExportImage[];
  /**
   * Where the blobs are read (the Provider role; ingesting exporters write there too, and
   * exporters keep their temp files in its tmp dir).
   */
  store: ContentStore;
  /**
   * The final filesystem of `images[0]`, for exporters that write files (local, tar): of
   * `manifest` when given (one platform of an index), else of this machine's platform. Absent
   * when the source has none to give (an archive of several images).
   */
  filesystem?: (manifest?: Descriptor) => Promise<MountedFilesystem>;
}

/** What an export wrote. */
export interface ExportResult {
  /** The exporter's type ("image", "oci", "docker", "local", "tar"). */
  type: string;
  /** The descriptor of what was written: the manifest named, or the archive's top document. */
  descriptor?: Descriptor;
  /** Names recorded (image store, archives). */
  names?: string[];
  /** Where it went: a path, or "-" for a stream. */
  dest?: string;
}

export interface ExportContext {
  signal?: AbortSignal;
}

/** A sink with its options bound; `export` may be called more than once (each call writes anew). */
export interface Exporter {
  readonly type: string;
  export(source: ExportSource, context?: ExportContext): Promise<ExportResult>;
}

/**
 * How an export compresses layers (`compression=`, `compression-level=`, `force-compression=`
 * of an output): layers the store keeps uncompressed get `compression`; layers already
 * compressed keep their form unless `force`.
 */
export interface ExportCompression {
  compression: 'gzip' | 'zstd' | 'none';
  level?: number;
  force?: boolean;
}
