import type { Command } from 'commander';

/**
 * Adds `Example:` (or `Examples:`) to a command's --help, one command line per example, the way
 * every halo command shows them (cli_contract_test.ts checks it). A ` # ` in a line starts a
 * note; notes are aligned, and a copied line stays a valid shell command.
 */
export function example(cmd: Command, ...lines: readonly string[]): Command {
  const split = lines.map((l) => {
    const i = l.indexOf(' # ');
    return i < 0 ? { line: l, note: '' } : { line: l.slice(0, i).trimEnd(), note: l.slice(i + 3).trim() };
  });
  const width = Math.max(...split.filter((x) => x.note).map((x) => x.line.length), 0);
  const text = split.map((x) => `  ${x.note ? `${x.line.padEnd(width)}  # ${x.note}` : x.line}\n`).join('');
  return cmd.addHelpText('after', `\nExample${lines.length > 1 ? 's' : ''}:\n${text}`);
}
