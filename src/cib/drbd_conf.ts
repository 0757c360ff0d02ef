/**
 * drbd.conf (DRBD 0.7 – 8.4 syntax, the parts the seeds and common tutorials use) to and from
 * `DrbdConfig`.
 *
 * The file is read in two steps: a tokenizer and block parser that know only words, quoted
 * strings, `;`, `{` and `}` (so brace and semicolon mistakes are reported where they are), then
 * an interpreter for `global`, `common`, `resource`, `on HOST`, the option sections and
 * `include`. Include globs are resolved relative to the including file through `DrbdIo`, so the
 * parser itself can be tested without a filesystem.
 *
 * Typographic quotes (“ ” „) are accepted as `"` with a warning, as in the crm parser.
 */
import type { Diagnostic, SourcePos } from '../lib/errors.ts';
import type { DrbdConfig, DrbdHost, DrbdOption, DrbdResource, DrbdSection } from './drbd_model.ts';

/** Includes may nest this deep (drbd.conf → drbd.d/global_common.conf is depth 1). */
export const DRBD_MAX_INCLUDE_DEPTH = 8;
/** At most this many files are read for one configuration. */
export const DRBD_MAX_FILES = 256;
/** Blocks nest at most this deep (resource → on → volume is 3). */
export const DRBD_MAX_NESTING = 16;

/** Sections that hold `key value;` options, in resources and in `common`. */
export const DRBD_SECTIONS = ['startup', 'disk', 'net', 'syncer', 'handlers', 'options', 'proxy'] as const;

export type DrbdParseResult =
  | { readonly ok: true; readonly config: DrbdConfig; readonly warnings: readonly Diagnostic[] }
  | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

/** File access for includes; `nodeDrbdIo` (drbd_conf_fs.ts) uses the real filesystem. */
export interface DrbdIo {
  readFile(path: string): string;
  /** Paths matching a glob (`*`, `?`, `[…]` within path segments), sorted. */
  glob(pattern: string): string[];
}

// ---------------------------------------------------------------------------------------------
// Tokens and blocks

interface Tok {
  readonly text: string;
  readonly quoted: boolean;
  readonly pos: SourcePos;
  /** True when the token is the first on its line. */
  readonly lineStart: boolean;
}

interface Stmt {
  readonly words: readonly Tok[];
  readonly block?: readonly Stmt[];
  /** Position of `{` for blocks. */
  readonly open?: SourcePos;
}

const TYPO_QUOTES = new Set(['\u201c', '\u201d', '\u201e', '\u201f', '\u2033']);

class Sink {
  readonly list: Diagnostic[] = [];
  error(pos: SourcePos, code: string, message: string): void {
    this.list.push({ severity: 'error', code, message, pos });
  }
  warn(pos: SourcePos, code: string, message: string): void {
    this.list.push({ severity: 'warning', code, message, pos });
  }
  get hasErrors(): boolean {
    return this.list.some((d) => d.severity === 'error');
  }
}

type Piece = Tok | { readonly punct: ';' | '{' | '}'; readonly pos: SourcePos };

