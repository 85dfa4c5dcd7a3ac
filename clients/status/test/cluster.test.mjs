// The status page's Cluster panel (clients/status/page/cluster.js): a cluster node's view of the cluster made
// into the panel's text. Pure: no DOM, no network.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { clusterFacts, clusterRows } from '../page/cluster.js';

/** gateway.status's `cluster` on node b of three (components/metrics/status.py cluster_panel). */
const CLUSTER = {
  node: 'b',
  store: true,
  skipped: 0,
  head: 12040,
  nodes: [
    { name: 'a', this: false, seen: true, heard_of: 0.4, cursor: 12040, behind: 0 },
    { name: 'b', this: true, seen: true, heard_of: 1, cursor: 12038, behind: 2 },
    { name: 'c', this: false, seen: false, heard_of: 30.5, cursor: 40, behind: 12000 },
  ],
};

test('a row a node: this one marked, seen, seconds since heard of, place in the log, events behind', () => {
  assert.deepEqual(clusterRows(CLUSTER), [
    { name: 'a', self: false, seen: true, cells: ['a', 'seen', '0.4 s ago', '12,040', '0'] },
    { name: 'b', self: true, seen: true, cells: ['b (this node)', 'seen', '1.0 s ago', '12,038', '2'] },
    { name: 'c', self: false, seen: false, cells: ['c', 'not seen', '30.5 s ago', '40', '12,000'] },
  ]);
});

test('a node not heard of yet, or without a place, says so', () => {
  const rows = clusterRows({ ...CLUSTER, nodes: [{ name: 'b', this: true, seen: false, heard_of: null, cursor: null,
    behind: null }] });
  assert.deepEqual(rows[0].cells, ['b (this node)', 'not seen', 'not yet', '–', '–']);
});

test('a single node has no rows', () => {
  assert.deepEqual(clusterRows(null), []);
  assert.deepEqual(clusterRows(undefined), []);
});

test('the facts: nodes seen, the shared store, what this node skipped', () => {
  assert.deepEqual(clusterFacts(CLUSTER), { seen: '2 of 3', store: 'reached', skipped: 'none' });
  const lost = clusterFacts({ ...CLUSTER, store: false, skipped: 1500 });
  assert.equal(lost.store, 'unreachable: this node takes no events');
  assert.equal(lost.skipped, '1,500 (dropped from the log before this node delivered them)');
  assert.equal(clusterFacts({ ...CLUSTER, store: null }).store, 'not known yet');
});
