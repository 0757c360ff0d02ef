import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Cib, Primitive } from '../cib/model.ts';
import { type CibCommand, encodeCibCommand } from '../consensus/cib_state_machine.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { createLabCluster, startAndAgree, waitFor } from '../daemon/lab_cluster.ts';
import { hasNetnsSupport } from '../lab/netns.ts';
import { clone, cluster, primitive } from '../scheduler/testing.ts';
import { findDcSocket, runClusterFence } from './cluster_fence.ts';
import { FENCE_EXIT, fenceConstraintId, fencedInFavourOf } from './fence_peer.ts';

/** How long three lab daemons may take to form a cluster and agree on a DC. */
const FORM_DEADLINE_MS = 30_000;

test('fence-peer on a follower commits the constraint through the DC; the peer then learns it is stale; unfence removes it', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
  timeout: 120_000,
}, async () => {
  const names = ['n1', 'n2', 'n3'];
  const lab = createLabCluster({ nodes: names });
  try {
    const dc = await startAndAgree(lab, names, FORM_DEADLINE_MS);
    const [self, peer] = names.filter((n) => n !== dc) as [string, string];
    // ms_drbd for volume r0 (stopped: this test is about the CIB, not the engines).
    const p: Primitive = {
      ...primitive('p_drbd', { type: 'drbd', params: { drbd_resource: 'r0' } }),
      provider: 'linbit',
    };
    const config = cluster({
      nodes: names,
      resources: [clone('ms_drbd', p, { promotable: 'true', 'target-role': 'Stopped' })],
    }).configuration;
    const load = (await lab.command(
      dc,
      `cib ${encodeCibCommand({ op: 'replace-configuration', configuration: config })}`,
    )) as {
      ok?: boolean;
    };
    assert.equal(load.ok, true, JSON.stringify(load));
    const sock = (n: string) => join(lab.dir, `${n}.sock`);
    const clusterConfig = join(lab.dir, 'halo.json');
    const committedEpoch = async () => ((await lab.status(dc)) as DaemonStatus).consensus?.cib?.epoch;
    /** The DC's CIB once its view has caught up with the last commit. */
    const dcCib = async () => {
      const want = (await committedEpoch()) ?? 0;
      return waitFor('the DC view to catch up', 5000, async () => {
        const cib = ((await lab.command(dc, 'cib')) as { cib: Cib }).cib;
        return Number(cib.attrs.find(([k]) => k === 'epoch')?.[1] ?? '0') >= want ? cib : undefined;
      });
    };

    const fenced = await runClusterFence({
      action: 'fence',
      resource: 'r0',
      self,
      peer,
      socket: sock(self), // a follower: the change must travel to the DC's socket
      clusterConfig,
    });
    assert.equal(fenced.exitCode, FENCE_EXIT.peerOutdated, fenced.message);
    const c = (await dcCib()).configuration.constraints.find(
      (x) => x.id === fenceConstraintId('r0', 'ms_drbd'),
    );
    assert.ok(c, 'the constraint is in the cluster CIB');
    assert.equal(fencedInFavourOf(c), self);

    const before = await committedEpoch();
    const stale = await runClusterFence({
      action: 'fence',
      resource: 'r0',
      self: peer,
      peer: self,
      socket: sock(peer),
      clusterConfig,
    });
    assert.equal(stale.exitCode, FENCE_EXIT.peerIsPrimary, stale.message);
    assert.equal(await committedEpoch(), before, 'the stale node changes nothing');

    const unknown = await runClusterFence({
      action: 'fence',
      resource: 'r9',
      self,
      peer,
      socket: sock(dc),
      clusterConfig,
    });
    assert.equal(unknown.exitCode, FENCE_EXIT.failed);
    assert.match(unknown.message, /drbd_resource=r9/);

    const unfenced = await runClusterFence({
      action: 'unfence',
      resource: 'r0',
      self: peer,
      peer: self,
      socket: sock(peer),
      clusterConfig,
    });
    assert.equal(unfenced.exitCode, 0, unfenced.message);
    const left = (await dcCib()).configuration.constraints.map((x) => x.id);
    assert.deepEqual(left, []);
  } finally {
    lab.destroy();
  }
});

test('fence-peer without a reachable cluster fails (exit 1) and says why', async () => {
  const r = await runClusterFence({
    action: 'fence',
    resource: 'r0',
    self: 'alpha',
    peer: 'bravo',
    clusterConfig: '/nonexistent/halo.json',
  });
  assert.equal(r.exitCode, FENCE_EXIT.failed);
  assert.match(r.message, /no cluster to fence in/);
  const gone = await runClusterFence({
    action: 'fence',
    resource: 'r0',
    self: 'alpha',
    peer: 'bravo',
    socket: '/nonexistent/x.sock',
  });
  assert.equal(gone.exitCode, FENCE_EXIT.failed);
  assert.match(gone.message, /not committed after \d+ attempts: .*\/nonexistent\/x\.sock/);
});

