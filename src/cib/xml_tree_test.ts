import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRng } from '../lib/prng.ts';
import type { XmlElement } from './model.ts';
import {
  childElements,
  MAX_XML_DEPTH,
  parseXmlTree,
  serializeXml,
  XmlStreamScanner,
  type XmlSubtreeHook,
} from './xml_tree.ts';

function tree(text: string) {
  const r = parseXmlTree(text, 't.xml');
  if (!r.ok) assert.fail(r.diagnostics[0]?.message);
  return r.doc;
}

test('each element records the line and column of its opening <', () => {
  const doc = tree('<a>\n  <b\n     x="1"/>\n\t<c/><d/>\n</a>');
  const [b, c, d] = childElements(doc.root);
  assert.deepEqual(doc.position(doc.root), { line: 1, column: 1 });
  assert.deepEqual(doc.position(b!), { line: 2, column: 3 });
  assert.deepEqual(doc.position(c!), { line: 4, column: 2 });
  assert.deepEqual(doc.position(d!), { line: 4, column: 6 });
});

test('attribute order, comments and text are kept; layout whitespace is not', () => {
  const doc = tree('<!-- top --><a z="1" b="2" m="3">\n  <!-- inner -->\n  <b>text &amp; more</b>\n</a>');
  assert.deepEqual(doc.root.attrs, [
    ['z', '1'],
    ['b', '2'],
    ['m', '3'],
  ]);
  assert.deepEqual(doc.children[0], { type: 'comment', text: ' top ' });
  assert.deepEqual(doc.root.children[0], { type: 'comment', text: ' inner ' });
  assert.deepEqual((doc.root.children[1] as XmlElement).children, [{ type: 'text', text: 'text & more' }]);
  assert.equal(doc.hasComments, true);
});

test('serializing writes two-space indented XML that parses back to the same tree', () => {
  const text = '<a z="1&quot;&#10;">\n<!-- c -->\n<b><c/></b>\n<d>keep  this </d></a>';
  const doc = tree(text);
  const out = serializeXml(doc.children);
  assert.equal(
    out,
    '<a z="1&quot;&#10;">\n  <!-- c -->\n  <b>\n    <c/>\n  </b>\n  <d>keep  this </d>\n</a>\n',
  );
  assert.deepEqual(tree(out).children, doc.children);
});

test('comment text that would end the comment early is made safe', () => {
  const out = serializeXml([{ type: 'comment', text: 'a -- b -' }]);
  assert.equal(out, '<!--a - - b - -->\n');
  assert.ok(parseXmlTree(`<r>${out}</r>`, 'x').ok);
});

test('nesting deeper than the limit is refused with a position', () => {
  const depth = MAX_XML_DEPTH + 1;
  const text = `${'<e>'.repeat(depth)}${'</e>'.repeat(depth)}`;
  const r = parseXmlTree(text, 'deep.xml');
  assert.equal(r.ok, false);
  assert.equal(r.ok ? '' : r.diagnostics[0]?.code, 'xml-too-deep');
  assert.equal(r.ok ? 0 : r.diagnostics[0]?.pos.column, MAX_XML_DEPTH * 3 + 1);
});

/** Parses with the fast scanner and with saxes alone; both must give the same answer. */
function bothWays(text: string) {
  const fast = parseXmlTree(text, 'f.xml');
  const reference = parseXmlTree(text, 'f.xml', { saxesOnly: true });
  return { fast, reference };
}

function positionsOf(doc: { root: XmlElement; position(el: XmlElement): unknown }): unknown[] {
  const out: unknown[] = [];
  const walk = (el: XmlElement): void => {
    out.push([el.name, doc.position(el)]);
    for (const c of childElements(el)) walk(c);
  };
  walk(doc.root);
  return out;
}

