/**
 * The global namespace across the sites' Temporal clusters (docs/architecture.md,
 * "Temporal per site"): where it is active, and the forced failover that a site's loss
 * needs, asked of a surviving cluster since the active one may be gone.
 */
import { Client, Connection } from '@temporalio/client';
import { siteClusters, type Config } from '../config';
import { waitFor } from '../wait';

/** The cluster where the client's namespace is active, as the client's cluster sees it. */
export async function activeCluster(client: Client): Promise<string> {
  const d = await client.workflowService.describeNamespace({ namespace: client.options.namespace });
  return d.replicationConfig?.activeClusterName ?? '';
}

/**
 * When the namespace is active at `failedSite`'s cluster, makes it active at the
 * client's (a survivor's) and returns that cluster's name; null when nothing had to move.
 * What the failed cluster had not replicated yet is lost to the survivor: activities run
 * again (they are idempotent), a signal sent just before may have to be sent again.
 */
export async function failNamespaceAway(client: Client, config: Config, failedSite: string, survivorSite: string): Promise<string | null> {
  const clusters = siteClusters(config);
  const failed = clusters.find((c) => c.site === failedSite);
  const survivor = clusters.find((c) => c.site === survivorSite);
  if (!failed || !survivor) return null;
  if ((await activeCluster(client)) !== failed.cluster) return null;
  await client.workflowService.updateNamespace({
    namespace: client.options.namespace,
    replicationConfig: { activeClusterName: survivor.cluster },
  });
  return survivor.cluster;
}

/**
 * Brings a rebuilt site's cluster back into the namespace before its reintroduction: the
 * clusters connected both ways again (the survivors still know an older cluster of that
 * name, perhaps with another cluster id after a wipe), then a change of the namespace at
 * the cluster where it is active, which replicates the namespace to a cluster that lacks
 * it (a replacement's databases are empty). Histories follow as the workflows go on:
 * a standby asks the active cluster for what it misses. Returns the rebuilt cluster's name.
 */
export async function rejoinSiteCluster(config: Config, site: string, timeoutMs = 120_000): Promise<string | null> {
  const clusters = siteClusters(config);
  const rebuilt = clusters.find((c) => c.site === site);
  if (!rebuilt) return null;
  const others = clusters.filter((c) => c !== rebuilt);
  const connect = (address: string) => Connection.connect({ address, connectTimeout: '5s' });
  const namespace = config.temporal.namespace;
  const deadline = Date.now() + timeoutMs;
  // One bound for the whole rejoin, checked every second.
  const until = (what: string, ok: () => Promise<boolean>) =>
    waitFor(`the cluster of ${site} to rejoin: ${what}`, ok, Math.max(0, deadline - Date.now()), 1000);
  const conns = new Map<string, Connection>();
  try {
    for (const c of clusters) conns.set(c.cluster, await connect(c.address));
    for (const a of clusters) {
      for (const b of clusters.filter((x) => x !== a)) {
        const ops = conns.get(a.cluster)!.operatorService;
        const add = () => ops.addOrUpdateRemoteCluster({ frontendAddress: b.address, enableRemoteClusterConnection: true });
        try {
          await add();
        } catch (e) {
          // A replacement has a new cluster id, which a cluster's record of it may not change: replaced.
          if (!/Unable to persist cluster info/.test((e as Error).message)) throw e;
          await ops.removeRemoteCluster({ clusterName: b.cluster });
          await add();
        }
      }
    }
    // The namespace is changed where it is active: a survivor's cluster.
    let active: Connection | undefined;
    await until('a surviving cluster where the namespace is active', async () => {
      for (const o of others) {
        const d = await conns.get(o.cluster)!.workflowService.describeNamespace({ namespace });
        if (d.replicationConfig?.activeClusterName === o.cluster) active = conns.get(o.cluster);
      }
      return active !== undefined;
    });
    await until(`the namespace ${namespace} at ${rebuilt.cluster}`, async () => {
      // Repeated until it lands: a cluster added a moment ago may not be in the active one's metadata yet.
      await active!.workflowService.updateNamespace({ namespace, updateInfo: { description: `${site} rejoined at ${new Date().toISOString()}` } });
      await new Promise((r) => setTimeout(r, 2000));
      await conns.get(rebuilt.cluster)!.workflowService.describeNamespace({ namespace });
      return true;
    });
    return rebuilt.cluster;
  } finally {
    for (const c of conns.values()) await c.close();
  }
}

