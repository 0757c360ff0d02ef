/**
 * The saxes XML parser, loaded with `require` rather than an ES import. saxes is a CommonJS
 * package, and importing it through Node's ES-module loader keeps the CommonJS loader's extra
 * machinery resident: ~10 MB in a bare process, 3–4 MB in the daemon, measured by private memory
 * (the daemon's goal is ≤ 60 MB). `require` costs ~0.2 MB. Not exported from `mod.ts`.
 */
import { createRequire } from 'node:module';

const saxes = createRequire(import.meta.url)('saxes') as typeof import('saxes');

export const SaxesParser = saxes.SaxesParser;
