/**
 * The one manifest walker: from root descriptors down through indexes → manifests → config and
 * layers, calling a visitor on every descriptor once. Store GC, image sizes, cache GC and the
 * archive exporters all walk images this way, so what "reachable" means is decided here alone.
 * Index writing (building an OCI index from descriptors) sits beside it.
 */
import { KilnError } from '../errors.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest } from './types.js';

export function isManifestType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
}
export function isIndexType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

/** What the walker reads: a Provider's blob reads (a ContentStore, later a registry). */
export interface ManifestSource {
  hasBlob(digest: string): Promise<boolean>;
  /** The blob's bytes, verified against its digest. */
  readBlob(digest: string): Promise<Buffer>;
}

/**
 * A root to walk from. Descriptors from an index or a ref carry a media type; a bare digest
 * (a lease's, a cache record's) may not: then it is read as JSON and recognised by its shape,
 * but only when `size` says it is small (a layer of gigabytes is never read to find out).
 */
export type WalkRoot = Descriptor | { digest: string; mediaType?: string; size?: number };

export type NodeKind = 'index' | 'manifest' | 'config' | 'layer' | 'blob';

export interface WalkNode {
  descriptor: WalkRoot;
  kind: NodeKind;
  /** The index or manifest that lists this descriptor; undefined for a root. */
  parent?: WalkNode;
  /** The parsed document of an index node. */
  index?: ImageIndex;
  /** The parsed document of a manifest node. */
  manifest?: ImageManifest;
}

/**
 * Called once per distinct digest, after an index or manifest was read (so its document is
 * on the node). Returning false stops the walk from descending below this node.
 */
export type Visitor = (node: WalkNode) => void | boolean | Promise<void | boolean>;

export type Policy = 'error' | 'skip';

export interface WalkOptions {
  /**
   * Which entries of an index to follow (a platform filter, say: `(d) => platformMatches(p, d.platform)`).
   * Entries it rejects are neither visited nor descended into. Default: all.
   */
  filter?: (child: Descriptor, parent: WalkNode) => boolean;
  /**
   * An index or manifest that is not in the source: 'error' (the default) throws a KilnError
   * naming it, 'skip' leaves it out. A function decides per node (an index may list platforms
   * that were never fetched, but a manifest's config must be there). Configs and layers are
   * not read, so the walker never finds them missing; a visitor that needs them checks.
   */
  missing?: Policy | ((node: WalkNode) => Policy);
  /** An index or manifest that is not valid JSON of its kind: 'error' (default) or 'skip'. */
  malformed?: Policy;
  /**
   * Called on a node after everything below it was walked (post-order), for walks that rebuild
   * documents from their children (an exporter rewriting a manifest whose layers it
   * recompressed, then the index above it). Not called for a node whose visitor returned false.
   */
  leave?: (node: WalkNode) => void | Promise<void>;
}

/** Documents of unknown media type larger than this are never parsed to guess what they are. */
export const SNIFF_MAX = 8 << 20;

/** The kind a descriptor has from its media type alone (undefined: unknown, sniff it). */
function kindOfType(mediaType: string | undefined, asChild: 'config' | 'layer' | undefined): NodeKind | undefined {
  if (isIndexType(mediaType)) return 'index';
  if (isManifestType(mediaType)) return 'manifest';
  if (asChild) return asChild;
  return mediaType === undefined ? undefined : 'blob';
}

function malformedError(node: WalkNode, why: string): KilnError {
  const what = node.kind === 'index' ? 'index' : 'manifest';
  return new KilnError(`${what} ${node.descriptor.digest} is malformed: ${why}`, {
    hint: 'the image is damaged: rebuild, or pull/load it again',
  });
}

function missingError(node: WalkNode): KilnError {
  const what = node.parent ? ` (listed by ${node.parent.descriptor.digest})` : '';
  return new KilnError(`${node.kind} ${node.descriptor.digest}${what} is missing`, {
    hint: 'the image is incomplete: rebuild, or pull/load it again',
  });
}

function shapeOf(doc: unknown): 'index' | 'manifest' | undefined {
  if (doc === null || typeof doc !== 'object') return undefined;
  const d = doc as { manifests?: unknown; config?: unknown; layers?: unknown };
  if (Array.isArray(d.manifests)) return 'index';
  if (d.config && typeof d.config === 'object' && Array.isArray(d.layers)) return 'manifest';
  return undefined;
}

function isDescriptorLike(d: unknown): d is Descriptor {
  return d !== null && typeof d === 'object' && typeof (d as Descriptor).digest === 'string';
}

/**
 * Reads an index or manifest node's document onto it. False when the node is to be skipped
 * (missing or malformed under a 'skip' policy); a KilnError under 'error'.
 */
