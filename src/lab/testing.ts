/**
 * Helpers for tests that drive a lab (`halo lab up`) through its client namespace. Test-only:
 * it spawns processes inside namespaces.
 */
import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { labDown } from './lab.ts';
import { LAB_VIP } from './scenarios.ts';

/** One HTTP GET of the VIP from inside the client namespace; the body, or null when it failed. */
export function getFromClient(ns: string): Promise<string | null> {
  const script = `require('node:http').get(process.argv[1],{timeout:1000},(r)=>{let b='';r.setEncoding('utf8');r.on('data',(d)=>{b+=d;});r.on('end',()=>{process.stdout.write(b);});}).on('timeout',function(){this.destroy();}).on('error',()=>process.exit(1));`;
  return new Promise((resolve) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, process.execPath, '-e', script, `http://${LAB_VIP}/`],
      { timeout: 5_000, encoding: 'utf8' },
      (err, stdout) => resolve(err ? null : stdout),
    );
  });
}

/** The node a `web` scenario page names ("served by n2"), if any. */
export function servedBy(body: string | null): string | undefined {
  return /served by (\S+)/.exec(body ?? '')?.[1];
}

/** A test's lab is gone afterwards, even when the test failed: down if still up, its folder removed. */
export async function removeTestLab(dir: string): Promise<void> {
  if (existsSync(join(dir, 'lab.json'))) await labDown(dir).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
