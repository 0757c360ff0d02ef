/**
 * Wire codec for Raft messages: UTF-8 JSON with strict validation. Decoding never throws: any
 * byte string yields either a well-formed `Message` or an error naming the first bad field, so
 * a malformed or hostile packet is dropped and counted, never crashes the daemon.
 */
import { LogIndex, NodeId, Term } from '../lib/brand.ts';
import {
  type ConfState,
  type Entry,
  MAX_FENCE_EVIDENCE,
  MAX_MEMBER_INFO,
  MESSAGE_TYPES,
  type Message,
  type MessageType,
  type Snapshot,
} from './types.ts';

/** Limits on what a peer may make us parse. */
export const CODEC_LIMITS = {
  /** A message carrying a CIB snapshot can be large; 64 MiB is far above any real CIB. */
  maxMessageBytes: 64 * 1024 * 1024,
  /** Well above RAFT_DEFAULTS.maxEntriesPerMsg, so a leader with a larger setting still interoperates. */
  maxEntries: 4096,
  /** Node ids are host names or short tokens. */
  maxNodeIdLength: 253,
  /** Largest voter set a snapshot may carry. */
  maxVoters: 64,
} as const;

export type DecodeResult =
  | { readonly ok: true; readonly value: Message }
  | { readonly ok: false; readonly code: 'raft-decode'; readonly message: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const MESSAGE_KEYS = [
  'type',
  'from',
  'to',
  'term',
  'logTerm',
  'index',
  'entries',
  'commit',
  'reject',
  'rejectHint',
  'ctx',
  'snapshot',
] as const;

export function encodeMessage(m: Message): Uint8Array {
  const o: Record<string, unknown> = {};
  for (const k of MESSAGE_KEYS) o[k] = m[k];
  return encoder.encode(JSON.stringify(o));
}

class Bad extends Error {}

function fail(msg: string): never {
  throw new Bad(msg);
}

function obj(v: unknown, where: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${where}: expected an object`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${where}: unknown field "${k.slice(0, 40)}"`);
  for (const k of keys) if (!(k in o)) fail(`${where}: missing field "${k}"`);
  return o;
}

function nat(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    fail(`${where}: expected a non-negative integer`);
  return v;
}

function int(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(`${where}: expected an integer`);
  return v;
}

function nodeId(v: unknown, where: string): NodeId {
  if (typeof v !== 'string' || v.length === 0 || v.length > CODEC_LIMITS.maxNodeIdLength) {
    fail(`${where}: expected a node id of 1..${CODEC_LIMITS.maxNodeIdLength} characters`);
  }
  return NodeId(v);
}

function entry(v: unknown, where: string): Entry {
  const o = obj(v, where, ['term', 'index', 'type', 'data']);
  if (o.type !== 'normal' && o.type !== 'conf') fail(`${where}.type: expected "normal" or "conf"`);
  if (typeof o.data !== 'string') fail(`${where}.data: expected a string`);
  if (o.type === 'conf') confChange(o.data, `${where}.data`);
  return {
    term: Term(nat(o.term, `${where}.term`)),
    index: LogIndex(nat(o.index, `${where}.index`)),
    type: o.type,
    data: o.data,
  };
}

/** A conf entry's data must be a well-formed ConfChange: the core trusts it once logged. */
function confChange(data: string, where: string): void {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    fail(`${where}: membership change is not JSON`);
  }
  const fenced = typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'fencedRemoveNode';
  const withMember = typeof v === 'object' && v !== null && 'member' in v;
  const o = obj(
    v,
    where,
    fenced ? ['type', 'node', 'fencedBy'] : ['type', 'node', ...(withMember ? ['member'] : [])],
  );
  if (o.type !== 'addNode' && o.type !== 'removeNode' && !fenced)
    fail(`${where}.type: expected "addNode", "removeNode" or "fencedRemoveNode"`);
  nodeId(o.node, `${where}.node`);
  if (
    fenced &&
    (typeof o.fencedBy !== 'string' || o.fencedBy.length === 0 || o.fencedBy.length > MAX_FENCE_EVIDENCE)
  )
    fail(`${where}.fencedBy: expected 1..${MAX_FENCE_EVIDENCE} characters naming the fence evidence`);
  if (
    o.member !== undefined &&
    (o.type !== 'addNode' || typeof o.member !== 'string' || o.member.length > MAX_MEMBER_INFO)
  )
    fail(
      `${where}.member: only an addNode carries a member description, of at most ${MAX_MEMBER_INFO} characters`,
    );
}

