/**
 * Cache keys: one place computing every vertex's key. A step's key is its definition
 * (which holds its inputs' definitions) and the content of what it reads: its input states
 * named by their layer chains (not by their keys), the context files it copies or mounts,
 * the content of the URLs it fetches. A step re-run without the cache (--no-cache-filter)
 * that makes different files so invalidates what reads them, and one that makes the same
 * files does not; a later build finds the records of either result.
 *
 * What is read is asked of a `KeyReader`, so keys are computed (and unit-tested) without
 * a context directory, a mount or a network.
 */
import { createHash } from 'node:crypto';
import { KilnError } from '../errors.js';
import { contextSource, isSource, vertexInputs, type GitVertex, type HttpVertex, type LocalVertex, type SourceVertex, type Vertex } from '../graph/types.js';
import type { SolvedLayer, SolvedState, StepVertex } from './types.js';

/** Content the keys depend on, read on demand. */
export interface KeyReader {
  /**
   * A checksum of the files `paths` name in a local source, undefined when the build has no
   * such source. `owners`: the files' uid/gid count (a bind mount shows them; a COPY writes
   * its own).
   */
  local(source: LocalVertex, paths: string[], excludes: string[], owners: boolean): Promise<string | undefined>;
  /** A checksum of the files under `path` in a solved state (a bind mount of a stage). */
  mounted(state: SolvedState, path: string): Promise<string>;
  /** What a fetched URL puts in the layer (its content, name and time), fetching it once per build. */
  http(source: HttpVertex): Promise<string>;
  /** What a git source puts in the layer: the commit its ref resolves to, its subdir and flags. */
  git?(source: GitVertex): Promise<string>;
}

export class CacheKeys {
  private readonly memo = new Map<string, Promise<{ key: string; filesDigest?: string }>>();
  private readonly definitions = new Map<string, Promise<string | undefined>>();

  constructor(private readonly reader: KeyReader) {}

  /** The key of a step over solved `inputs` (its parent first, unless `linked`, then its other inputs). */
  key(v: StepVertex, inputs: SolvedState[], linked: boolean): Promise<{ key: string; filesDigest?: string }> {
    const chains = inputs.map((i) => chainId(i.layers));
    const memoKey = `${v.digest}|${linked}|${chains.join(',')}`;
    let p = this.memo.get(memoKey);
    if (!p) {
      p = this.compute(v, inputs, chains, linked);
      this.memo.set(memoKey, p);
    }
    return p;
  }

  /**
   * A step's definition key, known before any input is solved: its definition (whose digest
   * holds its inputs' digests and the base image's manifest), the content of what it and the
   * steps under it read from outside the build (context files, URLs), and its inputs'
   * definition keys. An imported cache finds a step by it without solving the stages it
   * reads. Undefined when the key needs a solved input's files (a bind mount from a stage)
   * or something under it runs without the cache.
   */
  definition(v: Vertex): Promise<string | undefined> {
    let p = this.definitions.get(v.digest);
    if (!p) {
      p = this.computeDefinition(v);
      this.definitions.set(v.digest, p);
    }
    return p;
  }

  private async computeDefinition(v: Vertex): Promise<string | undefined> {
    if (v.kind === 'scratch' || v.kind === 'image') return hash(['definition', v.digest]);
    if (v.noCache || (v.kind === 'exec' && v.localDigest)) return undefined;
    const inputs = await Promise.all(vertexInputs(v).map((i) => this.definition(i)));
    if (inputs.some((k) => k === undefined)) return undefined;
    const parts = ['definition', v.digest, ...(inputs as string[])];
    try {
      parts.push(...(await this.readParts(v)));
    } catch {
      // what the content key fails on is reported there, when the step is solved
      return undefined;
    }
    return hash(parts);
  }

