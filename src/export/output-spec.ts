/**
 * `-o/--output`, `--annotation`, `--push` and `--load` as buildx spells them: an output is a
 * CSV list of key=value fields (`type=oci,dest=out.tar,compression=zstd`), or a bare `DIR`
 * (type=local) or `-` (a tar of the filesystem on stdout). Parsing only: what each output
 * becomes is export/outputs.ts.
 */
import { KilnError } from '../errors.js';
import { splitCsvFields } from '../csv.js';
import { parsePlatform } from '../oci/platform.js';
import type { Platform } from '../oci/types.js';
import type { ExportCompression } from './types.js';

export type OutputType = 'image' | 'registry' | 'oci' | 'docker' | 'local' | 'tar';
export const OUTPUT_TYPES: readonly OutputType[] = ['image', 'registry', 'oci', 'docker', 'local', 'tar'];

/** Where an annotation goes (BuildKit's annotation types). */
export type AnnotationTarget = 'manifest' | 'manifest-descriptor' | 'index' | 'index-descriptor';
const ANNOTATION_TARGETS: readonly AnnotationTarget[] = ['manifest', 'manifest-descriptor', 'index', 'index-descriptor'];

export interface AnnotationSpec {
  target: AnnotationTarget;
  /** Only this platform's manifest (or its descriptor); every platform when absent. */
  platform?: Platform;
  key: string;
  value: string;
}

export interface OutputSpec {
  type: OutputType;
  /** A path, or "-" for stdout (oci, docker, tar). */
  dest?: string;
  /** oci/docker: false writes an OCI layout directory instead of a tar (default true). */
  tar?: boolean;
  /** name=: the names the image gets (image, registry, oci, docker); default the -t names. */
  names?: string[];
  /** image: push=true pushes to every name (type=registry sets it). */
  push?: boolean;
  compression?: ExportCompression;
  /** false: docker media types for manifest, list, config and layers (default true). */
  ociMediatypes?: boolean;
  annotations: AnnotationSpec[];
  /** rewrite-timestamp=true: layer file times clamped to SOURCE_DATE_EPOCH. */
  rewriteTimestamp?: boolean;
}

/** The keys each output type takes (annotation keys besides). */
const KEYS: Record<OutputType, string[]> = {
  image: ['type', 'name', 'push', 'compression', 'compression-level', 'force-compression', 'oci-mediatypes', 'rewrite-timestamp'],
  registry: ['type', 'name', 'compression', 'compression-level', 'force-compression', 'oci-mediatypes', 'rewrite-timestamp'],
  oci: ['type', 'dest', 'tar', 'name', 'compression', 'compression-level', 'force-compression', 'oci-mediatypes', 'rewrite-timestamp'],
  // a docker archive is rebuilt from config and layers (uncompressed, docker's own types)
  docker: ['type', 'dest', 'name', 'rewrite-timestamp'],
  local: ['type', 'dest'],
  tar: ['type', 'dest'],
};

const invalid = (text: string, what: string, hint: string): KilnError => new KilnError(`-o "${text}": ${what}`, { code: 'invalid', hint });

function bool(text: string, key: string, value: string): boolean {
  if (/^(true|1)$/i.test(value)) return true;
  if (/^(false|0)$/i.test(value)) return false;
  throw invalid(text, `${key}=${value} is not true or false`, `write ${key}=true or ${key}=false`);
}

/**
 * An annotation key of an output (`annotation.K`, `annotation-index.K`,
 * `annotation[linux/arm64].K`, `annotation-manifest-descriptor[linux/amd64].K`), or undefined
 * when the field is not one.
 */
function annotationField(text: string, key: string, value: string): AnnotationSpec | undefined {
  const m = /^annotation(?:-([a-z-]+))?(?:\[([^\]]*)\])?\.(.+)$/.exec(key);
  if (!m) {
    if (key.startsWith('annotation')) throw invalid(text, `"${key}" is not an annotation option`, 'write annotation.KEY=VALUE, annotation-index.KEY=VALUE, annotation-manifest[linux/amd64].KEY=VALUE, …');
    return undefined;
  }
  const target = (m[1] ?? 'manifest') as AnnotationTarget;
  if (!ANNOTATION_TARGETS.includes(target)) throw invalid(text, `unknown annotation type "${m[1]}" in ${key}`, `use one of annotation-${ANNOTATION_TARGETS.join(', annotation-')}`);
  const platform = m[2] === undefined ? undefined : parsePlatform(m[2], `the platform of ${key}`);
  if (platform && (target === 'index' || target === 'index-descriptor')) throw invalid(text, `${key}: an index annotation cannot name a platform`, `write annotation-${target}.${m[3]}=…`);
  return { target, platform, key: m[3], value };
}

/** Parses compression, compression-level and force-compression together (the level's range depends on the compression). */
function compressionOf(text: string, fields: Map<string, string>): ExportCompression | undefined {
  const name = fields.get('compression');
  const levelText = fields.get('compression-level');
  const forceText = fields.get('force-compression');
  if (name === undefined && levelText === undefined && forceText === undefined) return undefined;
  const compression = name === undefined ? 'gzip' : name === 'uncompressed' ? 'none' : name;
  if (compression !== 'gzip' && compression !== 'zstd' && compression !== 'none') throw invalid(text, `unknown compression "${name}"`, 'use compression=gzip, zstd or uncompressed');
  const out: ExportCompression = { compression };
  if (levelText !== undefined) {
    const [lo, hi] = compression === 'zstd' ? [1, 22] : [0, 9];
    const level = Number(levelText);
    if (compression === 'none') throw invalid(text, 'compression-level needs a compression', 'write compression=gzip or compression=zstd with it');
    if (!/^\d+$/.test(levelText) || level < lo || level > hi) throw invalid(text, `compression-level=${levelText} is not a level of ${compression} (${lo}–${hi})`, `write compression-level=N with N from ${lo} to ${hi}`);
    out.level = level;
  }
  if (forceText !== undefined) out.force = bool(text, 'force-compression', forceText);
  return out;
}

