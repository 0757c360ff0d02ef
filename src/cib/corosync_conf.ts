/**
 * corosync.conf (corosync 1.x, 2.x and 3.x): the syntax, and what it says about membership, so
 * that `halo cluster init --from corosync.conf` can write the halo config that replaces it.
 *
 * The syntax is corosync's own (exec/coroparse.c): one statement per line, `name {` opens a
 * section, `}` closes it, `key: value` sets a key (split at the first colon, so IPv6 values
 * need no quoting), and a line whose first non-blank character is `#` is a comment. One
 * leniency: a line with a colon before its first brace is a key, not a section, so that a
 * template placeholder in a value (seed 003's `bindnetaddr: {{ bind[0] }}`, a Salt/Jinja
 * template) reads as the value it is instead of opening a section corosync would reject.
 *
 * What membership takes from it, and why:
 * - Nodes come from `nodelist { node { … } }`. A node's name is `name`, else its `ring0_addr`,
 *   which is what corosync itself reports as the node name then. Its links are `ring0_addr` …
 *   `ring7_addr` (link N of every node is one network, as corosync's ring/link N is); its id is
 *   `nodeid`, its votes `quorum_votes`. Addresses must be IP addresses: corosync resolves host
 *   names at start, halo does not, and a config that depends on DNS to find its peers fails
 *   exactly when the network does.
 * - Each link's port is the `mcastport` of the `interface` with that `ringnumber` (`linknumber`
 *   in corosync 3), else 5405, corosync's default.
 * - `token` (ms before a lost token is declared, i.e. before a silent node is suspected) is the
 *   number to compare with halo's deadtime. Without nodelist-sized `token_coefficient`
 *   corosync waits `token`; with three or more nodes it waits `token + (nodes - 2) ×
 *   token_coefficient` (default 650 ms), and that is what is compared.
 * - `quorum { two_node, expected_votes, wait_for_all, auto_tie_breaker }` map to halo's quorum
 *   options one to one; `last_man_standing` and `device` (qdevice) have no halo equivalent and
 *   are reported, not silently dropped.
 *
 * This file does no I/O: it takes text and returns values or diagnostics with file:line.
 */
import type { Diagnostic } from '../lib/errors.ts';

/** Corosync's default totem port (`mcastport`). */
export const COROSYNC_DEFAULT_PORT = 5405;
/** corosync 1.x/2.x default `token` (ms). */
export const COROSYNC_DEFAULT_TOKEN_MS = 1_000;
/** corosync 3.x (knet) default `token` (ms). */
export const COROSYNC3_DEFAULT_TOKEN_MS = 3_000;
/** Default `token_coefficient` (ms per node beyond two), corosync 2.x and later. */
export const COROSYNC_DEFAULT_TOKEN_COEFFICIENT_MS = 650;
/** Corosync 3 (knet) supports links 0..7; halo's MAX_LINKS is also 8. */
export const COROSYNC_MAX_LINKS = 8;
/** Deepest section nesting accepted (corosync's own files nest three deep). */
const MAX_DEPTH = 16;
/** Longest file accepted, in lines: a corosync.conf is tens of lines. */
const MAX_LINES = 100_000;

