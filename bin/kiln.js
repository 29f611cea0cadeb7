#!/usr/bin/env node
// More threads for file I/O: builds stat, read and copy many files at once. Must be set
// before the first asynchronous file operation, so the CLI is imported afterwards.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { main } = await import('../dist/src/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`error: internal error: ${err?.message ?? err}\n`);
    process.exit(70);
  },
);
