import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseCibXml } from './cib_xml.ts';
import type { Cib, Clone } from './model.ts';
import {
  allPrimitives,
  clusterProperty,
  evaluateNvSets,
  findResource,
  instanceAttributesOf,
  isPromotable,
  isStandby,
  isTrue,
  metaValue,
  nodeAttribute,
  operationsOf,
  primitiveAgent,
  resourceIds,
} from './resources.ts';

function fixtureCib(name: string): Cib {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const p = join(dir, 'src/cib/testdata/xml', name);
    if (existsSync(p)) return cibOf(readFileSync(p, 'utf8'));
    dir = dirname(dir);
  }
  throw new Error(`fixture ${name} not found`);
}

function cibOf(text: string): Cib {
  const r = parseCibXml(text, 'test.xml');
  assert.ok(r.ok, r.ok ? '' : r.diagnostics[0]?.message);
  return r.cib;
}

test('every primitive is listed with its enclosing group and clone, in configuration order', () => {
  const cib = fixtureCib('full.xml');
  assert.deepEqual(
    allPrimitives(cib).map((p) => [p.resource.id, p.parents.map((x) => x.id)]),
    [
      ['fence-alice', []],
      ['web-ip', ['web']],
      ['web-server', ['web']],
      ['data', ['ms-data']],
      ['ping', ['ping-clone']],
    ],
  );
  assert.equal(findResource(cib, 'data')?.kind, 'primitive');
  assert.equal(findResource(cib, 'httpd-bundle')?.kind, 'bundle');
  assert.equal(findResource(cib, 'nope'), undefined);
  assert.ok(resourceIds(cib).has('web-template'));
});

test('a primitive made from a template runs the template agent', () => {
  const cib = fixtureCib('full.xml');
  const server = allPrimitives(cib).find((p) => p.resource.id === 'web-server')!.resource;
  assert.deepEqual(primitiveAgent(server, cib), { class: 'ocf', provider: 'heartbeat', type: 'apache' });
});

test('meta attributes come from the resource, then its parents, then rsc_defaults; rule-gated sets are skipped', () => {
  const cib = fixtureCib('full.xml');
  const data = findResource(cib, 'data')!;
  assert.equal(metaValue(data, 'notify', cib), 'true', 'inherited from the master');
  assert.equal(metaValue(data, 'resource-stickiness', cib), '50', 'from rsc_defaults');
  // ping's own stickiness is inside a rule-gated set, so the default applies.
  assert.equal(metaValue(findResource(cib, 'ping')!, 'resource-stickiness', cib), '50');
  assert.equal(metaValue(findResource(cib, 'web')!, 'no-such-meta', cib), undefined);
});

test('legacy master and promotable=true clones are promotable; plain clones are not', () => {
  const cib = fixtureCib('full.xml');
  assert.equal(isPromotable(findResource(cib, 'ms-data') as Clone), true);
  assert.equal(isPromotable(findResource(cib, 'ping-clone') as Clone, cib), false);
  const modern = cibOf(`<cib><configuration><resources>
    <clone id="c"><meta_attributes id="c-m"><nvpair id="c-p" name="promotable" value="yes"/></meta_attributes>
      <primitive id="p" class="ocf" provider="pacemaker" type="Stateful"/></clone>
  </resources></configuration></cib>`);
  assert.equal(isPromotable(findResource(modern, 'c') as Clone, modern), true);
  assert.equal(isTrue('On'), true);
  assert.equal(isTrue('false'), false);
});

test('cluster properties read cib-bootstrap-options first, then by score', () => {
  const cib = fixtureCib('full.xml');
  assert.equal(clusterProperty(cib, 'stonith-enabled'), 'true');
  const scored = cibOf(`<cib><configuration><crm_config>
      <cluster_property_set id="low"><nvpair id="a" name="x" value="low"/></cluster_property_set>
      <cluster_property_set id="high" score="100"><nvpair id="b" name="x" value="high"/></cluster_property_set>
      <cluster_property_set id="cib-bootstrap-options"><nvpair id="c" name="y" value="boot"/></cluster_property_set>
      <cluster_property_set id="other"><nvpair id="d" name="y" value="other"/></cluster_property_set>
    </crm_config></configuration></cib>`);
  assert.equal(clusterProperty(scored, 'x'), 'high');
  assert.equal(clusterProperty(scored, 'y'), 'boot');
  assert.equal(clusterProperty(scored, 'absent'), undefined);
});

