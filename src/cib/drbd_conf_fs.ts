/**
 * The real filesystem for drbd.conf includes (the parser in drbd_conf.ts is pure and reads
 * files only through a `DrbdIo`).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { DrbdIo } from './drbd_conf.ts';

function globToRegExp(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = seg.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${seg
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The real filesystem: reads files and expands globs segment by segment, sorted like glob(3). */
export const nodeDrbdIo: DrbdIo = {
  readFile: (path) => readFileSync(path, 'utf8'),
  glob(pattern) {
    const abs = isAbsolute(pattern);
    const segs = pattern.split('/').filter((s) => s.length > 0);
    let bases = [abs ? '/' : '.'];
    for (const seg of segs) {
      const next: string[] = [];
      if (!/[*?[]/.test(seg)) {
        for (const b of bases) next.push(join(b, seg));
      } else {
        const re = globToRegExp(seg);
        for (const b of bases) {
          let names: string[];
          try {
            names = readdirSync(b);
          } catch {
            continue;
          }
          for (const n of names.sort()) if (re.test(n) && !n.startsWith('.')) next.push(join(b, n));
        }
      }
      bases = next;
    }
    return bases.filter((p) => {
      try {
        return statSync(p).isFile();
      } catch {
        return false;
      }
    });
  },
};
