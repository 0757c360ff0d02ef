import { assertNever } from '../lib/assert.ts';
import { type DiskState, type Generations, type Role, sameUuid, UUID_JUST_CREATED } from './metadata.ts';

/**
 * The connect-time decision (pure): compare generation identifiers as DRBD does to decide who
 * is sync source, whether a full sync is needed, or whether the two disks split. Both nodes run
 * it with the arguments swapped and reach mirror-image answers.
 */

export type AfterSb0 =
  | 'disconnect'
  | 'discard-younger-primary'
  | 'discard-older-primary'
  | 'discard-zero-changes'
  | 'discard-least-changes'
  | 'discard-local'
  | 'discard-remote';
export type AfterSb1 =
  | 'disconnect'
  | 'consensus'
  | 'violently-as0p'
  | 'discard-secondary'
  | 'call-pri-lost-after-sb';
export type AfterSb2 = 'disconnect' | 'violently-as0p' | 'call-pri-lost-after-sb';

export interface SbPolicies {
  readonly after0: AfterSb0;
  readonly after1: AfterSb1;
  readonly after2: AfterSb2;
}

export interface NodeView {
  readonly name: string;
  readonly gen: Generations;
  readonly role: Role;
  readonly disk: DiskState;
  /** Set bits in the bitmap: blocks changed since the peer was last in sync. */
  readonly weight: number;
  readonly crashedPrimary: boolean;
  readonly discardMyData: boolean;
  readonly syncSourceUuid: bigint;
}

export type Decision =
  | { readonly kind: 'in-sync'; readonly rule: string }
  | {
      readonly kind: 'source' | 'target';
      readonly full: boolean;
      readonly rule: string;
      readonly splitBrain: boolean;
    }
  | {
      readonly kind: 'split-brain';
      readonly rule: string;
      /** Handlers the node must run: split-brain always, pri-lost-after-sb when a policy says so. */
      readonly priLost: boolean;
    }
  | { readonly kind: 'unrelated'; readonly rule: string }
  | { readonly kind: 'refuse'; readonly rule: string };

/**
 * DRBD's uuid compare. Positive: I am sync source; negative: target; |2| full sync; 0 in sync;
 * 100 split brain (both changed since a common point); -1000 unrelated data.
 */
export function compareGenerations(self: NodeView, peer: NodeView): { hg: number; rule: string } {
  const s = self.gen;
  const p = peer.gen;
  if (self.disk === 'Inconsistent' && self.syncSourceUuid !== 0n) {
    if (sameUuid(self.syncSourceUuid, p.current) || sameUuid(self.syncSourceUuid, p.bitmap)) {
      return { hg: -1, rule: 'resume interrupted resync as target' };
    }
  }
  if (peer.disk === 'Inconsistent' && peer.syncSourceUuid !== 0n) {
    if (sameUuid(peer.syncSourceUuid, s.current) || sameUuid(peer.syncSourceUuid, s.bitmap)) {
      return { hg: 1, rule: 'resume interrupted resync as source' };
    }
  }
  const sJust = s.current === UUID_JUST_CREATED;
  const pJust = p.current === UUID_JUST_CREATED;
  if (sJust && pJust) return { hg: 0, rule: 'both just created' };
  if (sJust) return { hg: -2, rule: 'I was just created: full sync from peer' };
  if (pJust) return { hg: 2, rule: 'peer was just created: full sync to peer' };
  if (sameUuid(s.current, p.current)) {
    if (self.crashedPrimary && !peer.crashedPrimary) return { hg: 1, rule: 'I was a crashed primary' };
    if (peer.crashedPrimary && !self.crashedPrimary) return { hg: -1, rule: 'peer was a crashed primary' };
    if (self.weight > 0 || peer.weight > 0 || (self.crashedPrimary && peer.crashedPrimary)) {
      // Same generation but blocks marked (verify found differences, or both crashed):
      // the Primary's data wins, else the name order decides, so both sides agree.
      if (self.role !== peer.role)
        return { hg: self.role === 'Primary' ? 1 : -1, rule: 'marked blocks: primary wins' };
      return { hg: self.name < peer.name ? 1 : -1, rule: 'marked blocks: name order' };
    }
    return { hg: 0, rule: 'same current generation' };
  }
  if (p.bitmap !== 0n && sameUuid(p.bitmap, s.current))
    return { hg: -1, rule: "peer's bitmap uuid is my current" };
  if (p.history.some((h) => h !== 0n && sameUuid(h, s.current))) {
    return { hg: -2, rule: "my current is in peer's history" };
  }
  if (s.bitmap !== 0n && sameUuid(s.bitmap, p.current))
    return { hg: 1, rule: "my bitmap uuid is peer's current" };
  if (s.history.some((h) => h !== 0n && sameUuid(h, p.current))) {
    return { hg: 2, rule: "peer's current is in my history" };
  }
  if (s.bitmap !== 0n && sameUuid(s.bitmap, p.bitmap))
    return { hg: 100, rule: 'both changed since a common generation' };
  for (const a of [s.bitmap, ...s.history]) {
    for (const b of [p.bitmap, ...p.history]) {
      if (a !== 0n && b !== 0n && sameUuid(a, b)) return { hg: 100, rule: 'common ancestor in history' };
    }
  }
  return { hg: -1000, rule: 'no common generation: unrelated data' };
}

