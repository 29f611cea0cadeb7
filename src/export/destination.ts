import { createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describeErrno, isErrnoError, KilnError } from '../errors.js';
import { removeStaleTempsBeside, tempBeside } from '../lifecycle.js';
import type { ExportDestination } from './types.js';

/**
 * Writes a byte stream (an archive) to its destination: a stream as it comes (process.stdout
 * left open), a file through a temp name beside it, fsynced and renamed when complete, so a
 * failed or interrupted export leaves no half-written file under the name asked for. An
 * abort stops the writing.
 */
export async function writeDestination(bytes: AsyncIterable<Buffer>, out: ExportDestination, signal?: AbortSignal): Promise<void> {
  const source = Readable.from(bytes);
  if (typeof out !== 'string') {
    await pipeline(source, out, { end: out !== process.stdout, signal });
    return;
  }
  const st = await fsp.stat(out).catch(() => undefined);
  if (st?.isDirectory()) {
    throw new KilnError(`cannot write the archive to ${out}: it is a directory`, { hint: `name a file, e.g. -o ${path.join(out, 'image.tar')}` });
  }
  removeStaleTempsBeside(out);
  const tmp = tempBeside(out);
  try {
    await pipeline(source, createWriteStream(tmp, { mode: 0o644 }), { signal });
    const fh = await fsp.open(tmp, 'r+');
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, out);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    if (isErrnoError(e)) {
      const { what, hint } = describeErrno(e);
      const full = e.code === 'ENOSPC' || e.code === 'EDQUOT';
      throw new KilnError(`cannot write the archive to ${out}: ${what}`, {
        hint: full ? 'free space there, or save to another file system' : e.code === 'ENAMETOOLONG' ? hint : `check that ${path.dirname(path.resolve(out))} exists and is writable, or save elsewhere`,
        cause: e,
      });
    }
    throw e;
  }
}

/** How a destination is shown in a result: its path, or "-" for a stream. */
export function destinationName(out: ExportDestination): string {
  return typeof out === 'string' ? out : '-';
}