function tokenize(text: string, file: string, sink: Sink): Piece[] {
  const out: Piece[] = [];
  let line = 1;
  let col = 1;
  let lineHasToken = false;
  let typoWarnedLine = 0;
  const typo: SourcePos[] = [];
  let i = 0;
  const advance = (): string => {
    const c = text[i++]!;
    if (c === '\n') {
      line++;
      col = 1;
      lineHasToken = false;
    } else col++;
    return c;
  };
  const isQuote = (c: string): boolean => c === '"' || TYPO_QUOTES.has(c);
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      advance();
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') advance();
      continue;
    }
    const pos: SourcePos = { file, line, column: col };
    if (c === ';' || c === '{' || c === '}') {
      advance();
      out.push({ punct: c, pos });
      lineHasToken = true;
      continue;
    }
    const lineStart = !lineHasToken;
    lineHasToken = true;
    let word = '';
    let quoted = false;
    while (i < text.length) {
      const ch = text[i]!;
      if (/\s/.test(ch) || ch === ';' || ch === '{' || ch === '}') break;
      if (isQuote(ch)) {
        if (ch !== '"' && typoWarnedLine !== line) {
          typoWarnedLine = line;
          typo.push({ file, line, column: col });
        }
        quoted = true;
        const qpos: SourcePos = { file, line, column: col };
        advance();
        let closed = false;
        while (i < text.length) {
          const q = text[i]!;
          if (q === '\\' && i + 1 < text.length) {
            advance();
            word += advance();
            continue;
          }
          if (isQuote(q)) {
            if (q !== '"' && typoWarnedLine !== line) {
              typoWarnedLine = line;
              typo.push({ file, line, column: col });
            }
            advance();
            closed = true;
            break;
          }
          if (q === '\n') break;
          word += advance();
        }
        if (!closed)
          sink.error(qpos, 'drbd-unterminated-quote', 'quote opened here is not closed on the same line');
        continue;
      }
      word += advance();
    }
    out.push({ text: word, quoted, pos, lineStart });
  }
  if (typo.length > 0) {
    const lines = typo.map((p) => p.line).join(', ');
    sink.warn(
      typo[0]!,
      'typographic-character',
      `typographic quotes (“ ” „) replaced by " on line${typo.length === 1 ? '' : 's'} ${lines}; the text was probably copied from a web page`,
    );
  }
  return out;
}

/** Identifiers that start a statement; seeing one at a line start inside a statement means a `;` is missing. */
function looksLikeKeyword(t: Tok): boolean {
  return !t.quoted && /^[a-z][a-z0-9-]*$/.test(t.text) && !/^\d/.test(t.text);
}

/** Reports a statement (`words`, not empty) that runs on without its closing `;`. */
function missingSemicolon(sink: Sink, words: readonly Tok[]): void {
  sink.error(
    words[words.length - 1]!.pos,
    'drbd-missing-semicolon',
    `missing ';' after '${words.map((w) => w.text).join(' ')}'`,
  );
}

function buildBlocks(pieces: readonly Piece[], sink: Sink): Stmt[] {
  let i = 0;
  const parseList = (depth: number, open?: SourcePos): Stmt[] => {
    const list: Stmt[] = [];
    let words: Tok[] = [];
    while (i < pieces.length) {
      const p = pieces[i++]!;
      if ('punct' in p) {
        if (p.punct === ';') {
          if (words.length === 0) sink.warn(p.pos, 'drbd-empty-statement', "stray ';'");
          else list.push({ words });
          words = [];
        } else if (p.punct === '{') {
          if (words.length === 0) sink.error(p.pos, 'drbd-syntax', "'{' without a section name before it");
          if (depth + 1 > DRBD_MAX_NESTING) {
            sink.error(p.pos, 'drbd-syntax', `blocks nested deeper than ${DRBD_MAX_NESTING}`);
            i = pieces.length;
            return list;
          }
          const block = parseList(depth + 1, p.pos);
          list.push({ words, block, open: p.pos });
          words = [];
        } else {
          if (words.length > 0) {
            missingSemicolon(sink, words);
            words = [];
          }
          if (open === undefined) {
            sink.error(p.pos, 'drbd-unbalanced-braces', "'}' without a matching '{'");
            continue;
          }
          return list;
        }
        continue;
      }
      if (words.length >= 2 && p.lineStart && looksLikeKeyword(p)) {
        missingSemicolon(sink, words);
        words = [];
      }
      words.push(p);
    }
    if (words.length > 0) {
      sink.error(
        words[words.length - 1]!.pos,
        'drbd-missing-semicolon',
        `missing ';' at the end of the file`,
      );
    }
    if (open !== undefined) sink.error(open, 'drbd-unbalanced-braces', "'{' is never closed");
    return list;
  };
  return parseList(0);
}

// ---------------------------------------------------------------------------------------------
// Interpretation

interface Acc {
  global: DrbdOption[];
  commonProtocol?: string;
  commonSections: DrbdSection[];
  resources: DrbdResource[];
  files: string[];
}

