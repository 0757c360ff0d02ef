import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatDiagnostic } from '../lib/errors.ts';
import { repoRoot } from '../lib/repo_root.ts';
import {
  type CorosyncMembership,
  isIpAddress,
  keyOf,
  parseCorosyncConf,
  parseCorosyncMembership,
  sections,
} from './corosync_conf.ts';

// From the source tree: the compiled test runs from dist/, where fixtures are not copied.
const SEED003 = join(repoRoot(), 'src/cib/fixtures/seed003-corosync.conf');

/** A corosync 3 (knet) config with a nodelist: what `pcs cluster setup` writes, plus a third node. */
const COROSYNC3 = `# written by pcs
totem {
    version: 2
    cluster_name: shop
    transport: knet
    token: 1000
    crypto_cipher: aes256
    crypto_hash: sha256

    interface {
        linknumber: 0
        mcastport: 5420
    }
    interface {
        linknumber: 1
        mcastport: 5421
    }
}

nodelist {
    node {
        ring0_addr: 10.0.0.1
        ring1_addr: 192.168.1.1
        name: alpha
        nodeid: 1
    }
    node {
        ring0_addr: 10.0.0.2
        ring1_addr: 192.168.1.2
        name: beta
        nodeid: 2
    }
    node {
        ring0_addr: fd00::3
        name: gamma
        nodeid: 7
        quorum_votes: 2
    }
}

quorum {
    provider: corosync_votequorum
    expected_votes: 4
    wait_for_all: 1
    last_man_standing: 1
}

logging {
    to_syslog: yes
}
`;