/**
 * A planned move of the namespace to `site`'s cluster, both clusters up: Temporal's own
 * `namespace-handover` workflow (namespace temporal-system, run by the active cluster's
 * worker service) waits until the target has replicated all but `allowedLaggingSeconds`,
 * holds the namespace in handover state while the rest drains, then switches. Unlike the
 * forced update of a failover it loses nothing. Returns the cluster it moved to, or null
 * when the namespace was active there already.
 */
export async function handOverNamespace(config: Config, site: string, allowedLaggingSeconds = 5): Promise<string | null> {
  const clusters = siteClusters(config);
  const target = clusters.find((c) => c.site === site);
  if (!target) throw new Error(`site ${site} has no Temporal cluster of its own (sites.${site}.temporal)`);
  const namespace = config.temporal.namespace;
  const probe = await Connection.connect({ address: target.address, connectTimeout: '5s' });
  let activeName: string;
  try {
    const d = await probe.workflowService.describeNamespace({ namespace });
    activeName = d.replicationConfig?.activeClusterName ?? '';
  } finally {
    await probe.close();
  }
  if (activeName === target.cluster) return null;
  const active = clusters.find((c) => c.cluster === activeName);
  if (!active) throw new Error(`the namespace is active at cluster ${activeName}, which no site of the config names`);
  const connection = await Connection.connect({ address: active.address, connectTimeout: '5s' });
  try {
    const system = new Client({ connection, namespace: 'temporal-system' });
    const handle = await system.workflow.start('namespace-handover', {
      workflowId: `twinmart-handover-${namespace}-${Date.now()}`,
      taskQueue: 'default-worker-tq',
      args: [{ Namespace: namespace, RemoteCluster: target.cluster, AllowedLaggingSeconds: allowedLaggingSeconds, HandoverTimeoutSeconds: 30 }],
    });
    await handle.result();
  } finally {
    await connection.close();
  }
  return target.cluster;
}

/** Asks the client's own cluster, not the active one it would forward to (Temporal's redirection header). */
export function locally<T>(client: Client, fn: () => Promise<T>): Promise<T> {
  return client.withMetadata({ 'xdc-redirection': 'false' }, fn);
}

/**
 * What a failover to `site`'s cluster would find there: whether it holds the namespace,
 * whether the namespace would have to move (it is active at another cluster), and how
 * many history events of each workflow it has not replicated yet (the active cluster's
 * count minus its own; what a forced failover now would lose).
 */
export async function replicationAt(
  client: Client,
  config: Config,
  site: string,
  workflowIds: string[],
): Promise<{ cluster: string; activeCluster: string; replicated: boolean; lagEvents: Record<string, number | null> }> {
  const own = siteClusters(config).find((c) => c.site === site)!;
  const d = await locally(client, () => client.workflowService.describeNamespace({ namespace: client.options.namespace }));
  const activeCluster = d.replicationConfig?.activeClusterName ?? '';
  const replicated = (d.replicationConfig?.clusters ?? []).some((c) => c.clusterName === own.cluster);
  const lagEvents: Record<string, number | null> = {};
  for (const id of workflowIds) {
    const handle = client.workflow.getHandle(id);
    try {
      // This cluster first: the active one read after it can only be further on, so the lag is never understated.
      const here = (await locally(client, () => handle.describe())).historyLength;
      const active = (await handle.describe()).historyLength;
      lagEvents[id] = Math.max(0, active - here);
    } catch {
      lagEvents[id] = null; // not replicated here (yet), or the active cluster does not answer
    }
  }
  return { cluster: own.cluster, activeCluster, replicated, lagEvents };
}