function option(s: Stmt): DrbdOption {
  return [
    s.words[0]!.text,
    s.words
      .slice(1)
      .map((w) => w.text)
      .join(' '),
  ];
}

function sectionOf(s: Stmt, sink: Sink, where: string): DrbdSection | undefined {
  const name = s.words[0]!.text;
  if (!(DRBD_SECTIONS as readonly string[]).includes(name)) {
    sink.error(
      s.words[0]!.pos,
      'drbd-unknown-section',
      `unknown section '${name}' in ${where} (expected ${DRBD_SECTIONS.join(', ')})`,
    );
    return undefined;
  }
  if (s.words.length > 1) sink.error(s.words[1]!.pos, 'drbd-syntax', `section '${name}' takes no arguments`);
  const options: DrbdOption[] = [];
  for (const o of s.block ?? []) {
    if (o.block) {
      sink.error(
        o.words[0]?.pos ?? s.open!,
        'drbd-syntax',
        `unexpected block '${o.words[0]?.text ?? ''}' inside '${name}'`,
      );
      continue;
    }
    options.push(option(o));
  }
  return { name, options };
}

function checkAddress(t: readonly Tok[], keyword: Tok, sink: Sink): { address?: string; family?: string } {
  let words = t;
  let family: string | undefined;
  if (words.length >= 2 && /^(ipv4|ipv6|ssocks|sdp|sci)$/.test(words[0]!.text)) {
    family = words[0]!.text;
    words = words.slice(1);
  }
  const w = words[0];
  if (!w || words.length !== 1) {
    sink.error(
      (w ?? keyword).pos,
      'drbd-bad-address',
      `address must be [FAMILY] ADDR:PORT, found '${t.map((x) => x.text).join(' ')}'`,
    );
    return {};
  }
  const colon = w.text.lastIndexOf(':');
  if (colon <= 0) {
    sink.error(
      w.pos,
      'drbd-bad-address',
      `address '${w.text}' has no port (expected ADDR:PORT, e.g. 10.0.0.1:7788)`,
    );
    return {};
  }
  const port = w.text.slice(colon + 1);
  if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    sink.error(
      w.pos,
      'drbd-bad-port',
      `port '${port}' in address '${w.text}' is not a number from 1 to 65535`,
    );
    return {};
  }
  return { address: w.text, ...(family !== undefined ? { family } : {}) };
}

function host(s: Stmt, res: string, sink: Sink): DrbdHost | undefined {
  const nameTok = s.words[1];
  if (!nameTok) {
    sink.error(s.words[0]!.pos, 'drbd-syntax', `'on' needs a host name in resource '${res}'`);
    return undefined;
  }
  let device: string | undefined;
  let disk: string | undefined;
  let address: string | undefined;
  let family: string | undefined;
  let metaDisk: string | undefined;
  let nodeId: string | undefined;
  const options: DrbdOption[] = [];
  for (const o of s.block ?? []) {
    const k = o.words[0]!;
    if (o.block) {
      sink.error(
        k.pos,
        'drbd-unknown-section',
        `unexpected block '${k.text}' in 'on ${nameTok.text}' (volumes are not supported yet)`,
      );
      continue;
    }
    const [key, value] = option(o);
    switch (key) {
      case 'device':
        device = value;
        break;
      case 'disk':
        disk = value;
        break;
      case 'meta-disk':
      case 'flexible-meta-disk':
        metaDisk = value;
        break;
      case 'node-id':
        nodeId = value;
        break;
      case 'address': {
        const a = checkAddress(o.words.slice(1), o.words[0]!, sink);
        address = a.address;
        family = a.family;
        break;
      }
      default:
        options.push([key, value]);
    }
  }
  return {
    name: nameTok.text,
    ...(device !== undefined ? { device } : {}),
    ...(disk !== undefined ? { disk } : {}),
    ...(address !== undefined ? { address } : {}),
    ...(family !== undefined ? { addressFamily: family } : {}),
    ...(metaDisk !== undefined ? { metaDisk } : {}),
    ...(nodeId !== undefined ? { nodeId } : {}),
    options,
    pos: nameTok.pos,
  };
}