test('id-ref sets and pairs resolve to the element they name', () => {
  const cib = cibOf(`<cib><configuration><resources>
      <primitive id="a" class="ocf" provider="heartbeat" type="Dummy">
        <instance_attributes id="a-params"><nvpair id="a-fake" name="fake" value="1"/></instance_attributes>
      </primitive>
      <primitive id="b" class="ocf" provider="heartbeat" type="Dummy">
        <instance_attributes id-ref="a-params"/>
        <instance_attributes id="b-params"><nvpair id-ref="a-fake"/></instance_attributes>
      </primitive>
    </resources></configuration></cib>`);
  const b = findResource(cib, 'b')!;
  assert.ok(b.kind === 'primitive');
  assert.equal(evaluateNvSets(b.instanceAttributes, { cib }).get('fake'), '1');
  assert.equal(evaluateNvSets([b.instanceAttributes[1]!], { cib }).get('fake'), '1');
});

test('node attributes: built-ins, transient status values over permanent ones, and standby', () => {
  const cib = fixtureCib('full.xml');
  assert.equal(nodeAttribute(cib, 'alice', '#uname'), 'alice');
  assert.equal(nodeAttribute(cib, 'alice', '#id'), '1');
  assert.equal(nodeAttribute(cib, 'alice', 'site'), 'north');
  assert.equal(nodeAttribute(cib, 'alice', 'fail-count-web-ip#monitor_10000'), '2');
  assert.equal(nodeAttribute(cib, 'bob', 'site'), undefined);
  assert.equal(isStandby(cib, 'alice'), false);
  const standby = cibOf(`<cib><configuration><nodes><node id="1" uname="n1">
      <instance_attributes id="n1-a"><nvpair id="n1-s" name="standby" value="off"/></instance_attributes>
    </node></nodes></configuration><status><node_state id="1" uname="n1">
      <transient_attributes id="1"><instance_attributes id="st-1"><nvpair id="st-1-s" name="standby" value="on"/></instance_attributes></transient_attributes>
    </node_state></status></cib>`);
  assert.equal(isStandby(standby, 'n1'), true);
});

test('a primitive gets the operations its <operations id-ref> names, and template operations it does not override', () => {
  const cib = cibOf(`<cib><configuration><resources>
      <template id="t" class="ocf" provider="heartbeat" type="Dummy">
        <instance_attributes id="t-params"><nvpair id="t-a" name="a" value="from-template"/>
          <nvpair id="t-b" name="b" value="from-template"/></instance_attributes>
        <operations>
          <op id="t-mon" name="monitor" interval="10s" timeout="20s"/>
          <op id="t-start" name="start" interval="0" timeout="30s"/>
        </operations>
      </template>
      <primitive id="p" template="t">
        <instance_attributes id="p-params"><nvpair id="p-a" name="a" value="own"/></instance_attributes>
        <operations id="shared-ops">
          <op id="p-mon" name="monitor" interval="10s" timeout="60s"/>
        </operations>
      </primitive>
      <primitive id="q" class="ocf" provider="heartbeat" type="Dummy">
        <operations id-ref="shared-ops"/>
      </primitive>
    </resources></configuration></cib>`);
  const p = findResource(cib, 'p');
  const q = findResource(cib, 'q');
  assert.ok(p?.kind === 'primitive' && q?.kind === 'primitive');
  assert.deepEqual(
    operationsOf(p, cib).map((op) => `${op.id}:${op.timeout}`),
    ['p-mon:60s', 't-start:30s'],
  );
  assert.deepEqual(
    operationsOf(q, cib).map((op) => op.id),
    ['p-mon'],
  );
  assert.deepEqual(Object.fromEntries(instanceAttributesOf(p, cib)), { a: 'own', b: 'from-template' });
});
