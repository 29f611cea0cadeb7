/**
 * KILN_TRACE=1: phase timings on stderr, as milliseconds since the process started
 * (performance.now() counts from Node's own start, so start-up is visible too).
 */
export const tracing = Boolean(process.env.KILN_TRACE);

export function trace(message: string): void {
  if (tracing) process.stderr.write(`trace ${performance.now().toFixed(0).padStart(6)}ms ${message}\n`);
}