test('well-formed CIB-like XML gives the same tree and positions as saxes', () => {
  const inputs = [
    '<?xml version="1.0" encoding="UTF-8"?>\n<cib a="1">\n  <x b=\'q&quot;&amp;&lt;&gt;&apos;\' c="&#65;&#x42;"/>\n</cib>\n',
    '<a\n  x="tab\there"\n  y="line\nbreak &#10; kept"\n></a >',
    '<!-- before --><a><b>t &amp; u</b><!-- in --><c/>text<d/>more</a><!-- after -->\n',
    '<a z="é ü ñ 日本">caf\u00e9</a>',
    '<a><b/><b/><b><c x="a:b" y="-" z="0.5"/></b></a>',
    '<?xml version="1.0" standalone="yes" ?><a/>',
    '<a>&#32;&#10;<b>&#x20;x&#9;</b></a>',
    '<a><!---x--><!-->--></a>',
  ];
  for (const text of inputs) {
    const { fast, reference } = bothWays(text);
    assert.ok(fast.ok && reference.ok, text);
    assert.deepEqual(fast.doc.children, reference.doc.children, text);
    assert.deepEqual(positionsOf(fast.doc), positionsOf(reference.doc), text);
    assert.equal(fast.doc.hasComments, reference.doc.hasComments);
    assert.equal(fast.doc.hasText, reference.doc.hasText);
  }
});

test('XML the fast scanner does not handle still parses, through saxes', () => {
  const inputs = [
    '<a>\r\n  <b x="1\r\n2"/>\r\n</a>',
    '<!DOCTYPE a><a/>',
    '<a><![CDATA[ <raw> ]]></a>',
    '<a><?pi data?><b/></a>',
    '\uFEFF<a/>',
    '<a x="\u{1F600}"/>',
  ];
  for (const text of inputs) {
    const { fast, reference } = bothWays(text);
    assert.ok(fast.ok && reference.ok, text);
    assert.deepEqual(fast.doc.children, reference.doc.children, text);
    assert.deepEqual(positionsOf(fast.doc), positionsOf(reference.doc), text);
  }
});

test('malformed XML is refused with the same error and position as saxes reports', () => {
  const inputs = [
    '<a><b></a>',
    '<a x="1" x="2"/>',
    '<a x="1"y="2"/>',
    '<a x=1/>',
    '<a x="<"/>',
    '<a>&nbsp;</a>',
    '<a>&#0;</a>',
    '<a x="&#xD800;"/>',
    '<a>]]></a>',
    '<a><!-- a -- b --></a>',
    '<a><!--x---></a>',
    '<a><!---></a>',
    '<a/><b/>',
    'text<a/>',
    '<a/>text',
    '<a>',
    '<1a/>',
    '<a></ab>',
    '<a\u0001/>',
    '<a><b/',
    ' <?xml version="1.0"?><a/>',
    '<?xml version="2.0"?><a/>',
    '',
  ];
  for (const text of inputs) {
    const { fast, reference } = bothWays(text);
    assert.equal(fast.ok, false, text);
    assert.deepEqual(fast, reference, text);
  }
});

test('a subtree hook gets each wanted subtree with positions and leaves its replacement', () => {
  const text = '<r>\n  <s id="1">\n    <t/>\n  </s>\n  <s id="2"><!-- kept --><t/></s>\n  <u/>\n</r>';
  const taken: unknown[] = [];
  const stub: XmlElement = { type: 'element', name: 'taken', attrs: [], children: [] };
  const r = parseXmlTree(text, 'h.xml', {
    subtreeHook: {
      wants: (name, up) => name === 's' && up.length === 1,
      take: (el, position) => {
        taken.push([el.attrs, position(el), position(childElements(el)[0]!)]);
        return stub;
      },
    },
  });
  assert.ok(r.ok);
  // The second <s> holds a comment: it stays in the tree as parsed.
  assert.deepEqual(taken, [[[['id', '1']], { line: 2, column: 3 }, { line: 3, column: 5 }]]);
  const kids = childElements(r.doc.root);
  assert.equal(kids[0], stub);
  assert.deepEqual(kids[1]?.attrs, [['id', '2']]);
  assert.deepEqual(r.doc.position(kids[2]!), { line: 6, column: 3 });
});

