/**
 * Node/V8 flags every launcher of the daemon passes (`node FLAGS main.js …`, or NODE_OPTIONS):
 * V8 cannot change them once the process runs. Measured on 3 compiled daemons (lan profile,
 * 30 s after start; VmRSS / private RssAnon, MB): defaults 59–72 / 18–30, with both flags
 * 57–59 / 16–18. About 40 MB of VmRSS is the node binary itself, shared by every node process.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = [
  // The daemon allocates steadily (ticks every few ms) but keeps little: V8 would otherwise grow
  // the young generation to 2 × 16 MB. 1 MB semi-spaces cost a scavenge every few seconds.
  '--max-semi-space-size=1',
  // One V8 helper thread instead of one per core: each thread costs a stack and a malloc arena,
  // and the daemon's heap (≈ 12 MB) is collected in a few ms even by one helper.
  '--v8-pool-size=1',
];
