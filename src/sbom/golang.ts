/**
 * Go build information embedded in ELF executables (what `go version -m` prints): the
 * toolchain, the main module and the dependency modules. Go ≥ 1.18 writes it inline after the
 * 32-byte header that starts with "\xff Go buildinf:" (in the .go.buildinfo section), so it is
 * found while streaming the file, in constant memory. The older pointer format (Go < 1.18:
 * the header holds addresses of two Go strings) needs the whole file and its program headers:
 * it is recognised but not read.
 */
import type { Found } from './ecosystems.js';

const MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');
const HEADER = 32;
/** Flag bit: the version and module strings follow the header inline (Go ≥ 1.18). */
const FLAG_INLINE = 0x2;
/** A module info string longer than this is not believed (real ones are a few KiB). */
const MODINFO_MAX = 4 << 20;

/** Build info as the binary records it. */
export interface GoBuildInfo {
  goVersion: string;
  path?: string;
  main?: { path: string; version: string };
  deps: Array<{ path: string; version: string }>;
}

/** Reads an unsigned varint at `at`; undefined when the buffer ends first. */
function uvarint(buf: Buffer, at: number): { value: number; next: number } | undefined {
  let value = 0;
  let shift = 0;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    value += (buf[i] & 0x7f) * 2 ** shift;
    if (buf[i] < 0x80) return { value, next: i + 1 };
    shift += 7;
  }
  return undefined;
}

/** The module info text ("path\t…\nmod\t…\ndep\t…") → modules; `=>` lines replace the module before them. */
export function parseModInfo(goVersion: string, text: string): GoBuildInfo {
  let mod = text;
  // the text is framed by 16 sentinel bytes at each end
  if (mod.length >= 33 && mod[mod.length - 17] === '\n') mod = mod.slice(16, -16);
  const info: GoBuildInfo = { goVersion, deps: [] };
  let last: { path: string; version: string } | undefined;
  for (const line of mod.split('\n')) {
    const f = line.split('\t');
    if (f[0] === 'path' && f[1]) info.path = f[1];
    else if (f[0] === 'mod' && f[1]) info.main = last = { path: f[1], version: f[2] ?? '' };
    else if (f[0] === 'dep' && f[1]) info.deps.push((last = { path: f[1], version: f[2] ?? '' }));
    else if (f[0] === '=>' && last && f[1] && f[2]) {
      // replaced by another module version (a local directory replacement has no version: kept as required)
      last.path = f[1];
      last.version = f[2];
    }
  }
  return info;
}

/** The build info inline after a header at `at` (the magic), or 'more' when the buffer ends first, or undefined when not valid. */
function readInline(buf: Buffer, at: number): GoBuildInfo | 'more' | 'pointer' | undefined {
  if (buf.length < at + HEADER) return 'more';
  const ptrSize = buf[at + 14];
  const flags = buf[at + 15];
  if (ptrSize !== 4 && ptrSize !== 8) return undefined;
  if (!(flags & FLAG_INLINE)) return 'pointer';
  const vlen = uvarint(buf, at + HEADER);
  if (!vlen) return 'more';
  if (vlen.value > 256) return undefined;
  if (buf.length < vlen.next + vlen.value) return 'more';
  const goVersion = buf.toString('utf8', vlen.next, vlen.next + vlen.value);
  if (!/^(go|devel )/.test(goVersion)) return undefined;
  const mlen = uvarint(buf, vlen.next + vlen.value);
  if (!mlen) return 'more';
  if (mlen.value > MODINFO_MAX) return undefined;
  if (buf.length < mlen.next + mlen.value) return 'more';
  return parseModInfo(goVersion, buf.toString('utf8', mlen.next, mlen.next + mlen.value));
}

/**
 * Scans an executable's bytes as they stream past for Go build info. push() each chunk,
 * then result(). Holds at most the header and the strings after it (≤ MODINFO_MAX).
 */
export class GoBuildInfoScanner {
  private carry: Buffer = Buffer.alloc(0);
  private first = true;
  private done = false;
  private info: GoBuildInfo | undefined;
  /** Set when the binary has a pre-1.18 (pointer format) header, which is not read. */
  pointerFormat = false;

  push(chunk: Buffer): void {
    if (this.done) return;
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    if (this.first) {
      this.first = false;
      if (buf.length < 4 || buf.readUInt32BE(0) !== 0x7f454c46) {
        this.done = true;
        return;
      }
    }
    for (let from = 0; ; ) {
      const at = buf.indexOf(MAGIC, from);
      if (at < 0) {
        // keep what could be the start of a magic split across chunks
        this.carry = Buffer.from(buf.subarray(Math.max(0, buf.length - (MAGIC.length - 1))));
        return;
      }
      const r = readInline(buf, at);
      if (r === 'more') {
        if (buf.length - at > MODINFO_MAX + 1024) {
          from = at + 1;
          continue;
        }
        this.carry = Buffer.from(buf.subarray(at));
        return;
      }
      if (r === 'pointer') this.pointerFormat = true;
      else if (r) {
        this.info = r;
        this.done = true;
        this.carry = Buffer.alloc(0);
        return;
      }
      from = at + 1;
    }
  }

  result(): GoBuildInfo | undefined {
    return this.info;
  }
}

/** The toolchain as a stdlib version ("go1.21.5" → "1.21.5"); undefined for devel builds. */
function stdlibVersion(goVersion: string): string | undefined {
  const m = /^go(\d+\.\d+(?:\.\d+)?(?:(?:rc|beta)\d+)?)/.exec(goVersion);
  return m ? m[1] : undefined;
}

/** Build info → packages: the main module, each dependency, and the standard library ("stdlib"). */
export function goPackages(info: GoBuildInfo): Found[] {
  const out: Found[] = [];
  const add = (path: string, version: string): void => {
    if (path && version) out.push({ name: path, version, ecosystem: 'golang', goVersion: info.goVersion });
  };
  if (info.main) add(info.main.path, info.main.version);
  for (const d of info.deps) add(d.path, d.version);
  const std = stdlibVersion(info.goVersion);
  if (std) add('stdlib', std);
  return out;
}