/** Deterministic tie-break both sides agree on: the node whose name sorts first gives way. */
function tieBreak(self: NodeView, peer: NodeView): number {
  return self.name < peer.name ? -1 : 1;
}

function primaryBit(g: Generations): number {
  return Number(g.bitmap & 1n);
}

/** after-sb-0pri; returns 1 (peer discarded), -1 (I am discarded) or 0 (unresolved). */
export function recover0(policy: AfterSb0, self: NodeView, peer: NodeView): number {
  const selfWasPri = primaryBit(self.gen);
  const peerWasPri = primaryBit(peer.gen);
  switch (policy) {
    case 'disconnect':
      return 0;
    case 'discard-local':
      return -1;
    case 'discard-remote':
      return 1;
    case 'discard-younger-primary':
      // The younger primary was not Primary before the split (its bitmap uuid lacks the bit).
      if (selfWasPri === 0 && peerWasPri === 1) return -1;
      if (selfWasPri === 1 && peerWasPri === 0) return 1;
      return leastChanges(self, peer);
    case 'discard-older-primary':
      if (selfWasPri === 1 && peerWasPri === 0) return -1;
      if (selfWasPri === 0 && peerWasPri === 1) return 1;
      return leastChanges(self, peer);
    case 'discard-zero-changes':
      if (self.weight === 0 && peer.weight === 0) return tieBreak(self, peer);
      if (peer.weight === 0) return 1;
      if (self.weight === 0) return -1;
      return 0;
    case 'discard-least-changes':
      return leastChanges(self, peer);
    default:
      return assertNever(policy, 'after-sb-0pri policy');
  }
}

function leastChanges(self: NodeView, peer: NodeView): number {
  if (self.weight > peer.weight) return 1;
  if (self.weight < peer.weight) return -1;
  return tieBreak(self, peer);
}

/** Runs the handshake and the after-sb policies; the result is what this node must do. */
export function decide(self: NodeView, peer: NodeView, sb: SbPolicies): Decision {
  const { hg, rule } = compareGenerations(self, peer);
  if (hg === -1000) return { kind: 'unrelated', rule };
  if (hg === 0) return { kind: 'in-sync', rule };
  if (hg !== 100) return finish(self, peer, hg, rule, false);
  const primaries = (self.role === 'Primary' ? 1 : 0) + (peer.role === 'Primary' ? 1 : 0);
  let r = 0;
  let priLost = false;
  if (primaries === 0) r = recover0(sb.after0, self, peer);
  else if (primaries === 1) ({ r, priLost } = recover1(sb, self, peer));
  else ({ r, priLost } = recover2(sb, self, peer));
  if (r === 0) {
    // Manual recovery: `connect --discard-my-data` on exactly one side.
    if (self.discardMyData && !peer.discardMyData) r = -1;
    else if (peer.discardMyData && !self.discardMyData) r = 1;
  }
  if (r === 0) return { kind: 'split-brain', rule: `${rule}; split brain unresolved`, priLost };
  return finish(
    self,
    peer,
    r,
    `${rule}; split brain resolved (${r > 0 ? 'peer' : 'my'} changes discarded)`,
    true,
  );
}

function recover1(sb: SbPolicies, self: NodeView, peer: NodeView): { r: number; priLost: boolean } {
  const iAmPrimary = self.role === 'Primary';
  switch (sb.after1) {
    case 'disconnect':
      return { r: 0, priLost: false };
    case 'discard-secondary':
      return { r: iAmPrimary ? 1 : -1, priLost: false };
    case 'violently-as0p':
      return { r: recover0(sb.after0, self, peer), priLost: false };
    case 'consensus': {
      // Accept the 0pri answer only when it discards the Secondary's changes.
      const r0 = recover0(sb.after0, self, peer);
      if ((r0 === -1 && !iAmPrimary) || (r0 === 1 && iAmPrimary)) return { r: r0, priLost: false };
      return { r: 0, priLost: false };
    }
    case 'call-pri-lost-after-sb': {
      const r0 = recover0(sb.after0, self, peer);
      if (r0 === -1 && iAmPrimary) return { r: 0, priLost: true };
      if (r0 === 1 && !iAmPrimary) return { r: 0, priLost: false };
      return { r: r0, priLost: false };
    }
    default:
      return assertNever(sb.after1, 'after-sb-1pri policy');
  }
}

function recover2(sb: SbPolicies, self: NodeView, peer: NodeView): { r: number; priLost: boolean } {
  switch (sb.after2) {
    case 'disconnect':
      return { r: 0, priLost: false };
    case 'violently-as0p':
      return { r: recover0(sb.after0, self, peer), priLost: false };
    case 'call-pri-lost-after-sb': {
      const r0 = recover0(sb.after0, self, peer);
      return { r: r0 === -1 ? 0 : r0, priLost: r0 === -1 };
    }
    default:
      return assertNever(sb.after2, 'after-sb-2pri policy');
  }
}

function finish(self: NodeView, peer: NodeView, hg: number, rule: string, splitBrain: boolean): Decision {
  // A Primary never becomes sync target (its users would see data change underneath them);
  // both sides check, so both refuse together.
  const target = hg < 0 ? self : peer;
  if (target.role === 'Primary') {
    return { kind: 'refuse', rule: `${rule}; ${target.name} would become sync target but is Primary` };
  }
  return { kind: hg > 0 ? 'source' : 'target', full: Math.abs(hg) === 2, rule, splitBrain };
}
