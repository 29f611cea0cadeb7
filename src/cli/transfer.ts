/**
 * Byte progress of pulls and pushes (TransferEvent), as docker shows it: one line per blob,
 * its short digest, bytes done of its size and the rate. In a terminal the lines are bars
 * redrawn in place; in plain mode a line when a blob starts and one when it is finished. Only
 * digests, sizes and the registry's error messages are shown, never a URL or a credential.
 */
import type { TransferEvent } from '../registry/types.js';

export type TransferMode = 'auto' | 'tty' | 'plain' | 'quiet';

export interface TransferRenderer {
  onEvent(ev: TransferEvent): void;
  /** Draws the final state (a terminal's bars) and stops redrawing. */
  finish(): void;
}

/** sha256:4f2c… → 4f2c8d1e9a0b (docker's 12 hex digits). */
export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

/** Bytes in docker's units (decimal): 512B, 3.4kB, 12.5MB, 1.02GB. */
export function humanBytes(n: number): string {
  if (n < 1000) return `${n}B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)}${units[u]}`;
}

interface Blob {
  id: string;
  action: 'pull' | 'push';
  total: number;
  current: number;
  start: number;
  end?: number;
  state: 'waiting' | 'moving' | 'exists' | 'mounted' | 'done' | 'cached' | 'error';
  message?: string;
  /** plain mode: its "Downloading" line is written */
  announced?: boolean;
}

function rate(b: Blob, now: number): string {
  const secs = ((b.end ?? now) - b.start) / 1000;
  return secs > 0 ? `${humanBytes(Math.round(b.current / secs))}/s` : '';
}

/** The words docker uses for a finished blob. */
function finishedWord(b: Blob): string {
  switch (b.state) {
    case 'exists':
      return b.action === 'pull' ? 'Already exists' : 'Layer already exists';
    case 'mounted':
      return 'Mounted from another repository';
    case 'cached':
      return 'Cached';
    case 'error':
      return `Error: ${b.message ?? 'failed'}`;
    default:
      return b.action === 'pull' ? 'Pull complete' : 'Pushed';
  }
}

function barLine(b: Blob, now: number, width: number): string {
  const head = `${shortDigest(b.id)}: `;
  if (b.state !== 'moving' && b.state !== 'waiting') return `${head}${finishedWord(b)}`;
  const verb = b.action === 'pull' ? 'Downloading' : 'Pushing';
  if (b.state === 'waiting') return `${head}Waiting`;
  const lead = `${head}${verb} `;
  const tail = `${humanBytes(b.current)}/${humanBytes(b.total)} ${rate(b, now)}`.trimEnd();
  // the bar takes what the bytes and the rate leave of the line (none in a narrow terminal)
  const cells = Math.min(50, width - 1 - lead.length - tail.length - 3);
  if (cells < 10) return `${lead}${tail}`;
  const frac = b.total > 0 ? Math.min(1, b.current / b.total) : 0;
  const filled = Math.floor(frac * cells);
  return `${lead}[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(cells - filled)}] ${tail}`;
}

function plainFinished(b: Blob, now: number): string {
  const head = `${shortDigest(b.id)}: ${finishedWord(b)}`;
  if (b.state !== 'done') return head;
  const r = rate(b, now);
  return `${head} ${humanBytes(b.total)} in ${(((b.end ?? now) - b.start) / 1000).toFixed(1)}s${r ? ` (${r})` : ''}`;
}

/** A renderer writing to `out` (a terminal gets bars unless mode is plain). */
export function transferRenderer(mode: TransferMode, out: NodeJS.WritableStream = process.stderr): TransferRenderer {
  const isTty = (out as NodeJS.WriteStream).isTTY === true;
  const resolved = mode === 'auto' ? (isTty ? 'tty' : 'plain') : mode;
  if (resolved === 'quiet') return { onEvent: () => undefined, finish: () => undefined };
  const blobs = new Map<string, Blob>();
  const settle = (b: Blob, state: Blob['state']): void => {
    b.state = state;
    b.end = Date.now();
    if (state === 'done') b.current = b.total;
  };
  const update = (ev: TransferEvent): Blob | undefined => {
    if (ev.type === 'transfer-start') {
      const b: Blob = { id: ev.id, action: ev.action, total: ev.total, current: 0, start: Date.now(), state: 'moving' };
      blobs.set(ev.id, b);
      return b;
    }
    const b = blobs.get(ev.id);
    if (!b) return undefined;
    if (ev.type === 'transfer-progress') {
      b.current = ev.current;
      if (ev.total > 0) b.total = ev.total;
    } else if (ev.type === 'transfer-done') settle(b, ev.how);
    else {
      settle(b, 'error');
      b.message = ev.message.split('\n')[0];
    }
    return b;
  };
  if (resolved === 'plain') {
    return {
      onEvent: (ev) => {
        const b = update(ev);
        if (!b) return;
        // a blob found at once (exists, mounted) gets one line, not a start and an end
        if (ev.type === 'transfer-start') return;
        if (ev.type === 'transfer-progress') {
          if (!b.announced) {
            b.announced = true;
            out.write(`${shortDigest(b.id)}: ${b.action === 'pull' ? 'Downloading' : 'Pushing'} ${humanBytes(b.total)}\n`);
          }
          return;
        }
        out.write(`${plainFinished(b, Date.now())}\n`);
      },
      finish: () => undefined,
    };
  }
  const tty = out as NodeJS.WriteStream;
  let drawn = 0;
  const render = (): void => {
    const width = Math.max(40, tty.columns ?? 100);
    const now = Date.now();
    const lines = [...blobs.values()].map((b) => {
      const l = barLine(b, now, width);
      return l.length > width - 1 ? `${l.slice(0, width - 2)}…` : l;
    });
    let text = drawn > 0 ? `\x1b[${drawn}A\x1b[0J` : '';
    if (lines.length > 0) text += `${lines.join('\n')}\n`;
    drawn = lines.length;
    if (text) out.write(text);
  };
  const timer = setInterval(render, 200);
  timer.unref();
  return {
    onEvent: (ev) => {
      update(ev);
      if (ev.type !== 'transfer-progress') render();
    },
    finish: () => {
      clearInterval(timer);
      render();
    },
  };
}
