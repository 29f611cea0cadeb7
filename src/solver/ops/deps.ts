/** What the ops are given: the executor, the snapshotter, and the sources a build reads. */
import type { LocalVertex } from '../../graph/types.js';
import type { SshAgents } from '../../exec/ssh.js';
import type { Lease } from '../../oci/store.js';
import type { Snapshotter } from '../../snapshot/snapshotter.js';
import type { BuildContext } from '../context.js';
import type { StateMounter } from '../states.js';
import type { Executor } from './exec.js';
import type { GitSources, HttpSources } from './source.js';

export interface OpDeps {
  /** The kiln root (cache mounts, runtime state). */
  root: string;
  executor: Executor;
  snapshotter: Snapshotter;
  states: StateMounter;
  /** The directory a local source names (the build context for "context" or none given); undefined when the build has none. */
  local(source?: LocalVertex): BuildContext | undefined;
  http: HttpSources;
  /** A fresh path under the store's temp dir. */
  tempPath(kind: string): string;
  secrets?: Record<string, Uint8Array>;
  lease?: Lease;
  /** The build's ssh agents (--ssh), for RUN --mount=type=ssh. */
  ssh?: SshAgents;
  /** ADD of git repositories (absent: such a step fails with a clear error). */
  git?: GitSources;
}
