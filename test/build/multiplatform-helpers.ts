/** What the multi-platform tests share: `kiln inspect` of a name (with --platform), parsed. */
import { ensureEmulation, runKiln } from '../helpers.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../../src/oci/types.js';

export interface Inspected {
  digest: string;
  index?: { digest: string; manifests: Descriptor[] };
  manifest: ImageManifest;
  config: ImageConfig;
}

export async function inspectJSON(root: string, args: string[]): Promise<Inspected> {
  const r = await runKiln(['inspect', ...args], { root });
  if (r.code !== 0) throw new Error(`kiln inspect ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Inspected;
}

/** Why arm64 programs cannot run here (ensureEmulation failed), or undefined when they can. */
export async function arm64Problem(): Promise<string | undefined> {
  return ensureEmulation('linux/arm64').then(
    () => undefined,
    (e: unknown) => (e as Error).message,
  );
}
