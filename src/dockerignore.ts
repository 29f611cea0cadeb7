import dockerignoreModule from '@balena/dockerignore';

/**
 * @balena/dockerignore is CommonJS (`module.exports = factory`) but its typings say
 * `export default`; under NodeNext the default import is the factory at run time.
 */
export const dockerignore = dockerignoreModule as unknown as typeof dockerignoreModule.default;
export type DockerIgnore = ReturnType<typeof dockerignore>;
