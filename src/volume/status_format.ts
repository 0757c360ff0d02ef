import { BLOCK_BYTES } from './bitmap.ts';
import type { CoreStatus } from './core.ts';
import { WIRE_VERSION } from './messages.ts';

/**
 * Human output for `halo volume status` (like `drbdadm status`) and `status --proc` (like
 * /proc/drbd). Pure: status in, text out. `uuid` fields arrive as hex strings from the control
 * socket, or bigints from a core in the same process.
 */

type Uuidish = bigint | string;

function hex(u: Uuidish): string {
  return typeof u === 'bigint' ? u.toString(16).toUpperCase().padStart(16, '0') : u;
}

function percentDone(s: CoreStatus): number | undefined {
  const r = s.resync;
  if (!r) return undefined;
  if (r.totalBlocks === 0) return 100;
  return Math.min(100, (100 * (r.totalBlocks - s.outOfSyncBlocks)) / r.totalBlocks);
}

export function formatDrbdadmStatus(s: CoreStatus): string {
  // Like drbdadm: `suspended:fencing` while writes wait for the fence-peer handler.
  const suspended = s.ioSuspended ? ' suspended:fencing' : '';
  const lines = [`${s.resource} role:${s.role}${suspended}`, `  disk:${s.disk}`];
  const peerRole =
    s.conn === 'StandAlone' || s.conn === 'Connecting' ? `connection:${s.conn}` : `role:${s.peerRole}`;
  lines.push(`  ${s.peer} ${peerRole}`);
  if (s.conn !== 'StandAlone' && s.conn !== 'Connecting') {
    const repl = s.conn === 'Connected' ? '' : `replication:${s.conn} `;
    const done = percentDone(s);
    lines.push(`    ${repl}peer-disk:${s.peerDisk}${done !== undefined ? ` done:${done.toFixed(2)}` : ''}`);
  }
  // Absent from engines older than online resize.
  if (s.resize)
    lines.push(`    resize:${s.resize.phase} to:${s.resize.toBytes} held-requests:${s.resize.heldIos}`);
  if (s.verify) {
    const pct = (100 * s.verify.doneBlocks) / Math.max(1, s.verify.totalBlocks);
    lines.push(
      `    verify:${s.verify.running ? 'running' : 'done'} done:${pct.toFixed(2)} out-of-sync:${s.verify.outOfSync * 4}KiB`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function bar(pct: number): string {
  const width = 20;
  const filled = Math.floor((pct / 100) * width);
  return `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${'.'.repeat(width - filled)}]`;
}

function clock(sec: number): string {
  const s = Math.max(0, Math.round(sec));
  return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

export function formatProcDrbd(s: CoreStatus): string {
  const c = s.counters;
  const kib = (n: number) => Math.floor(n / 1024);
  const peerRole = s.peerRole === 'Unknown' ? 'Unknown' : s.peerRole;
  const lines = [
    `version: halo 0.1.0 (userspace, protocol halo-${WIRE_VERSION})`,
    ` 0: cs:${s.conn === 'Connecting' ? 'WFConnection' : s.conn} ro:${s.role}/${peerRole} ds:${s.disk}/${s.peerDisk} ${s.protocol} ${s.ioSuspended ? 's' : 'r'}-----`,
    `    ns:${kib(c.ns)} nr:${kib(c.nr)} dw:${kib(c.dw)} dr:${kib(c.dr)} al:${c.al} bm:0 lo:0 pe:${c.pe} ua:${c.ua} ap:${c.ap} ep:1 wo:f oos:${(s.outOfSyncBlocks * BLOCK_BYTES) / 1024}`,
  ];
  const r = s.resync;
  const pct = percentDone(s);
  if (r && pct !== undefined) {
    const leftMiB = (s.outOfSyncBlocks * BLOCK_BYTES) / 1024 / 1024;
    const totalMiB = (r.totalBlocks * BLOCK_BYTES) / 1024 / 1024;
    const elapsedS = Math.max(0.001, (s.nowMs - r.startMs) / 1000);
    const doneBytes = (r.totalBlocks - s.outOfSyncBlocks) * BLOCK_BYTES;
    const speed = doneBytes / 1024 / elapsedS;
    const eta = speed > 0 ? (leftMiB * 1024) / speed : 0;
    lines.push(`\t${bar(pct)} sync'ed: ${pct.toFixed(1)}% (${leftMiB.toFixed(0)}/${totalMiB.toFixed(0)})M`);
    lines.push(
      `\tfinish: ${clock(eta)} speed: ${Math.round(speed).toLocaleString('en-US')} (${Math.round(speed).toLocaleString('en-US')}) K/sec`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export function formatGi(
  gen: { current: Uuidish; bitmap: Uuidish; history: readonly Uuidish[] },
  disk: string,
): string {
  return `${hex(gen.current)}:${hex(gen.bitmap)}:${gen.history.map(hex).join(':')}:1:1:${disk === 'UpToDate' ? 1 : 0}:0:0:0:0:0\n`;
}
