import dockerignoreModule from '@balena/dockerignore';

/**
 * @balena/dockerignore is CommonJS (`module.exports = factory`) but its typings say
 * `export default`; under NodeNext the default import is the factory at run time.
 */
export const dockerignore = dockerignoreModule as unknown as typeof dockerignoreModule.default;
export type DockerIgnore = ReturnType<typeof dockerignore>;

/** A matcher for COPY --exclude patterns, which follow .dockerignore's rules. */
export function excludeMatcher(patterns: string[]): (rel: string) => boolean {
  if (patterns.length === 0) return () => false;
  const ig = dockerignore({ ignorecase: false }).add(patterns.map((p) => p.replace(/^\/+/, '')));
  return (rel) => rel !== '' && ig.ignores(rel);
}
