import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InteractionEnv } from './interaction_env.ts';

/** The scripts live in src/consensus/testdata, also when this test runs compiled from dist/. */
function testdataDir(): string {
  const here = fileURLToPath(new URL('./testdata/', import.meta.url));
  return existsSync(here) ? here : here.replace(/\/dist\/src\//, '/src/');
}

/** Blocks: command line, `----`, expected output lines, blank line. */
function parseScript(text: string): { command: string; expected: string }[] {
  const blocks: { command: string; expected: string }[] = [];
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length) {
    if (lines[i]!.trim() === '' || lines[i]!.startsWith('#')) {
      i++;
      continue;
    }
    const command = lines[i]!;
    assert.equal(lines[i + 1], '----', `line ${i + 2}: expected "----" after the command`);
    i += 2;
    const out: string[] = [];
    while (i < lines.length && lines[i] !== '') out.push(lines[i++]!);
    blocks.push({ command, expected: out.join('\n') });
  }
  return blocks;
}

const dir = testdataDir();
const rewrite = process.env.HALO_REWRITE === '1';
for (const file of readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort()) {
  test(`the Raft script ${file} produces its recorded output`, () => {
    const text = readFileSync(dir + file, 'utf8');
    const env = new InteractionEnv();
    const parts: string[] = [];
    for (const line of text.split('\n')) if (line.startsWith('#')) parts.push(line);
    const blocks = parseScript(text);
    const rewritten: string[] = [];
    for (const [n, b] of blocks.entries()) {
      const got = env.run(b.command);
      rewritten.push(`${b.command}\n----\n${got}${got ? '\n' : ''}`);
      if (!rewrite) assert.equal(got, b.expected, `${file}: block ${n + 1} (${b.command})`);
    }
    if (rewrite) writeFileSync(dir + file, [...parts, ''].join('\n') + rewritten.join('\n'));
  });
}
