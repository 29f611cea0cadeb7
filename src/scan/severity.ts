/**
 * An advisory's severity: from its CVSS vectors (OSV `severity[]`, on the record or on the
 * affected package) through their base score, else from the database's own word
 * (`database_specific.severity`, `ecosystem_specific.severity`, Debian's urgency, Ubuntu's
 * priority), else UNKNOWN. Score bands are CVSS v3's qualitative scale: CRITICAL ≥ 9.0,
 * HIGH ≥ 7.0, MEDIUM ≥ 4.0, LOW > 0.
 */
import * as cvssModule from 'ae-cvss-calculator';
import type { OsvAffected, OsvRecord, OsvSeverity } from './osv.js';

export type Severity = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW' | 'UNKNOWN';

/** Most severe first. */
export const SEVERITIES: readonly Severity[] = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'];

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

// a CommonJS bundle marked __esModule: Node's ESM loader puts it under `default`, esbuild's
// CommonJS output gives the exports themselves
type CvssLib = { fromVector(vector: string): { calculateScores(): { base?: number } } | null | undefined };
const cvssLib: CvssLib = ('fromVector' in cvssModule ? cvssModule : (cvssModule as unknown as { default: CvssLib }).default) as CvssLib;

/** The base score of a CVSS v2, v3.0, v3.1 or v4.0 vector; undefined when it does not parse. */
export function cvssBaseScore(vector: string): number | undefined {
  try {
    const v = cvssLib.fromVector(vector.trim());
    const base = v?.calculateScores().base;
    return typeof base === 'number' && Number.isFinite(base) ? base : undefined;
  } catch {
    return undefined;
  }
}

export function severityOfScore(score: number): Severity {
  if (score >= 9) return 'CRITICAL';
  if (score >= 7) return 'HIGH';
  if (score >= 4) return 'MEDIUM';
  if (score > 0) return 'LOW';
  return 'UNKNOWN';
}

/** A database's word for severity (GHSA's MODERATE, Debian's urgency, Ubuntu's priority) as kiln's. */
export function severityOfWord(word: string): Severity {
  const w = word.trim().toLowerCase().replace(/\*+$/, '');
  if (w === 'critical') return 'CRITICAL';
  if (w === 'high' || w === 'important') return 'HIGH';
  if (w === 'medium' || w === 'moderate') return 'MEDIUM';
  if (w === 'low' || w === 'unimportant' || w === 'negligible' || w === 'minor') return 'LOW';
  return 'UNKNOWN';
}

function wordOf(obj: Record<string, unknown> | undefined): string | undefined {
  if (obj === undefined) return undefined;
  for (const key of ['severity', 'urgency', 'priority']) {
    const v = obj[key];
    if (typeof v === 'string' && v !== '') return v;
  }
  return undefined;
}

/** The severity of an advisory for one affected package, and the CVSS score it came from. */
export function advisorySeverity(record: OsvRecord, affected?: OsvAffected): { severity: Severity; score?: number } {
  const vectors: OsvSeverity[] = [...(affected?.severity ?? []), ...(record.severity ?? [])];
  let best: number | undefined;
  for (const s of vectors) {
    if (s.type === 'Ubuntu') continue;
    const score = cvssBaseScore(s.score);
    if (score !== undefined && (best === undefined || score > best)) best = score;
  }
  if (best !== undefined) return { severity: severityOfScore(best), score: best };
  const words = [wordOf(affected?.ecosystem_specific), wordOf(affected?.database_specific), wordOf(record.database_specific), ...vectors.filter((s) => s.type === 'Ubuntu').map((s) => s.score)];
  for (const w of words) {
    if (w === undefined) continue;
    const s = severityOfWord(w);
    if (s !== 'UNKNOWN') return { severity: s };
  }
  return { severity: 'UNKNOWN' };
}
