import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { labChaos, labDown, labStatus, labUp } from '../lab/lab.ts';
import { hasNetnsSupport } from '../lab/netns.ts';
import { getFromClient, removeTestLab, servedBy } from '../lab/testing.ts';
import { waitFor } from '../lib/wait.ts';

/**
 * The whole path of halo-isolation-fencing-delay on real daemons: the lab cuts every link of
 * the DC of a two-node cluster at the switch (its veths lose carrier, the peer's do not), both
 * sides keep quorum and race to fence each other. The cut-off DC, which before this change
 * usually won (5 of 6 bench trials), must wait and lose; the healthy node fences it and serves.
 */

function logMessages(dir: string, node: string): string[] {
  return readFileSync(join(dir, node, 'daemon.log'), 'utf8')
    .split('\n')
    .map((l) => /"msg":"((?:[^"\\]|\\.)*)"/.exec(l)?.[1] ?? '');
}

test('in a two-node lab the DC whose links are all cut waits before fencing, so the healthy node fences it and serves', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
  timeout: 240_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-isolation-'));
  let namespaces: readonly string[] = [];
  try {
    const state = await labUp({ dir, nodes: 2, scenario: 'web', profile: 'lab' });
    namespaces = state.namespaces;
    await waitFor('the service to answer at the VIP', 90_000, async () =>
      servedBy(await getFromClient(state.client.ns)),
    );
    const dc = await waitFor('a DC', 30_000, async () => (await labStatus(dir)).resources?.dc ?? undefined);
    const healthy = state.nodes.find((n) => n.name !== dc)!.name;

    await labChaos(dir, { fault: 'partition', node: dc });

    const by = await waitFor(`${healthy} to serve alone`, 90_000, async () => {
      const s = servedBy(await getFromClient(state.client.ns));
      return s === healthy && logMessages(dir, healthy).some((m) => m.startsWith(`fenced ${dc} (`))
        ? s
        : undefined;
    });
    assert.equal(by, healthy);
    const cut = logMessages(dir, dc);
    assert.ok(
      cut.some((m) => m.startsWith('no carrier on any cluster link: link 0 ')),
      `the cut-off DC noticed it has no carrier:\n${cut.slice(-30).join('\n')}`,
    );
    // The healthy node may fence the DC before the DC even reaches its own takeover fence
    // (both detect the loss after deadtime); if it got that far, it waited.
    const takeover = cut.filter((m) => m.startsWith(`fencing ${healthy} for the two-node takeover`));
    assert.ok(
      takeover.every((m) => m.startsWith(`fencing ${healthy} for the two-node takeover waits 10000 ms`)),
      `the cut-off DC delayed its fence:\n${cut.slice(-30).join('\n')}`,
    );
    assert.ok(!cut.some((m) => m.startsWith(`fenced ${healthy} (`)), 'the cut-off DC fenced nobody');
    const healthyLog = logMessages(dir, healthy);
    assert.ok(
      !healthyLog.some((m) => m.startsWith('no carrier on any cluster link')),
      'the healthy node never thought itself cut off',
    );

    const lines = await labDown(dir);
    assert.ok(lines.some((l) => l.startsWith(`removed ${dir}`)));
  } finally {
    await removeTestLab(dir);
  }
  for (const ns of namespaces) assert.ok(!existsSync(`/run/netns/${ns}`), `namespace ${ns} left behind`);
});
