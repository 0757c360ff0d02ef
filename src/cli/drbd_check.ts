/**
 * What the volume engine makes of a parsed drbd.conf, as diagnostics with a file position. The
 * drbd.conf parser (src/cib/drbd_conf.ts) checks the syntax; values (sizes, after-sb policies,
 * timeouts, exactly two hosts) are checked when a resource is turned into a VolumeConfig, and
 * those errors name the option but not always where it is. `halo config check` reports them
 * here before anyone runs `halo volume up`, and `halo volume` prefixes its own with the same
 * position.
 */
import type { DrbdConfig } from '../cib/drbd_model.ts';
import { type Diagnostic, HaloError } from '../lib/errors.ts';
import { type VolumeConfig, volumeConfigFromDrbd } from '../volume/config.ts';

/**
 * volumeConfigFromDrbd, whose errors start with `FILE:LINE:COL:` of the resource when they do
 * not say where already (the drbd model keeps positions per resource and host, not per option).
 */
export function volumeConfigAt(conf: DrbdConfig, res: string, node: string): VolumeConfig {
  try {
    return volumeConfigFromDrbd(conf, res, node);
  } catch (err) {
    const pos = conf.resources.find((r) => r.name === res)?.pos;
    if (!(err instanceof HaloError) || pos === undefined || err.message.startsWith(`${pos.file}:`)) throw err;
    throw new HaloError(err.code, `${pos.file}:${pos.line}:${pos.column}: resource ${res}: ${err.message}`, {
      cause: err,
    });
  }
}

/**
 * Errors `halo volume` would stop on, for every resource and every host of `conf`, once each
 * (both hosts of a resource usually share the same bad value). A resource whose hosts all pass
 * gives nothing.
 */
export function checkDrbdVolumes(conf: DrbdConfig): Diagnostic[] {
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  for (const res of conf.resources) {
    for (const host of res.hosts) {
      try {
        volumeConfigFromDrbd(conf, res.name, host.name);
      } catch (err) {
        if (!(err instanceof HaloError)) throw err;
        const pos = res.pos ?? { file: conf.files[0] ?? 'drbd.conf', line: 1, column: 1 };
        const prefix = `${pos.file}:${pos.line}:${pos.column}: `;
        const text = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
        const message = text.startsWith('resource ') ? text : `resource ${res.name}: ${text}`;
        if (seen.has(message)) continue;
        seen.add(message);
        out.push({ severity: 'error', code: err.code, message, pos });
      }
    }
  }
  return out;
}
