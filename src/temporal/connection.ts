/**
 * Connections to Temporal from the config (address, namespace, optional TLS and API key
 * taken from an environment variable), and the idempotent start of the ETL workflows.
 */
import { readFileSync } from 'node:fs';
import { Client, Connection, WorkflowIdConflictPolicy } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { temporal as proto } from '@temporalio/proto';
import type { Config } from '../config';
import { CONTROL_QUEUE, etlWorkflowId, SEARCH_ATTRIBUTES } from '../workflows/names';

function tlsOptions(config: Config) {
  const tls = config.temporal.tls;
  if (!tls) return undefined;
  const read = (f?: string) => (f ? readFileSync(f) : undefined);
  const cert = read(tls.certFile);
  const key = read(tls.keyFile);
  return {
    serverNameOverride: tls.serverName,
    serverRootCACertificate: read(tls.caFile),
    clientCertPair: cert && key ? { crt: cert, key } : undefined,
  };
}

function apiKey(config: Config): string | undefined {
  const name = config.temporal.apiKeyEnv;
  if (!name) return undefined;
  const key = process.env[name];
  if (!key) throw new Error(`temporal.apiKeyEnv names ${name}, but that environment variable is not set`);
  return key;
}

export async function connectClient(config: Config): Promise<Client> {
  const connection = await Connection.connect({
    address: config.temporal.address,
    tls: tlsOptions(config),
    apiKey: apiKey(config),
  }).catch((e: Error) => {
    throw new Error(`cannot reach the Temporal server at ${config.temporal.address}: ${e.message}`);
  });
  return new Client({ connection, namespace: config.temporal.namespace });
}

export async function connectWorker(config: Config): Promise<NativeConnection> {
  return NativeConnection.connect({
    address: config.temporal.address,
    tls: tlsOptions(config),
    apiKey: apiKey(config),
  }).catch((e: Error) => {
    throw new Error(`cannot reach the Temporal server at ${config.temporal.address}: ${e.message}`);
  });
}

/** Registers the Keyword search attributes the workflows upsert, where they are missing. */
export async function ensureSearchAttributes(client: Client): Promise<void> {
  const namespace = client.options.namespace;
  const existing = await client.connection.operatorService.listSearchAttributes({ namespace });
  const missing = Object.values(SEARCH_ATTRIBUTES)
    .map((k) => k.name)
    .filter((n) => !(n in (existing.customAttributes ?? {})));
  if (!missing.length) return;
  await client.connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(
      missing.map((n) => [n, proto.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
    ),
  });
}

/** Starts the site's ETL unless it already runs (idempotent). */
export async function startEtl(client: Client, site: string): Promise<void> {
  await client.workflow.start('siteEtlWorkflow', {
    workflowId: etlWorkflowId(site),
    taskQueue: CONTROL_QUEUE,
    args: [{ site }],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });
}
