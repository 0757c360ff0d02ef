import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { registerLabCommands } from '../cli/lab_cmd.ts';
import { HaloError } from '../lib/errors.ts';
import {
  anonymousService,
  type BenchCheck,
  benchChecks,
  benchFailover,
  dbGap,
  doubleHolds,
  type ExclusiveHold,
  insertRowsSql,
  isMountedAt,
  median,
  overlapsNow,
  pageChecks,
  pageMatch,
  phasesFromLogs,
  primariesNow,
  rebootNote,
  renderBench,
  replicationWhole,
  SEED003_BENCH_RESOURCES,
  seed003SqlTarget,
  seed004About,
  seed004BenchResources,
  serviceGap,
  sqlArgv,
  type TrialPage,
  type TrialResult,
} from './bench.ts';
import { seed004ApacheConf, seed004NodeApacheConf } from './scenario_seed004.ts';

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

const SEED004_HOST = { scenarioDir: '/lab/scenario', nodeBin: '/usr/bin/node' };

test("seed-004's phases use the resources halo import names from the seed's haresources line", () => {
  const names = seed004BenchResources(SEED004_HOST);
  assert.deepEqual(names, {
    vip: 'ip_198.18.0.200',
    server: 'apache2',
    volume: 'drbddisk_r0',
    volumeMode: 'drbddisk',
    // Import names the Filesystem after its mount point, which is under the lab directory.
    fs: 'fs_lab_drbd',
  });
  assert.equal(
    seed004BenchResources({ ...SEED004_HOST, scenarioDir: '/run/halo-lab/scenario' }).fs,
    'fs_run_halo-lab_drbd',
  );
});

test("drbddisk's start is the volume's promotion; a promotable clone's is its promote", () => {
  const t0 = 1_000;
  const names = seed004BenchResources(SEED004_HOST);
  const lines = [
    { t: 1_300, component: 'controller', msg: 'fenced n1: off of n1 succeeded via fence-lab', node: 'n2' },
    { t: 1_350, event: 'op-done', resource: 'ip_198.18.0.200', op: 'start', rc: 0, node: 'n2' },
    { t: 1_400, event: 'op-done', resource: 'drbddisk_r0', op: 'start', rc: 0, node: 'n2' },
    { t: 1_500, event: 'op-done', resource: 'fs_lab_drbd', op: 'start', rc: 0, node: 'n2' },
    { t: 1_700, event: 'op-done', resource: 'apache2', op: 'start', rc: 0, node: 'n2' },
    // The target's own stop does not count.
    { t: 1_100, event: 'op-done', resource: 'drbddisk_r0', op: 'stop', rc: 0, node: 'n1' },
  ];
  const p = phasesFromLogs(lines, t0, 'n1', false, names);
  assert.deepEqual(
    [p.fencedMs, p.vipUpMs, p.promotedMs, p.mountedMs, p.serverUpMs],
    [300, 350, 400, 500, 700],
  );
  // seed-003's clone is promoted by a promote, not by its (Secondary) start.
  const clone = [
    { t: 1_200, event: 'op-done', resource: 'p_drbd:1', op: 'start', rc: 0, node: 'n2' },
    { t: 1_450, event: 'op-done', resource: 'p_drbd:1', op: 'promote', rc: 0, node: 'n2' },
  ];
  assert.equal(phasesFromLogs(clone, t0, 'n1', false, SEED003_BENCH_RESOURCES).promotedMs, 450);
  // A failed start is no promotion.
  const failed = [{ t: 1_400, event: 'op-done', resource: 'drbddisk_r0', op: 'start', rc: 1, node: 'n2' }];
  assert.equal(phasesFromLogs(failed, t0, 'n1', false, names).promotedMs, null);
});

