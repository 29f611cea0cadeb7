/**
 * The gate flags of kiln build (--sign-key, --scan-db, --scan-severity, --scan-exit-code,
 * --scan-secrets, --scan-ignorefile, --scan-ignore-unfixed) as BuildOptions.gate: everything
 * the gate needs is read here, before the build starts, so a missing database or a wrong key
 * password fails at once. The key's password comes from KILN_PASSWORD or COSIGN_PASSWORD, or
 * is asked at the terminal (never from argv).
 */
import { KilnError } from '../errors.js';
import { gateTable, prepareGate, type GateOptions, type GateReport, type SignedPushResult } from '../gate/index.js';
import type { TransferEvent } from '../registry/types.js';
import { keyPassword } from './password.js';

/** The flag values (commander's camelCase names). */
export interface GateFlags {
  signKey?: string;
  scanDb?: string;
  scanSeverity?: string;
  scanExitCode?: string;
  scanSecrets?: boolean;
  scanIgnorefile?: string;
  scanIgnoreUnfixed?: boolean;
}

/** Whether any gate flag was given. */
export function gateRequested(o: GateFlags): boolean {
  return o.signKey !== undefined || o.scanDb !== undefined || o.scanSecrets === true;
}


/** The gate the flags ask for (undefined without any), loaded now. */
export async function gateFromFlags(
  o: GateFlags,
  ctx: { root: string; insecureRegistries: string[]; push: boolean; names: string[]; progress?: (e: TransferEvent) => void; warn: (m: string) => void; outputPushes?: boolean },
): Promise<GateOptions | undefined> {
  if (!gateRequested(o)) {
    for (const [flag, set] of [['--scan-severity', o.scanSeverity], ['--scan-exit-code', o.scanExitCode], ['--scan-ignorefile', o.scanIgnorefile], ['--scan-ignore-unfixed', o.scanIgnoreUnfixed]] as const) {
      if (set !== undefined) throw new KilnError(`${flag} needs a scan to apply to`, { code: 'invalid', hint: 'add --scan-db DB (vulnerabilities) or --scan-secrets' });
    }
    return undefined;
  }
  if (ctx.outputPushes) {
    throw new KilnError('the gate pushes with --push only: an -o output with push=true (type=registry) would push around it', {
      code: 'invalid',
      hint: 'use --push -t REGISTRY/REPOSITORY:TAG with the gate flags',
    });
  }
  if (o.signKey !== undefined && !ctx.push) {
    throw new KilnError('--sign-key signs what is pushed, and this build pushes nothing', { code: 'invalid', hint: 'add --push (with -t REGISTRY/REPOSITORY:TAG), or sign a pushed image with kiln sign' });
  }
  const exitCode = o.scanExitCode === undefined ? undefined : Number(o.scanExitCode);
  if (exitCode !== undefined && (!Number.isInteger(exitCode) || exitCode < 0 || exitCode > 255)) {
    throw new KilnError(`--scan-exit-code must be a whole number from 0 to 255, got "${o.scanExitCode}"`, { code: 'invalid', hint: 'write --scan-exit-code 1 (0 only reports the findings)' });
  }
  return prepareGate({
    root: ctx.root,
    insecureRegistries: ctx.insecureRegistries,
    ...(o.signKey !== undefined ? { keyFile: o.signKey, password: (keyFile: string) => keyPassword(`private key ${keyFile}`) } : {}),
    ...(o.scanDb !== undefined ? { db: o.scanDb } : {}),
    secrets: o.scanSecrets === true,
    ...(o.scanSeverity !== undefined ? { severity: o.scanSeverity } : {}),
    ...(exitCode !== undefined ? { exitCode } : {}),
    ...(o.scanIgnorefile !== undefined ? { ignoreFile: o.scanIgnorefile } : {}),
    ignoreUnfixed: o.scanIgnoreUnfixed === true,
    ...(ctx.push ? { push: { names: ctx.names, progress: ctx.progress, warn: ctx.warn } } : {}),
    onReport: (r) => reportGate(r, ctx.warn),
    onPushed: (r) => printSigned(r),
  });
}

/** A passing gate's one line; a failing one is the build's error (its table in the detail). */
function reportGate(report: GateReport, warn: (m: string) => void): void {
  const n = report.platforms.length;
  if (report.failing === 0) process.stderr.write(`gate: ${n} platform${n === 1 ? '' : 's'} scanned, nothing at the severities that fail\n`);
  else if (!report.failed) {
    warn(`gate: ${report.failing} finding(s), let through (--scan-exit-code 0)`);
    process.stderr.write(`${gateTable(report)}\n`);
  }
}

function printSigned(result: SignedPushResult): void {
  for (const s of result.signatures) process.stderr.write(`signed ${s.subject} (${s.tag})\n`);
  for (const w of result.warnings) process.stderr.write(`WARNING: ${w}\n`);
}
