import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { waitFor } from '../lib/wait.ts';
import { labChaos, labDown, labStatus, labUp, readLabState, vipHolders } from './lab.ts';
import { hasNetnsSupport } from './netns.ts';
import { getFromClient, removeTestLab, servedBy } from './testing.ts';

/** PIDs whose command line mentions `text` (daemons, the web server). */
function processesMentioning(text: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text)) out.push(Number(p));
    } catch {
      // Exited meanwhile.
    }
  }
  return out;
}

/**
 * lab up web → answers at the VIP → kill the node running it → answers from another → the
 * killed node boots again and rejoins without taking anything back → down leaves nothing.
 */
async function killTheServingNode(nodes: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'halo-failover-'));
  let namespaces: readonly string[] = [];
  try {
    // The lab profile: robust timing on a busy shared machine (nothing here measures time).
    const state = await labUp({ dir, nodes, scenario: 'web', profile: 'lab' });
    namespaces = state.namespaces;
    assert.match(state.scenarioLoad ?? '', /committed to the replicated CIB/);

    const first = await waitFor('the service to answer at the VIP', 90_000, async () =>
      servedBy(await getFromClient(state.client.ns)),
    );
    assert.ok(
      state.nodes.some((n) => n.name === first),
      `answered by ${first}`,
    );
    assert.deepEqual(
      vipHolders(readLabState(dir)),
      [first],
      'the VIP is on the node that answers, only there',
    );
    // The web server can answer before its agent's start has returned and been recorded.
    const startedHere = new RegExp(`www\\s+\\(halo:process\\):\\s+Started ${first}`);
    const before = await waitFor('status to show www started where it answers', 30_000, async () => {
      const r = await labStatus(dir);
      return startedHere.test(r.resources?.text ?? '') ? r : undefined;
    });
    assert.match(before.resources?.text ?? '', startedHere);

    await labChaos(dir, { fault: 'kill', node: first });

    const second = await waitFor('the service to answer from another node', 90_000, async () => {
      const by = servedBy(await getFromClient(state.client.ns));
      return by !== undefined && by !== first ? by : undefined;
    });
    assert.notEqual(second, first);
    assert.deepEqual(
      vipHolders(readLabState(dir)),
      [second],
      'the VIP moved: the fenced node has it on no live link',
    );
    const after = await waitFor('status to show the group on the new node', 30_000, async () => {
      const r = await labStatus(dir);
      return new RegExp(`vip\\s+\\(halo:vip\\):\\s+Started ${second}`).test(r.resources?.text ?? '')
        ? r
        : undefined;
    });
    assert.match(after.resources?.text ?? '', new RegExp(`OFFLINE: \\[ ${first} \\]`));
    const dcLog = readFileSync(join(dir, after.resources!.dc!, 'daemon.log'), 'utf8');
    assert.match(dcLog, new RegExp(`fenced ${first}: off of ${first} succeeded via fence-lab`));

    // The killed node boots again: it rejoins, the DC probes it (its answers must reach the DC
    // even though the DC's old connection to it died without a FIN), and nothing runs twice.
    await labChaos(dir, { fault: 'restart', node: first });
    const dc = after.resources!.dc!;
    await waitFor(`${first} to rejoin and its probes to be answered`, 60_000, async () => {
      const log = readFileSync(join(dir, dc, 'daemon.log'), 'utf8');
      const at = log.lastIndexOf(`${first} joined the cluster`);
      return at >= 0 && /transition \d+ complete/.test(log.slice(at)) ? true : undefined;
    }).catch((e: Error) => {
      const tail = (node: string) =>
        readFileSync(join(dir, node, 'daemon.log'), 'utf8')
          .split('\n')
          .slice(-40)
          .map((l) => /"msg":"([^"]*)"/.exec(l)?.[1] ?? l)
          .join('\n');
      throw new Error(
        `${e.message}; the DC's last log lines:\n${tail(dc)}\n${first}'s last log lines:\n${tail(first)}`,
      );
    });
    assert.deepEqual(vipHolders(readLabState(dir)), [second], 'the VIP stays where it went, only there');
    assert.equal(servedBy(await getFromClient(state.client.ns)), second);

    const lines = await labDown(dir);
    assert.ok(lines.some((l) => l.startsWith(`removed ${dir}`)));
  } finally {
    await removeTestLab(dir);
  }
  for (const ns of namespaces) assert.ok(!existsSync(`/run/netns/${ns}`), `namespace ${ns} left behind`);
  assert.deepEqual(processesMentioning(dir), [], 'no daemon or web server left running');
}

test(
  'the web scenario answers at the VIP, moves to another node when the node running it is killed, and lab down leaves nothing behind',
  {
    skip: !hasNetnsSupport() && 'needs root and ip netns',
    timeout: 240_000,
  },
  () => killTheServingNode(3),
);

test(
  'in a two-node lab the survivor fences the killed node, takes over alone and serves the VIP',
  {
    skip: !hasNetnsSupport() && 'needs root and ip netns',
    timeout: 240_000,
  },
  () => killTheServingNode(2),
);
