/**
 * Layer compression that uses every core and gives the same bytes for the same input and level
 * on any machine: the uncompressed stream is cut into fixed blocks (COMPRESS_BLOCK of input
 * each, so the boundaries depend on the bytes only, never on chunking or timing), each block is
 * compressed on its own on the threadpool, several at once, and the results are emitted in
 * order.
 * - gzip: one gzip member per block (RFC 1952 allows any number of members; GNU gzip, Go's
 *   compress/gzip, zlib and pigz read them as one stream). The header carries no time (mtime 0)
 *   and the OS byte is set to 3 (Unix) whatever zlib was built for.
 * - zstd: one frame per block (RFC 8878 allows concatenated frames; every decoder reads them),
 *   through @toondepauw/node-zstd, a native binding (napi-rs over libzstd) that ships its
 *   binary prebuilt on npm (Node 20 has no zstd); its version is pinned, since the bytes depend
 *   on libzstd's. Each frame is given its content size in the header (the binding leaves it
 *   out), which lets the reader below decompress frames in parallel too.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import zlib from 'node:zlib';
import { KilnError } from '../errors.js';

/** Input bytes per gzip member / zstd frame (fixed: part of what the output bytes are). */
export const COMPRESS_BLOCK = 4 << 20;
/** gzip level used unless one is asked for. */
export const GZIP_LEVEL = 6;
/** zstd level used unless one is asked for: zstd's default, as BuildKit uses. */
export const ZSTD_LEVEL = 3;

export const GZIP_LEVELS = { min: 0, max: 9 } as const;
export const ZSTD_LEVELS = { min: 1, max: 22 } as const;

/** The level to use for `compression`: `level` checked against its range, else the default. */
export function compressionLevel(compression: 'gzip' | 'zstd' | 'none', level: number | undefined): number | undefined {
  if (compression === 'none') {
    if (level !== undefined) {
      throw new KilnError(`compression-level=${level} was given for an uncompressed layer`, {
        code: 'invalid',
        hint: 'drop compression-level, or choose compression=gzip or compression=zstd',
      });
    }
    return undefined;
  }
  if (level === undefined) return compression === 'gzip' ? GZIP_LEVEL : ZSTD_LEVEL;
  const range = compression === 'gzip' ? GZIP_LEVELS : ZSTD_LEVELS;
  if (!Number.isInteger(level) || level < range.min || level > range.max) {
    throw new KilnError(`compression-level=${level} is not a ${compression} level`, {
      code: 'invalid',
      hint: `${compression} levels are whole numbers from ${range.min} to ${range.max}`,
    });
  }
  return level;
}

/**
 * Blocks compressed at once: enough to keep every core busy while the oldest is written, and no
 * more than the threadpool runs at a time (queued work would delay the file reads feeding it).
 */
function inFlight(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(2, Math.min(os.availableParallelism() + 1, pool));
}

/**
 * The input cut into COMPRESS_BLOCK pieces, each given to `compress` as it is complete and the
 * results emitted in input order, at most inFlight() outstanding. An empty input still gives
 * one (empty) block: an empty layer is a valid compressed stream, not zero bytes.
 */
async function* blockwise(input: AsyncIterable<Buffer>, compress: (block: Buffer) => Promise<Buffer>): AsyncGenerator<Buffer> {
  const limit = inFlight();
  const pending: Array<Promise<Buffer>> = [];
  const start = (block: Buffer): void => {
    const p = compress(block);
    // a failure surfaces when its turn comes; until then it must not count as unhandled
    p.catch(() => undefined);
    pending.push(p);
  };
  let parts: Buffer[] = [];
  let size = 0;
  let any = false;
  for await (const chunk of input) {
    any = true;
    let rest = chunk;
    while (size + rest.length >= COMPRESS_BLOCK) {
      const take = COMPRESS_BLOCK - size;
      parts.push(rest.subarray(0, take));
      // a chunk that holds a whole block is compressed in place, not copied
      start(parts.length === 1 ? parts[0] : Buffer.concat(parts, COMPRESS_BLOCK));
      parts = [];
      size = 0;
      rest = rest.subarray(take);
      while (pending.length >= limit) yield await pending.shift()!;
    }
    if (rest.length > 0) {
      parts.push(rest);
      size += rest.length;
    }
  }
  if (size > 0 || !any) start(Buffer.concat(parts, size));
  while (pending.length > 0) yield await pending.shift()!;
}

