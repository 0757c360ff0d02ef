import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinHandler, type VolumeConfig } from './config.ts';

/**
 * How the engine runs a drbd.conf handler: a shell command as DRBD runs it, except the scripts of
 * DRBD's Pacemaker integration (crm-fence-peer.sh, crm-unfence-peer.sh), which become halo's own
 * `volume fence-peer` / `volume unfence-peer` run by this same program (see config.ts).
 */
export function handlerArgv(cmd: string, cfg: VolumeConfig): string[] {
  const builtin = builtinHandler(cmd);
  if (builtin === undefined) return ['/bin/sh', '-c', cmd];
  const here = fileURLToPath(import.meta.url);
  const entry = fileURLToPath(new URL(`./engine_main${extname(here)}`, import.meta.url));
  return [
    process.execPath,
    ...process.execArgv,
    entry,
    'volume',
    '--node',
    cfg.self.name,
    builtin,
    cfg.resource,
    '--peer',
    cfg.peer.name,
  ];
}
