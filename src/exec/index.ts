export { runContainer, cleanupStaleContainers } from './run.js';
export { runWithRuntime, type RunSpec, type RunResult, type RuntimeInfo } from './container.js';
export { detectRuntime, detectRuntimeFrom, probeRuntime, findRuntimeBinary, resetRuntimeCache, type DetectedRuntime } from './runtime.js';
export { resolveUser, resolveInRoot, type ResolvedUser } from './user.js';
export { buildRuntimeSpec, DEFAULT_CAPABILITIES, type RuntimeSpec } from './spec.js';
export { missingStubs, removeStubs } from './stubs.js';
export { parseSshSpec, startSshAgents, removeStaleSshDirs, type SshSpec, type SshAgents, type ForwardedSocket } from './ssh.js';
