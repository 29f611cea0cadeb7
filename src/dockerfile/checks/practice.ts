/**
 * kiln's own practice rules: DependencyInstallAfterCopyAll and AptListsNotCleaned (per RUN),
 * BaseImageUnpinned (per stage base) and FinalStageRunsAsRoot (the target stage).
 */
import type { Instruction } from '../ast.js';
import { flagValues } from '../instructions.js';
import type { CheckStage } from './from.js';
import type { Reporter } from './report.js';
import { parseImageReference, quote } from './words.js';

/** What the per-stage RUN rules remember: the first COPY of the whole context, and the installs before it. */
export interface InstallOrder {
  copyAll?: Instruction;
  installsBeforeCopyAll: Set<string>;
}

/** The shell text a RUN executes, heredoc bodies included. */
function runScript(inst: Instruction): string {
  return [inst.args.join(' '), ...inst.heredocs.map((h) => h.content)].join('\n');
}

export function runRules(r: Reporter, inst: Instruction, order: InstallOrder): void {
  const script = runScript(inst);
  for (const tool of dependencyInstalls(script)) {
    if (!order.copyAll) order.installsBeforeCopyAll.add(tool.ecosystem);
    else if (!order.installsBeforeCopyAll.has(tool.ecosystem)) {
      r.report(
        'DependencyInstallAfterCopyAll',
        `'${tool.command}' runs after '${oneLine(order.copyAll.original)}' (line ${order.copyAll.startLine}): any source change re-runs the install`,
        inst,
      );
      break;
    }
  }
  if (/\bapt(?:-get)?\b[^;&|\n]*\binstall\b/.test(script) && !/\brm\s[^;&|\n]*\/var\/lib\/apt\/lists/.test(script)) {
    const cached = flagValues(inst, 'mount').some((m) => /type=cache/.test(m) && /(target|dst|destination)=\/var\/lib\/apt(\/lists)?\/?(,|$)/.test(m));
    if (!cached) {
      r.report('AptListsNotCleaned', 'apt-get install without removing /var/lib/apt/lists/* in the same RUN leaves the package lists in the layer', inst);
    }
  }
}

/** BaseImageUnpinned: an image base (not a stage, not scratch) without a tag or digest, or on 'latest'. */
export function baseImageRules(r: Reporter, st: CheckStage): void {
  if (st.base || st.resolvedBase === undefined) return;
  const base = st.resolvedBase;
  if (base === 'scratch' || /\$/.test(base)) return;
  const ref = parseImageReference(base);
  if (!ref || ref.digest) return;
  if (!ref.tag) r.report('BaseImageUnpinned', `Base image ${quote(base)} is not pinned to a tag or digest`, st.from);
  else if (ref.tag === 'latest') r.report('BaseImageUnpinned', `Base image ${quote(base)} uses the mutable 'latest' tag`, st.from);
}

/** FinalStageRunsAsRoot: the target stage's last USER (or its base image's) is root. */
export function finalUserRules(r: Reporter, target: CheckStage, user: { value: string; inst: Instruction } | undefined, imageUser: string | undefined): void {
  const name = target.name ? ` '${target.name}'` : '';
  if (user) {
    if (isRootUser(user.value)) r.report('FinalStageRunsAsRoot', `Final stage${name} switches to USER ${user.value}: the image runs as root`, user.inst);
  } else if (imageUser === undefined || isRootUser(imageUser)) {
    r.report('FinalStageRunsAsRoot', `Final stage${name} sets no USER: the image runs as root`, target.from);
  }
}

function isRootUser(user: string): boolean {
  const name = user.split(':')[0].trim();
  return name === '' || name === 'root' || name === '0';
}

interface InstallCommand {
  ecosystem: string;
  command: string;
}

const INSTALL_PATTERNS: { ecosystem: string; re: RegExp }[] = [
  { ecosystem: 'npm', re: /\bnpm\s+(?:ci|install|i)\b(?![^;&|\n]*\s(?:-g|--global)\b)/ },
  { ecosystem: 'npm', re: /\bpnpm\s+(?:install|i)\b/ },
  { ecosystem: 'npm', re: /\byarn(?:\s+install\b|\s+--|\s*(?:$|&&|;|\|\|))/m },
  { ecosystem: 'pip', re: /\bpip3?\s+install\b[^;&|\n]*\s(?:-r|--requirement)\b/ },
  { ecosystem: 'pip', re: /\bpoetry\s+install\b/ },
  { ecosystem: 'go', re: /\bgo\s+mod\s+download\b/ },
  { ecosystem: 'bundler', re: /\bbundle\s+install\b/ },
  { ecosystem: 'composer', re: /\bcomposer\s+install\b/ },
  { ecosystem: 'cargo', re: /\bcargo\s+(?:build|fetch)\b/ },
];

function dependencyInstalls(script: string): InstallCommand[] {
  const out: InstallCommand[] = [];
  for (const p of INSTALL_PATTERNS) {
    const m = p.re.exec(script);
    if (m) out.push({ ecosystem: p.ecosystem, command: m[0].trim().replace(/\s*(&&|;|\|\|)$/, '') });
  }
  return out;
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > 60 ? `${t.slice(0, 57)}...` : t;
}
