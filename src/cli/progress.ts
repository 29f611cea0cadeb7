import type { ProgressEvent } from '../solver/solver.js';

export type ProgressMode = 'auto' | 'plain' | 'tty' | 'json' | 'quiet';

/**
 * Renders solver events. plain: BuildKit's "#N" lines with timestamps per step;
 * json: one event per line; quiet: nothing. (A live tty view is plain with colour for now.)
 */
export function progressRenderer(mode: ProgressMode, out: NodeJS.WritableStream = process.stderr): {
  onEvent: (ev: ProgressEvent) => void;
  finish: () => void;
} {
  const isTty = (out as NodeJS.WriteStream).isTTY === true;
  const resolved = mode === 'auto' ? (isTty ? 'tty' : 'plain') : mode;
  if (resolved === 'tty') return ttyRenderer(out as NodeJS.WriteStream);
  const started = new Map<number, number>();
  const partial = new Map<number, string>();
  const t0 = Date.now();
  if (resolved === 'quiet') return { onEvent: () => undefined, finish: () => undefined };
  if (resolved === 'json') {
    return {
      onEvent: (ev) => {
        const rec: Record<string, unknown> = { ...ev, ts: new Date().toISOString() };
        if (ev.type === 'log') rec.data = ev.data.toString('utf8');
        out.write(`${JSON.stringify(rec)}\n`);
      },
      finish: () => undefined,
    };
  }
  const secs = (ms: number) => (ms / 1000).toFixed(3);
  const flushLine = (id: number, line: string) => {
    const s = started.get(id) ?? t0;
    out.write(`#${id} ${secs(Date.now() - s)} ${line}\n`);
  };
  return {
    onEvent: (ev) => {
      switch (ev.type) {
        case 'start':
          started.set(ev.id, ev.time);
          out.write(`#${ev.id} ${ev.name}\n`);
          break;
        case 'cached':
          out.write(`#${ev.id} ${ev.name}\n#${ev.id} CACHED\n\n`);
          break;
        case 'log': {
          const text = (partial.get(ev.id) ?? '') + ev.data.toString('utf8');
          const lines = text.split('\n');
          partial.set(ev.id, lines.pop() ?? '');
          for (const l of lines) flushLine(ev.id, l.replace(/\r$/, ''));
          break;
        }
        case 'done': {
          const rest = partial.get(ev.id);
          if (rest) flushLine(ev.id, rest);
          partial.delete(ev.id);
          out.write(`#${ev.id} DONE ${(ev.ms / 1000).toFixed(1)}s\n\n`);
          break;
        }
        case 'error': {
          const rest = partial.get(ev.id);
          if (rest) flushLine(ev.id, rest);
          partial.delete(ev.id);
          out.write(`#${ev.id} ERROR: ${ev.message.split('\n')[0]}\n\n`);
          break;
        }
      }
    },
    finish: () => undefined,
  };
}

interface TtyStep {
  id: number;
  name: string;
  start: number;
  end?: number;
  cached?: boolean;
  error?: string;
  tail: string[];
  partial: string;
}

/**
 * A live view like BuildKit's: a header with elapsed time and step counter, finished
 * steps with their duration or CACHED, and the last lines of output of running steps.
 */
function ttyRenderer(out: NodeJS.WriteStream): { onEvent: (ev: ProgressEvent) => void; finish: () => void } {
  const t0 = Date.now();
  const steps: TtyStep[] = [];
  const byId = new Map<number, TtyStep>();
  let drawn = 0;
  let flushed = 0;
  const width = () => Math.max(40, out.columns ?? 100);
  const clip = (s: string) => (s.length > width() - 1 ? `${s.slice(0, width() - 2)}…` : s);
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  const line = (s: TtyStep) => {
    if (s.cached) return ` => CACHED ${s.name}`;
    const d = secs((s.end ?? Date.now()) - s.start);
    const mark = s.error ? ' ERROR' : '';
    const name = ` => ${s.name}`;
    const pad = Math.max(1, width() - name.length - d.length - mark.length - 2);
    return `${clip(name)}${' '.repeat(pad > 0 && name.length < width() - d.length - 4 ? pad : 1)}${d}${mark}`;
  };
  const render = () => {
    // finished steps at the top of the block are written once and scroll away
    let text = '';
    if (drawn > 0) text += `\x1b[${drawn}A\x1b[0J`;
    while (flushed < steps.length && (steps[flushed].end !== undefined || steps[flushed].cached)) {
      text += `${clip(line(steps[flushed]))}\n`;
      flushed++;
    }
    const live: string[] = [];
    const done = steps.filter((s) => s.end !== undefined || s.cached).length;
    live.push(`[+] Building ${secs(Date.now() - t0)} (${done}/${steps.length})`);
    for (const s of steps.slice(flushed)) {
      live.push(clip(line(s)));
      if (s.end === undefined && !s.cached) for (const t of s.tail.slice(-6)) live.push(clip(`\x1b[2m    ${t}\x1b[0m`));
    }
    text += `${live.join('\n')}\n`;
    drawn = live.length;
    out.write(text);
  };
  const timer = setInterval(render, 150);
  timer.unref();
  return {
    onEvent: (ev) => {
      switch (ev.type) {
        case 'start': {
          const s: TtyStep = { id: ev.id, name: ev.name, start: ev.time, tail: [], partial: '' };
          steps.push(s);
          byId.set(ev.id, s);
          break;
        }
        case 'cached': {
          const s: TtyStep = { id: ev.id, name: ev.name, start: Date.now(), cached: true, tail: [], partial: '' };
          steps.push(s);
          byId.set(ev.id, s);
          break;
        }
        case 'log': {
          const s = byId.get(ev.id);
          if (!s) break;
          const lines = (s.partial + ev.data.toString('utf8')).split('\n');
          s.partial = lines.pop() ?? '';
          s.tail.push(...lines.map((l) => l.replace(/\r/g, '')));
          if (s.tail.length > 20) s.tail.splice(0, s.tail.length - 20);
          break;
        }
        case 'done': {
          const s = byId.get(ev.id);
          if (s) s.end = s.start + ev.ms;
          break;
        }
        case 'error': {
          const s = byId.get(ev.id);
          if (s) {
            s.end = Date.now();
            s.error = ev.message;
          }
          break;
        }
      }
    },
    finish: () => {
      clearInterval(timer);
      for (const s of steps) if (s.end === undefined && !s.cached) s.end = Date.now();
      render();
    },
  };
}
