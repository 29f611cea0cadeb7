import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { encodeName, fsPath } from '../fsname.js';
import path from 'node:path';
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import type tarStreamModule from 'tar-stream';

let tarLib: typeof tarStreamModule | undefined;
/** tar-stream, loaded on first use: a build that reads no tar archive never pays for it. */
export async function tarStreamLib(): Promise<typeof tarStreamModule> {
  tarLib ??= (await import('tar-stream')).default;
  return tarLib;
}
import { KilnError } from '../errors.js';
import { zstdFrames } from './compress.js';

/**
 * A deterministic tar writer (POSIX.1-2001 pax where needed, ustar otherwise), and tar readers.
 *
 * Writing: tar-stream 3 cannot emit binary PAX records (security.capability xattrs), large
 * uids/gids or sizes in PAX, so headers are encoded here, following Go's archive/tar (what
 * BuildKit and docker write): a ustar header per entry, preceded by a "PaxHeaders.0/<name>"
 * extended header when a field does not fit; PAX records sorted by key; no atime/ctime; two zero
 * blocks at the end and no record padding. Reading uses tar-stream, behind keepBinaryPax():
 * tar-stream decodes PAX values as UTF-8, which loses binary xattr values.
 */

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarEntry {
  /** Relative path, no leading '/', directories without trailing '/'. */
  path: string;
  type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** Content length for files; required with contentStream, else taken from content/sourcePath. */
  size?: number;
  /** Seconds since the epoch. */
  mtime?: number;
  linkname?: string;
  /** File content read from this path on disk. */
  sourcePath?: string;
  content?: Buffer;
  /** File content as a stream of exactly `size` bytes. */
  contentStream?: NodeJS.ReadableStream | AsyncIterable<Buffer>;
  devmajor?: number;
  devminor?: number;
  uname?: string;
  gname?: string;
  /** Extended attributes; strings are UTF-8, Buffers carry binary values (security.capability). */
  xattrs?: Record<string, string | Buffer>;
}

const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

function isASCII(s: string): boolean {
  return /^[\x01-\x7f]*$/.test(s);
}
function toASCII(s: string): string {
  return s.replace(/[^\x01-\x7f]/g, '');
}

function octal(buf: Buffer, offset: number, width: number, value: number): void {
  // width includes the trailing NUL, as Go writes it
  const digits = Math.max(0, Math.trunc(value)).toString(8).padStart(width - 1, '0');
  buf.write(digits.slice(-(width - 1)), offset, 'ascii');
  buf[offset + width - 1] = 0;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function splitUstarName(name: string): { name: string; prefix: string } | undefined {
  if (!isASCII(name)) return undefined;
  if (name.length <= 100) return { name, prefix: '' };
  // split at a '/' so that prefix <= 155 and name <= 100
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (rest.length === 0 || rest.length > 100) break;
    if (prefix.length <= 155) return { name: rest, prefix };
  }
  return undefined;
}

