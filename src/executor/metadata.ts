import { HaloError } from '../lib/errors.ts';
import { SaxesParser } from '../lib/saxes.ts';

/**
 * Resource- and fence-agent meta-data (OCF 1.1 `<resource-agent>`): parameters with
 * required/unique/default/type, and actions with their default timeouts. Config validation
 * uses it to reject a missing required parameter before any agent runs.
 */
export interface AgentParameter {
  readonly name: string;
  readonly required: boolean;
  readonly unique: boolean;
  readonly type: string;
  readonly default?: string;
  readonly shortdesc: string;
  readonly longdesc: string;
}

export interface AgentAction {
  readonly name: string;
  readonly timeout?: string;
  readonly interval?: string;
  readonly depth?: string;
  readonly role?: string;
  readonly startDelay?: string;
}

export interface AgentMetadata {
  readonly name: string;
  readonly version?: string;
  readonly shortdesc: string;
  readonly longdesc: string;
  readonly parameters: readonly AgentParameter[];
  readonly actions: readonly AgentAction[];
}

/** Largest meta-data document accepted (real ones are < 100 KB). */
export const MAX_METADATA_BYTES = 1024 * 1024;

interface ParamDraft {
  name: string;
  required: boolean;
  unique: boolean;
  type: string;
  default?: string;
  shortdesc: string;
  longdesc: string;
}

/**
 * Parses meta-data XML printed by `AGENT meta-data`. `source` names the agent in errors. Throws
 * `HaloError` code `bad-metadata` (with line:column) for anything that is not a
 * `<resource-agent>` document.
 */
export function parseMetadata(xml: string, source: string): AgentMetadata {
  if (xml.length > MAX_METADATA_BYTES) {
    throw new HaloError(
      'bad-metadata',
      `${source}: meta-data is ${xml.length} bytes, more than ${MAX_METADATA_BYTES}`,
    );
  }
  if (xml.trim() === '') {
    throw new HaloError(
      'bad-metadata',
      `${source}: meta-data is empty (expected a <resource-agent> XML document)`,
    );
  }
  const parser = new SaxesParser({ position: true });
  const stack: string[] = [];
  let root: string | undefined;
  let name = '';
  let version: string | undefined;
  let shortdesc = '';
  let longdesc = '';
  let text = '';
  let param: ParamDraft | undefined;
  const parameters: AgentParameter[] = [];
  const actions: AgentAction[] = [];
  const where = (): string => `${source}: meta-data line ${parser.line}:${parser.column + 1}`;
  parser.on('opentag', (tag) => {
    const a = tag.attributes as Record<string, string>;
    const parent = stack[stack.length - 1];
    if (root === undefined) {
      root = tag.name;
      if (tag.name !== 'resource-agent') {
        throw new HaloError(
          'bad-metadata',
          `${where()}: root element is <${tag.name}>, expected <resource-agent>`,
        );
      }
      name = a.name ?? '';
      if (a.version !== undefined) version = a.version;
      if (a.shortdesc !== undefined) shortdesc = a.shortdesc; // fence-agents put it here
    } else if (tag.name === 'parameter' && parent === 'parameters') {
      if (!a.name) throw new HaloError('bad-metadata', `${where()}: <parameter> without a name`);
      param = {
        name: a.name,
        required: a.required === '1' || a.required === 'true',
        unique: a.unique === '1' || a.unique === 'true',
        type: 'string',
        shortdesc: '',
        longdesc: '',
      };
    } else if (tag.name === 'content' && param !== undefined) {
      param.type = a.type ?? 'string';
      if (a.default !== undefined) param.default = a.default;
    } else if (tag.name === 'action' && parent === 'actions') {
      if (!a.name) throw new HaloError('bad-metadata', `${where()}: <action> without a name`);
      actions.push({
        name: a.name,
        ...(a.timeout !== undefined ? { timeout: a.timeout } : {}),
        ...(a.interval !== undefined ? { interval: a.interval } : {}),
        ...(a.depth !== undefined ? { depth: a.depth } : {}),
        ...(a.role !== undefined ? { role: a.role } : {}),
        ...(a['start-delay'] !== undefined ? { startDelay: a['start-delay'] } : {}),
      });
    }
    stack.push(tag.name);
    text = '';
  });
  parser.on('text', (t) => {
    text += t;
  });
  parser.on('cdata', (t) => {
    text += t;
  });
  parser.on('closetag', (tag) => {
    stack.pop();
    const parent = stack[stack.length - 1];
    const body = text.trim().replace(/\s+/g, ' ');
    if (tag.name === 'parameter' && param !== undefined) {
      parameters.push(param);
      param = undefined;
    } else if (param !== undefined && parent === 'parameter') {
      if (tag.name === 'shortdesc' && !param.shortdesc) param.shortdesc = body;
      if (tag.name === 'longdesc' && !param.longdesc) param.longdesc = body;
    } else if (parent === 'resource-agent') {
      if (tag.name === 'shortdesc' && !shortdesc) shortdesc = body;
      if (tag.name === 'longdesc') longdesc = body;
      // <version> is the OCF standard version; the agent's own version attribute wins.
      if (tag.name === 'version' && version === undefined) version = body;
    }
    text = '';
  });
  try {
    parser.write(xml).close();
  } catch (err) {
    if (err instanceof HaloError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    throw new HaloError('bad-metadata', `${source}: meta-data is not well-formed XML: ${msg}`, {
      cause: err,
    });
  }
  if (root === undefined) {
    throw new HaloError(
      'bad-metadata',
      `${source}: meta-data is empty (expected a <resource-agent> XML document)`,
    );
  }
  return { name, ...(version !== undefined ? { version } : {}), shortdesc, longdesc, parameters, actions };
}

/**
 * Checks instance parameters against meta-data: every required parameter must be present and
 * non-empty. Unknown parameters are allowed (agents ignore them; Pacemaker only warns).
 * Throws `HaloError` code `missing-parameter` naming the agent and every missing parameter.
 */
export function validateParams(
  meta: AgentMetadata,
  agent: string,
  params: Readonly<Record<string, string>>,
): void {
  const missing = meta.parameters
    .filter((p) => p.required && (params[p.name] ?? '') === '')
    .map((p) => p.name);
  if (missing.length > 0) {
    const list = missing.map((m) => `'${m}'`).join(', ');
    throw new HaloError(
      'missing-parameter',
      `${agent}: required parameter${missing.length > 1 ? 's' : ''} ${list} not set (give ${missing.map((m) => `--param ${m}=…`).join(' ')})`,
    );
  }
}

/** The default timeout (ms text as written) an agent declares for an action, if any. */
export function actionTimeout(meta: AgentMetadata, action: string): string | undefined {
  return meta.actions.find((a) => a.name === action)?.timeout;
}