function resource(s: Stmt, sink: Sink): DrbdResource | undefined {
  const nameTok = s.words[1];
  if (!nameTok) {
    sink.error(s.words[0]!.pos, 'drbd-syntax', "'resource' needs a name");
    return undefined;
  }
  if (!s.block) {
    sink.error(nameTok.pos, 'drbd-syntax', `resource '${nameTok.text}' needs a '{ … }' block`);
    return undefined;
  }
  const name = nameTok.text;
  let protocol: string | undefined;
  let device: string | undefined;
  let disk: string | undefined;
  let metaDisk: string | undefined;
  const sections: DrbdSection[] = [];
  const hosts: DrbdHost[] = [];
  const options: DrbdOption[] = [];
  for (const o of s.block) {
    const k = o.words[0]!;
    if (o.block) {
      if (k.text === 'on') {
        const h = host(o, name, sink);
        if (h && hosts.some((x) => x.name === h.name)) {
          sink.error(
            o.words[1]!.pos,
            'drbd-duplicate-host',
            `host '${h.name}' appears twice in resource '${name}'`,
          );
        } else if (h) hosts.push(h);
      } else {
        const sec = sectionOf(o, sink, `resource '${name}'`);
        if (sec) sections.push(sec);
      }
      continue;
    }
    const [key, value] = option(o);
    if (key === 'protocol') {
      if (!/^[ABC]$/.test(value))
        sink.error(k.pos, 'drbd-bad-protocol', `protocol '${value}' is not A, B or C`);
      protocol = value;
    } else if (key === 'device') device = value;
    else if (key === 'disk') disk = value;
    else if (key === 'meta-disk' || key === 'flexible-meta-disk') metaDisk = value;
    else options.push([key, value]);
  }
  if (hosts.length < 2) {
    sink.error(
      nameTok.pos,
      'drbd-needs-two-hosts',
      `resource '${name}' has ${hosts.length} 'on HOST' block${hosts.length === 1 ? '' : 's'}; DRBD replicates between two hosts, so it needs two`,
    );
  }
  for (const h of hosts) {
    const missing = [
      (h.device ?? device) ? '' : 'device',
      (h.disk ?? disk) ? '' : 'disk',
      h.address ? '' : 'address',
      (h.metaDisk ?? metaDisk) ? '' : 'meta-disk',
    ].filter(Boolean);
    if (missing.length > 0) {
      sink.error(
        h.pos!,
        'drbd-incomplete-host',
        `host '${h.name}' in resource '${name}' has no ${missing.join(', ')}`,
      );
    }
  }
  const [a, b] = hosts;
  if (a?.address && a.address === b?.address) {
    sink.warn(
      b.pos!,
      'drbd-same-address',
      `hosts '${a.name}' and '${b.name}' of resource '${name}' both use address ${a.address}; each host needs its own`,
    );
  }
  return {
    name,
    ...(protocol !== undefined ? { protocol } : {}),
    ...(device !== undefined ? { device } : {}),
    ...(disk !== undefined ? { disk } : {}),
    ...(metaDisk !== undefined ? { metaDisk } : {}),
    sections,
    hosts,
    ...(options.length > 0 ? { options } : {}),
    pos: nameTok.pos,
  };
}

/** Every statement starts with a bare keyword; `"a b" 1;` is a mistake, not an option named "a b". */
function checkKeywords(stmts: readonly Stmt[], sink: Sink): void {
  for (const s of stmts) {
    const k = s.words[0];
    if (k?.quoted)
      sink.error(k.pos, 'drbd-syntax', `expected a keyword, found the quoted string "${k.text}"`);
    if (s.block) checkKeywords(s.block, sink);
  }
}

