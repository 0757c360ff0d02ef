import { createHash } from 'node:crypto';
import { digestInput } from './ops.ts';

/**
 * Pacemaker's `op-digest`: md5 (hex) of the instance parameters written as one `<parameters/>`
 * element with attributes in sorted order. A changed digest tells the scheduler the resource's
 * definition changed and it must be restarted (or reloaded).
 */
export function opDigest(params: Readonly<Record<string, string>>): string {
  return createHash('md5').update(digestInput(params)).digest('hex');
}
