import type { SourcePos } from '../lib/errors.ts';

/**
 * drbd.conf as a value: what `src/cib/drbd_conf.ts` parses and `src/volume/` runs. Options are
 * kept as written (`rate 40M;` → ['rate', '40M']); a flag without a value (`allow-two-primaries;`)
 * has value ''. Section names are DRBD's: net, disk, syncer, startup, handlers, options, …
 */
export type DrbdOption = readonly [key: string, value: string];

export interface DrbdSection {
  readonly name: string;
  readonly options: readonly DrbdOption[];
}

/** One `on HOST { … }` block (or DRBD 9 `on HOST` inside `connection`). */
export interface DrbdHost {
  readonly name: string;
  readonly device?: string;
  /** Backing disk: a block device or, for halo, a plain file. */
  readonly disk?: string;
  /** `ADDR:PORT` as written, without the address family. */
  readonly address?: string;
  readonly addressFamily?: string;
  /** `internal`, or `DEV[IDX]`/`DEV` for external metadata. */
  readonly metaDisk?: string;
  readonly nodeId?: string;
  /** Any other statement in the block. */
  readonly options: readonly DrbdOption[];
  readonly pos?: SourcePos;
}

export interface DrbdResource {
  readonly name: string;
  readonly protocol?: string;
  /** Resource-level device/disk/meta-disk that hosts inherit unless they set their own. */
  readonly device?: string;
  readonly disk?: string;
  readonly metaDisk?: string;
  readonly sections: readonly DrbdSection[];
  readonly hosts: readonly DrbdHost[];
  /** Other resource-level statements (DRBD 0.7's `incon-degr-cmd`, …), kept as written. */
  readonly options?: readonly DrbdOption[];
  readonly pos?: SourcePos;
}

export interface DrbdConfig {
  readonly global: readonly DrbdOption[];
  readonly common: { readonly protocol?: string; readonly sections: readonly DrbdSection[] };
  readonly resources: readonly DrbdResource[];
  /** Files read, in order (the main file, then includes). */
  readonly files: readonly string[];
}

/** The value of `section.key` for a resource: the resource's own, else `common`'s. */
export function drbdOption(
  conf: DrbdConfig,
  res: DrbdResource,
  section: string,
  key: string,
): string | undefined {
  const own = findOption(res.sections, section, key);
  return own ?? findOption(conf.common.sections, section, key);
}

/** The protocol (A, B or C) for a resource; DRBD's default is C. */
export function drbdProtocol(conf: DrbdConfig, res: DrbdResource): string {
  return res.protocol ?? drbdOption(conf, res, 'net', 'protocol') ?? conf.common.protocol ?? 'C';
}

function findOption(sections: readonly DrbdSection[], section: string, key: string): string | undefined {
  let found: string | undefined;
  for (const s of sections) {
    if (s.name !== section) continue;
    for (const [k, v] of s.options) if (k === key) found = v;
  }
  return found;
}