test("seed-004's Apache names its node from the node's own settings, outside the volume", () => {
  const conf = seed004ApacheConf(SEED004_HOST);
  assert.match(conf, /^LoadModule headers_module \/usr\/lib\/apache2\/modules\/mod_headers\.so$/m);
  assert.match(conf, /^IncludeOptional \/lab\/root\/etc\/apache2-node\/\*\.conf$/m);
  assert.doesNotMatch(conf, /X-Served-By "/, 'the config on the volume names no node');
  assert.equal(seed004NodeApacheConf('n2'), 'Header always set X-Served-By "n2"\n');
  assert.throws(() => seed004NodeApacheConf('n1" evil'), /not a plain host name/);
});

test('a page counts as the same only when it equals the one fetched at the start', () => {
  assert.equal(pageMatch('<p>a</p>', '<p>a</p>'), 'same');
  assert.equal(pageMatch('<p>a</p>', '<p>b</p>'), 'changed');
  assert.equal(pageMatch('<p>a</p>', ''), 'changed');
  assert.equal(pageMatch('<p>a</p>', null), 'no-answer');
});

test('a mount point is found in /proc/PID/mounts, octal escapes decoded, and only as a mount point', () => {
  const mounts = [
    'halo-lab-root /tmp/lab/root tmpfs rw 0 0',
    '/dev/loop7 /tmp/my\\040lab/drbd ext3 rw,relatime 0 0',
  ].join('\n');
  assert.equal(isMountedAt(mounts, '/tmp/my lab/drbd'), true);
  assert.equal(isMountedAt(mounts, '/tmp/lab/drbd'), false);
  // The device field is not a mount point.
  assert.equal(isMountedAt(mounts, 'halo-lab-root'), false);
  assert.equal(isMountedAt('', '/tmp/lab/drbd'), false);
});

test('two nodes holding the same thing count only when a second look still sees both', async () => {
  const look = (m: Record<string, ExclusiveHold[]>) =>
    new Map(Object.entries(m).map(([n, h]) => [n, new Set(h)]));
  assert.deepEqual(doubleHolds(look({ n1: ['Primary', 'apache2', 'mounted'], n2: [] })), []);
  assert.deepEqual(doubleHolds(look({ n1: ['apache2', 'mounted'], n2: ['mounted'] })), [
    { hold: 'mounted', nodes: ['n1', 'n2'] },
  ]);
  const script = (looks: Record<string, ExclusiveHold[]>[]) => {
    const left = [...looks];
    return async () => look(left.shift() ?? {});
  };
  // The old node's Apache seen exiting between the two looks: a handover, not an overlap.
  assert.deepEqual(
    await overlapsNow(
      script([
        { n1: ['apache2'], n2: ['apache2'] },
        { n1: [], n2: ['apache2'] },
      ]),
    ),
    [],
  );
  assert.deepEqual(
    await overlapsNow(
      script([
        { n1: ['Primary', 'mounted'], n2: ['Primary', 'mounted'] },
        { n1: ['Primary', 'mounted'], n2: ['Primary', 'mounted'] },
      ]),
    ),
    [
      { hold: 'Primary', nodes: ['n1', 'n2'] },
      { hold: 'mounted', nodes: ['n1', 'n2'] },
    ],
  );
});

const goodPage: TrialPage = {
  before: 'same',
  after: 'same',
  overlaps: { Primary: 0, apache2: 0, mounted: 0 },
  polls: 300,
};

test('seed-004 passes only with the same page before and after, and one node holding the volume, Apache and the mount', () => {
  const byName = (cs: readonly BenchCheck[], re: RegExp) => cs.find((c) => re.test(c.name))!;
  const ok = benchChecks([trial({ page: goodPage, newNode: 'n2' })], 400);
  assert.deepEqual(
    ok.map((c) => [c.name, c.ok]),
    [
      ['every trial failed over', true],
      ['median service gap <= 1000 ms', true],
      ['the page is the same before each fault and after its failover', true],
      ['never two nodes Primary, running apache2 or mounting the filesystem at once', true],
    ],
  );
  const changed = pageChecks([trial({ page: { ...goodPage, after: 'changed' } })]);
  assert.equal(byName(changed, /page is the same/).ok, false);
  assert.match(byName(changed, /page is the same/).detail, /trials 1 \(before same, after changed\)/);
  assert.equal(byName(pageChecks([trial({ page: { ...goodPage, before: 'no-answer' } })]), /page/).ok, false);
  for (const hold of ['Primary', 'apache2', 'mounted'] as const) {
    const two = pageChecks([trial({ page: { ...goodPage, overlaps: { ...goodPage.overlaps, [hold]: 1 } } })]);
    assert.equal(byName(two, /never two nodes/).ok, false, hold);
    assert.match(byName(two, /never two nodes/).detail, new RegExp(`${hold} 1`));
  }
  const early = pageChecks([
    trial({ page: goodPage, note: 'the survivor promoted the volume before n1 was fenced' }),
  ]);
  assert.equal(byName(early, /never two nodes/).ok, false);
  // Other scenarios get no page checks.
  assert.deepEqual(pageChecks([trial({})]), []);
});

test("the seed-004 report says what is measured, in the bench's usual table", () => {
  const about = seed004About(seed004BenchResources(SEED004_HOST), SEED004_HOST, 'lan');
  assert.match(about[0]!, /^seed-004 measured: .*ip_198\.18\.0\.200, drbddisk_r0 .*fs_lab_drbd, apache2$/);
  assert.match(about[2]!, /daemons' lan timing profile, not ha\.cf's deadtime/);
  const t = trial({ page: goodPage });
  const text = renderBench({
    fault: 'kill',
    url: 'http://198.18.0.200/',
    profile: 'lan',
    scenario: 'seed-004',
    trials: [t],
    medianDetectedMs: 250,
    medianGapMs: 400,
    maxGapMs: 400,
    about,
    checks: benchChecks([t], 400),
    ok: true,
  });
  const lines = text.split('\n');
  assert.match(lines[0]!, /^failover bench: scenario seed-004, fault kill, profile lan/);
  assert.equal(lines[1], about[0]);
  assert.ok(
    lines.includes(
      'trial  target new detected   new DC scheduled   fenced   VIP up server up answering   gap ms  note',
    ),
  );
  assert.ok(lines.includes('trial  promoted mounted page before page after 2×Primary 2×apache2 2×mounted'));
  assert.ok(
    lines.includes('    1       350     450        same       same         0         0         0'),
    text,
  );
  assert.ok(
    lines.includes('PASS  the page is the same before each fault and after its failover: 1 of 1 trials'),
    text,
  );
});

test('a node found down after a fault on its peer is said to have been fenced during the fault, not while the peer rejoined', () => {
  // A two-node partition (cut-link): the cut-off n1 won the fence race and fenced n2.
  assert.equal(rebootNote('n2', 'n1', 0), 'n2 was fenced during the fault on n1; booted it again');
  assert.equal(rebootNote('n2', 'n1', 1), 'n2 was fenced while n1 rejoined; booted it again');
  assert.equal(rebootNote('n1', 'n1', 1), 'n1 was fenced while n1 rejoined; booted it again');
  assert.equal(rebootNote('n2', null, 0), 'n2 was down before the fault (fenced meanwhile); booted it');
});

test('the bench refuses a service whose answers do not name their node', () => {
  const e = anonymousService('-', 'http://198.18.0.200/', 'seed-004');
  assert.ok(e instanceof HaloError && e.code === 'service-anonymous');
  assert.match(e.message, /without naming its node .*halo lab up --scenario seed-004/);
  assert.equal(anonymousService('n1', 'http://198.18.0.200/', 'seed-004'), undefined);
  // Nothing answering yet is not this error (the warm-up wait reports that).
  assert.equal(anonymousService(null, 'http://198.18.0.200/', 'web'), undefined);
});
