/**
 * One entry of a layer diff. Structurally identical to `LayerEntry` in `src/oci/layer.ts`
 * (kept separate so snapshot/ does not depend on oci/).
 *
 * A whiteout (deleted path `a/b`) is a `file` entry `a/.wh.b` with size 0 and an empty
 * `content`; an opaque directory `d` is the directory entry `d` followed by a `file` entry
 * `d/.wh..wh..opq` (OCI image-spec layer rules).
 */
export interface LayerEntry {
  /** Relative, no leading '/', no trailing '/'. */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
  /** Permission bits including setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  /** Seconds since the epoch. */
  mtime?: number;
  linkname?: string;
  /** File content on disk. */
  sourcePath?: string;
  content?: Buffer;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes; values are the UTF-8 decoding of the raw bytes (as tar-stream does for PAX). */
  xattrs?: Record<string, string>;
}

/** An overlayfs mount made by `Snapshotter.mount`. */
export interface ActiveMount {
  merged: string;
  upper: string;
  work: string;
  /** Unmounts and removes the mount; `keepUpperAs` keeps the upper dir as that layer's unpacked form. */
  release(options?: { keepUpperAs?: string }): Promise<void>;
}

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