async function load(source: ManifestSource, node: WalkNode, options: WalkOptions, sniff: boolean): Promise<boolean> {
  let data: Buffer;
  try {
    data = await source.readBlob(node.descriptor.digest);
  } catch (e) {
    if (sniff) {
      // a bare digest that cannot be read as a document is a leaf, whatever it is
      node.kind = 'blob';
      return true;
    }
    if (!(await source.hasBlob(node.descriptor.digest).catch(() => false))) {
      const policy = typeof options.missing === 'function' ? options.missing(node) : (options.missing ?? 'error');
      if (policy === 'skip') return false;
      throw missingError(node);
    }
    // there but unreadable (corrupt): as malformed
    if (options.malformed === 'skip') return false;
    throw e;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(data.toString('utf8'));
  } catch {
    doc = undefined;
  }
  const shape = shapeOf(doc);
  if (sniff) {
    // a bare digest: whatever is not recognisably an index or manifest is a plain blob
    node.kind = shape ?? 'blob';
  } else if (shape !== node.kind) {
    if (options.malformed === 'skip') return false;
    throw malformedError(node, doc === undefined ? 'not JSON' : node.kind === 'index' ? 'no manifests list' : 'no config or layers');
  }
  if (node.kind === 'index') node.index = doc as ImageIndex;
  else if (node.kind === 'manifest') node.manifest = doc as ImageManifest;
  return true;
}

/** The descriptors an index or manifest node lists (its config first, then its layers). */
function childrenOfNode(node: WalkNode): Array<{ descriptor: Descriptor; as?: 'config' | 'layer' }> {
  if (node.index) return node.index.manifests.filter(isDescriptorLike).map((descriptor) => ({ descriptor }));
  if (node.manifest) {
    const out: Array<{ descriptor: Descriptor; as?: 'config' | 'layer' }> = [];
    if (isDescriptorLike(node.manifest.config)) out.push({ descriptor: node.manifest.config, as: 'config' });
    for (const l of node.manifest.layers) if (isDescriptorLike(l)) out.push({ descriptor: l, as: 'layer' });
    return out;
  }
  return [];
}

/**
 * Walks from `roots`, depth first in the order the documents list things, visiting each digest
 * once. Indexes and manifests are read from `source`; configs and layers are only visited.
 */
export async function walk(source: ManifestSource, roots: Iterable<WalkRoot>, visit: Visitor, options: WalkOptions = {}): Promise<void> {
  const seen = new Set<string>();
  const step = async (descriptor: WalkRoot, parent: WalkNode | undefined, as: 'config' | 'layer' | undefined): Promise<void> => {
    if (seen.has(descriptor.digest)) return;
    seen.add(descriptor.digest);
    const known = kindOfType(descriptor.mediaType, as);
    const node: WalkNode = { descriptor, kind: known ?? 'blob', ...(parent ? { parent } : {}) };
    if (known === 'index' || known === 'manifest') {
      if (!(await load(source, node, options, false))) return;
    } else if (known === undefined && descriptor.size !== undefined && descriptor.size <= SNIFF_MAX) {
      if (!(await load(source, node, options, true))) return;
    }
    if ((await visit(node)) === false) return;
    for (const child of childrenOfNode(node)) {
      if (node.kind === 'index' && options.filter && !options.filter(child.descriptor, node)) continue;
      await step(child.descriptor, node, child.as);
    }
    await options.leave?.(node);
  };
  for (const root of roots) await step(root, undefined, undefined);
}

/**
 * The descriptors one index or manifest lists (containerd's images.Children): an index's
 * manifests, a manifest's config then layers; [] for anything else.
 */
export async function childrenOf(source: ManifestSource, descriptor: Descriptor): Promise<Descriptor[]> {
  const kind = kindOfType(descriptor.mediaType, undefined);
  if (kind !== 'index' && kind !== 'manifest') return [];
  const node: WalkNode = { descriptor, kind };
  await load(source, node, {}, false);
  return childrenOfNode(node).map((c) => c.descriptor);
}

/** Every distinct descriptor reachable from `roots` (roots included), in walk order. */
export async function reachable(source: ManifestSource, roots: Iterable<WalkRoot>, options: WalkOptions = {}): Promise<WalkNode[]> {
  const out: WalkNode[] = [];
  await walk(source, roots, (node) => void out.push(node), options);
  return out;
}

// ---- index writing -------------------------------------------------------------------------

export interface IndexOptions {
  /** OCI image index (default) or a docker manifest list. */
  mediaType?: typeof MediaType.ociIndex | typeof MediaType.dockerManifestList;
  annotations?: Record<string, string>;
}

/**
 * An image index listing `manifests` in the order given, each descriptor reduced to the fields
 * an index entry carries (media type, digest, size, platform, annotations, urls).
 */
export function buildIndex(manifests: Descriptor[], options: IndexOptions = {}): ImageIndex {
  const entries = manifests.map(
    (d): Descriptor => ({
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      ...(d.platform ? { platform: d.platform } : {}),
      ...(d.urls ? { urls: d.urls } : {}),
      ...(d.annotations && Object.keys(d.annotations).length > 0 ? { annotations: d.annotations } : {}),
    }),
  );
  const index: ImageIndex = { schemaVersion: 2, mediaType: options.mediaType ?? MediaType.ociIndex, manifests: entries };
  if (options.annotations && Object.keys(options.annotations).length > 0) index.annotations = options.annotations;
  return index;
}

/** Writes buildIndex(manifests) as a blob (canonical JSON) and returns its descriptor. */
export async function writeIndex(
  sink: { writeJSON(value: unknown, mediaType: string): Promise<Descriptor> },
  manifests: Descriptor[],
  options: IndexOptions = {},
): Promise<Descriptor> {
  const index = buildIndex(manifests, options);
  return sink.writeJSON(index, index.mediaType!);
}