function membership(text: string, file = 'corosync.conf'): CorosyncMembership {
  const r = parseCorosyncMembership(text, file);
  assert.ok(r.ok, r.ok ? '' : r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.value;
}

function errorsOf(text: string, file = 'corosync.conf'): string[] {
  const r = parseCorosyncMembership(text, file);
  assert.ok(!r.ok, 'expected the file to be refused');
  return r.diagnostics.map(formatDiagnostic);
}

test("seed 003's corosync.conf (corosync 1.x, verbatim, with its template placeholder) parses; it names no node", () => {
  const text = readFileSync(SEED003, 'utf8');
  const parsed = parseCorosyncConf(text, 'corosync.conf');
  assert.ok(parsed.ok);
  assert.deepEqual(
    parsed.value.items.map((i) => (i.kind === 'section' ? i.name : i.key)),
    ['totem', 'amf', 'service', 'aisexec', 'logging'],
  );
  const logging = sections(parsed.value, 'logging')[0]!;
  assert.equal(
    keyOf(sections(logging, 'logger_subsys')[0]!, 'tags')?.value,
    'enter|leave|trace1|trace2|trace3|trace4|trace6',
  );
  const m = membership(text);
  assert.deepEqual(m.nodes, [], 'corosync 1.x found its members by multicast: no nodelist');
  assert.equal(m.tokenMs, 3000);
  assert.equal(m.tokenSource, 'token');
  assert.equal(m.detectionMs, 3000);
  assert.deepEqual(m.interfaces, [
    { link: 0, bindnetaddr: '{{ bind[0] }}', mcastaddr: '226.94.1.10', port: 5405, line: 37 },
  ]);
  assert.deepEqual(m.linkPorts, [5405]);
  assert.equal(m.clusterName, undefined);
  assert.equal(m.quorum.twoNode, undefined, 'no quorum section: the file does not say');
  assert.match(m.notes.join('\n'), /not encrypted/);
  const r = parseCorosyncMembership(text, 'corosync.conf');
  assert.ok(r.ok);
  assert.match(
    r.warnings.map(formatDiagnostic).join('\n'),
    /corosync\.conf:37:1: warning: .*template placeholder/,
  );
});

test('a corosync 3 nodelist gives names, ids, up to 8 links with their ports, votes, the token and the quorum options', () => {
  const m = membership(COROSYNC3);
  assert.equal(m.clusterName, 'shop');
  assert.equal(m.transport, 'knet');
  assert.deepEqual(
    m.nodes.map((n) => ({ name: n.name, id: n.id, addrs: n.addrs, votes: n.votes })),
    [
      { name: 'alpha', id: 1, addrs: ['10.0.0.1', '192.168.1.1'], votes: undefined },
      { name: 'beta', id: 2, addrs: ['10.0.0.2', '192.168.1.2'], votes: undefined },
      { name: 'gamma', id: 7, addrs: ['fd00::3'], votes: 2 },
    ],
  );
  assert.deepEqual(m.linkPorts, [5420, 5421]);
  assert.equal(m.tokenMs, 1000);
  assert.equal(m.detectionMs, 1650, 'three nodes: token + 1 × the default token_coefficient (650 ms)');
  assert.deepEqual(m.quorum, {
    provider: 'corosync_votequorum',
    expectedVotes: 4,
    waitForAll: true,
    autoTieBreaker: false,
  });
  assert.match(m.notes.join('\n'), /last_man_standing has no halo equivalent/);
  assert.doesNotMatch(m.notes.join('\n'), /not encrypted/, 'crypto_cipher aes256 is encryption');
});

test('a node without a name is named by its ring0_addr, as corosync does; two_node and the knet default token are read', () => {
  const m = membership(`totem {
  transport: knet
}
nodelist {
  node {
    ring0_addr: 10.1.0.1
  }
  node {
    ring0_addr: 10.1.0.2
    nodeid: 2
  }
}
quorum {
  provider: corosync_votequorum
  two_node: 1
}
`);
  assert.deepEqual(
    m.nodes.map((n) => [n.name, n.nameFrom, n.id]),
    [
      ['10.1.0.1', 'ring0_addr', undefined],
      ['10.1.0.2', 'ring0_addr', 2],
    ],
  );
  assert.equal(m.quorum.twoNode, true);
  assert.equal(m.tokenMs, 3000, "corosync 3's default token");
  assert.equal(m.tokenSource, 'default');
  assert.deepEqual(m.linkPorts, [], 'no interface section: the caller uses 5405');
});

test('syntax errors name file:line and the fix: unclosed section, stray brace, a line that is no statement', () => {
  assert.deepEqual(errorsOf('totem {\n  token: 1000\n', '/etc/corosync/corosync.conf'), [
    "/etc/corosync/corosync.conf:1:1: error: section 'totem' opened on line 1 is not closed: add '}' after its last key",
  ]);
  assert.match(errorsOf('totem {\n}\n}\n')[0]!, /^corosync\.conf:3:1: error: '\}' closes no open section/);
  assert.match(
    errorsOf('totem {\n  token 1000\n}\n')[0]!,
    /^corosync\.conf:2:1: error: 'token 1000' is not 'key: value'/,
  );
  assert.match(
    errorsOf('nodelist { node { ring0_addr: 10.0.0.1 } }\n')[0]!,
    /^corosync\.conf:1:1: error: .*is not a section opening: write the section name and '\{' alone on the line/,
  );
});

test('a node listed twice, a host name instead of an IP, a gap in the rings and a bad boolean are refused with their line', () => {
  const errs = errorsOf(`nodelist {
  node {
    ring0_addr: 10.0.0.1
    name: alpha
    nodeid: 1
  }
  node {
    ring0_addr: 10.0.0.2
    name: alpha
    nodeid: 2
  }
  node {
    ring0_addr: gamma.example.com
    ring2_addr: 10.0.2.3
    name: gamma
  }
}
quorum {
  two_node: maybe
}
`);
  assert.deepEqual(errs, [
    "corosync.conf:13:1: error: ring0_addr 'gamma.example.com' is not an IP address: halo does not resolve host names for links; write the address, or give --node NAME=ADDR",
    "corosync.conf:14:1: error: ring2_addr without ring1_addr: halo numbers a node's links from 0 without gaps; renumber the rings",
    "corosync.conf:7:1: error: node with name 'alpha' is listed twice (also the node on line 2)",
    "corosync.conf:19:1: error: two_node: 'maybe' is not 1 or 0 (yes or no)",
  ]);
  assert.match(
    errorsOf(
      'nodelist {\n  node {\n    ring0_addr: 10.0.0.1\n  }\n  node {\n    ring0_addr: 10.0.0.1\n  }\n}\n',
    )[0]!,
    /corosync\.conf:5:1: error: node with name '10\.0\.0\.1' is listed twice/,
  );
  assert.match(
    errorsOf('nodelist {\n  node {\n    ring0_addr: {{ ip }}\n  }\n}\n')[0]!,
    /ring0_addr '\{\{ ip \}\}' is not an IP address \(a template placeholder: render the template first\)/,
  );
  assert.match(
    errorsOf('nodelist {\n  node {\n    name: x\n  }\n}\n')[0]!,
    /:2:1: error: node has no ring0_addr/,
  );
});

test('isIpAddress accepts IPv4 and IPv6 addresses, nothing else', () => {
  for (const ok of ['10.0.0.1', '255.255.255.255', 'fd00::1', '::1', '2001:db8::10:1'])
    assert.ok(isIpAddress(ok), ok);
  for (const bad of [
    'node1',
    '10.0.0',
    '10.0.0.256',
    '010.0.0.1',
    'fd00::g',
    '10.0.0.1:5405',
    '',
    'example.com',
  ])
    assert.ok(!isIpAddress(bad), bad);
});
