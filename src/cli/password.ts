/**
 * The password of a signing key, for every command that loads or writes one (generate-key-pair,
 * sign, verify's callers, the build's gate): KILN_PASSWORD or COSIGN_PASSWORD, else asked on the
 * controlling terminal without echo. Never an argument: argv is visible to every user of the machine.
 */
import { openSync, writeSync } from 'node:fs';
import tty from 'node:tty';
import { KilnError } from '../errors.js';

/**
 * A password from KILN_PASSWORD or COSIGN_PASSWORD, else asked on the terminal without echo
 * (twice with `confirm`). Never an argument: argv is visible to every user of the machine.
 */
export async function keyPassword(what: string, confirm = false): Promise<string> {
  const fromEnv = process.env.KILN_PASSWORD ?? process.env.COSIGN_PASSWORD;
  if (fromEnv !== undefined) return fromEnv;
  const first = await prompt(`Enter password for ${what}: `, what);
  if (confirm) {
    const again = await prompt(`Enter password for ${what} again: `, what);
    if (again !== first) throw new KilnError('the passwords do not match', { code: 'invalid', hint: 'run the command again and type the same password twice' });
  }
  return first;
}

/** Reads one line from the controlling terminal with echo off. */
function prompt(text: string, what: string): Promise<string> {
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r+');
  } catch {
    fd = -1;
  }
  if (fd < 0 || !tty.isatty(fd)) {
    throw new KilnError(`no password for ${what}: no terminal to ask on`, {
      code: 'invalid',
      hint: 'set KILN_PASSWORD (or COSIGN_PASSWORD) in the environment; kiln never takes a password as an argument',
    });
  }
  const input = new tty.ReadStream(fd);
  input.setRawMode(true);
  writeSync(fd, text);
  return new Promise((resolve, reject) => {
    let typed = '';
    const finish = (): void => {
      input.setRawMode(false);
      writeSync(fd, '\n');
      input.destroy();
    };
    input.on('data', (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(typed);
          return;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          finish();
          reject(new KilnError('cancelled at the password prompt', { code: 'cancelled', exitCode: 130 }));
          return;
        }
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    });
    input.on('error', (e) => {
      finish();
      reject(new KilnError(`cannot read the password from the terminal: ${e.message}`, { code: 'failed' }));
    });
  });
}
