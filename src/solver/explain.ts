/**
 * "Why did this step run?" Compares the steps of a build with the previous build of the
 * same Dockerfile and target, and says in plain words what changed for each step that
 * was executed rather than taken from the cache.
 */
import type { StepRecord } from './types.js';

export interface Explanation {
  step: string;
  cached: boolean;
  reasons: string[];
}

/**
 * Where a step is in the Dockerfile, "build 3": steps are matched by stage and position.
 * A step no Dockerfile step names is matched by its whole name.
 */
export function stepSlot(s: Pick<StepRecord, 'name' | 'step'>): string {
  return s.step ? `${s.step.stage} ${s.step.index}` : `name:${s.name}`;
}

/** The instruction a step runs, as progress shows it ("RUN make"). */
function instructionText(s: Pick<StepRecord, 'name' | 'step'>): string {
  return s.step?.instruction ?? s.name;
}

export function explainSteps(current: StepRecord[], previous: StepRecord[] | undefined, opts: { noCache?: boolean } = {}): Explanation[] {
  // a history file of a version whose steps carried no identity cannot be matched step by step
  if (previous && current.some((s) => s.step) && !previous.some((s) => s.step)) previous = undefined;
  const prevBySlot = new Map((previous ?? []).map((s) => [stepSlot(s), s]));
  const prevByKey = new Map((previous ?? []).map((s) => [s.key, s]));
  const currentByKey = new Map(current.map((s) => [s.key, s]));
  const out: Explanation[] = [];
  for (const step of current) {
    if (step.cached) {
      out.push({ step: step.name, cached: true, reasons: [] });
      continue;
    }
    const reasons: string[] = [];
    const prev = prevBySlot.get(stepSlot(step));
    if (opts.noCache) {
      reasons.push('the cache was disabled for this step (--no-cache or --no-cache-filter)');
    } else if (!previous) {
      reasons.push('no earlier build of this Dockerfile and target to compare with');
    } else if (!prev) {
      reasons.push('a new step: the previous build had no step here');
    } else if (prev.key === step.key || prevByKey.has(step.key)) {
      reasons.push('its inputs are unchanged, but the cache record is gone (pruned or evicted by the size limit)');
    } else {
      if (step.base && prev.base && step.base.digest !== prev.base.digest && !(step.parentKey && currentByKey.has(step.parentKey) && !currentByKey.get(step.parentKey)!.cached)) {
        reasons.push(`base image ${step.base.ref} now resolves to ${step.base.digest} (was ${prev.base.digest.slice(0, 19)}…)`);
      }
      const before = instructionText(prev);
      const now = instructionText(step);
      if (before !== now) reasons.push(`instruction changed: "${before}" → "${now}"`);
      for (const line of diffArgs(prev.buildArgs, step.buildArgs)) reasons.push(line);
      if (before === now && prev.definition !== step.definition && reasons.length === 0) {
        reasons.push(describeDefinitionChange(prev.definition, step.definition));
      }
      const files = diffFiles(prev.files, step.files);
      if (files) reasons.push(`${now} — ${files}`);
      if (reasons.length === 0 && prev.parentKey !== step.parentKey) {
        const parent = current.find((s) => s.key === step.parentKey);
        reasons.push(parent ? `parent changed: step ${parent.name}` : `parent changed: ${step.parentName ?? 'the previous step'}`);
      }
      if (reasons.length === 0) reasons.push('its cache key changed (an input it reads differs)');
    }
    out.push({ step: step.name, cached: false, reasons });
  }
  return out;
}

function diffArgs(a: Record<string, string> | undefined, b: Record<string, string> | undefined): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  for (const k of [...keys].sort()) {
    const x = a?.[k];
    const y = b?.[k];
    if (x === y) continue;
    if (x === undefined) out.push(`build-arg ${k}: set to ${y}`);
    else if (y === undefined) out.push(`build-arg ${k}: no longer set (was ${x})`);
    else out.push(`build-arg ${k}: ${x} → ${y}`);
  }
  return out;
}

function describeDefinitionChange(before: string, after: string): string {
  try {
    const a = JSON.parse(before) as Record<string, unknown>;
    const b = JSON.parse(after) as Record<string, unknown>;
    const changed = Object.keys({ ...a, ...b }).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
    if (changed.includes('env')) {
      const ea = new Set((a.env as string[]) ?? []);
      const eb = new Set((b.env as string[]) ?? []);
      const added = [...eb].filter((e) => !ea.has(e));
      if (added.length) return `environment changed: ${added.slice(0, 3).join(', ')}`;
    }
    if (changed.length) return `step settings changed: ${changed.join(', ')}`;
  } catch {
    // definitions are JSON; fall through
  }
  return 'step definition changed';
}

function diffFiles(a: Record<string, string> | undefined, b: Record<string, string> | undefined): string | undefined {
  if (!a || !b) return undefined;
  const changed: string[] = [];
  const added: string[] = [];
  const removed: string[] = [];
  for (const [k, v] of Object.entries(b)) {
    if (!(k in a)) added.push(k);
    else if (a[k] !== v) changed.push(k);
  }
  for (const k of Object.keys(a)) if (!(k in b)) removed.push(k);
  const parts: string[] = [];
  const list = (xs: string[]) => xs.slice(0, 5).join(', ') + (xs.length > 5 ? `, … (${xs.length - 5} more)` : '');
  if (changed.length) parts.push(`${changed.length} file${changed.length === 1 ? '' : 's'} changed: ${list(changed)}`);
  if (added.length) parts.push(`${added.length} file${added.length === 1 ? '' : 's'} added: ${list(added)}`);
  if (removed.length) parts.push(`${removed.length} file${removed.length === 1 ? '' : 's'} removed: ${list(removed)}`);
  return parts.length ? parts.join('; ') : undefined;
}
