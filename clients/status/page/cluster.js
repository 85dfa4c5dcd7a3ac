// The status page's Cluster panel, pure (no DOM, no network): a cluster node's view of the cluster, as
// gateway.status answers it (`cluster`: components/metrics/status.py cluster_panel; null on a single node,
// and then the page shows no panel), made into the text the panel shows.

const whole = new Intl.NumberFormat('en');
const tenths = new Intl.NumberFormat('en', { minimumFractionDigits: 1, maximumFractionDigits: 1 });

/**
 * @typedef {{name: string, this: boolean, seen: boolean, heard_of: number | null, cursor: number | null,
 *   behind: number | null}} ClusterNode
 * @typedef {{node: string, store: boolean | null, skipped: number, head: number | null,
 *   nodes: ClusterNode[]}} Cluster
 * @typedef {{name: string, self: boolean, seen: boolean, cells: string[]}} ClusterRow
 */

/**
 * The panel's rows, one a node, by name: node (this one marked), seen, heard of, place in the log, behind.
 * @param {Cluster | null | undefined} cluster
 * @returns {ClusterRow[]}
 */
export function clusterRows(cluster) {
  return (cluster?.nodes ?? []).map((n) => ({
    name: n.name,
    self: n.this,
    seen: n.seen,
    cells: [
      n.this ? `${n.name} (this node)` : n.name,
      n.seen ? 'seen' : 'not seen',
      n.heard_of === null ? 'not yet' : `${tenths.format(n.heard_of)} s ago`,
      n.cursor === null ? '–' : whole.format(n.cursor),
      n.behind === null ? '–' : whole.format(n.behind),
    ],
  }));
}

/**
 * The panel's facts: how many nodes are seen, whether this node reaches the shared store, what it skipped.
 * @param {Cluster} cluster
 * @returns {{seen: string, store: string, skipped: string}}
 */
export function clusterFacts(cluster) {
  const seen = cluster.nodes.filter((n) => n.seen).length;
  return {
    seen: `${whole.format(seen)} of ${whole.format(cluster.nodes.length)}`,
    store: cluster.store === true ? 'reached'
      : cluster.store === false ? 'unreachable: this node takes no events' : 'not known yet',
    skipped: cluster.skipped > 0
      ? `${whole.format(cluster.skipped)} (dropped from the log before this node delivered them)` : 'none',
  };
}
