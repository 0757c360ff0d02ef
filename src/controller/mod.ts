/**
 * halo's controller: on the DC, runs the scheduler on every change and drives the transition
 * graph (executors, fencing, status records, fail counts); on every node, the local safety rule
 * for quorum loss. `Controller` is the pure core, `ControllerHost` its shell, `attachController`
 * hosts it in a daemon, `renderStatus` prints the cluster like `crm_mon -1`.
 */
export * from './controller.ts';
export * from './crm_mon.ts';
export * from './daemon_glue.ts';
export * from './host.ts';
export * from './resource_ops.ts';
export * from './status.ts';
export * from './types.ts';
