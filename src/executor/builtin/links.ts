import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { OCF_RC } from '../rc.ts';
import { type BuiltinAgent, type BuiltinContext, standardActions } from './types.ts';

/**
 * `halo:links`: drbdlinks. On start each configured local path is moved aside (to
 * `PATH.drbdlinks`) and replaced by a symlink into the replicated mount; on stop the link is
 * removed and the original put back. Both are idempotent, so a retried or repeated operation
 * never loses the original. Links come from `links` (`LOCAL=TARGET` pairs, separated by commas
 * or newlines) or from a drbdlinks config file (`link('LOCAL', 'TARGET')` lines).
 */

export const LINKS_BACKUP_SUFFIX = '.drbdlinks';
/** Most links one resource manages. */
export const MAX_LINKS = 256;

export interface LinkPair {
  readonly local: string;
  readonly target: string;
}

/**
 * Parses drbdlinks.conf text: `link('/etc/apache2', '/drbd/etc/apache2')` per line, or, as
 * drbdlinks allows, `link('/etc/apache2')` after `mountpoint('/drbd')`, which links to the same
 * path under the mount point (`/drbd/etc/apache2`). drbdlinks' other settings (restartSyslog,
 * restartxinetd, cleanthisconfig, selinux) are accepted and ignored.
 */
export function parseDrbdlinksConf(text: string, file: string): LinkPair[] {
  const out: LinkPair[] = [];
  let mountpoint: string | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const at = (column: number): string => `${file}:${i + 1}:${column}`;
    const call = parseCall(raw);
    if (call?.name === 'link' && 'missingCommaAt' in call && call.args.length === 2) {
      const fixed = `link(${call.args.map(pyString).join(', ')})`;
      throw new Error(
        `${at(call.missingCommaAt)}: link() needs a comma between its two paths: ${line} should be ${fixed}`,
      );
    }
    if (call?.name === 'mountpoint') {
      if (call.args.length !== 1 || 'missingCommaAt' in call)
        throw new Error(`${at(1)}: mountpoint() takes one path, mountpoint('DIR'); got: ${line}`);
      mountpoint = call.args[0]!.replace(/\/+$/, '');
      return;
    }
    if (
      call?.name === 'link' &&
      !('missingCommaAt' in call) &&
      (call.args.length === 1 || call.args.length === 2)
    ) {
      const [local, target] = call.args as [string, string | undefined];
      if (target !== undefined) out.push({ local, target });
      else if (mountpoint !== undefined) out.push({ local, target: mountpoint + local });
      else
        throw new Error(
          `${at(1)}: link('${local}') needs a target path too, or a mountpoint('DIR') line before it`,
        );
    } else if (!/^(restartSyslog|restartxinetd|cleanthisconfig|selinux)\b/.test(line)) {
      throw new Error(`${at(1)}: expected link('LOCAL', 'TARGET'), got: ${line}`);
    }
  });
  return out;
}

/** `s` as a Python string literal, in single quotes unless it holds one. */
function pyString(s: string): string {
  return s.includes("'") ? `"${s}"` : `'${s}'`;
}

/** A call whose arguments are all quoted strings, or where a comma between two is missing. */
type Call =
  | { readonly name: string; readonly args: readonly string[] }
  | { readonly name: string; readonly args: readonly string[]; readonly missingCommaAt: number };

/**
 * Reads `name('a', "b")` as drbdlinks' Python does for the two calls halo reads: string
 * literals in either quote, separated by commas. Undefined for anything else (keyword
 * arguments, escapes, a missing quote), which the caller reports as not understood. Two strings
 * with only spaces between them are reported with the column of the second, because Python
 * would join them into one path (`'/a' '/b'` is `'/a/b'`), silently.
 */