interface RawHeader {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

function encodeRaw(h: RawHeader): Buffer {
  const buf = Buffer.alloc(BLOCK);
  buf.write(h.name, 0, 100, 'utf8');
  octal(buf, 100, 8, h.mode & 0o7777);
  octal(buf, 108, 8, h.uid);
  octal(buf, 116, 8, h.gid);
  octal(buf, 124, 12, h.size);
  octal(buf, 136, 12, h.mtime);
  buf.write(' '.repeat(8), 148, 'ascii');
  buf.write(h.typeflag, 156, 'ascii');
  buf.write(h.linkname, 157, 100, 'utf8');
  buf.write('ustar\x0000', 257, 'binary');
  buf.write(h.uname, 265, 32, 'utf8');
  buf.write(h.gname, 297, 32, 'utf8');
  octal(buf, 329, 8, h.devmajor);
  octal(buf, 337, 8, h.devminor);
  buf.write(h.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += buf[i];
  buf.write(sum.toString(8).padStart(6, '0') + '\x00 ', 148, 'binary');
  return buf;
}

/** The header block(s) for one entry: [pax header, pax data,] ustar header. */
export function encodeHeader(entry: TarEntry, size: number, mtime: number): Buffer {
  const name = entry.type === 'directory' ? `${entry.path}/` : entry.path;
  const pax = new Map<string, Buffer>();
  const split = splitUstarName(name);
  if (!split) pax.set('path', encodeName(name));
  const linkname = entry.linkname ?? '';
  if (!isASCII(linkname) || linkname.length > 100) pax.set('linkpath', encodeName(linkname));
  if (entry.uid > MAX_OCTAL_7 || entry.uid < 0) pax.set('uid', Buffer.from(String(entry.uid)));
  if (entry.gid > MAX_OCTAL_7 || entry.gid < 0) pax.set('gid', Buffer.from(String(entry.gid)));
  if (size > MAX_OCTAL_11) pax.set('size', Buffer.from(String(size)));
  if (mtime > MAX_OCTAL_11 || mtime < 0) pax.set('mtime', Buffer.from(String(mtime)));
  const uname = entry.uname ?? '';
  const gname = entry.gname ?? '';
  if (!isASCII(uname) || uname.length > 32) pax.set('uname', Buffer.from(uname));
  if (!isASCII(gname) || gname.length > 32) pax.set('gname', Buffer.from(gname));
  for (const [k, v] of Object.entries(entry.xattrs ?? {})) {
    pax.set(`SCHILY.xattr.${k}`, typeof v === 'string' ? Buffer.from(v, 'utf8') : v);
  }
  const fallbackName = split ?? { name: toASCII(name).slice(0, 100), prefix: '' };
  const header = encodeRaw({
    name: fallbackName.name,
    prefix: fallbackName.prefix,
    mode: entry.mode,
    uid: entry.uid >= 0 && entry.uid <= MAX_OCTAL_7 ? entry.uid : 0,
    gid: entry.gid >= 0 && entry.gid <= MAX_OCTAL_7 ? entry.gid : 0,
    size: size <= MAX_OCTAL_11 ? size : 0,
    mtime: mtime >= 0 && mtime <= MAX_OCTAL_11 ? mtime : 0,
    typeflag: TYPEFLAG[entry.type],
    linkname: isASCII(linkname) && linkname.length <= 100 ? linkname : toASCII(linkname).slice(0, 100),
    uname: isASCII(uname) ? uname.slice(0, 32) : '',
    gname: isASCII(gname) ? gname.slice(0, 32) : '',
    devmajor: entry.devmajor ?? 0,
    devminor: entry.devminor ?? 0,
  });
  if (pax.size === 0) return header;
  const keys = [...pax.keys()].sort();
  const data = Buffer.concat(keys.map((k) => paxRecord(k, pax.get(k)!)));
  const dir = path.posix.dirname(entry.path);
  const paxName = toASCII(`${dir === '.' ? '' : dir + '/'}PaxHeaders.0/${path.posix.basename(entry.path)}`).slice(0, 100);
  const paxHeader = encodeRaw({
    name: paxName,
    prefix: '',
    mode: 0,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: 0,
    typeflag: 'x',
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxHeader, data, padding(data.length), header]);
}

function padding(size: number): Buffer {
  const rem = size % BLOCK;
  return rem === 0 ? Buffer.alloc(0) : ZERO_BLOCK.subarray(0, BLOCK - rem);
}

function fileChanged(p: string, what: string): KilnError {
  return new KilnError(`${p} changed while it was being archived (${what})`, { hint: 'make sure nothing writes to the files while kiln reads them, then retry' });
}

async function* fileContent(entry: TarEntry, size: number): AsyncGenerator<Buffer> {
  if (entry.content) {
    yield entry.content;
    return;
  }
  if (entry.contentStream) {
    let seen = 0;
    for await (const chunk of entry.contentStream as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      seen += buf.length;
      if (seen > size) throw new Error(`tar entry ${entry.path}: the content stream is longer than its size ${size}`);
      yield buf;
    }
    if (seen !== size) throw new Error(`tar entry ${entry.path}: the content stream ended after ${seen} of ${size} bytes`);
    return;
  }
  if (!entry.sourcePath) {
    if (size === 0) return;
    throw new Error(`tar entry ${entry.path}: a file of ${size} bytes needs content, contentStream or sourcePath`);
  }
  const fh = await fsp.open(fsPath(entry.sourcePath), 'r');
  try {
    let offset = 0;
    const chunkSize = 1 << 20;
    while (offset < size) {
      const buf = Buffer.allocUnsafe(Math.min(chunkSize, size - offset));
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) throw fileChanged(entry.sourcePath, `it shrank below ${size} bytes`);
      offset += bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

export interface TarStreamOptions {
  /** Clamp every mtime to at most this (seconds); entries without mtime get it too. */
  sourceDateEpoch?: number;
  /** Called once per entry written. */
  onEntry?: (entry: TarEntry) => void;
}

/** The bytes of a tar archive of the entries, in the order given. */
export async function* tarStream(entries: Iterable<TarEntry> | AsyncIterable<TarEntry>, options: TarStreamOptions = {}): AsyncGenerator<Buffer> {
  const epoch = options.sourceDateEpoch;
  for await (const entry of entries) {
    validateEntry(entry);
    let size = 0;
    if (entry.type === 'file') {
      if (entry.content) size = entry.content.length;
      else if (entry.size !== undefined) size = entry.size;
      else if (entry.sourcePath) size = (await fsp.lstat(entry.sourcePath)).size;
      if (entry.content && entry.size !== undefined && entry.size !== entry.content.length) {
        throw new Error(`tar entry ${entry.path}: size ${entry.size} but ${entry.content.length} bytes of content`);
      }
    }
    let mtime = Math.floor(entry.mtime ?? epoch ?? 0);
    if (epoch !== undefined && mtime > epoch) mtime = epoch;
    yield encodeHeader(entry, size, mtime);
    if (size > 0) {
      yield* fileContent(entry, size);
      const pad = padding(size);
      if (pad.length > 0) yield pad;
    }
    options.onEntry?.(entry);
  }
  yield Buffer.alloc(BLOCK * 2);
}

function validateEntry(entry: TarEntry): void {
  const p = entry.path;
  if (!p || p.startsWith('/') || p.endsWith('/') || p.split('/').some((c) => c === '..' || c === '' || c === '.')) {
    throw new Error(`tar entry path ${JSON.stringify(p)} must be relative and clean (no leading or trailing '/', '.', '..' or '//')`);
  }
  if (!(entry.type in TYPEFLAG)) throw new Error(`tar entry ${p}: unknown type ${String(entry.type)}`);
  if ((entry.type === 'symlink' || entry.type === 'hardlink') && entry.linkname === undefined) {
    throw new Error(`tar entry ${p}: a ${entry.type} needs a linkname`);
  }
}

// ---- reading -------------------------------------------------------------------------------

export type Compression = 'gzip' | 'zstd' | 'none';

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

type ZstdZlib = { createZstdDecompress?: () => NodeJS.ReadWriteStream };

/**
 * Bytes through a host command's stdin → stdout (zstd where node's zlib has none). The command
 * only ever sees bytes; it is killed when the consumer stops early.
 */
async function* throughCommand(cmd: string, args: string[], input: AsyncIterable<Buffer>, what: string): AsyncGenerator<Buffer> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += String(c)));
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'ENOENT'
          ? new KilnError(`${what} needs the ${cmd} command (this Node.js has no built-in zstd), and it is not installed`, { hint: `apt-get install ${cmd}, or run kiln on Node.js 22.15 or later` })
          : e,
      ),
    );
    child.on('close', (code, signal) =>
      code === 0 ? resolve() : reject(new KilnError(`${what}: ${stderr.trim() || `${cmd} exited ${code ?? signal}`}`, { hint: 'is the data really zstd-compressed?' })),
    );
  });
  exited.catch(() => undefined);
  let fed: unknown;
  pipeline(Readable.from(input), child.stdin, (e) => {
    if (e && (e as NodeJS.ErrnoException).code !== 'EPIPE') fed = e;
  });
  let ok = false;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) yield chunk;
    // the input's own error (a corrupt blob, say) says more than the command's complaint about it
    await exited.catch((e: unknown) => {
      throw fed ?? e;
    });
    if (fed) throw fed;
    ok = true;
  } finally {
    if (!ok && child.exitCode === null) child.kill();
  }
}

