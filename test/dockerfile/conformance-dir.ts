import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/** The shared conformance data: $KILN_CONFORMANCE_DIR or ../shared/conformance from the repo root. */
export function conformanceDir(): string {
  const dir = process.env.KILN_CONFORMANCE_DIR ?? resolve(process.cwd(), '..', 'shared', 'conformance');
  if (!existsSync(dir)) throw new Error(`conformance data not found at ${dir} (set KILN_CONFORMANCE_DIR)`);
  return dir;
}
