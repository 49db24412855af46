/** The order members load in within a cycle (pure rules; the ETL tests run them on real servers). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { extractionLanes, qualityBase } from '../src/etl/order';

const m = (id: string, sourceId: string, site: string, index: number) => ({ id, sourceId, site, index });
const MEMBERS = [
  m('a-dc2', 'sw-a', 'dc2', 0),
  m('a-dc1', 'sw-a', 'dc1', 1),
  m('b-dc1', 'sw-b', 'dc1', 0),
  m('b-dc2', 'sw-b', 'dc2', 1),
];
const ids = (lanes: { id: string }[][]) => lanes.map((l) => l.map((x) => x.id));

describe('extraction lanes', () => {
  it('ranks by list order alone, whichever site loads', () => {
    assert.ok(qualityBase(MEMBERS[0]!) < qualityBase(MEMBERS[1]!));
    assert.ok(qualityBase(MEMBERS[2]!) < qualityBase(MEMBERS[3]!));
  });

  it('loads each set in turn, best first, the sets side by side', () => {
    assert.deepEqual(ids(extractionLanes(MEMBERS)), [['a-dc2', 'a-dc1'], ['b-dc1', 'b-dc2']]);
  });

  it('gives a member that was unreachable a lane of its own, so its partner does not wait for it', () => {
    const lanes = extractionLanes(MEMBERS, (id) => id === 'a-dc1');
    assert.deepEqual(ids(lanes), [['a-dc2'], ['a-dc1'], ['b-dc1', 'b-dc2']]);
  });

  it('leaves no empty lane when every member of a set is down', () => {
    const lanes = extractionLanes(MEMBERS, (id) => id.startsWith('a-'));
    assert.deepEqual(ids(lanes), [['a-dc2'], ['a-dc1'], ['b-dc1', 'b-dc2']]);
  });
});