/** One `-o` value → an OutputSpec; unknown types and keys are a KilnError naming what each type takes. */
export function parseOutput(text: string): OutputSpec {
  if (!text.includes('=')) {
    if (text.trim() === '') throw invalid(text, 'the output is empty', 'write -o type=local,dest=DIR, -o DIR or -o type=oci,dest=FILE');
    // buildx: "-" is a tar of the filesystem on stdout, anything else a directory
    return text === '-' ? { type: 'tar', dest: '-', annotations: [] } : { type: 'local', dest: text, annotations: [] };
  }
  const fields = new Map<string, string>();
  const annotations: AnnotationSpec[] = [];
  for (const field of splitCsvFields(text)) {
    const eq = field.indexOf('=');
    if (eq < 0) throw invalid(text, `"${field}" is not key=value`, 'write -o type=TYPE,key=value,…');
    const key = field.slice(0, eq).trim();
    const value = field.slice(eq + 1);
    const annotation = annotationField(text, key, value);
    if (annotation) annotations.push(annotation);
    else fields.set(key.toLowerCase(), value);
  }
  const typeText = fields.get('type');
  if (typeText === undefined) throw invalid(text, 'no type=', `write -o type=${OUTPUT_TYPES.join('|')},…`);
  let type = typeText as OutputType;
  if (!OUTPUT_TYPES.includes(type)) throw invalid(text, `unknown output type "${typeText}"`, `use type=${OUTPUT_TYPES.join(', type=')}`);
  for (const key of fields.keys()) {
    if (!KEYS[type].includes(key)) throw invalid(text, `type=${type} has no option "${key}"`, `type=${type} takes ${KEYS[type].filter((k) => k !== 'type').join(', ')}${type === 'local' || type === 'tar' || type === 'docker' ? '' : ' and annotation.KEY=VALUE'}`);
  }
  if (annotations.length > 0 && (type === 'local' || type === 'tar' || type === 'docker')) {
    throw invalid(text, type === 'docker' ? 'a docker archive has no place for annotations' : `type=${type} writes a filesystem, which has no annotations`, 'annotate an image output: type=image, registry or oci');
  }
  const dest = fields.get('dest');
  // buildx: a local export to stdout is the tar of the same tree
  if (type === 'local' && dest === '-') type = 'tar';
  if ((type === 'local' || type === 'tar' || type === 'oci') && (dest === undefined || dest === '')) {
    throw invalid(text, `type=${type} needs dest=`, type === 'local' ? 'write dest=DIR' : 'write dest=FILE, or dest=- for stdout');
  }
  const spec: OutputSpec = { type, annotations };
  if (dest !== undefined) spec.dest = dest;
  const tar = fields.get('tar');
  if (tar !== undefined) spec.tar = bool(text, 'tar', tar);
  if (spec.tar === false && dest === '-') throw invalid(text, 'tar=false writes a directory, which cannot go to stdout', 'write dest=DIR');
  const name = fields.get('name');
  if (name !== undefined) spec.names = name.split(',').map((n) => n.trim()).filter(Boolean);
  if (type === 'registry') spec.push = true;
  const push = fields.get('push');
  if (push !== undefined) spec.push = bool(text, 'push', push);
  const compression = compressionOf(text, fields);
  if (compression) spec.compression = compression;
  const oci = fields.get('oci-mediatypes');
  if (oci !== undefined) spec.ociMediatypes = bool(text, 'oci-mediatypes', oci);
  if (spec.ociMediatypes === false && compression?.compression === 'zstd') {
    throw invalid(text, 'zstd layers have no docker media type', 'drop oci-mediatypes=false, or use compression=gzip');
  }
  const rewrite = fields.get('rewrite-timestamp');
  if (rewrite !== undefined) spec.rewriteTimestamp = bool(text, 'rewrite-timestamp', rewrite);
  return spec;
}

/**
 * One `--annotation` value, buildx's syntax: `KEY=VALUE`, or `TYPE[,TYPE…][[PLATFORM]]:KEY=VALUE`
 * with TYPE manifest (the default), manifest-descriptor, index or index-descriptor.
 */
export function parseAnnotationFlag(text: string): AnnotationSpec[] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new KilnError(`--annotation "${text}" is not KEY=VALUE`, { code: 'invalid', hint: 'write --annotation KEY=VALUE or --annotation index,manifest:KEY=VALUE' });
  const head = text.slice(0, eq);
  const value = text.slice(eq + 1);
  const m = /^([a-z,-]+)(?:\[([^\]]*)\])?:(.+)$/.exec(head);
  if (!m || !m[1].split(',').every((t) => (ANNOTATION_TARGETS as readonly string[]).includes(t))) {
    return [{ target: 'manifest', key: head, value }];
  }
  const platform = m[2] === undefined ? undefined : parsePlatform(m[2], `the platform of --annotation ${head}`);
  return m[1].split(',').map((target) => {
    if (platform && (target === 'index' || target === 'index-descriptor')) {
      throw new KilnError(`--annotation "${text}": an index annotation cannot name a platform`, { code: 'invalid', hint: `write --annotation ${target}:${m[3]}=…` });
    }
    return { target: target as AnnotationTarget, platform, key: m[3], value };
  });
}