/**
 * zstd-decompressed bytes: kiln's own frames (compress.ts) through the native binding, several
 * at once; a stream that is not made of such frames through node's zlib where it has zstd
 * (22.15+), else the host's zstd command.
 */
function zstdDecompress(input: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  return zstdFrames(input, (rest) => {
    const create = (zlib as unknown as ZstdZlib).createZstdDecompress;
    if (!create) return throughCommand('zstd', ['-d', '-c', '-q'], rest, 'reading a zstd-compressed layer');
    return viaStream(rest, create());
  });
}

async function* viaStream(input: AsyncIterable<Buffer>, through: NodeJS.ReadWriteStream): AsyncGenerator<Buffer> {
  pipeline(Readable.from(input), through, () => undefined);
  for await (const chunk of through as AsyncIterable<Buffer>) yield chunk;
}

/** The content of a possibly gzip- or zstd-compressed stream, detected from its first bytes. */
export async function* decompress(input: AsyncIterable<Buffer> | NodeJS.ReadableStream): AsyncGenerator<Buffer> {
  const it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  let ended = false;
  while (head.length < 4) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    head = Buffer.concat([head, typeof r.value === 'string' ? Buffer.from(r.value) : r.value]);
  }
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    }
  }
  const kind = detectCompression(head);
  if (kind === 'none') yield* rest();
  else if (kind === 'gzip') yield* viaStream(rest(), zlib.createGunzip());
  else yield* zstdDecompress(rest());
}

