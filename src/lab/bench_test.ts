import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { registerLabCommands } from '../cli/lab_cmd.ts';
import { HaloError } from '../lib/errors.ts';
import {
  type BenchCheck,
  benchChecks,
  benchFailover,
  dbGap,
  insertRowsSql,
  median,
  phasesFromLogs,
  primariesNow,
  replicationWhole,
  seed003SqlTarget,
  serviceGap,
  sqlArgv,
  type TrialResult,
} from './bench.ts';

test('the service gap runs from the first failed probe to the first answer from another node', () => {
  const ev = [
    { ok: true, node: 'n1', atMs: 900 },
    { ok: false, node: null, atMs: 1_300 },
    { ok: true, node: 'n2', atMs: 1_750 },
  ];
  assert.deepEqual(serviceGap(ev, 1_000, 'n1'), { gapMs: 450, back: ev[2] });
  // The old node answering after the fault (its daemon killed, its server not yet fenced) is not recovery.
  const late = [
    { ok: true, node: 'n1', atMs: 900 },
    { ok: false, node: null, atMs: 1_200 },
  ];
  assert.deepEqual(serviceGap(late, 1_000, 'n1'), { gapMs: null, back: undefined });
  // Handed over without a failed probe: no gap.
  const seamless = [
    { ok: true, node: 'n1', atMs: 900 },
    { ok: true, node: 'n2', atMs: 1_100 },
  ];
  assert.equal(serviceGap(seamless, 1_000, 'n1').gapMs, 0);
});

test('phase times come from the survivors’ log events after the fault', () => {
  const t0 = 10_000;
  const lines = [
    { t: 9_000, event: 'member-state', peer: 'n1', to: 'lost' },
    { t: 10_250, event: 'member-state', peer: 'n1', to: 'lost', node: 'n2' },
    { t: 10_300, event: 'leader', leader: 'n2', node: 'n3' },
    {
      t: 10_320,
      component: 'controller',
      msg: "transition 4: * Fence (off) n1 'peer is no longer part of the cluster'",
    },
    { t: 10_480, component: 'controller', msg: 'fenced n1: off of n1 succeeded via fence-lab', node: 'n1' },
    { t: 10_500, event: 'op-done', resource: 'vip', op: 'start', rc: 0, node: 'n3' },
    { t: 10_640, event: 'op-done', resource: 'www', op: 'start', rc: 0, node: 'n3' },
  ];
  assert.deepEqual(phasesFromLogs(lines, t0, 'n1', true), {
    detectedMs: 250,
    newDcMs: 300,
    scheduledMs: 320,
    fencedMs: 480,
    vipUpMs: 500,
    serverUpMs: 640,
  });
  assert.equal(phasesFromLogs(lines, t0, 'n1', false).newDcMs, null);
  assert.equal(phasesFromLogs([], t0, 'n1', false).fencedMs, null);
});