function interpret(
  stmts: readonly Stmt[],
  file: string,
  acc: Acc,
  sink: Sink,
  io: DrbdIo | undefined,
  depth: number,
): void {
  for (const s of stmts) {
    const k = s.words[0];
    if (!k) continue;
    switch (k.text) {
      case 'global':
        if (!s.block) sink.error(k.pos, 'drbd-syntax', "'global' needs a '{ … }' block");
        for (const o of s.block ?? []) {
          if (o.block)
            sink.error(o.words[0]!.pos, 'drbd-syntax', `unexpected block '${o.words[0]!.text}' in 'global'`);
          else acc.global.push(option(o));
        }
        break;
      case 'common':
        if (!s.block) sink.error(k.pos, 'drbd-syntax', "'common' needs a '{ … }' block");
        for (const o of s.block ?? []) {
          if (o.block) {
            const sec = sectionOf(o, sink, 'common');
            if (sec) acc.commonSections.push(sec);
          } else if (o.words[0]!.text === 'protocol') acc.commonProtocol = option(o)[1];
          else
            sink.error(
              o.words[0]!.pos,
              'drbd-syntax',
              `unexpected '${o.words[0]!.text}' in 'common' (expected protocol or a section)`,
            );
        }
        break;
      case 'resource': {
        const r = resource(s, sink);
        if (!r) break;
        if (acc.resources.some((x) => x.name === r.name)) {
          sink.error(s.words[1]!.pos, 'drbd-duplicate-resource', `resource '${r.name}' is defined twice`);
        } else acc.resources.push(r);
        break;
      }
      case 'skip':
        break;
      case 'include':
        include(s, file, acc, sink, io, depth);
        break;
      default:
        sink.error(
          k.pos,
          s.block ? 'drbd-unknown-section' : 'drbd-syntax',
          `unknown top-level ${s.block ? 'section' : 'statement'} '${k.text}' (expected global, common, resource or include)`,
        );
    }
  }
}

