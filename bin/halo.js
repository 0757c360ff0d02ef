#!/usr/bin/env node
// The `halo` executable: runs the compiled CLI. Build first with `npm run build`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error('halo: not built yet; run `npm run build` in', fileURLToPath(new URL('..', import.meta.url)));
  process.exit(2);
}
const { run, exitQuietlyWhenReaderGone } = await import(main.href);
// `halo … | head`: the reader going away ends halo quietly, not with an EPIPE stack trace. (The
// `?.`: a dist/ built before this function existed still runs.)
exitQuietlyWhenReaderGone?.();
process.exitCode = await run(process.argv);
