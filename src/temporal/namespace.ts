/**
 * The global namespace across the sites' Temporal clusters (docs/architecture.md,
 * "Temporal per site"): where it is active, and the forced failover that a site's loss
 * needs, asked of a surviving cluster since the active one may be gone.
 */
import type { Client } from '@temporalio/client';
import { siteClusters, type Config } from '../config';

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
