import type { Cib } from '../cib/model.ts';
import { isTrue } from './rules.ts';

/**
 * Ticket constraints (`rsc_ticket`): a resource may run (or, with `rsc-role=Promoted`, be
 * promoted) only while its ticket is granted to this site and not in standby. When the ticket
 * is lost, `loss-policy` says what happens: stop (default), demote, freeze or fence.
 */
export interface TicketEntry {
  readonly id: string;
  readonly ticket: string;
  /** Configured resource id. */
  readonly rsc: string;
  readonly role: 'Promoted' | undefined;
  readonly lossPolicy: 'stop' | 'demote' | 'freeze' | 'fence';
  /** The ticket is not granted, or is in standby. */
  readonly revoked: boolean;
}

export function unpackTickets(
  cib: Cib,
  expand: (id: string) => readonly string[],
): Map<string, TicketEntry[]> {
  const states = new Map((cib.tickets ?? []).map((t) => [t.id, t]));
  const out = new Map<string, TicketEntry[]>();
  for (const c of cib.configuration.constraints) {
    if (c.kind !== 'rsc_ticket') continue;
    const st = states.get(c.ticket);
    const granted = isTrue(st?.granted);
    const standby = isTrue(st?.standby);
    const revoked = !granted || standby;
    const lp = (c.lossPolicy ?? 'stop').toLowerCase();
    const configured: TicketEntry['lossPolicy'] =
      lp === 'demote' || lp === 'freeze' || lp === 'fence' ? lp : 'stop';
    const targets: { id: string; role: string | undefined }[] = [];
    if (c.rsc !== undefined) for (const id of expand(c.rsc)) targets.push({ id, role: c.rscRole });
    for (const s of c.sets)
      for (const r of s.resources) for (const id of expand(r)) targets.push({ id, role: s.role });
    for (const t of targets) {
      const role = t.role && /^(promoted|master)$/i.test(t.role) ? 'Promoted' : undefined;
      // A granted ticket put in standby steps down gracefully (stop, or demote for a role),
      // whatever the loss-policy says; a ticket that is not granted follows the loss-policy.
      const lossPolicy =
        granted && standby ? (role && configured !== 'stop' ? 'demote' : 'stop') : configured;
      const list = out.get(t.id) ?? [];
      list.push({ id: c.id, ticket: c.ticket, rsc: t.id, role, lossPolicy, revoked });
      out.set(t.id, list);
    }
  }
  return out;
}