export interface CorosyncKey {
  readonly kind: 'key';
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

export interface CorosyncSection {
  readonly kind: 'section';
  /** '' for the top level. */
  readonly name: string;
  readonly line: number;
  readonly items: readonly (CorosyncKey | CorosyncSection)[];
}

export type CorosyncParse<T> =
  | { readonly ok: true; readonly value: T; readonly warnings: readonly Diagnostic[] }
  | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

function diag(file: string, line: number, code: string, message: string): Diagnostic {
  return { severity: 'error', code, message, pos: { file, line, column: 1 } };
}

function warning(file: string, line: number, code: string, message: string): Diagnostic {
  return { severity: 'warning', code, message, pos: { file, line, column: 1 } };
}

interface OpenSection {
  name: string;
  line: number;
  items: (CorosyncKey | CorosyncSection)[];
}

/** Parses corosync.conf syntax into its sections; every error names file:line and the fix. */
export function parseCorosyncConf(text: string, file: string): CorosyncParse<CorosyncSection> {
  const errors: Diagnostic[] = [];
  const stack: OpenSection[] = [{ name: '', line: 0, items: [] }];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  if (lines.length > MAX_LINES)
    return { ok: false, diagnostics: [diag(file, 1, 'corosync-too-long', `more than ${MAX_LINES} lines`)] };
  lines.forEach((raw, i) => {
    const no = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const brace = line.indexOf('{');
    const top = stack.at(-1)!;
    if (brace >= 0 && (colon < 0 || brace < colon)) {
      const name = line.slice(0, brace).trim();
      const rest = line.slice(brace + 1).trim();
      if (!/^[A-Za-z0-9_.-]+$/.test(name) || (rest !== '' && !rest.startsWith('#'))) {
        errors.push(
          diag(
            file,
            no,
            'corosync-bad-section',
            `'${line}' is not a section opening: write the section name and '{' alone on the line (e.g. 'nodelist {'), each key on its own line`,
          ),
        );
        return;
      }
      if (stack.length > MAX_DEPTH) {
        errors.push(diag(file, no, 'corosync-too-deep', `sections nest deeper than ${MAX_DEPTH}`));
        return;
      }
      stack.push({ name, line: no, items: [] });
      return;
    }
    if (colon >= 0) {
      const key = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (!/^[A-Za-z0-9_.-]+$/.test(key)) {
        errors.push(
          diag(
            file,
            no,
            'corosync-bad-key',
            `'${key}' is not a key name: write 'key: value', e.g. 'token: 3000'`,
          ),
        );
        return;
      }
      top.items.push({ kind: 'key', key, value, line: no });
      return;
    }
    if (line === '}' || /^}\s*(#.*)?$/.test(line)) {
      if (stack.length === 1) {
        errors.push(diag(file, no, 'corosync-unbalanced', "'}' closes no open section: remove it"));
        return;
      }
      const done = stack.pop()!;
      stack.at(-1)!.items.push({ kind: 'section', name: done.name, line: done.line, items: done.items });
      return;
    }
    errors.push(
      diag(
        file,
        no,
        'corosync-bad-line',
        `'${line}' is not 'key: value', 'name {' or '}' (corosync.conf has one statement per line)`,
      ),
    );
  });
  for (const open of stack.slice(1).reverse())
    errors.push(
      diag(
        file,
        open.line,
        'corosync-unclosed',
        `section '${open.name}' opened on line ${open.line} is not closed: add '}' after its last key`,
      ),
    );
  if (errors.length > 0) return { ok: false, diagnostics: errors };
  const root = stack[0]!;
  return { ok: true, value: { kind: 'section', name: '', line: 0, items: root.items }, warnings: [] };
}

/** The sections called `name` directly inside `s`. */
export function sections(s: CorosyncSection, name: string): CorosyncSection[] {
  return s.items.filter((i): i is CorosyncSection => i.kind === 'section' && i.name === name);
}

/** The last `key` directly inside `s` (corosync: a later value overrides an earlier one). */
export function keyOf(s: CorosyncSection, key: string): CorosyncKey | undefined {
  return s.items.filter((i): i is CorosyncKey => i.kind === 'key' && i.key === key).at(-1);
}

// ---------------------------------------------------------------------------------------------
// Membership

export interface CorosyncNode {
  readonly name: string;
  /** Where the name came from: `name`, or `ring0_addr` when the node has no name. */
  readonly nameFrom: 'name' | 'ring0_addr';
  /** `nodeid`, when given. */
  readonly id?: number;
  /** Link N's address (ringN_addr), link 0 first, without gaps. */
  readonly addrs: readonly string[];
  readonly votes?: number;
  readonly line: number;
}

export interface CorosyncInterface {
  readonly link: number;
  readonly bindnetaddr?: string;
  readonly mcastaddr?: string;
  readonly port: number;
  readonly line: number;
}

export interface CorosyncQuorum {
  readonly provider?: string;
  /** undefined when the file does not say. */
  readonly twoNode?: boolean;
  readonly expectedVotes?: number;
  readonly waitForAll?: boolean;
  readonly autoTieBreaker: boolean;
}

/** What a corosync.conf says about membership. */
export interface CorosyncMembership {
  readonly clusterName?: string;
  /** Empty for a corosync 1.x config without nodelist (members found by multicast). */
  readonly nodes: readonly CorosyncNode[];
  readonly interfaces: readonly CorosyncInterface[];
  /** Port of link N: its interface's mcastport, else 5405. */
  readonly linkPorts: readonly number[];
  /** `token` as written, else the version's default. */
  readonly tokenMs: number;
  /** How `tokenMs` was found, for the command's output. */
  readonly tokenSource: 'token' | 'default';
  /** What corosync waits before suspecting a silent node (token plus per-node coefficient). */
  readonly detectionMs: number;
  readonly transport?: string;
  readonly quorum: CorosyncQuorum;
  /** Settings halo does not carry over, each with what to do instead. */
  readonly notes: readonly string[];
}

/** IPv4 dotted quad, or IPv6 as `URL` accepts it in brackets; no host names, no ports. */
export function isIpAddress(s: string): boolean {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (v4) return v4.slice(1).every((o) => Number(o) <= 255 && !/^0\d/.test(o));
  if (!s.includes(':') || !/^[0-9A-Fa-f:.]+$/.test(s)) return false;
  try {
    new URL(`http://[${s}]/`);
    return true;
  } catch {
    return false;
  }
}

const NODE_KEYS = new Set(['name', 'nodeid', 'quorum_votes', ...ringKeys()]);

function ringKeys(): string[] {
  return Array.from({ length: COROSYNC_MAX_LINKS }, (_, i) => `ring${i}_addr`);
}

/** A non-negative integer value, or an error naming the key. */
function intOf(k: CorosyncKey, file: string, errors: Diagnostic[], max: number): number | undefined {
  if (!/^\d+$/.test(k.value) || Number(k.value) > max) {
    errors.push(
      diag(
        file,
        k.line,
        'corosync-bad-number',
        `${k.key}: '${k.value}' is not a whole number from 0 to ${max}`,
      ),
    );
    return undefined;
  }
  return Number(k.value);
}

/** corosync's booleans: 1/0, yes/no, on/off. */
function boolOf(k: CorosyncKey | undefined, file: string, errors: Diagnostic[]): boolean | undefined {
  if (k === undefined) return undefined;
  const v = k.value.toLowerCase();
  if (['1', 'yes', 'on', 'true'].includes(v)) return true;
  if (['0', 'no', 'off', 'false'].includes(v)) return false;
  errors.push(diag(file, k.line, 'corosync-bad-bool', `${k.key}: '${k.value}' is not 1 or 0 (yes or no)`));
  return undefined;
}

function parseNode(s: CorosyncSection, file: string, errors: Diagnostic[]): CorosyncNode | undefined {
  const before = errors.length;
  for (const i of s.items) {
    if (i.kind === 'key' && !NODE_KEYS.has(i.key))
      errors.push(
        diag(
          file,
          i.line,
          'corosync-unknown-node-key',
          `node key '${i.key}' is not one of name, nodeid, quorum_votes, ring0_addr … ring${COROSYNC_MAX_LINKS - 1}_addr`,
        ),
      );
  }
  const addrs: string[] = [];
  let gap: number | undefined;
  for (let n = 0; n < COROSYNC_MAX_LINKS; n++) {
    const k = keyOf(s, `ring${n}_addr`);
    if (k === undefined) {
      gap ??= n;
      continue;
    }
    if (gap !== undefined) {
      errors.push(
        diag(
          file,
          k.line,
          'corosync-link-gap',
          `ring${n}_addr without ring${gap}_addr: halo numbers a node's links from 0 without gaps; renumber the rings`,
        ),
      );
    }
    if (!isIpAddress(k.value)) {
      const hint = k.value.includes('{') ? ' (a template placeholder: render the template first)' : '';
      errors.push(
        diag(
          file,
          k.line,
          'corosync-not-an-ip',
          `ring${n}_addr '${k.value}' is not an IP address${hint}: halo does not resolve host names for links; write the address, or give --node NAME=ADDR`,
        ),
      );
    }
    addrs.push(k.value);
  }
  if (addrs.length === 0) {
    errors.push(diag(file, s.line, 'corosync-node-no-addr', 'node has no ring0_addr: add its address'));
    return undefined;
  }
  const nameKey = keyOf(s, 'name');
  const idKey = keyOf(s, 'nodeid');
  const votesKey = keyOf(s, 'quorum_votes');
  const id = idKey ? intOf(idKey, file, errors, 0xffffffff) : undefined;
  const votes = votesKey ? intOf(votesKey, file, errors, 1_000) : undefined;
  if (errors.length > before) return undefined;
  return {
    name: nameKey?.value ?? addrs[0]!,
    nameFrom: nameKey ? 'name' : 'ring0_addr',
    ...(id === undefined ? {} : { id }),
    addrs,
    ...(votes === undefined ? {} : { votes }),
    line: s.line,
  };
}

/** Refuses two nodes with the same name, nodeid or address, naming both lines. */
function checkDistinctNodes(nodes: readonly CorosyncNode[], file: string, errors: Diagnostic[]): void {
  const seen = new Map<string, number>();
  for (const n of nodes) {
    const keys = [`name '${n.name}'`, ...(n.id === undefined ? [] : [`nodeid ${n.id}`])];
    keys.push(...n.addrs.map((a) => `address ${a}`));
    for (const k of keys) {
      const prev = seen.get(k);
      if (prev !== undefined)
        errors.push(
          diag(
            file,
            n.line,
            'corosync-duplicate-node',
            `node with ${k} is listed twice (also the node on line ${prev})`,
          ),
        );
      else seen.set(k, n.line);
    }
  }
}

function parseInterfaces(
  totem: CorosyncSection | undefined,
  file: string,
  errors: Diagnostic[],
): CorosyncInterface[] {
  if (!totem) return [];
  const out: CorosyncInterface[] = [];
  for (const s of sections(totem, 'interface')) {
    const num = keyOf(s, 'linknumber') ?? keyOf(s, 'ringnumber');
    const link = num ? intOf(num, file, errors, COROSYNC_MAX_LINKS - 1) : 0;
    const portKey = keyOf(s, 'mcastport');
    const port = portKey ? intOf(portKey, file, errors, 65_535) : COROSYNC_DEFAULT_PORT;
    if (link === undefined || port === undefined) continue;
    if (port === 0) {
      errors.push(
        diag(file, portKey!.line, 'corosync-bad-number', 'mcastport: 0 is not a port; use 1..65535'),
      );
      continue;
    }
    const bind = keyOf(s, 'bindnetaddr')?.value;
    const mcast = keyOf(s, 'mcastaddr')?.value;
    out.push({
      link,
      ...(bind === undefined ? {} : { bindnetaddr: bind }),
      ...(mcast === undefined ? {} : { mcastaddr: mcast }),
      port,
      line: s.line,
    });
  }
  return out;
}

function parseQuorum(
  root: CorosyncSection,
  file: string,
  errors: Diagnostic[],
  notes: string[],
): CorosyncQuorum {
  const q = sections(root, 'quorum').at(-1);
  if (!q) return { autoTieBreaker: false };
  const provider = keyOf(q, 'provider')?.value;
  const expectedKey = keyOf(q, 'expected_votes');
  const expectedVotes = expectedKey ? intOf(expectedKey, file, errors, 1_000) : undefined;
  if (expectedVotes === 0)
    errors.push(diag(file, expectedKey!.line, 'corosync-bad-number', 'expected_votes: must be at least 1'));
  const waitForAll = boolOf(keyOf(q, 'wait_for_all'), file, errors);
  const twoNode = boolOf(keyOf(q, 'two_node'), file, errors);
  if (boolOf(keyOf(q, 'last_man_standing'), file, errors))
    notes.push(
      'quorum.last_man_standing has no halo equivalent: quorum stays a majority of configured votes; add a witness (halo cluster join NAME --addr ADDR --witness) to survive more failures',
    );
  if (sections(q, 'device').length > 0)
    notes.push(
      'quorum.device (qdevice) is replaced by a halo witness: run `halo cluster join NAME --addr ADDR --witness` and `halo daemon --witness` on the qnetd host',
    );
  if (provider !== undefined && provider !== 'corosync_votequorum')
    notes.push(`quorum provider '${provider}' is not votequorum; halo uses its own vote quorum`);
  return {
    ...(provider === undefined ? {} : { provider }),
    ...(twoNode === undefined ? {} : { twoNode }),
    ...(expectedVotes === undefined || expectedVotes === 0 ? {} : { expectedVotes }),
    ...(waitForAll === undefined ? {} : { waitForAll }),
    autoTieBreaker: boolOf(keyOf(q, 'auto_tie_breaker'), file, errors) ?? false,
  };
}

/**
 * What `root` (from parseCorosyncConf) says about membership. An empty `nodes` is not an error
 * here: corosync 1.x found its members by multicast, and the caller decides whether addresses
 * given elsewhere (`--node`) make up for it.
 */
export function corosyncMembership(root: CorosyncSection, file: string): CorosyncParse<CorosyncMembership> {
  const errors: Diagnostic[] = [];
  const notes: string[] = [];
  const totem = sections(root, 'totem').at(-1);
  const nodes: CorosyncNode[] = [];
  for (const list of sections(root, 'nodelist'))
    for (const s of sections(list, 'node')) {
      const n = parseNode(s, file, errors);
      if (n) nodes.push(n);
    }
  checkDistinctNodes(nodes, file, errors);
  const interfaces = parseInterfaces(totem, file, errors);
  const linkPorts: number[] = [];
  for (const i of interfaces) linkPorts[i.link] = i.port;
  const transport = totem ? keyOf(totem, 'transport')?.value : undefined;
  const tokenKey = totem ? keyOf(totem, 'token') : undefined;
  const tokenMs =
    (tokenKey ? intOf(tokenKey, file, errors, 3_600_000) : undefined) ??
    (transport === 'knet' ? COROSYNC3_DEFAULT_TOKEN_MS : COROSYNC_DEFAULT_TOKEN_MS);
  const coefKey = totem ? keyOf(totem, 'token_coefficient') : undefined;
  const coefMs =
    (coefKey ? intOf(coefKey, file, errors, 3_600_000) : undefined) ?? COROSYNC_DEFAULT_TOKEN_COEFFICIENT_MS;
  const detectionMs = nodes.length > 2 ? tokenMs + (nodes.length - 2) * coefMs : tokenMs;
  const quorum = parseQuorum(root, file, errors, notes);
  const secauth = totem ? keyOf(totem, 'secauth')?.value : undefined;
  const crypto = totem ? keyOf(totem, 'crypto_cipher')?.value : undefined;
  if ((secauth === undefined || secauth === 'off') && (crypto === undefined || crypto === 'none'))
    notes.push(
      'corosync traffic was not encrypted here; halo encrypts and authenticates every link with the new key',
    );
  const clusterName = totem ? keyOf(totem, 'cluster_name')?.value : undefined;
  if (errors.length > 0) return { ok: false, diagnostics: errors };
  const warnings = interfaces
    .filter((i) => i.bindnetaddr?.includes('{'))
    .map((i) =>
      warning(
        file,
        i.line,
        'corosync-template',
        `interface ${i.link}: bindnetaddr is a template placeholder (not used by halo)`,
      ),
    );
  return {
    ok: true,
    warnings,
    value: {
      ...(clusterName === undefined ? {} : { clusterName }),
      nodes,
      interfaces,
      linkPorts: Array.from(linkPorts, (p) => p ?? COROSYNC_DEFAULT_PORT),
      tokenMs,
      tokenSource: tokenKey ? 'token' : 'default',
      detectionMs,
      ...(transport === undefined ? {} : { transport }),
      quorum,
      notes,
    },
  };
}

/** parseCorosyncConf then corosyncMembership. */
export function parseCorosyncMembership(text: string, file: string): CorosyncParse<CorosyncMembership> {
  const parsed = parseCorosyncConf(text, file);
  if (!parsed.ok) return parsed;
  return corosyncMembership(parsed.value, file);
}
