/**
 * Exit codes of resource agents and what they mean (OCF 1.1 and Pacemaker's extensions), and
 * the mapping from LSB init-script and fence-agent exit codes onto them. Pure.
 */

export const OCF_RC = {
  OCF_SUCCESS: 0,
  OCF_ERR_GENERIC: 1,
  OCF_ERR_ARGS: 2,
  OCF_ERR_UNIMPLEMENTED: 3,
  OCF_ERR_PERM: 4,
  OCF_ERR_INSTALLED: 5,
  OCF_ERR_CONFIGURED: 6,
  OCF_NOT_RUNNING: 7,
  OCF_RUNNING_PROMOTED: 8,
  OCF_FAILED_PROMOTED: 9,
  OCF_DEGRADED: 190,
  OCF_DEGRADED_PROMOTED: 191,
} as const;

export type OcfRcName = keyof typeof OCF_RC;

const NAME_BY_RC: ReadonlyMap<number, OcfRcName> = new Map(
  (Object.entries(OCF_RC) as [OcfRcName, number][]).map(([name, rc]) => [rc, name]),
);

/** The OCF name of an exit code; codes OCF does not define are named `OCF_UNKNOWN(<rc>)`. */
export function rcName(rc: number): string {
  return NAME_BY_RC.get(rc) ?? `OCF_UNKNOWN(${rc})`;
}

/** Human text as `crm_resource` prints it, e.g. `not running`. */
export function rcText(rc: number): string {
  switch (rc) {
    case 0:
      return 'ok';
    case 1:
      return 'error';
    case 2:
      return 'invalid parameter';
    case 3:
      return 'unimplemented feature';
    case 4:
      return 'insufficient privileges';
    case 5:
      return 'not installed';
    case 6:
      return 'not configured';
    case 7:
      return 'not running';
    case 8:
      return 'promoted';
    case 9:
      return 'promoted (failed)';
    case 190:
      return 'OCF_DEGRADED';
    case 191:
      return 'OCF_DEGRADED_PROMOTED';
    default:
      return 'unknown';
  }
}

/**
 * How an operation ended, as Pacemaker's `op-status` (lrmd's `PCMK_EXEC_*`): the rc is only
 * meaningful for `done`.
 */
export const OP_STATUS = {
  done: 0,
  cancelled: 1,
  timeout: 2,
  notSupported: 3,
  error: 4,
  notInstalled: 7,
  notConnected: 8,
  invalid: 9,
} as const;

export type OpStatusName = keyof typeof OP_STATUS;

/**
 * Maps an LSB init script's exit code onto OCF. LSB's `status` action has its own table
 * (0 running, 1 dead with pid file, 2 dead with lock file, 3 not running, 4 unknown); other
 * actions share OCF's numbering for 0–7. Stopping a stopped service and starting a started one
 * must both succeed under LSB, so nothing else needs mapping.
 */
export function lsbToOcf(action: string, rc: number): number {
  if (action === 'status' || action === 'monitor') {
    switch (rc) {
      case 0:
        return OCF_RC.OCF_SUCCESS;
      case 1:
      case 2:
      case 3:
        return OCF_RC.OCF_NOT_RUNNING;
      case 4:
        return OCF_RC.OCF_ERR_PERM;
      default:
        return OCF_RC.OCF_ERR_GENERIC;
    }
  }
  if (rc >= 0 && rc <= 7) return rc;
  return OCF_RC.OCF_ERR_GENERIC;
}

/**
 * Maps a fence agent's exit code onto OCF. Fence agents exit 0 for success; `status` and
 * `monitor` exit 2 when the target (or device) is off, which Pacemaker reads as "not running".
 */
export function fenceToOcf(action: string, rc: number): number {
  if (rc === 0) return OCF_RC.OCF_SUCCESS;
  if ((action === 'status' || action === 'monitor') && rc === 2) return OCF_RC.OCF_NOT_RUNNING;
  return OCF_RC.OCF_ERR_GENERIC;
}
