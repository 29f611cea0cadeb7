export { Snapshotter } from './snapshotter.js';
export { diffUpper, readXattrTree } from './diff.js';
export { extractLayer, normalizeEntryName, type ByteSource } from './unpack.js';
export { OPAQUE_MARKER, WHITEOUT_PREFIX, type ActiveMount, type LayerEntry } from './types.js';