function include(s: Stmt, file: string, acc: Acc, sink: Sink, io: DrbdIo | undefined, depth: number): void {
  const w = s.words[1];
  if (!w || s.block) {
    sink.error(
      s.words[0]!.pos,
      'drbd-syntax',
      '\'include\' needs a file name or glob: include "drbd.d/*.res";',
    );
    return;
  }
  if (!io) {
    sink.error(w.pos, 'drbd-include', `cannot follow include '${w.text}' here (no file access)`);
    return;
  }
  if (depth >= DRBD_MAX_INCLUDE_DEPTH) {
    sink.error(
      w.pos,
      'drbd-include',
      `includes nested deeper than ${DRBD_MAX_INCLUDE_DEPTH} (include loop?)`,
    );
    return;
  }
  const pattern = includePath(file, w.text);
  let paths: string[];
  try {
    paths = io.glob(pattern);
  } catch (err) {
    sink.error(w.pos, 'drbd-include', `cannot list '${pattern}': ${(err as Error).message}`);
    return;
  }
  if (paths.length === 0 && !/[*?[]/.test(w.text)) {
    sink.error(w.pos, 'drbd-include', `included file '${pattern}' does not exist`);
  }
  for (const p of paths) {
    if (acc.files.length >= DRBD_MAX_FILES) {
      sink.error(w.pos, 'drbd-include', `more than ${DRBD_MAX_FILES} files included`);
      return;
    }
    let text: string;
    try {
      text = io.readFile(p);
    } catch (err) {
      sink.error(w.pos, 'drbd-include', `cannot read included file '${p}': ${(err as Error).message}`);
      continue;
    }
    acc.files.push(p);
    const stmts = buildBlocks(tokenize(text, p, sink), sink);
    checkKeywords(stmts, sink);
    interpret(stmts, p, acc, sink, io, depth + 1);
  }
}

/**
 * Parses drbd.conf text. `file` names the file in diagnostics and anchors relative includes;
 * `io` reads included files (omit it to reject includes). Never throws on bad input.
 */
export function parseDrbdConf(text: string, file: string, io?: DrbdIo): DrbdParseResult {
  const sink = new Sink();
  const acc: Acc = { global: [], commonSections: [], resources: [], files: [file] };
  const stmts = buildBlocks(tokenize(text, file, sink), sink);
  checkKeywords(stmts, sink);
  if (!sink.hasErrors) interpret(stmts, file, acc, sink, io, 0);
  if (sink.hasErrors) {
    const diagnostics = [...sink.list].sort((a, b) =>
      a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1,
    );
    return { ok: false, diagnostics };
  }
  const config: DrbdConfig = {
    global: acc.global,
    common: {
      ...(acc.commonProtocol !== undefined ? { protocol: acc.commonProtocol } : {}),
      sections: acc.commonSections,
    },
    resources: acc.resources,
    files: acc.files,
  };
  return { ok: true, config, warnings: sink.list };
}

// ---------------------------------------------------------------------------------------------
// Include paths

/**
 * Where an include names a file: absolute as written, else relative to the including file's
 * directory, normalized as POSIX path.join does (`.` and empty segments dropped, `..` taken back).
 */
export function includePath(from: string, rel: string): string {
  if (rel.startsWith('/')) return rel;
  const cut = from.lastIndexOf('/');
  const dir = cut < 0 ? '.' : cut === 0 ? '/' : from.slice(0, cut);
  const abs = dir.startsWith('/');
  const out: string[] = [];
  for (const seg of `${dir}/${rel}`.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (seg !== '..' || !abs) out.push(seg);
  }
  const joined = out.join('/');
  return abs ? `/${joined}` : joined || '.';
}

// ---------------------------------------------------------------------------------------------
// Serializer

function quote(v: string): string {
  if (v === '') return '';
  if (/^[^\s"'#;{}\\\u201c-\u201f\u2033]+$/.test(v)) return v;
  // A newline inside a value can only have come from a backslash-newline; write it back so.
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\\n')}"`;
}

function optLine(indent: string, [k, v]: DrbdOption): string {
  return v === '' ? `${indent}${k};` : `${indent}${k} ${quote(v)};`;
}

function sectionLines(indent: string, s: DrbdSection): string[] {
  return [`${indent}${s.name} {`, ...s.options.map((o) => optLine(`${indent}\t`, o)), `${indent}}`];
}

/** Writes a DrbdConfig as one drbd.conf (includes are inlined). Parsing it gives the same config. */
export function serializeDrbdConf(conf: DrbdConfig): string {
  const out: string[] = [];
  if (conf.global.length > 0) out.push('global {', ...conf.global.map((o) => optLine('\t', o)), '}');
  if (conf.common.protocol !== undefined || conf.common.sections.length > 0) {
    out.push('common {');
    if (conf.common.protocol !== undefined) out.push(`\tprotocol ${conf.common.protocol};`);
    for (const s of conf.common.sections) out.push(...sectionLines('\t', s));
    out.push('}');
  }
  for (const r of conf.resources) {
    out.push(`resource ${quote(r.name)} {`);
    if (r.protocol !== undefined) out.push(`\tprotocol ${r.protocol};`);
    for (const o of r.options ?? []) out.push(optLine('\t', o));
    if (r.device !== undefined) out.push(optLine('\t', ['device', r.device]));
    if (r.disk !== undefined) out.push(optLine('\t', ['disk', r.disk]));
    if (r.metaDisk !== undefined) out.push(optLine('\t', ['meta-disk', r.metaDisk]));
    for (const s of r.sections) out.push(...sectionLines('\t', s));
    for (const h of r.hosts) {
      out.push(`\ton ${quote(h.name)} {`);
      if (h.nodeId !== undefined) out.push(optLine('\t\t', ['node-id', h.nodeId]));
      if (h.device !== undefined) out.push(optLine('\t\t', ['device', h.device]));
      if (h.disk !== undefined) out.push(optLine('\t\t', ['disk', h.disk]));
      if (h.address !== undefined) {
        out.push(
          `\t\taddress ${h.addressFamily !== undefined ? `${h.addressFamily} ` : ''}${quote(h.address)};`,
        );
      }
      if (h.metaDisk !== undefined) out.push(optLine('\t\t', ['meta-disk', h.metaDisk]));
      for (const o of h.options) out.push(optLine('\t\t', o));
      out.push('\t}');
    }
    out.push('}');
  }
  return `${out.join('\n')}\n`;
}