test('randomly damaged XML gets the same answer from the fast scanner as from saxes', () => {
  const base =
    '<?xml version="1.0"?>\n<cib a="1">\n  <!-- c -->\n  <x id="p&amp;q" b=\'2\'>\n    <y v="&#65;"/>\n    text &lt; t\n  </x>\n</cib>\n';
  const alphabet = [
    '<',
    '>',
    '/',
    '"',
    "'",
    '=',
    '&',
    ';',
    '#',
    '-',
    '!',
    '?',
    ' ',
    '\n',
    '\t',
    'a',
    '1',
    ':',
    ']',
  ];
  const rng = new SeededRng(20260101);
  const CASES = 3000;
  for (let n = 0; n < CASES; n++) {
    let text = base;
    for (let m = 0, edits = 1 + rng.int(3); m < edits; m++) {
      const at = rng.int(text.length + 1);
      const ch = alphabet[rng.int(alphabet.length)]!;
      const kind = rng.int(3);
      text =
        kind === 0
          ? text.slice(0, at) + ch + text.slice(at)
          : kind === 1
            ? text.slice(0, at) + text.slice(at + 1)
            : text.slice(0, at) + ch + text.slice(at + 1);
    }
    const { fast, reference } = bothWays(text);
    assert.equal(fast.ok, reference.ok, JSON.stringify(text));
    if (fast.ok && reference.ok) {
      assert.deepEqual(fast.doc.children, reference.doc.children, JSON.stringify(text));
      assert.deepEqual(positionsOf(fast.doc), positionsOf(reference.doc), JSON.stringify(text));
    } else assert.deepEqual(fast, reference, JSON.stringify(text));
  }
});

/** Scans `pieces` one after another; the tree with positions and the hook's calls, or undefined. */
function scanPieces(pieces: readonly string[]): unknown {
  const taken: unknown[] = [];
  const hook: XmlSubtreeHook = {
    wants: (name, up) => name === 'x' && up.length === 1,
    take: (el, position) => {
      taken.push([el, position(el), childElements(el).map((c) => position(c))]);
      return { type: 'element', name: 'taken', attrs: [], children: [] };
    },
  };
  const scanner = new XmlStreamScanner({ subtreeHook: hook });
  for (const p of pieces) scanner.write(p);
  const r = scanner.end();
  if (!r?.ok) return r;
  return { children: r.doc.children, positions: positionsOf(r.doc), taken, comments: r.doc.hasComments };
}

test('XML written to the scanner in pieces cut anywhere reads as if written at once', () => {
  const inputs = [
    '<?xml version="1.0" encoding="UTF-8"?>\n<cib a="1">\n  <x b=\'q&quot;&amp;&lt;&gt;&apos;\' c="&#65;&#x42;"/>\n</cib>\n',
    '<!-- before --><a><x>t &amp; u</x><!-- in --><x k="v>w"><c/></x>text<d/>more</a ><!-- after -->\n',
    '<a z="é ü ñ 日本">\n  <x id="1">\n    <y/>\n  </x>\n  <x id="2"/>\n</a>',
    '<?xml version="1.0" standalone="yes" ?><a/>',
    // Not for the fast scanner: each way it gives up.
    '<a>\r\n</a>',
    '<a><x></y></a>',
    '<a><x/>',
  ];
  for (const text of inputs) {
    const whole = scanPieces([text]);
    for (let cut = 0; cut <= text.length; cut++) {
      assert.deepEqual(
        scanPieces([text.slice(0, cut), text.slice(cut)]),
        whole,
        `${JSON.stringify(text)} cut at ${cut}`,
      );
    }
    assert.deepEqual(scanPieces([...text]), whole, `${JSON.stringify(text)} one character at a time`);
  }
  // The whole-text parse agrees with the scanner where it does not give up.
  const r = parseXmlTree(inputs[2]!, 'f.xml');
  assert.ok(r.ok);
  assert.deepEqual(positionsOf(r.doc), [
    ['a', { line: 1, column: 1 }],
    ['x', { line: 2, column: 3 }],
    ['y', { line: 3, column: 5 }],
    ['x', { line: 5, column: 3 }],
  ]);
});
