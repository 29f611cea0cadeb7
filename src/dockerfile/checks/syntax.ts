/**
 * The rules that read only how the file is written, BuildKit's parse-time ones (casing,
 * MAINTAINER, descriptions) and the stage-name rules run over every stage.
 */
import type { Instruction } from '../ast.js';
import { argPairs, fromWords, writtenKeyword } from '../instructions.js';
import type { StageDecl } from '../stages.js';
import type { Reporter } from './report.js';
import { quote } from './words.js';

const RESERVED_STAGE_NAMES = new Set(['context', 'scratch']);

/** InvalidDefinitionDescription: the comment right above a named stage or an ARG should start with its name. */
function checkDescription(r: Reporter, inst: Instruction, what: 'ARG' | 'FROM', keys: string[]): void {
  const last = inst.comments[inst.comments.length - 1];
  if (last === undefined || keys.length === 0 || keys.includes(last.split(' ')[0])) return;
  r.report('InvalidDefinitionDescription', `Comment for ${what} should follow the format: \`# ${keys.length > 1 ? '<arg_key>' : keys[0]} <description>\``, inst);
}

/** The rules BuildKit runs while parsing (also after a parse error, on what came before it). */
export function parseTimeRules(r: Reporter, metaArgs: readonly Instruction[], stages: readonly StageDecl[]): void {
  for (const st of stages) {
    const fromWord = writtenKeyword(st.from);
    const { asWord, stageNameAsWritten } = fromWords(st.from);
    if (asWord !== undefined && stageNameAsWritten !== undefined) {
      const fromLower = fromWord === fromWord.toLowerCase();
      const fromUpper = fromWord === fromWord.toUpperCase();
      if ((fromLower && asWord !== asWord.toLowerCase()) || (!fromLower && fromUpper && asWord !== asWord.toUpperCase())) {
        r.report('FromAsCasing', `'${asWord}' and '${fromWord}' keywords' casing do not match`, st.from);
      }
      if (stageNameAsWritten !== stageNameAsWritten.toLowerCase()) r.report('StageNameCasing', `Stage name '${stageNameAsWritten}' should be lowercase`, st.from);
    }
    if (st.name !== undefined) checkDescription(r, st.from, 'FROM', [st.name]);
    for (const c of st.commands) {
      if (c.keyword === 'maintainer') r.report('MaintainerDeprecated', 'Maintainer instruction is deprecated in favor of using label', c);
      if (c.keyword === 'arg') checkDescription(r, c, 'ARG', argPairs(c).map((kv) => kv.key));
    }
  }
  for (const inst of metaArgs) checkDescription(r, inst, 'ARG', argPairs(inst).map((kv) => kv.key));
}

/** ReservedStageName, DuplicateStageName and ConsistentInstructionCasing, over the whole file. */
export function fileRules(r: Reporter, stages: readonly StageDecl[]): void {
  const seenNames = new Set<string>();
  for (const st of stages) {
    if (!st.name) continue;
    if (RESERVED_STAGE_NAMES.has(st.name)) {
      r.report('ReservedStageName', `Stage name should not use the same name as reserved stage ${quote(st.name)}`, st.from, 'global');
    }
    if (seenNames.has(st.name)) r.report('DuplicateStageName', `Duplicate stage name ${quote(st.name)}, stage names should be unique`, st.from, 'global');
    seenNames.add(st.name);
  }
  let lower = 0;
  let upper = 0;
  const all = stages.flatMap((st) => [st.from, ...st.commands]);
  for (const inst of all) {
    const k = writtenKeyword(inst);
    if (!isSelfConsistentCasing(k)) continue;
    if (k === k.toLowerCase()) lower++;
    else upper++;
  }
  const majorityLower = lower > upper;
  for (const inst of all) {
    const k = writtenKeyword(inst);
    if (majorityLower && k !== k.toLowerCase()) {
      r.report('ConsistentInstructionCasing', `Command '${k}' should match the case of the command majority (lowercase)`, inst, 'global');
    } else if (!majorityLower && k !== k.toUpperCase()) {
      r.report('ConsistentInstructionCasing', `Command '${k}' should match the case of the command majority (uppercase)`, inst, 'global');
    }
  }
}

function isSelfConsistentCasing(s: string): boolean {
  return s === s.toLowerCase() || s === s.toUpperCase();
}
