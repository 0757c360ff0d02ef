/**
 * `--dry-run`: what the scheduler would do after an edit, in crm_simulate's Transition Summary
 * lines. The scheduler runs on the CIB before and after the edit, so the report can separate
 * what the edit causes from what the cluster was going to do anyway (a CIB whose status is not
 * settled already has pending actions). Pure: the time comes in as an argument.
 */
import type { Cib } from '../cib/model.ts';
import { schedule } from '../scheduler/schedule.ts';

export type TransitionPreview =
  | {
      readonly ok: true;
      /** Summary lines the scheduler gives for the CIB as it is. */
      readonly before: readonly string[];
      /** Summary lines after the edit: what the cluster would do next. */
      readonly after: readonly string[];
    }
  | { readonly ok: false; readonly code: string; readonly message: string };

export function previewTransition(before: Cib, after: Cib, nowMs: number): TransitionPreview {
  const b = schedule(before, nowMs, { textOutput: false });
  const a = schedule(after, nowMs, { textOutput: false });
  if (!a.ok)
    return { ok: false, code: a.code, message: `the scheduler rejects the changed CIB: ${a.message}` };
  return { ok: true, before: b.ok ? b.transition.summary : [], after: a.transition.summary };
}

/** The preview as text: the Transition Summary, then what was pending anyway, if anything. */
export function formatPreview(p: TransitionPreview): string {
  if (!p.ok) return `dry run: ${p.message}\n`;
  const lines = [
    'Transition Summary:',
    ...(p.after.length > 0 ? p.after : ['  (none: the cluster would not act)']),
  ];
  const pending = p.before.filter((l) => p.after.includes(l));
  if (pending.length > 0) lines.push('', 'Of these, already pending before the change:', ...pending);
  lines.push('', 'dry run: nothing was written');
  return `${lines.join('\n')}\n`;
}
