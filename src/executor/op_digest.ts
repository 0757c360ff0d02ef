/**
 * Moved to `src/cib/op_digest.ts` (the scheduler compares digests too and must stay pure);
 * re-exported here so the executor's imports keep working.
 */
export { opDigest } from '../cib/op_digest.ts';
