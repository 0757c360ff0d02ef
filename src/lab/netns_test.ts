import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { createLabNet, hasNetnsSupport } from './netns.ts';

test('nodes on a lab net reach each other on every link, and a cut link stops only that link', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
}, () => {
  const net = createLabNet({ nodes: ['a', 'b'], links: 2 });
  try {
    const b = net.node('b');
    net.exec('a', ['ping', '-c', '1', '-W', '2', b.addrs[0]!]);
    net.exec('a', ['ping', '-c', '1', '-W', '2', b.addrs[1]!]);
    net.cutLink('b', 1);
    assert.throws(() => net.exec('a', ['ping', '-c', '1', '-W', '1', b.addrs[1]!]));
    net.exec('a', ['ping', '-c', '1', '-W', '2', b.addrs[0]!]);
    net.restoreLink('b', 1);
    net.exec('a', ['ping', '-c', '1', '-W', '2', b.addrs[1]!]);
  } finally {
    net.destroy();
  }
  assert.ok(!net.nodes.some((n) => nsExists(n.ns)), 'namespaces remain after destroy');
});

function nsExists(ns: string): boolean {
  return existsSync(`/run/netns/${ns}`);
}