/** Offset of the OS byte in a gzip header (RFC 1952 2.3). */
const GZIP_OS = 9;
const GZIP_OS_UNIX = 3;

/** Deterministic parallel gzip (see the top of this file) at `level` (0–9, default GZIP_LEVEL). */
export function gzipBlocks(input: AsyncIterable<Buffer>, level: number = GZIP_LEVEL): AsyncGenerator<Buffer> {
  // one output buffer the size of a block: one threadpool task per member, not one per 16 KiB
  const options: zlib.ZlibOptions = { level, chunkSize: COMPRESS_BLOCK };
  return blockwise(
    input,
    (block) =>
      new Promise<Buffer>((resolve, reject) =>
        zlib.gzip(block, options, (err, out) => {
          if (err) return reject(err);
          out[GZIP_OS] = GZIP_OS_UNIX;
          resolve(out);
        }),
      ),
  );
}

interface ZstdBinding {
  Encoder: new (level: number) => { encode(data: Buffer): Promise<Buffer> };
  Decoder: new () => { decode(data: Buffer): Promise<Buffer> };
}

const ZSTD_MAGIC = 0xfd2fb528;

let binding: ZstdBinding | null | undefined;
/** @toondepauw/node-zstd, loaded on first use (a native module: required, never bundled); null when it cannot load here. */
export function zstdBinding(): ZstdBinding | null {
  if (binding === undefined) {
    try {
      binding = createRequire(import.meta.url)('@toondepauw/node-zstd') as ZstdBinding;
    } catch {
      binding = null;
    }
  }
  return binding;
}

function zstdUnavailable(): KilnError {
  return new KilnError(`zstd compression needs the @toondepauw/node-zstd module, which does not load on ${process.platform}/${process.arch}`, {
    code: 'unavailable',
    hint: 'reinstall kiln (npm ci) so its prebuilt zstd binding is present, or use compression=gzip',
  });
}

/**
 * The frame with its content size written into the header when it has none: the Frame_Content_Size
 * flag set to a 4-byte field, inserted after the window descriptor and dictionary id (RFC 8878
 * 3.1.1.1). The blocks do not change; decoders check the size against what they decode.
 */
export function withContentSize(frame: Buffer, contentSize: number): Buffer {
  if (frame.length < 6 || frame.readUInt32LE(0) !== ZSTD_MAGIC || contentSize > 0xffffffff) return frame;
  const fhd = frame[4];
  if (fhd >> 6 !== 0 || (fhd & 0x20) !== 0) return frame;
  const at = 6 + [0, 1, 2, 4][fhd & 3];
  const size = Buffer.alloc(4);
  size.writeUInt32LE(contentSize);
  const out = Buffer.concat([frame.subarray(0, at), size, frame.subarray(at)]);
  out[4] = fhd | 0x80;
  return out;
}

/** Deterministic parallel zstd (see the top of this file) at `level` (1–22, default ZSTD_LEVEL). */
export function zstdBlocks(input: AsyncIterable<Buffer>, level: number = ZSTD_LEVEL): AsyncGenerator<Buffer> {
  const zstd = zstdBinding();
  if (!zstd) throw zstdUnavailable();
  // one encoder per block: blocks are compressed at the same time on different threads
  return blockwise(input, async (block) => withContentSize(await new zstd.Encoder(level).encode(block), block.length));
}

// ---- reading zstd ------------------------------------------------------------------------

/** A frame is decompressed in memory, on the threadpool, when it says its content is at most this. */
const ZSTD_FRAME_MAX = 64 << 20;

/** Chunks of a stream, read by offset without joining them until a whole frame is taken. */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }
  byte(offset: number): number {
    for (const c of this.chunks) {
      if (offset < c.length) return c[offset];
      offset -= c.length;
    }
    throw new RangeError('ByteQueue: offset past the end');
  }
  uintLE(offset: number, width: number): number {
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + this.byte(offset + i);
    return v;
  }
  /** Removes and returns the first n bytes. */
  take(n: number): Buffer {
    const out: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const c = this.chunks[0];
      if (c.length <= need) {
        out.push(c);
        this.chunks.shift();
        need -= c.length;
      } else {
        out.push(c.subarray(0, need));
        this.chunks[0] = c.subarray(need);
        need = 0;
      }
    }
    this.length -= n;
    return out.length === 1 ? out[0] : Buffer.concat(out, n);
  }
  /** Everything left, as chunks. */
  drain(): Buffer[] {
    const out = this.chunks;
    this.chunks = [];
    this.length = 0;
    return out;
  }
}