export interface TarHeader {
  name: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: Date;
  linkname?: string | null;
  type?: string | null;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string> | null;
  /** The entry's extended attributes with their exact bytes (tarEntries sets it). */
  xattrs?: Record<string, Buffer>;
}

export interface TarReadEntry {
  header: TarHeader;
  /** The entry's content; drained automatically when the consumer moves on without reading it. */
  stream: Readable;
}


/** The key keepBinaryPax() gives an xattr record: its value base64, so no bytes are lost. */
const BINARY_XATTR = 'KILN.xattr.base64.';
const PAX_XATTR = 'SCHILY.xattr.';

/**
 * A header's extended attributes with their exact bytes (security.capability is binary):
 * from the records keepBinaryPax() rewrote, or plain SCHILY.xattr ones read without it.
 */
export function paxXattrs(pax: Record<string, string> | null | undefined): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(pax ?? {})) {
    if (k.startsWith(BINARY_XATTR)) out[k.slice(BINARY_XATTR.length)] = Buffer.from(v, 'base64');
    else if (k.startsWith(PAX_XATTR)) out[k.slice(PAX_XATTR.length)] ??= Buffer.from(v, 'utf8');
  }
  return out;
}

function tarNumber(field: Buffer): number {
  if (field[0] & 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return n;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/g, '').replace(/^[ \0]+/, '');
  return text === '' ? 0 : parseInt(text, 8);
}

function validHeader(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i];
  return sum === tarNumber(block.subarray(148, 156));
}

