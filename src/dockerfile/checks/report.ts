/**
 * Where findings are collected: which rules are enabled (the configuration, with the
 * `# check=` comment above an instruction), each finding's location and wording, and the
 * result (deduplicated, in line order).
 */
import type { KilnError } from '../../errors.js';
import type { Dockerfile, Instruction } from '../ast.js';
import { withCommentConfig, type CheckConfig } from './config.js';
import { ruleInfo } from './rules.js';
import type { CheckFinding, CheckResult } from './types.js';

export type ReportAt = Instruction | { startLine: number; endLine: number };

export class Reporter {
  private readonly findings: CheckFinding[] = [];
  private readonly scoped = new Map<Instruction, CheckConfig>();

  constructor(
    private readonly df: Dockerfile,
    readonly cfg: CheckConfig,
  ) {}

  private enabled(rule: string, scope: Instruction | 'global'): boolean {
    let c = this.cfg;
    if (scope !== 'global') {
      c = this.scoped.get(scope) ?? withCommentConfig(this.cfg, scope.comments);
      this.scoped.set(scope, c);
    }
    const info = ruleInfo(rule);
    if (info.experimental) return c.experimentalAll || c.experimental.has(rule);
    return !c.skipAll && !c.skip.has(rule);
  }

  /**
   * Records a finding at `at`. `scope` is the instruction whose `# check=` comment applies
   * (default `at` itself when it is an instruction); 'global' for the rules BuildKit runs
   * over the whole file, which only the directive configures.
   */
  report(rule: string, message: string, at: ReportAt, scope?: Instruction | 'global'): void {
    if (!this.enabled(rule, scope ?? ('comments' in at ? at : 'global'))) return;
    const info = ruleInfo(rule);
    const line = this.df.lines[at.startLine - 1];
    const col = line !== undefined ? Math.max(1, line.search(/\S/) + 1) : undefined;
    this.findings.push({
      rule,
      message,
      line: at.startLine,
      endLine: at.endLine,
      ...(col !== undefined ? { column: col } : {}),
      severity: this.cfg.error ? 'error' : 'warning',
      ...(info.url ? { url: info.url } : {}),
      description: info.explanation,
    });
  }

  /** The findings so far, deduplicated and in line order; failed on `error` or when findings are errors. */
  result(error?: KilnError): CheckResult {
    const deduped = dedupe(this.findings);
    return { findings: sortFindings(deduped), failed: error !== undefined || (this.cfg.error && deduped.length > 0), ...(error ? { error } : {}) };
  }
}

function dedupe(findings: CheckFinding[]): CheckFinding[] {
  const seen = new Set<string>();
  return findings.filter((f) => {
    const k = `${f.rule}\0${f.line}\0${f.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function sortFindings(findings: CheckFinding[]): CheckFinding[] {
  return findings
    .map((f, i) => ({ f, i }))
    .sort((a, b) => a.f.line - b.f.line || a.i - b.i)
    .map((x) => x.f);
}