function confState(v: unknown, where: string): ConfState {
  const o = obj(v, where, ['voters']);
  if (!Array.isArray(o.voters) || o.voters.length > CODEC_LIMITS.maxVoters)
    fail(`${where}.voters: expected a list of at most ${CODEC_LIMITS.maxVoters} ids`);
  return { voters: o.voters.map((x, i) => nodeId(x, `${where}.voters[${i}]`)) };
}

function snapshot(v: unknown, where: string): Snapshot | null {
  if (v === null) return null;
  const o = obj(v, where, ['meta', 'data']);
  const meta = obj(o.meta, `${where}.meta`, ['index', 'term', 'conf']);
  if (typeof o.data !== 'string') fail(`${where}.data: expected a string`);
  return {
    meta: {
      index: LogIndex(nat(meta.index, `${where}.meta.index`)),
      term: Term(nat(meta.term, `${where}.meta.term`)),
      conf: confState(meta.conf, `${where}.meta.conf`),
    },
    data: o.data,
  };
}

function message(v: unknown): Message {
  const o = obj(v, 'message', MESSAGE_KEYS);
  if (typeof o.type !== 'string' || !(MESSAGE_TYPES as readonly string[]).includes(o.type))
    fail('message.type: unknown message type');
  if (!Array.isArray(o.entries) || o.entries.length > CODEC_LIMITS.maxEntries)
    fail(`message.entries: expected a list of at most ${CODEC_LIMITS.maxEntries}`);
  if (typeof o.reject !== 'boolean') fail('message.reject: expected a boolean');
  const entries = o.entries.map((e, i) => entry(e, `message.entries[${i}]`));
  const index = nat(o.index, 'message.index');
  for (let i = 0; i < entries.length; i++) {
    if (entries[i]!.index !== index + 1 + i)
      fail(`message.entries[${i}].index: entries must follow message.index contiguously`);
  }
  const type = o.type as MessageType;
  const snap = snapshot(o.snapshot, 'message.snapshot');
  if ((type === 'snap') !== (snap !== null)) fail('message.snapshot: present exactly on "snap" messages');
  if (entries.length > 0 && type !== 'app') fail('message.entries: only "app" messages carry entries');
  return {
    type,
    from: nodeId(o.from, 'message.from'),
    to: nodeId(o.to, 'message.to'),
    term: Term(nat(o.term, 'message.term')),
    logTerm: Term(nat(o.logTerm, 'message.logTerm')),
    index: LogIndex(index),
    entries,
    commit: LogIndex(nat(o.commit, 'message.commit')),
    reject: o.reject,
    rejectHint: LogIndex(nat(o.rejectHint, 'message.rejectHint')),
    ctx: int(o.ctx, 'message.ctx'),
    snapshot: snap,
  };
}

/** Decodes one message; returns an error result for anything malformed (never throws). */
export function decodeMessage(bytes: Uint8Array): DecodeResult {
  if (bytes.length > CODEC_LIMITS.maxMessageBytes) {
    return {
      ok: false,
      code: 'raft-decode',
      message: `message of ${bytes.length} bytes exceeds ${CODEC_LIMITS.maxMessageBytes}`,
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch (e) {
    return {
      ok: false,
      code: 'raft-decode',
      message: `not UTF-8 JSON: ${(e as Error).message.slice(0, 120)}`,
    };
  }
  try {
    return { ok: true, value: message(parsed) };
  } catch (e) {
    if (e instanceof Bad) return { ok: false, code: 'raft-decode', message: e.message };
    // Deeply nested input can overflow the stack inside validation; still just a bad message.
    if (e instanceof RangeError)
      return { ok: false, code: 'raft-decode', message: `message too deeply nested` };
    throw e;
  }
}
