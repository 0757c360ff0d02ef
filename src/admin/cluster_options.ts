/**
 * The cluster options Pacemaker knows (`crm_attribute --list-options=cluster`, Pacemaker 2.1),
 * with their types, so that `halo configure property` rejects a typo or a bad value before it
 * reaches the cluster. Also the resource meta attributes and operation options that
 * `rsc_defaults` / `op_defaults` take. Pure.
 */
import { LEGACY_CLUSTER_PROPERTIES } from '../cib/crm.ts';
import { parseDuration } from '../cib/duration.ts';
import { parseScore } from '../cib/score.ts';
import { didYouMean } from './edit_result.ts';

export type OptionType =
  | { readonly kind: 'boolean' }
  | { readonly kind: 'integer' }
  | { readonly kind: 'score' }
  | { readonly kind: 'duration' }
  | { readonly kind: 'percentage' }
  | { readonly kind: 'string' }
  | { readonly kind: 'enum'; readonly values: readonly string[] };

const B = { kind: 'boolean' } as const;
const I = { kind: 'integer' } as const;
const S = { kind: 'score' } as const;
const D = { kind: 'duration' } as const;
const T = { kind: 'string' } as const;
const E = (...values: string[]): OptionType => ({ kind: 'enum', values });

/** Pacemaker's cluster options (crm_config), by name. */
export const CLUSTER_OPTIONS: ReadonlyMap<string, OptionType> = new Map<string, OptionType>([
  ['batch-limit', I],
  ['cluster-delay', D],
  ['cluster-ipc-limit', I],
  ['cluster-name', T],
  ['cluster-recheck-interval', D],
  ['concurrent-fencing', B],
  ['dc-deadtime', D],
  ['election-timeout', D],
  ['enable-acl', B],
  ['enable-startup-probes', B],
  ['fence-reaction', E('stop', 'panic')],
  ['join-finalization-timeout', D],
  ['join-integration-timeout', D],
  ['load-threshold', { kind: 'percentage' }],
  ['maintenance-mode', B],
  ['migration-limit', I],
  ['no-quorum-policy', E('stop', 'freeze', 'ignore', 'demote', 'suicide')],
  ['node-action-limit', I],
  ['node-health-base', I],
  ['node-health-green', S],
  ['node-health-yellow', S],
  ['node-health-red', S],
  ['node-health-strategy', E('none', 'migrate-on-red', 'only-green', 'progressive', 'custom')],
  ['node-pending-timeout', D],
  ['pe-error-series-max', I],
  ['pe-input-series-max', I],
  ['pe-warn-series-max', I],
  ['placement-strategy', E('default', 'utilization', 'minimal', 'balanced')],
  ['priority-fencing-delay', D],
  ['shutdown-escalation', D],
  ['shutdown-lock', B],
  ['shutdown-lock-limit', D],
  ['start-failure-is-fatal', B],
  ['startup-fencing', B],
  ['stonith-action', E('reboot', 'off', 'poweroff')],
  ['stonith-enabled', B],
  ['stonith-max-attempts', I],
  ['stonith-timeout', D],
  ['stonith-watchdog-timeout', T],
  ['stop-all-resources', B],
  ['stop-orphan-actions', B],
  ['stop-orphan-resources', B],
  ['symmetric-cluster', B],
  ['transition-delay', D],
  // Written by the cluster itself; kept settable as crm_attribute allows.
  ['cluster-infrastructure', T],
  ['dc-version', T],
  ['have-watchdog', B],
  ['last-lrm-refresh', T],
  ['expected-quorum-votes', I],
  // halo's own (docs/ARCHITECTURE.md, "Fencing races").
  ['halo-isolation-fencing-delay', D],
]);

/** Resource meta attributes, valid in `rsc_defaults` and on resources. */
export const RESOURCE_META_OPTIONS: ReadonlyMap<string, OptionType> = new Map<string, OptionType>([
  ['priority', S],
  ['critical', B],
  ['target-role', E('Stopped', 'Started', 'Promoted', 'Unpromoted', 'Master', 'Slave')],
  ['is-managed', B],
  ['maintenance', B],
  ['resource-stickiness', S],
  ['requires', E('nothing', 'quorum', 'fencing', 'unfencing')],
  ['migration-threshold', S],
  ['failure-timeout', D],
  ['multiple-active', E('block', 'stop_only', 'stop_start', 'stop_unexpected')],
  ['allow-migrate', B],
  ['allow-unhealthy-nodes', B],
  ['container-attribute-target', T],
  ['remote-node', T],
  ['globally-unique', B],
  ['clone-max', I],
  ['clone-node-max', I],
  ['clone-min', I],
  ['promotable', B],
  ['promoted-max', I],
  ['promoted-node-max', I],
  ['interleave', B],
  ['ordered', B],
  ['notify', B],
]);

