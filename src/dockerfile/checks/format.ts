/** Rendering check findings: human text, a JSON array, or SARIF 2.1.0 for code-scanning tools. */
import type { Dockerfile } from '../ast.js';
import { RULES } from './rules.js';
import type { CheckFinding, CheckFormat } from './types.js';

const MAX_SOURCE_LINES = 6;

export function formatFindings(findings: CheckFinding[], df: Dockerfile, format: CheckFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(findings, null, 2)}\n`;
    case 'sarif':
      return `${JSON.stringify(toSarif(findings, df), null, 2)}\n`;
    case 'text':
      return formatText(findings, df);
  }
}

function formatText(findings: CheckFinding[], df: Dockerfile): string {
  const out: string[] = [];
  const width = String(Math.max(1, ...findings.map((f) => f.endLine))).length;
  for (const f of findings) {
    out.push(`${df.fileName}:${f.line} ${f.rule}: ${f.message}`);
    const last = Math.min(f.endLine, f.line + MAX_SOURCE_LINES - 1);
    for (let ln = f.line; ln <= last; ln++) {
      const text = df.lines[ln - 1];
      if (text !== undefined) out.push(` ${String(ln).padStart(width)} | ${text}`);
    }
    if (last < f.endLine) out.push(` ${' '.repeat(width)} | ...`);
    out.push(`  ${f.description}`);
    out.push(`  ${f.url ?? `see docs/checks.md#${f.rule.toLowerCase()}`}`);
    out.push('');
  }
  const errors = findings.some((f) => f.severity === 'error');
  const noun = errors ? 'error' : 'warning';
  out.push(
    findings.length === 0
      ? 'Check complete, no warnings found.'
      : `Check complete, ${findings.length} ${noun}${findings.length === 1 ? '' : 's'} found.`,
  );
  return `${out.join('\n')}\n`;
}

export interface SarifLog {
  $schema: string;
  version: '2.1.0';
  runs: SarifRun[];
}

export interface SarifRun {
  tool: {
    driver: {
      name: string;
      informationUri?: string;
      rules: {
        id: string;
        shortDescription: { text: string };
        fullDescription: { text: string };
        helpUri?: string;
        defaultConfiguration: { level: 'warning' | 'error' };
        properties: { origin: string; experimental: boolean };
      }[];
    };
  };
  results: {
    ruleId: string;
    ruleIndex: number;
    level: 'warning' | 'error';
    message: { text: string };
    locations: {
      physicalLocation: {
        artifactLocation: { uri: string };
        region: { startLine: number; endLine: number; startColumn?: number };
      };
    }[];
  }[];
}

function artifactUri(fileName: string): string {
  // a relative path stays relative (SARIF resolves it against the scan root); backslashes become slashes
  return fileName.split('\\').map(encodeURIComponent).join('/').replace(/%2F/g, '/');
}

export function toSarif(findings: CheckFinding[], df: Dockerfile): SarifLog {
  const rules = RULES.map((r) => ({
    id: r.name,
    shortDescription: { text: r.short },
    fullDescription: { text: r.explanation },
    ...(r.url ? { helpUri: r.url } : {}),
    defaultConfiguration: { level: 'warning' as const },
    properties: { origin: r.origin, experimental: r.experimental === true },
  }));
  const index = new Map(rules.map((r, i) => [r.id, i]));
  const uri = artifactUri(df.fileName);
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'kiln', rules } },
        results: findings.map((f) => ({
          ruleId: f.rule,
          ruleIndex: index.get(f.rule) ?? -1,
          level: f.severity,
          message: { text: f.message },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri },
                region: {
                  startLine: f.line,
                  endLine: f.endLine,
                  ...(f.column !== undefined ? { startColumn: f.column } : {}),
                },
              },
            },
          ],
        })),
      },
    ],
  };
}
