/**
 * Errors that name the step they happened in. The solver knows vertices, not Dockerfile
 * syntax: a StepError carries the failing vertex's identity (its step and origin), and its
 * location is the origin the frontend gave the vertex, so the CLI prints file:line:col and
 * the caret as for any Dockerfile error.
 */
import { fromErrno, isErrnoError, KilnError } from '../errors.js';
import type { StepIdentity, Vertex } from '../graph/types.js';

/** The vertex a StepError is about. */
export interface FailedVertex {
  digest: string;
  name: string;
  step?: StepIdentity;
  origin?: Vertex['origin'];
}

export class StepError extends KilnError {
  readonly vertex: FailedVertex;

  constructor(e: KilnError, v: FailedVertex) {
    super(e.message, { location: e.location ?? v.origin, hint: e.hint, detail: e.detail, exitCode: e.exitCode, cause: e });
    this.name = 'KilnError';
    this.vertex = v;
    // fields later versions of KilnError carry (an error code) come along unchanged
    for (const [k, value] of Object.entries(e)) {
      if ((this as unknown as Record<string, unknown>)[k] === undefined) (this as unknown as Record<string, unknown>)[k] = value;
    }
  }
}

/** The vertex an error from a solve is about, if it names one. */
export function failedVertex(e: unknown): FailedVertex | undefined {
  return e instanceof StepError ? e.vertex : undefined;
}

/**
 * A path inside a step's root filesystem (an unpacked layer's fs/, a mount's merged/ or
 * upper/ under the kiln root's snapshots) as the image sees it: "/etc/x in the image".
 */
export function inImage(p: string): string {
  const m = /\/snapshots\/(?:layers|active)\/[0-9a-f]+\/(?:fs|merged|upper)(\/.*)?$/.exec(p);
  return m ? `${m[1] ?? '/'} in the image` : p;
}

/**
 * A user error from inside a step, naming the step and located at its Dockerfile line. A
 * system error (a full disk, a name too long) is blamed on the step that met it; anything
 * else (a bug) passes through unchanged.
 */
export function atStep(e: unknown, v: FailedVertex, doing?: string): unknown {
  if (isErrnoError(e)) e = fromErrno(e, e.path ? undefined : doing, { showPath: inImage });
  if (!(e instanceof KilnError) || e instanceof StepError) return e;
  return new StepError(e, { digest: v.digest, name: v.name, step: v.step, origin: v.origin });
}

/** The instruction a step runs, as progress shows it ("RUN make"): its step identity, else its name. */
export function instructionOf(v: { name: string; step?: StepIdentity }): string {
  return v.step?.instruction ?? v.name;
}
