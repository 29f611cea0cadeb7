import os from 'node:os';
import path from 'node:path';
import { KilnError } from './errors.js';

/**
 * The kiln root: `--root`, else KILN_ROOT, else $XDG_DATA_HOME/kiln, else ~/.local/share/kiln.
 * The root itself is an OCI image layout (index.json, blobs/); kiln's own state lives in
 * subfolders beside it (snapshots/, cache/, tmp/), which OCI readers ignore.
 */
export function resolveRoot(explicit?: string): string {
  if (explicit !== undefined) {
    if (explicit.trim() === '') {
      throw new KilnError('--root needs a directory, got an empty string', { hint: 'write --root DIR, or leave it out to use KILN_ROOT or ~/.local/share/kiln' });
    }
    return path.resolve(explicit);
  }
  if (process.env.KILN_ROOT) return path.resolve(process.env.KILN_ROOT);
  const xdg = process.env.XDG_DATA_HOME;
  if (xdg) return path.join(xdg, 'kiln');
  return path.join(os.homedir(), '.local', 'share', 'kiln');
}
