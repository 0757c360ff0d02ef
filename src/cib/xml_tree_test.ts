import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { XmlElement } from './model.ts';
import { childElements, MAX_XML_DEPTH, parseXmlTree, serializeXml } from './xml_tree.ts';

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