  /** What a step reads from outside the build's states, each as a digest (its key's content parts besides the input chains). */
  private async readParts(v: StepVertex): Promise<string[]> {
    const parts: string[] = [];
    if (v.kind === 'file' && v.action.op === 'copy') {
      const a = v.action;
      const from = a.source.from;
      if (isSource(from) && a.source.paths.length > 0) {
        if (from.kind !== 'local') throw new KilnError(`COPY from ${from.name}: a git repository is added with ADD <repository>`);
        const sum = await this.reader.local(from, a.source.paths, a.excludes ?? [], false);
        if (sum === undefined) throw new KilnError('COPY needs a build context, but none was given');
        parts.push(sum);
      }
      for (const g of a.gits ?? []) {
        if (!this.reader.git) throw new KilnError(`ADD ${g.name}: this build cannot fetch git repositories`);
        parts.push(await this.reader.git(g));
      }
      for (const inl of a.inline ?? []) parts.push(hash([inl.name, inl.content]));
      // with ADD --checksum the content is known without fetching it (as in BuildKit): a
      // cached step needs no network; the fetch at run time checks the digest
      for (const u of a.urls ?? []) parts.push(u.checksum !== undefined ? hash(['http-checksum', u.url, u.checksum]) : await this.reader.http(u));
    }
    if (v.kind === 'exec') {
      for (const m of v.mounts) {
        if (m.type === 'bind' && (m.from === undefined || m.from.kind === 'local')) {
          const sum = await this.reader.local(m.from ?? contextSource(), [m.source ?? '.'], [], true);
          if (sum !== undefined) parts.push(sum);
        }
        if (m.type === 'secret') parts.push(`secret:${m.id ?? ''}`);
      }
    }
    return parts;
  }

  private async compute(v: StepVertex, inputs: SolvedState[], chains: string[], linked: boolean): Promise<{ key: string; filesDigest?: string }> {
    let definition = linked ? hash(['link', describeDefinition(v)]) : v.digest;
    if (v.kind === 'exec' && v.localDigest) {
      // a bind mount from a stage is keyed on the files of the mounted path only
      definition = v.localDigest;
      let k = 1;
      for (const m of v.mounts) {
        if (!m.from || isSource(m.from)) continue;
        const i = k++;
        if (m.type === 'bind') chains[i] = await this.reader.mounted(inputs[i], m.source ?? '/');
      }
    }
    const read = await this.readParts(v);
    // the context files a COPY reads come first in what it reads (readParts): --explain shows them
    const filesDigest = v.kind === 'file' && v.action.op === 'copy' && isSource(v.action.source.from) && v.action.source.paths.length > 0 ? read[0] : undefined;
    const parts = [definition, ...chains, ...read];
    return { key: hash(parts), filesDigest };
  }
}

/** The key of an image state: its manifest. */
export function imageKey(manifestDigest: string): string {
  return hash(['image', manifestDigest]);
}

/** Names the content of a layer chain: the diffIds of its layers, base first. */
export function chainId(layers: SolvedLayer[]): string {
  return hash(['chain', ...layers.map((l) => l.diffId)]);
}

export function hash(parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(`${p}\0`);
  return `sha256:${h.digest('hex')}`;
}

/** COPY --link with numeric (or no) --chown: nothing in the parent is needed to run it. */
export function isLinkedCopy(v: StepVertex): boolean {
  if (v.kind !== 'file' || v.action.op !== 'copy' || !v.action.link) return false;
  const chown = v.action.chown;
  return chown === undefined || /^\d+(:\d+)?$/.test(chown);
}

/** A step's definition as JSON, its inputs by name: what --explain compares, and a linked copy's key. */
export function describeDefinition(v: StepVertex): string {
  const named = (from: Vertex | SourceVertex | undefined) => (from === undefined ? undefined : from.kind === 'local' ? from.source : from.name);
  if (v.kind === 'exec') return JSON.stringify({ args: v.args, env: v.env, cwd: v.cwd, user: v.user, network: v.network, mounts: v.mounts.map((m) => ({ ...m, from: named(m.from) })) });
  const a = v.action;
  if (a.op === 'mkdir') return JSON.stringify(a);
  const checksum = a.urls?.find((u) => u.checksum !== undefined)?.checksum;
  // a git source without --checksum: it is checked when the ref is resolved, and keys nothing
  const gits = a.gits?.map(({ checksum: _c, digest: _d, ...g }) => g);
  return JSON.stringify({ ...a, urls: a.urls?.map((u) => u.url), checksum, source: { paths: a.source.paths, from: named(a.source.from) }, gits });
}