function parseCall(raw: string): Call | undefined {
  const head = /^\s*(\w+)\(\s*/.exec(raw);
  if (!head) return undefined;
  const args: string[] = [];
  let pos = head[0].length;
  let missingCommaAt: number | undefined;
  const skipSpace = (): void => {
    while (raw[pos] === ' ' || raw[pos] === '\t') pos++;
  };
  while (raw[pos] === "'" || raw[pos] === '"') {
    const close = raw.indexOf(raw[pos]!, pos + 1);
    if (close < 0) return undefined;
    args.push(raw.slice(pos + 1, close));
    pos = close + 1;
    skipSpace();
    if (raw[pos] === ',') {
      pos++;
      skipSpace();
    } else if (raw[pos] === "'" || raw[pos] === '"') missingCommaAt ??= pos + 1;
  }
  if (raw[pos] !== ')' || raw.slice(pos + 1).trim() !== '' || args.length === 0) return undefined;
  const name = head[1]!;
  return missingCommaAt === undefined ? { name, args } : { name, args, missingCommaAt };
}

function configuredLinks(ctx: BuiltinContext): LinkPair[] | string {
  let pairs: LinkPair[] = [];
  try {
    if (ctx.params.config)
      pairs = parseDrbdlinksConf(readFileSync(ctx.params.config, 'utf8'), ctx.params.config);
  } catch (err) {
    return (err as Error).message;
  }
  for (const item of (ctx.params.links ?? '').split(/[,\n]/)) {
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    if (eq < 0) return `links entry '${item.trim()}' is not LOCAL=TARGET`;
    pairs.push({ local: item.slice(0, eq).trim(), target: item.slice(eq + 1).trim() });
  }
  if (pairs.length === 0) return `set 'links' (LOCAL=TARGET,…) or 'config' (a drbdlinks.conf)`;
  if (pairs.length > MAX_LINKS) return `${pairs.length} links, more than ${MAX_LINKS}`;
  const rel = pairs.find((p) => !p.local.startsWith('/') || !p.target.startsWith('/'));
  if (rel) return `paths must be absolute: ${rel.local} -> ${rel.target}`;
  return pairs;
}

function linkState(p: LinkPair): 'linked' | 'original' | 'absent' {
  try {
    const st = lstatSync(p.local);
    if (st.isSymbolicLink() && readlinkSync(p.local) === p.target) return 'linked';
    return 'original';
  } catch {
    return 'absent';
  }
}

/**
 * A link serves only while its target exists here: a link left behind by a node that died
 * (the lab's nodes share one file system) points into a mount this node does not have, and
 * must not make this node look like it runs the resource.
 */
function linkServes(p: LinkPair): boolean {
  return linkState(p) === 'linked' && existsSync(p.target);
}

function startLinks(pairs: LinkPair[]): string | undefined {
  // Checked before anything moves, so a start against an unmounted filesystem changes nothing.
  const missing = pairs.find((p) => !existsSync(p.target));
  if (missing) return `${missing.target} does not exist (is the replicated filesystem mounted?)`;
  for (const p of pairs) {
    const state = linkState(p);
    if (state === 'linked') continue;
    const backup = p.local + LINKS_BACKUP_SUFFIX;
    if (state === 'original') {
      if (existsSync(backup) || isLink(backup))
        return `${p.local}: cannot move aside, ${backup} already exists`;
      renameSync(p.local, backup);
    } else {
      mkdirSync(dirname(p.local), { recursive: true });
    }
    symlinkSync(p.target, p.local);
  }
  return undefined;
}

function stopLinks(pairs: LinkPair[]): void {
  for (const p of [...pairs].reverse()) {
    if (linkState(p) === 'linked') unlinkSync(p.local);
    const backup = p.local + LINKS_BACKUP_SUFFIX;
    if ((existsSync(backup) || isLink(backup)) && linkState(p) === 'absent') renameSync(backup, p.local);
  }
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

export function linksAgent(): BuiltinAgent {
  return {
    type: 'links',
    metadata: {
      name: 'links',
      version: '1.0',
      shortdesc: 'Symlinks into a replicated mount (built-in drbdlinks)',
      longdesc:
        'Replaces configured paths with symlinks into the replicated filesystem on start and restores the originals on stop.',
      parameters: [
        {
          name: 'links',
          required: false,
          unique: false,
          type: 'string',
          shortdesc: 'LOCAL=TARGET pairs, comma separated',
          longdesc: '',
        },
        {
          name: 'config',
          required: false,
          unique: false,
          type: 'string',
          shortdesc: 'drbdlinks.conf to read link() lines from',
          longdesc: '',
        },
      ],
      actions: standardActions({ start: '20s', stop: '20s', monitor: '10s' }),
    },
    async run(ctx) {
      const pairs = configuredLinks(ctx);
      if (typeof pairs === 'string')
        return { rc: OCF_RC.OCF_ERR_CONFIGURED, exitReason: `halo:links ${ctx.resource}: ${pairs}` };
      try {
        switch (ctx.action) {
          case 'start': {
            const why = startLinks(pairs);
            return why
              ? { rc: OCF_RC.OCF_ERR_GENERIC, exitReason: `halo:links ${ctx.resource}: ${why}` }
              : { rc: OCF_RC.OCF_SUCCESS };
          }
          case 'stop':
            stopLinks(pairs);
            return { rc: OCF_RC.OCF_SUCCESS };
          case 'monitor':
          case 'status': {
            const linked = pairs.filter(linkServes).length;
            if (linked === pairs.length) return { rc: OCF_RC.OCF_SUCCESS };
            if (linked === 0) return { rc: OCF_RC.OCF_NOT_RUNNING };
            return {
              rc: OCF_RC.OCF_ERR_GENERIC,
              exitReason: `halo:links ${ctx.resource}: only ${linked} of ${pairs.length} links in place with their target present`,
            };
          }
          case 'validate-all':
            return { rc: OCF_RC.OCF_SUCCESS };
          default:
            return {
              rc: OCF_RC.OCF_ERR_UNIMPLEMENTED,
              exitReason: `halo:links has no action '${ctx.action}'`,
            };
        }
      } catch (err) {
        return {
          rc: OCF_RC.OCF_ERR_GENERIC,
          exitReason: `halo:links ${ctx.resource}: ${(err as Error).message}`,
        };
      }
    },
  };
}