/** PAX records (`LEN key=value\n`), values as raw bytes. */
function parsePaxRecords(data: Buffer): Array<[string, Buffer]> | undefined {
  const out: Array<[string, Buffer]> = [];
  let at = 0;
  while (at < data.length) {
    const sp = data.indexOf(0x20, at);
    const len = sp === -1 ? NaN : Number(data.subarray(at, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0 || at + len > data.length) return data.subarray(at).every((b) => b === 0) ? out : undefined;
    const rec = data.subarray(sp + 1, at + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq === -1) return undefined;
    out.push([rec.subarray(0, eq).toString('utf8'), rec.subarray(eq + 1)]);
    at += len;
  }
  return out;
}

/**
 * A pass-through of a tar stream that rewrites each PAX `SCHILY.xattr.NAME` record as
 * `KILN.xattr.base64.NAME` with the value in base64, so a reader that decodes PAX values as
 * text (tar-stream) keeps binary values intact; paxXattrs() reads them back. Anything it
 * does not understand (not a tar, a broken header) goes through unchanged from there on, for
 * the tar reader to report.
 */
export function keepBinaryPax(): Transform {
  let pending: Buffer[] = [];
  let pendingLen = 0;
  /** Bytes of entry data (with padding) to pass through before the next header. */
  let skip = 0;
  /** A PAX header's size record: the next entry's data length. */
  let nextSize: number | undefined;
  let passAll = false;
  const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;
  const take = (n: number): Buffer => {
    const all = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingLen);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    pending = rest.length ? [rest] : [];
    pendingLen = rest.length;
    return out;
  };
  const peek = (n: number): Buffer => (pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingLen)).subarray(0, n);
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      pending.push(chunk);
      pendingLen += chunk.length;
      for (;;) {
        if (passAll) {
          if (pendingLen) this.push(take(pendingLen));
          break;
        }
        if (skip > 0) {
          if (pendingLen === 0) break;
          const n = Math.min(skip, pendingLen);
          this.push(take(n));
          skip -= n;
          continue;
        }
        if (pendingLen < BLOCK) break;
        const header = peek(BLOCK);
        if (header.every((b) => b === 0)) {
          this.push(take(BLOCK));
          continue;
        }
        if (!validHeader(header)) {
          passAll = true;
          continue;
        }
        const type = String.fromCharCode(header[156]);
        const size = tarNumber(header.subarray(124, 136));
        if (type === 'x') {
          if (size > 1 << 20) {
            passAll = true;
            continue;
          }
          if (pendingLen < BLOCK + padded(size)) break;
          const block = Buffer.from(take(BLOCK));
          const data = take(padded(size)).subarray(0, size);
          const records = parsePaxRecords(data);
          if (!records) {
            this.push(block);
            this.push(Buffer.concat([data, Buffer.alloc(padded(size) - size)]));
            continue;
          }
          const sizeRecord = records.find(([k]) => k === 'size');
          nextSize = sizeRecord ? Number(sizeRecord[1].toString('latin1')) : undefined;
          const body = Buffer.concat(
            records.map(([k, v]) => (k.startsWith(PAX_XATTR) ? paxRecord(`${BINARY_XATTR}${k.slice(PAX_XATTR.length)}`, Buffer.from(v.toString('base64'))) : paxRecord(k, v))),
          );
          octal(block, 124, 12, body.length);
          block.write(' '.repeat(8), 148, 'ascii');
          let sum = 0;
          for (let i = 0; i < BLOCK; i++) sum += block[i];
          block.write(sum.toString(8).padStart(6, '0') + '\x00 ', 148, 'binary');
          this.push(block);
          this.push(Buffer.concat([body, Buffer.alloc(padded(body.length) - body.length)]));
          continue;
        }
        this.push(take(BLOCK));
        // GNU long names and global headers carry data; a directory's size is ignored (as tar-stream does)
        const length = type === 'L' || type === 'K' || type === 'g' ? size : type === '5' ? 0 : (nextSize ?? size);
        if (type !== 'L' && type !== 'K' && type !== 'g') nextSize = undefined;
        skip = padded(length);
      }
      done();
    },
    flush(done: TransformCallback) {
      if (pendingLen) this.push(take(pendingLen));
      done();
    },
  });
}

/** The tar or compression library could not read an archive; `cause` is its own error. */
export class TarReadError extends KilnError {}

/** Entries of a tar archive (plain, gzip or zstd, detected from the content). */
export async function* tarEntries(input: AsyncIterable<Buffer> | NodeJS.ReadableStream): AsyncGenerator<TarReadEntry> {
  const extract = (await tarStreamLib()).extract();
  const src = Readable.from(decompress(input));
  pipeline(src, keepBinaryPax(), extract, () => undefined);
  try {
    for await (const entry of extract) {
      const header = entry.header as TarHeader;
      if (header.pax) {
        // the exact bytes in `xattrs`; `pax` as tar-stream gives it without keepBinaryPax
        header.xattrs = paxXattrs(header.pax);
        const pax: Record<string, string> = {};
        for (const [k, v] of Object.entries(header.pax)) if (!k.startsWith(BINARY_XATTR)) pax[k] = v;
        for (const [k, v] of Object.entries(header.xattrs)) pax[`${PAX_XATTR}${k}`] = v.toString('utf8');
        header.pax = pax;
      }
      yield { header, stream: entry as unknown as Readable };
      entry.resume();
    }
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw new TarReadError(`cannot read the tar archive: ${(e as Error).message}`, { cause: e, code: 'invalid', hint: 'is the file a tar archive (optionally gzip-compressed)?' });
  }
}
