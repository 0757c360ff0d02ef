/**
 * Files given to `halo config …` and `halo import` that are none of the four configuration
 * formats (src/cib/detect.ts) but that the seeds' users have beside them: a drbdlinks.conf
 * (`link('/etc/apache2', '/drbd/etc/apache2')` lines), which halo reads, and a corosync.conf,
 * which it recognises in order to say what replaces it. No other format has either's statements.
 */
import { basename } from 'node:path';

/** What to do with a corosync.conf, which halo recognises but does not read. */
export const COROSYNC_CONF_MESSAGE =
  "error: this is a corosync.conf: halo's membership (nodes, links, timings) is in /etc/halo/halo.json, which `halo cluster init --from corosync.conf` writes from this file (nodes, ring addresses, port, quorum, the closest timing profile; --dry-run shows it); config check and import do not read it";

/** drbdlinks.conf: by its name, or because every statement is one of drbdlinks'. */
export function isDrbdlinksConf(s: { readonly file: string; readonly text: string }): boolean {
  if (basename(s.file) === 'drbdlinks.conf') return true;
  const lines = s.text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  return (
    lines.length > 0 &&
    lines.every((l) => /^(link|mountpoint|restartSyslog|restartxinetd|cleanthisconfig|selinux)\s*\(/.test(l))
  );
}

/** corosync.conf: by its name, or a `totem {` section (corosync's own; no other format has one). */
export function isCorosyncConf(s: { readonly file: string; readonly text: string }): boolean {
  return basename(s.file) === 'corosync.conf' || /^\s*totem\s*\{/m.test(s.text);
}
