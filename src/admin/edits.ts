/**
 * The administrator's edits as data, and one function that applies any of them to a CIB.
 *
 * An `AdminEdit` is plain JSON. The CLI applies it to a CIB file (offline, like Pacemaker's
 * tools with `CIB_file=…`) or to the CIB it reads from the daemon, then proposes the
 * difference as `CibCommand`s (see `cib_commands.ts`), compare-and-set against the version of
 * the CIB it read, so a concurrent change is refused rather than overwritten. Because the edit
 * is data, the CLI can simply apply it again to a fresh read when that happens.
 *
 * Every function is pure: `Cib → EditResult`; a rejected edit returns an error with a stable
 * `code` and the caller keeps its CIB, so nothing changes.
 *
 * `restart` is not an edit: it is stop, wait until stopped, start — a sequence only a running
 * controller can carry out. The CLI rejects it with that explanation (offline, and on a
 * running cluster until the controller can report that a stop has finished).
 */
import type { Cib, Configuration } from '../cib/model.ts';
import type { OptionTable } from './cluster_options.ts';
import {
  addFromCrm,
  deleteId,
  type LoadMode,
  loadConfiguration,
  type NameValue,
  setOptions,
} from './configure_edits.ts';
import type { EditResult } from './edit_result.ts';
import { type AttributeLifetime, setNodeAttribute, setNodeMaintenance, setStandby } from './node_edits.ts';
import {
  banResource,
  cleanupResource,
  clearResource,
  deleteFailCount,
  moveResource,
  setManaged,
  setTargetRole,
} from './resource_edits.ts';

export type AdminEdit =
  | {
      readonly op: 'node-standby' | 'node-maintenance';
      readonly node: string;
      readonly on: boolean;
      readonly lifetime: AttributeLifetime;
    }
  | {
      readonly op: 'node-attribute';
      readonly node: string;
      readonly name: string;
      readonly value: string | null;
      readonly lifetime: AttributeLifetime;
    }
  | { readonly op: 'resource-target-role'; readonly rsc: string; readonly role: 'Started' | 'Stopped' }
  | { readonly op: 'resource-managed'; readonly rsc: string; readonly managed: boolean }
  | {
      readonly op: 'resource-move' | 'resource-ban';
      readonly rsc: string;
      readonly node?: string;
      readonly lifetime?: string;
      readonly promoted?: boolean;
    }
  | { readonly op: 'resource-clear'; readonly rsc: string; readonly node?: string }
  | { readonly op: 'resource-cleanup' | 'failcount-delete'; readonly rsc: string; readonly node?: string }
  | {
      readonly op: 'set-options';
      readonly table: OptionTable;
      readonly pairs: readonly NameValue[];
      readonly force?: boolean;
    }
  | { readonly op: 'add-crm'; readonly text: string; readonly force?: boolean }
  | { readonly op: 'delete'; readonly id: string; readonly force?: boolean }
  | {
      readonly op: 'load';
      readonly mode: LoadMode;
      readonly configuration: Configuration;
      readonly file: string;
    };

/** Applies one edit. `nowMs` is the time rules and lifetimes are computed at. */
export function applyEdit(cib: Cib, e: AdminEdit, nowMs: number): EditResult {
  switch (e.op) {
    case 'node-standby':
      return setStandby(cib, e.node, e.on, e.lifetime);
    case 'node-maintenance':
      return setNodeMaintenance(cib, e.node, e.on, e.lifetime);
    case 'node-attribute':
      return setNodeAttribute(cib, e);
    case 'resource-target-role':
      return setTargetRole(cib, e.rsc, e.role);
    case 'resource-managed':
      return setManaged(cib, e.rsc, e.managed);
    case 'resource-move':
      return moveResource(cib, { ...e, nowMs });
    case 'resource-ban':
      return banResource(cib, { ...e, nowMs });
    case 'resource-clear':
      return clearResource(cib, e.rsc, e.node);
    case 'resource-cleanup':
      return cleanupResource(cib, e.rsc, e.node);
    case 'failcount-delete':
      return deleteFailCount(cib, e.rsc, e.node);
    case 'set-options':
      return setOptions(cib, e.table, e.pairs, e.force);
    case 'add-crm':
      return addFromCrm(cib, e.text, { force: e.force ?? false });
    case 'delete':
      return deleteId(cib, e.id, { force: e.force ?? false, nowMs });
    case 'load':
      return loadConfiguration(cib, e.configuration, e.mode, e.file);
    default: {
      const never: never = e;
      throw new Error(`unknown edit ${JSON.stringify(never)}`);
    }
  }
}

export type { EditError, EditErrorCode, EditResult } from './edit_result.ts';