test('medians skip trials that measured nothing', () => {
  assert.equal(median([3, null, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 3);
  assert.equal(median([null]), null);
});

test('the SQL gap runs from the first failed query after the fault to the first answer after it', () => {
  const ev = [
    { ok: true, node: null, atMs: 950 },
    { ok: true, node: null, atMs: 1_100 },
    // Probes finish out of order (a vanished VIP holds each for its timeout): sorted by send time.
    { ok: true, node: null, atMs: 2_300 },
    { ok: false, node: null, atMs: 1_400 },
    { ok: false, node: null, atMs: 1_500 },
  ];
  assert.deepEqual(dbGap(ev, 1_000), { gapMs: 900, back: ev[2] });
  // The old node's database kept answering and nothing failed: the client cannot tell it moved.
  assert.equal(dbGap(ev.slice(0, 2), 1_000).gapMs, null);
  // Failed and never came back.
  assert.deepEqual(dbGap([{ ok: false, node: null, atMs: 1_200 }], 1_000), { gapMs: null, back: undefined });
});

test('two Primaries count only when a second look still sees both', async () => {
  const script = (answers: Record<string, string[]>) => {
    const left = new Map(Object.entries(answers).map(([n, a]) => [n, [...a]]));
    return async (n: string) => left.get(n)?.shift();
  };
  // n1 demoted between the two looks (a handover, not an overlap).
  assert.deepEqual(
    await primariesNow(script({ n1: ['Primary', 'Secondary'], n2: ['Primary', 'Primary'] }), ['n1', 'n2']),
    ['n2'],
  );
  assert.deepEqual(
    await primariesNow(script({ n1: ['Primary', 'Primary'], n2: ['Primary', 'Primary'] }), ['n1', 'n2']),
    ['n1', 'n2'],
  );
  // An engine that does not answer (a fenced node) is not Primary.
  assert.deepEqual(await primariesNow(script({ n2: ['Primary'] }), ['n1', 'n2']), ['n2']);
});

function trial(over: Partial<TrialResult> & { data?: TrialResult['data'] }): TrialResult {
  return {
    trial: 1,
    target: 'n1',
    targetWasDc: false,
    fault: 'kill',
    newNode: 'n2',
    serviceGapMs: 400,
    detectedMs: 250,
    newDcMs: null,
    scheduledMs: 260,
    fencedMs: 300,
    vipUpMs: 500,
    serverUpMs: 600,
    answeringMs: 620,
    promotedMs: 350,
    mountedMs: 450,
    settled: true,
    note: '',
    ...over,
  };
}

const goodData = {
  rowsWritten: 100,
  rowsExpected: 100,
  rowsFound: 100,
  dbAnsweringMs: 1_500,
  dbGapMs: 1_200,
  primaryOverlaps: 0,
  primaryPolls: 400,
};

test('the bench passes only when every trial failed over fast enough with no row lost and one Primary', () => {
  const ok = benchChecks([trial({ data: goodData })], 400);
  assert.ok(
    ok.every((c) => c.ok),
    JSON.stringify(ok),
  );
  const byName = (cs: readonly BenchCheck[], re: RegExp) => cs.find((c) => re.test(c.name))!;
  const lost = benchChecks([trial({ data: { ...goodData, rowsFound: 99 } })], 400);
  assert.equal(byName(lost, /rows acknowledged/).ok, false);
  assert.match(byName(lost, /rows acknowledged/).detail, /99\/100/);
  const overlap = benchChecks([trial({ data: { ...goodData, primaryOverlaps: 1 } })], 400);
  assert.equal(byName(overlap, /never Primary/).ok, false);
  const early = benchChecks(
    [trial({ data: goodData, note: 'the survivor promoted the volume before n1 was fenced' })],
    400,
  );
  assert.equal(byName(early, /never Primary/).ok, false);
  const noFailover = benchChecks([trial({ newNode: null, data: goodData })], 400);
  assert.equal(byName(noFailover, /failed over/).ok, false);
  const slow = benchChecks([trial({ data: goodData })], 1_001);
  assert.equal(byName(slow, /median service gap/).ok, false);
  const stopped = benchChecks([trial({ data: goodData })], 400, 5);
  assert.equal(byName(stopped, /failed over/).ok, false);
  assert.match(byName(stopped, /failed over/).detail, /only 1 of 5 trials ran/);
  // The web scenario has no data checks.
  assert.deepEqual(
    benchChecks([trial({})], 400).map((c) => c.name),
    ['every trial failed over', 'median service gap <= 1000 ms'],
  );
});

test('each row is its own autocommitted INSERT, and the password stays off the client’s command line', () => {
  assert.equal(
    insertRowsSql('bench_rows', [7, 8], 2),
    "INSERT INTO bench_rows (id, trial, note) VALUES (7, 2, 'before fault');\nINSERT INTO bench_rows (id, trial, note) VALUES (8, 2, 'before fault');",
  );
  const t = seed003SqlTarget('hx-client');
  const argv = sqlArgv(t, 'SELECT 1');
  assert.deepEqual(argv.slice(0, 4), ['netns', 'exec', 'hx-client', 'mariadb']);
  assert.ok(argv.includes('--host=198.18.0.200'));
  assert.ok(!argv.some((a) => a.includes(t.password)), 'no password in argv');
});

test('the bench refuses bad row counts and a lab that runs another scenario, before touching the lab', async () => {
  await assert.rejects(
    benchFailover({ dir: '/nonexistent', trials: 1, fault: 'kill', rowsPerTrial: 0 }),
    (e: unknown) =>
      e instanceof HaloError && e.code === 'bad-argument' && /--rows must be 1\.\.1000/.test(e.message),
  );
  const dir = mkdtempSync(join(tmpdir(), 'halo-bench-'));
  try {
    writeFileSync(
      join(dir, 'lab.json'),
      JSON.stringify({ version: 1, dir, scenario: 'web', nodes: [], client: { ns: 'none' } }),
    );
    await assert.rejects(
      benchFailover({ dir, trials: 1, fault: 'kill', scenario: 'seed-003' }),
      (e: unknown) =>
        e instanceof HaloError && e.code === 'bad-scenario' && /runs web, not seed-003/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a fault is injected only when both volumes are Connected and UpToDate', () => {
  const v = (conn: string, disk: string, peerDisk: string) => ({ role: 'Secondary', conn, disk, peerDisk });
  assert.equal(
    replicationWhole([v('Connected', 'UpToDate', 'UpToDate'), v('Connected', 'UpToDate', 'UpToDate')]),
    true,
  );
  // A rebooted Secondary says UpToDate from its metadata before it has connected: not whole.
  assert.equal(
    replicationWhole([v('Connecting', 'UpToDate', 'DUnknown'), v('Connecting', 'UpToDate', 'DUnknown')]),
    false,
  );
  assert.equal(
    replicationWhole([
      v('Connected', 'UpToDate', 'Inconsistent'),
      v('Connected', 'Inconsistent', 'UpToDate'),
    ]),
    false,
  );
  assert.equal(replicationWhole([v('Connected', 'UpToDate', 'UpToDate'), undefined]), false);
  assert.equal(replicationWhole([]), false);
});

/** `halo lab …` in-process (lab commands only, exit codes as cli/main.ts maps them) with its stderr. */
async function haloLab(args: readonly string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  const program = new Command('halo')
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: (s) => void process.stderr.write(s) });
  registerLabCommands(program);
  try {
    await program.parseAsync(['node', 'halo', 'lab', ...args]);
    return { code: typeof process.exitCode === 'number' ? process.exitCode : 0, err };
  } catch (e) {
    if (e instanceof CommanderError) return { code: e.exitCode === 1 ? 2 : e.exitCode, err };
    throw e;
  } finally {
    process.stderr.write = write;
    process.exitCode = 0;
  }
}

test('lab bench failover rejects bad --rows and --scenario with exit 2 and changes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-benchcli-'));
  try {
    let r = await haloLab(['bench', 'failover', '--rows', 'many', '--dir', dir]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--rows must be a whole number, got 'many'/);
    r = await haloLab(['bench', 'failover', '--rows', '5000', '--dir', dir]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--rows must be 1\.\.1000, got 5000/);
    r = await haloLab(['bench', 'failover', '--scenario', 'seed-999', '--dir', dir]);
    assert.equal(r.code, 2);
    assert.match(r.err, /seed-999/);
    // No lab in dir: the bench says so (exit 1) and makes nothing.
    r = await haloLab(['bench', 'failover', '--scenario', 'seed-003', '--dir', dir]);
    assert.equal(r.code, 1);
    assert.match(r.err, /no lab is up/);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
