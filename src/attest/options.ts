/**
 * buildx's attestation flags: `--sbom=true|false`, `--provenance=true|false|mode=min|max[,…]`
 * and `--attest type=sbom|provenance[,mode=…][,disabled=true]` (repeatable; the last word on a
 * type wins), as the build options they ask for.
 */
import { splitCsvFields } from '../csv.js';
import { KilnError } from '../errors.js';

export interface AttestationRequest {
  sbom?: boolean;
  provenance?: { mode: 'min' | 'max'; builderId?: string };
}

function bool(value: string): boolean | undefined {
  if (/^(true|1)$/i.test(value)) return true;
  if (/^(false|0)$/i.test(value)) return false;
  return undefined;
}

/** The key=value fields of one attestation spec; a bare true/false is `disabled=` its opposite. */
function fields(value: string, flag: string): Map<string, string> {
  const b = bool(value);
  if (b !== undefined) return new Map([['disabled', String(!b)]]);
  const out = new Map<string, string>();
  for (const field of splitCsvFields(value)) {
    const eq = field.indexOf('=');
    if (eq <= 0) throw new KilnError(`${flag} ${JSON.stringify(value)}: "${field}" is not KEY=VALUE`, { code: 'invalid', hint: `write ${flag}=true, ${flag}=false or KEY=VALUE pairs such as mode=max` });
    out.set(field.slice(0, eq).trim().toLowerCase(), field.slice(eq + 1).trim());
  }
  return out;
}

function disabled(f: Map<string, string>, flag: string): boolean {
  const d = f.get('disabled');
  if (d === undefined) return false;
  const b = bool(d);
  if (b === undefined) throw new KilnError(`${flag}: disabled=${d} is not true or false`, { code: 'invalid' });
  return b;
}

function provenanceFrom(f: Map<string, string>, flag: string): AttestationRequest['provenance'] | null {
  for (const k of f.keys()) {
    if (!['type', 'mode', 'disabled', 'builder-id', 'version'].includes(k)) {
      throw new KilnError(`${flag}: unknown provenance option "${k}"`, { code: 'invalid', hint: 'kiln knows mode=min|max, builder-id=URI, version=v1 and disabled=true|false' });
    }
  }
  if (disabled(f, flag)) return null;
  const mode = f.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw new KilnError(`${flag}: mode=${mode} is neither min nor max`, { code: 'invalid', hint: 'write mode=min (no build-arg values) or mode=max (build args, secret ids, the steps)' });
  const version = f.get('version');
  if (version !== undefined && version !== 'v1') throw new KilnError(`${flag}: SLSA provenance ${version} is not supported`, { code: 'unsupported', hint: 'kiln writes SLSA provenance v1 (version=v1)' });
  const builderId = f.get('builder-id');
  return { mode, ...(builderId ? { builderId } : {}) };
}

function sbomFrom(f: Map<string, string>, flag: string): boolean {
  for (const k of f.keys()) {
    if (!['type', 'disabled'].includes(k)) {
      throw new KilnError(`${flag}: unknown sbom option "${k}"`, { code: 'invalid', hint: 'kiln catalogues the image itself: only disabled=true|false is known (no generator=)' });
    }
  }
  return !disabled(f, flag);
}

/** The attestations the flags ask for; --sbom and --provenance after --attest, as buildx applies them. */
export function parseAttestationFlags(flags: { sbom?: string | boolean; provenance?: string | boolean; attest?: string[] }): AttestationRequest {
  const out: AttestationRequest = {};
  const apply = (type: string, f: Map<string, string>, flag: string): void => {
    if (type === 'sbom') out.sbom = sbomFrom(f, flag);
    else if (type === 'provenance') {
      const p = provenanceFrom(f, flag);
      if (p) out.provenance = p;
      else delete out.provenance;
    } else throw new KilnError(`${flag}: unknown attestation type "${type}"`, { code: 'invalid', hint: 'use --attest type=sbom or --attest type=provenance,mode=min|max' });
  };
  for (const spec of flags.attest ?? []) {
    const f = fields(spec, '--attest');
    const type = f.get('type');
    if (!type) throw new KilnError(`--attest ${JSON.stringify(spec)} has no type=`, { code: 'invalid', hint: 'write --attest type=sbom or --attest type=provenance,mode=max' });
    apply(type, f, '--attest');
  }
  const one = (value: string | boolean | undefined, type: 'sbom' | 'provenance'): void => {
    if (value === undefined) return;
    const text = value === true ? 'true' : value === false ? 'false' : value;
    if (type === 'sbom' && bool(text) === undefined && !text.includes('=')) {
      throw new KilnError(`--sbom takes true or false, got "${text}"`, { code: 'invalid', hint: 'write --sbom=true (with "=": a word after a bare --sbom is read as its value)' });
    }
    if (type === 'provenance' && bool(text) === undefined && !text.includes('=')) {
      throw new KilnError(`--provenance takes true, false or mode=min|max, got "${text}"`, { code: 'invalid', hint: 'write --provenance=mode=max (with "=": a word after a bare --provenance is read as its value)' });
    }
    apply(type, fields(text, `--${type}`), `--${type}`);
  };
  one(flags.sbom, 'sbom');
  one(flags.provenance, 'provenance');
  return out;
}
