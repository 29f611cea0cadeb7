import { cleanupStaleWith, runWithRuntime, type RunResult, type RunSpec } from './container.js';
import { detectRuntime } from './runtime.js';

/**
 * Runs one process in an OCI runtime over `spec.rootfs` and waits for it. Resolves with the
 * exit code (128+N when killed by signal N); rejects with an AbortError when `spec.signal`
 * aborts (the container is killed and deleted first), or a KilnError when it cannot start.
 */
export async function runContainer(spec: RunSpec): Promise<RunResult> {
  return runWithRuntime(await detectRuntime(spec.stateRoot), spec);
}

/** Kills and deletes containers and bundles under `stateRoot` whose owner process is gone. */
export async function cleanupStaleContainers(stateRoot: string): Promise<void> {
  const runtime = await detectRuntime(stateRoot).catch(() => undefined);
  await cleanupStaleWith(runtime, stateRoot);
}
