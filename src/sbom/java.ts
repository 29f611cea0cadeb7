/**
 * Java archives (jar, war, ear): the Maven coordinates in META-INF/maven/GROUP/ARTIFACT/
 * pom.properties, in the archive and in the archives it carries (WEB-INF/lib/*.jar, Spring
 * Boot's BOOT-INF/lib/*.jar, an ear's modules), read with fflate from memory. Only those
 * members are inflated; a member's declared size above NESTED_MAX is skipped (a zip bomb
 * inflates nothing), and nesting stops at MAX_DEPTH.
 */
import { unzipSync } from 'fflate';
import type { Found } from './ecosystems.js';

/** Largest nested archive or pom.properties inflated into memory. */
export const NESTED_MAX = 64 << 20;
const MAX_DEPTH = 4;
const POM = /^META-INF\/maven\/[^/]+\/[^/]+\/pom\.properties$/;
const ARCHIVE = /\.(jar|war|ear)$/i;

function properties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([^#!=:\s][^=:]*?)\s*[=:]\s*(.*?)\s*$/.exec(line);
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

/** The Maven packages in an archive's bytes; `inner` names the nested archive a package came from. */
export function javaPackages(data: Uint8Array, inner?: string, depth = 0): Found[] {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(data, { filter: (f) => f.originalSize <= NESTED_MAX && (POM.test(f.name) || (depth < MAX_DEPTH && ARCHIVE.test(f.name))) });
  } catch {
    // not a zip, or a damaged one: nothing can be said about it
    return [];
  }
  const out: Found[] = [];
  for (const name of Object.keys(files).sort()) {
    if (POM.test(name)) {
      const p = properties(Buffer.from(files[name]).toString('utf8'));
      const groupId = p.get('groupId');
      const artifactId = p.get('artifactId');
      const version = p.get('version');
      if (groupId && artifactId && version) out.push({ name: `${groupId}:${artifactId}`, version, ecosystem: 'maven', groupId, ...(inner ? { inner } : {}) });
    } else {
      out.push(...javaPackages(files[name], inner ? `${inner}!/${name}` : name, depth + 1));
    }
  }
  return out;
}
