/**
 * One entry of a layer diff: the layer writer's own entry type (src/oci/tar.ts), so what
 * `diff` returns is what `writeLayer` takes. A whiteout (deleted path `a/b`) is a `file`
 * entry `a/.wh.b` with size 0 and an empty `content`; an opaque directory `d` is the
 * directory entry `d` followed by a `file` entry `d/.wh..wh..opq` (OCI image-spec layer rules).
 */
export type { TarEntry as LayerEntry } from '../oci/tar.js';

/** An overlayfs mount made by `Snapshotter.mount`. */
export interface ActiveMount {
  merged: string;
  upper: string;
  work: string;
  /** The layer dirs below the upper, lowest first (absent for mounts made elsewhere). */
  lowers?: string[];
  /** The mount's own dir under snapshots/active (owner recorded): a step's transient mounts go below it. */
  dir?: string;
  /** Unmounts and removes the mount; `keepUpperAs` keeps the upper dir as that layer's unpacked form. */
  release(options?: { keepUpperAs?: string }): Promise<void>;
}

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