test('a follower finds the DC socket in a lab layout (one concrete socket path per node) and only where the DC answers as itself', async () => {
  const { createServer } = await import('node:net');
  const { mkdirSync, mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'halo-dcsock-'));
  const servers: import('node:net').Server[] = [];
  const daemon = async (name: string, says: string): Promise<string> => {
    mkdirSync(join(dir, name));
    const path = join(dir, name, 'halo.sock');
    const srv = createServer((c) => c.end(`${JSON.stringify({ node: says })}\n`));
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(path, () => r()));
    return path;
  };
  try {
    const own = await daemon('n2', 'n2');
    await daemon('n1', 'n1');
    await daemon('n3', 'n4');
    const cfg = { controlSocket: own } as unknown as Parameters<typeof findDcSocket>[0];
    assert.equal(await findDcSocket(cfg, own, 'n2', 'n1'), join(dir, 'n1', 'halo.sock'));
    const impostor = await findDcSocket(cfg, own, 'n2', 'n3');
    assert.deepEqual(impostor, { tried: [join(dir, 'n3', 'halo.sock')] }, 'n3/halo.sock answers as n4');
    assert.deepEqual(await findDcSocket(cfg, own, 'n2', 'n9'), { tried: [] });
    const templ = { controlSocket: join(dir, '{node}', 'halo.sock') } as unknown as Parameters<
      typeof findDcSocket
    >[0];
    assert.equal(await findDcSocket(templ, own, undefined, 'n1'), join(dir, 'n1', 'halo.sock'));
  } finally {
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fence-peer whose change meets an administrator edit committed meanwhile is refused as a conflict, recomputes from the new CIB and keeps the edit', async () => {
  const { createServer } = await import('node:net');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'halo-fence-cas-'));
  const p: Primitive = {
    ...primitive('p_drbd', { type: 'drbd', params: { drbd_resource: 'r0' } }),
    provider: 'linbit',
  };
  const base = cluster({
    nodes: ['alpha', 'bravo'],
    resources: [clone('ms_drbd', p, { promotable: 'true' })],
  });
  const withEpoch = (cib: Cib, epoch: number): Cib => ({
    ...cib,
    attrs: [...cib.attrs.filter(([k]) => k !== 'epoch'), ['epoch', String(epoch)]],
  });
  // The daemon: its CIB is at epoch 5; an administrator's change (a property) commits just as
  // the handler proposes, so its first proposal, computed at epoch 5, meets epoch 6.
  let cib = withEpoch(base, 5);
  const proposals: Array<{ expectedEpoch: number | undefined; properties: string[] }> = [];
  const srv = createServer((c) => {
    c.once('data', (line) => {
      const text = line.toString().trim();
      let reply: unknown;
      if (text === 'cib') reply = { cib };
      else if (text === 'status') reply = { node: 'alpha', consensus: { cib: { epoch: epochOf(cib) } } };
      else {
        const cmd = JSON.parse(text.slice(4)) as CibCommand;
        assert.ok(cmd.op === 'replace-configuration');
        proposals.push({
          expectedEpoch: cmd.expectedVersion?.epoch,
          properties: cmd.configuration.crmConfig.flatMap((s) => s.pairs.map((x) => x.name)),
        });
        if (proposals.length === 1) {
          const admin: Cib['configuration'] = {
            ...cib.configuration,
            crmConfig: [
              {
                kind: 'cluster_property_set',
                id: 'cib-bootstrap-options',
                pairs: [{ id: 'o-x', name: 'maintenance-mode', value: 'false' }],
              },
            ],
          };
          cib = withEpoch({ ...cib, configuration: admin }, 6);
          reply = {
            ok: true,
            index: 7,
            term: 1,
            applied: false,
            code: 'conflict',
            message: 'the configuration changed since it was read (epoch 5, now 6): nothing was changed',
          };
        } else {
          cib = withEpoch({ ...cib, configuration: cmd.configuration }, epochOf(cib) + 1);
          reply = { ok: true, index: 8, term: 1, applied: true };
        }
      }
      c.end(`${JSON.stringify(reply)}\n`);
    });
  });
  const sock = join(dir, 'halo.sock');
  await new Promise<void>((r) => srv.listen(sock, () => r()));
  try {
    const r = await runClusterFence({
      action: 'fence',
      resource: 'r0',
      self: 'alpha',
      peer: 'bravo',
      socket: sock,
    });
    assert.equal(r.exitCode, FENCE_EXIT.peerOutdated, r.message);
    assert.deepEqual(
      proposals.map((x) => x.expectedEpoch),
      [5, 6],
      'each proposal expects the epoch of the CIB it was computed from',
    );
    assert.ok(
      proposals[1]!.properties.includes('maintenance-mode'),
      "the second proposal keeps the administrator's edit",
    );
    assert.ok(
      cib.configuration.constraints.some((x) => x.id === fenceConstraintId('r0', 'ms_drbd')),
      'the fence constraint committed',
    );
  } finally {
    srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

function epochOf(cib: Cib): number {
  return Number(cib.attrs.find(([k]) => k === 'epoch')?.[1] ?? '0');
}
