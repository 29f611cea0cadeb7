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
  const resolved = mode === 'auto' ? 'plain' : mode;
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