/** Where one frame is in the scan of a zstd stream. */
interface FrameScan {
  /** Offset of the next block header, or of the checksum once the last block is passed. */
  pos: number;
  lastSeen: boolean;
  checksum: boolean;
}

function corrupt(detail: string): KilnError {
  return new KilnError(`reading a zstd-compressed layer: ${detail}`, {
    code: 'invalid',
    hint: 'the blob is corrupt or not zstd; pull or load the image again',
  });
}

/**
 * The decompressed bytes of a zstd stream. Frames that state a content size of at most
 * ZSTD_FRAME_MAX (what zstdBlocks writes) are cut out of the stream and decompressed by the
 * native binding, several at once; from the first frame that does not (a single-frame stream
 * from another tool), or when the binding does not load, the rest of the stream goes to
 * `fallback` (a streaming decoder) as it is.
 */
export async function* zstdFrames(input: AsyncIterable<Buffer>, fallback: (rest: AsyncIterable<Buffer>) => AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const zstd = zstdBinding();
  const it = input[Symbol.asyncIterator]();
  const q = new ByteQueue();
  let ended = false;
  const fill = async (n: number): Promise<boolean> => {
    while (q.length < n && !ended) {
      const r = await it.next();
      if (r.done) ended = true;
      else q.push(r.value);
    }
    return q.length >= n;
  };
  async function* rest(): AsyncGenerator<Buffer> {
    yield* q.drain();
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  const limit = inFlight();
  const pending: Array<Promise<Buffer>> = [];
  const start = (frame: Buffer): void => {
    const p = new zstd!.Decoder().decode(frame).catch((e: unknown) => {
      throw corrupt((e as Error).message.replace(/^zstd:\s*/, ''));
    });
    p.catch(() => undefined);
    pending.push(p);
  };
  for (;;) {
    if (!(await fill(1))) break;
    if (!zstd || !(await fill(6))) break;
    const magic = q.uintLE(0, 4);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      // a skippable frame: magic, size, that many bytes
      if (!(await fill(8))) break;
      const size = 8 + q.uintLE(4, 4);
      if (!(await fill(size))) throw corrupt('a skippable frame is cut short');
      q.take(size);
      continue;
    }
    if (magic !== ZSTD_MAGIC) break;
    const fhd = q.byte(4);
    const single = (fhd & 0x20) !== 0;
    const fcsFlag = fhd >> 6;
    const fcsSize = fcsFlag === 0 ? (single ? 1 : 0) : [0, 2, 4, 8][fcsFlag];
    const didSize = [0, 1, 2, 4][fhd & 3];
    const headerSize = 5 + (single ? 0 : 1) + didSize + fcsSize;
    if (fcsSize === 0) break;
    if (!(await fill(headerSize))) throw corrupt('a frame header is cut short');
    const fcsAt = headerSize - fcsSize;
    const contentSize = fcsSize === 8 ? q.uintLE(fcsAt, 4) + q.uintLE(fcsAt + 4, 4) * 2 ** 32 : q.uintLE(fcsAt, fcsSize) + (fcsSize === 2 ? 256 : 0);
    if (contentSize > ZSTD_FRAME_MAX) break;
    const scan: FrameScan = { pos: headerSize, lastSeen: false, checksum: (fhd & 4) !== 0 };
    while (!scan.lastSeen) {
      if (!(await fill(scan.pos + 3))) throw corrupt('a block header is cut short');
      const h = q.uintLE(scan.pos, 3);
      const type = (h >> 1) & 3;
      if (type === 3) throw corrupt('a block has the reserved type');
      const size = type === 1 ? 1 : h >>> 3;
      scan.pos += 3 + size;
      scan.lastSeen = (h & 1) === 1;
      if (scan.pos > ZSTD_FRAME_MAX + 3 * 1024) throw corrupt('a frame is larger than its content size allows');
    }
    const frameSize = scan.pos + (scan.checksum ? 4 : 0);
    if (!(await fill(frameSize))) throw corrupt('a frame is cut short');
    start(q.take(frameSize));
    while (pending.length >= limit) yield await pending.shift()!;
  }
  while (pending.length > 0) yield await pending.shift()!;
  if (q.length > 0 || !ended) yield* fallback(rest());
}