/** Operation options, valid in `op_defaults` and on operations. */
export const OP_OPTIONS: ReadonlyMap<string, OptionType> = new Map<string, OptionType>([
  ['interval', D],
  ['timeout', D],
  ['start-delay', D],
  ['interval-origin', T],
  ['record-pending', B],
  ['enabled', B],
  ['role', E('Stopped', 'Started', 'Promoted', 'Unpromoted', 'Master', 'Slave')],
  [
    'on-fail',
    E('ignore', 'block', 'stop', 'restart', 'standby', 'fence', 'demote', 'restart-container', 'reset'),
  ],
]);

const BOOLEAN_WORDS = new Set(['true', 'false', 'yes', 'no', 'on', 'off', 'y', 'n', '1', '0']);

/** Why `value` is not a valid `type`, or undefined when it is. */
export function checkOptionValue(type: OptionType, value: string): string | undefined {
  switch (type.kind) {
    case 'boolean':
      return BOOLEAN_WORDS.has(value.toLowerCase()) ? undefined : 'expected a boolean (true or false)';
    case 'integer':
      return /^-?\d{1,15}$/.test(value) ? undefined : 'expected an integer';
    case 'score': {
      const s = parseScore(value);
      return s.ok ? undefined : 'expected a score (an integer, INFINITY or -INFINITY)';
    }
    case 'duration': {
      const d = parseDuration(value);
      return d.ok ? undefined : `expected a duration such as 60s, 5min or PT1M (${d.reason})`;
    }
    case 'percentage':
      return /^\d{1,3}%$/.test(value) ? undefined : 'expected a percentage such as 80%';
    case 'string':
      return value === '' ? 'expected a non-empty value' : undefined;
    case 'enum':
      return type.values.includes(value) ? undefined : `expected one of ${type.values.join(', ')}`;
    default: {
      const never: never = type;
      return `unknown option type ${JSON.stringify(never)}`;
    }
  }
}

export type OptionTable = 'property' | 'rsc_defaults' | 'op_defaults';

/**
 * Where Pacemaker 2's upgrade of the CIB moves each Pacemaker 1 cluster property that still has a
 * meaning (upgrade-2.10.xsl): the defaults tables, or the same property spelled with dashes.
 */
const LEGACY_MOVED: Readonly<Record<string, readonly [OptionTable, string]>> = {
  'default-resource-stickiness': ['rsc_defaults', 'resource-stickiness'],
  default_resource_stickiness: ['rsc_defaults', 'resource-stickiness'],
  'is-managed-default': ['rsc_defaults', 'is-managed'],
  is_managed_default: ['rsc_defaults', 'is-managed'],
  'default-migration-threshold': ['rsc_defaults', 'migration-threshold'],
  default_migration_threshold: ['rsc_defaults', 'migration-threshold'],
  'default-action-timeout': ['op_defaults', 'timeout'],
  default_action_timeout: ['op_defaults', 'timeout'],
};

/** What to type instead of Pacemaker 1 property `name=value`, as a clause for a message. */
function legacyReplacement(name: string, value: string): string {
  const moved =
    LEGACY_MOVED[name] ??
    (CLUSTER_OPTIONS.has(name.replaceAll('_', '-'))
      ? (['property', name.replaceAll('_', '-')] as const)
      : undefined);
  if (moved === undefined) return 'Pacemaker 2 drops it; leave it out';
  return `instead: halo configure ${moved[0]} ${moved[1]}=${value}`;
}

const TABLES: Readonly<Record<OptionTable, ReadonlyMap<string, OptionType>>> = {
  property: CLUSTER_OPTIONS,
  rsc_defaults: RESOURCE_META_OPTIONS,
  op_defaults: OP_OPTIONS,
};

/**
 * Checks one `name=value` for `table`. Unknown names are errors unless `force` (Pacemaker
 * itself would keep and ignore them, which is how typos hide); bad values are always errors.
 */
export function checkOption(
  table: OptionTable,
  name: string,
  value: string,
  force: boolean,
): { ok: true } | { ok: false; code: 'unknown-property' | 'invalid-value'; message: string } {
  const known = TABLES[table];
  const type = known.get(name);
  if (type === undefined) {
    if (force) return { ok: true };
    const legacy =
      table === 'property' && LEGACY_CLUSTER_PROPERTIES.includes(name)
        ? `; it is a Pacemaker 1 property (${legacyReplacement(name, value)})`
        : didYouMean(name, known.keys());
    return {
      ok: false,
      code: 'unknown-property',
      message: `unknown ${table === 'property' ? 'cluster property' : `${table} option`} '${name}'${legacy}; use --force to set it anyway`,
    };
  }
  const why = checkOptionValue(type, value);
  return why === undefined
    ? { ok: true }
    : {
        ok: false,
        code: 'invalid-value',
        message: `invalid value '${value}' for ${table} '${name}': ${why}`,
      };
}
