/**
 * The reporting service of one site (docs/reporting-api.md): read-only
 * reports over the site's mart, the dashboard's files, and an operations view from
 * Temporal. Whether the site serves reports is read from the mart's `ctl_reporting` on
 * every report request, so a role switched by the DR workflow takes effect at once; a
 * standby still answers /health, /api/ops and the dashboard, which shows the notice.
 */
import { createReportingMetrics } from '../metrics/reporting';
import { exposition } from '../metrics/http';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WorkflowNotFoundError, type Client, type QueryDefinition } from '@temporalio/client';
import type { PoolConfig } from 'pg';
import { assertSite, reportingMartUrl, reportingUrl, type Config } from '../config';
import { isConnectionError, type Pools } from '../db';
import type { Logger } from '../logger';
import { readMemberLag, readReportingRole, type MemberLag, type ReportingRole } from '../mart/control';
import { drStatusQuery, type DrStatus } from '../workflows/dr-messages';
import { etlStatusQuery } from '../workflows/etl-messages';
import { DR_WORKFLOW_ID, etlWorkflowId } from '../workflows/names';
import {
  agentStatesParams,
  agentSummaryParams,
  dimensionValuesParams,
  interactionsParams,
  parseParams,
  queueSummaryParams,
  type Format,
  type ParamSchema,
  type RawParams,
} from './params';
import { createReportingAuth } from './auth';
import {
  CHART_JS,
  chartJsPath,
  csv,
  fileReply,
  hostAllowed,
  isLoopback,
  json,
  notFound,
  send,
  splitTarget,
  STATIC_NAME,
  WEB_DIR,
  type Reply,
  type Target,
} from './http';
import { dimensionParamNames, dimensionValues, filterParts, takeDimensionParams, type DimensionParams } from './dimensions';
import type { Bucketing } from './buckets';
import { agentStates, agentSummary, interactions, queueSummary } from './queries';
import { agentStatesCsv, agentSummaryCsv, dimensionValuesCsv, interactionsCsv, queueSummaryCsv, type CsvFile } from './tables';

export interface ReportingServerOptions {
  config: Config;
  site: string;
  /** The mart pool is taken from here with the reporting session settings below (if this Pools has none for that URL yet). */
  pools: Pools;
  logger: Logger;
  /**
   * Gives the Temporal client /api/ops queries, called on first use. The server keeps the
   * first client it gets and closes that client's connection on close(); a failure or
   * null is reported in the answer and the factory is asked again on the next request.
   */
  temporal?: () => Promise<Client | null>;
  /** Interface to listen on: 127.0.0.1 unless given (e.g. 0.0.0.0 behind a proxy in a container). */
  host?: string;
}

export interface ReportingServer {
  /** Listens on `port` (default: the site's reportingPort; 0 picks a free one) and resolves to the port. */
  listen(port?: number): Promise<number>;
  close(): Promise<void>;
}

interface RoleView {
  role: ReportingRole;
  activeSite: string;
}

/**
 * Sessions of the reporting service: read-only (a report can never write the mart,
 * whatever reaches it), cancelled when a report runs away, and quick to say the mart is
 * not there, so /health answers while the site is down.
 */
export const martSession = (site: string): PoolConfig => ({
  max: 8,
  connectionTimeoutMillis: 3_000,
  statement_timeout: 30_000,
  application_name: `twinmart-reporting-${site}`,
  options: '-c default_transaction_read_only=on',
});

/** Deadline of the Temporal queries behind one /api/ops answer. */
const OPS_TIMEOUT_MS = 5_000;
/** How long the DR workflow's view of this site (see readRole) is reused. */
const DR_VIEW_TTL_MS = 1_000;
const MAX_LOGGED_PATH = 200;

/** A report's answer as JSON and, made only when asked for, as CSV. */
interface ReportAnswer {
  json: Record<string, unknown>;
  csv: () => CsvFile;
}

/** The default buckets, for callers that do not choose: 15 minutes in UTC. */
const QUARTER_HOURS_UTC: Bucketing = { granularity: '15min', tz: 'UTC' };

function noStatuses(sites: string[], error: string) {
  return { dr: null, etl: Object.fromEntries(sites.map((s) => [s, null])), error };
}

/** Queries every status at once under one deadline; each that fails is null and named in `error`. */
async function statuses(client: Client, sites: string[]) {
  const deadline = Date.now() + OPS_TIMEOUT_MS;
  const ask = <T>(workflowId: string, query: QueryDefinition<T>) =>
    client.withDeadline(deadline, () => client.workflow.getHandle(workflowId).query(query));
  const [dr, ...etl] = await Promise.allSettled([
    ask(DR_WORKFLOW_ID, drStatusQuery),
    ...sites.map((s) => ask(etlWorkflowId(s), etlStatusQuery)),
  ]);
  const errors: string[] = [];
  const value = <T>(workflowId: string, r: PromiseSettledResult<T>): T | null => {
    if (r.status === 'fulfilled') return r.value;
    errors.push(`${workflowId}: ${(r.reason as Error).message}`);
    return null;
  };
  return {
    dr: value(DR_WORKFLOW_ID, dr!),
    etl: Object.fromEntries(sites.map((s, i) => [s, value(etlWorkflowId(s), etl[i]!)])),
    error: errors.length ? errors.join('; ') : null,
  };
}

export function createReportingServer(opts: ReportingServerOptions): ReportingServer {
  const { config, site, logger } = opts;
  assertSite(config, site);
  const host = opts.host ?? '127.0.0.1';
  const checkHost = isLoopback(host);
  const auth = config.reporting.auth ? createReportingAuth(config.reporting.auth) : null;
  if (!auth && !checkHost) {
    throw new Error(
      `reporting: refusing to listen on ${host} without reporting.auth in ${config.file}: ` +
        'configure users (`twinmart hash-password`) or a trusted proxy, or listen on 127.0.0.1 (README, Security)',
    );
  }
  const martUrl = reportingMartUrl(config, site);
  if (martUrl.warning) logger.warn(martUrl.warning);
  const mart = opts.pools.get(martUrl.url, martSession(site));
  // Open like /health: ids and counts only, for Prometheus, which does not sign in.
  const metrics = createReportingMetrics({ site, sites: Object.keys(config.sites), role: roleNow, dr: drView });

  /** What /health says while the mart is unreachable: the role seen last, or standby. */
  let lastRole: RoleView | null = null;
  let martUp: boolean | null = null;

  function martAnswered(): void {
    if (martUp === false) logger.info('reporting: mart reachable again', { site });
    martUp = true;
  }

  function martFailed(e: unknown): void {
    // Logged when it goes down, not on every request of a dashboard polling a dead mart.
    if (martUp !== false) logger.warn('reporting: mart unreachable', { site, error: (e as Error).message });
    martUp = false;
  }

  /** The DR workflow's view: its status, 'none' when no DR workflow exists, null when it cannot be asked. */
  type DrView = DrStatus | 'none' | null;
  let drSeen: { at: number; view: DrView } | null = null;
  /** Whether the last answer of the DR workflow held this site as active. */
  let drHeldActive = false;

  /** Asked at most every DR_VIEW_TTL_MS. */
  async function drView(): Promise<DrView> {
    if (drSeen && Date.now() - drSeen.at < DR_VIEW_TTL_MS) return drSeen.view;
    let view: DrView = null;
    try {
      const client = await temporal();
      if (client) view = await client.withDeadline(Date.now() + OPS_TIMEOUT_MS, () => client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery));
    } catch (e) {
      if (e instanceof WorkflowNotFoundError) view = 'none';
    }
    if (view && view !== 'none') drHeldActive = view.sites[site] === 'active';
    drSeen = { at: Date.now(), view };
    return view;
  }

  /**
   * The mart's role, unless the DR workflow holds this site as failed or rebuilding: a
   * site that comes back intact still reads `active` in its mart until the seed, and
   * must not serve that stale mart beside the survivor. The service asks the DR
   * workflow itself (through Temporal, which outlives the site), so this holds also when
   * the workflow cannot reach the site's worker or mart. When Temporal does not answer,
   * a service whose last answer held the site active keeps serving (a Temporal outage
   * does not stop reports); one that has had no such answer since it started waits.
   */
  async function readRole(): Promise<RoleView> {
    const row = await readReportingRole(mart);
    martAnswered();
    // Only a mart that says active needs the DR workflow's word.
    const dr = row?.role === 'active' && opts.temporal ? await drView() : 'none';
    const taken = dr === null ? !drHeldActive : dr !== 'none' && dr.sites[site] !== 'active';
    const view: RoleView = taken
      ? { role: 'standby', activeSite: dr && dr !== 'none' ? dr.reporting.active : (lastRole?.activeSite ?? config.reporting.primary) }
      : (row ?? { role: 'standby', activeSite: config.reporting.primary });
    if (lastRole?.role !== view.role || lastRole.activeSite !== view.activeSite) {
      logger.info(`reporting: ${view.role}`, { site, activeSite: view.activeSite });
    }
    lastRole = view;
    return view;
  }

  /** The role now and whether the mart answered; the last role seen (or standby) when it did not. */
  async function roleNow(): Promise<RoleView & { mart: 'ok' | 'unreachable' }> {
    try {
      return { ...(await readRole()), mart: 'ok' };
    } catch (e) {
      martFailed(e);
      return { ...(lastRole ?? { role: 'standby', activeSite: config.reporting.primary }), mart: 'unreachable' };
    }
  }

  async function health(): Promise<Reply> {
    const { role, activeSite, mart } = await roleNow();
    // Where users of a standby should go: the dashboard of the active site (sites.<site>.reportingUrl).
    const activeReportingUrl = config.sites[activeSite] ? reportingUrl(config, activeSite) : null;
    return json(200, { site, role, activeSite, activeReportingUrl, mart, at: new Date().toISOString() });
  }

  /** For a load balancer: 200 only at the active site with a mart that answers, so users go where reports are served. */
  async function activeHere(): Promise<Reply> {
    const { role, activeSite, mart } = await roleNow();
    return json(role === 'active' && mart === 'ok' ? 200 : 503, { site, role, activeSite, mart });
  }

  /**
   * Whether this service could serve reports now, whatever its role: the report queries
   * run over the last hour through its own mart connection and role, and only their
   * timing is answered. A DR drill asks a standby this before any failover would switch it.
   */
  async function ready(): Promise<Reply> {
    const started = Date.now();
    const range = { from: new Date(started - 3600_000), to: new Date(started) };
    try {
      const view = await readRole();
      await queueSummary(mart, range, null, QUARTER_HOURS_UTC, config.reporting.serviceLevelFormula);
      await agentSummary(mart, range, null, QUARTER_HOURS_UTC);
      return json(200, { site, role: view.role, activeSite: view.activeSite, canServe: true, checkedMs: Date.now() - started });
    } catch (e) {
      // Unauthenticated: the reason in words a caller can act on, the details in the log.
      let error = 'mart unreachable';
      if (isConnectionError(e)) martFailed(e);
      else {
        error = `report query failed (SQLSTATE ${(e as { code?: string }).code ?? 'none'})`;
        logger.error('reporting: readiness check failed', { site, error: (e as Error).message });
      }
      return json(503, { site, canServe: false, error, checkedMs: Date.now() - started });
    }
  }

  /**
   * Parameters first (a bad request is bad whatever the role): with `dimensions`, the
   * `dim.<key>` filters (and `groupBy` when 'group') taken out before the report's own
   * schema. Then the role, then the report, as JSON or CSV. A zone Intl knows but the
   * mart's PostgreSQL does not is a bad parameter too.
   */
  async function report<T extends { format: Format }>(
    raw: RawParams,
    schema: ParamSchema<T>,
    run: (input: T, dims: DimensionParams) => Promise<ReportAnswer>,
    dimensions: 'filter' | 'group' | null = null,
  ): Promise<Reply> {
    let dims: DimensionParams = { filters: {}, groupBy: null };
    let rest = raw;
    if (dimensions) {
      const taken = takeDimensionParams(raw, config.etl.dimensions, dimensions === 'group');
      if (!taken.ok) return json(400, { error: taken.error });
      ({ value: dims, rest } = taken);
    }
    const parsed = parseParams(schema, rest, dimensions ? dimensionParamNames(config.etl.dimensions, dimensions === 'group') : []);
    if (!parsed.ok) return json(400, { error: parsed.error });
    try {
      const view = await readRole();
      if (view.role !== 'active') return json(503, { error: 'standby', site, activeSite: view.activeSite });
      const answer = await run(parsed.value, dims);
      return parsed.value.format === 'csv' ? csv(answer.csv()) : json(200, { site, ...answer.json });
    } catch (e) {
      if (isConnectionError(e)) {
        martFailed(e);
        return json(503, { error: 'mart unreachable' });
      }
      const { code, message } = e as { code?: string; message?: string };
      if (code === '57014') return json(503, { error: 'report timed out' });
      if (code === '22023' && message?.includes('time zone')) {
        return json(400, { error: `tz: not a time zone the mart knows, got ${JSON.stringify(raw.tz?.[0] ?? '')}` });
      }
      throw e;
    }
  }

  let temporalClient: Promise<Client | null> | null = null;

  /** The client from the factory, kept once it exists; a failure is retried on the next request. */
  function temporal(): Promise<Client | null> {
    if (!opts.temporal) return Promise.resolve(null);
    temporalClient ??= opts.temporal().then(
      (client) => {
        if (!client) temporalClient = null;
        return client;
      },
      (e: unknown) => {
        temporalClient = null;
        throw e;
      },
    );
    return temporalClient;
  }

  /**
   * How far this site's mart is behind each member (ctl_member_lag, measured by the DR
   * workflow's probe of this site): what the operations view shows as lag. Null when it
   * cannot be read.
   */
  async function memberLag(): Promise<Record<string, MemberLag> | null> {
    try {
      const lags = await readMemberLag(mart, config.members.map((m) => m.id));
      martAnswered();
      return Object.fromEntries(lags.map((l) => [l.memberId, l]));
    } catch (e) {
      // Never thrown: it runs beside the Temporal queries, and an unawaited rejection would end the process.
      if (isConnectionError(e)) martFailed(e);
      else logger.error('reporting: member lag not read', { site, error: (e as Error).message });
      return null;
    }
  }

  /** The DR and ETL statuses, or why there are none, and this mart's lag per member. */
  async function ops(): Promise<Reply> {
    const sites = Object.keys(config.sites);
    const lag = memberLag().then((members) => ({ site, members }));
    let client: Client | null;
    try {
      client = await temporal();
    } catch (e) {
      return json(200, { ...noStatuses(sites, `temporal unreachable: ${(e as Error).message}`), lag: await lag });
    }
    return json(200, { ...(client ? await statuses(client, sites) : noStatuses(sites, 'no temporal client')), lag: await lag });
  }

  async function staticFile(name: string): Promise<Reply> {
    if (name === CHART_JS) {
      const file = chartJsPath();
      if (file) return (await fileReply(file)) ?? notFound();
      logger.error('reporting: chart.js is not installed (npm ci installs it)', { site });
      return notFound();
    }
    // A name cannot start with a dot: no "..", no hidden files.
    if (!STATIC_NAME.test(name)) return notFound();
    return (await fileReply(join(WEB_DIR, name))) ?? notFound();
  }

  async function route(req: IncomingMessage, { path, params }: Target): Promise<Reply> {
    if (checkHost && !hostAllowed(req)) {
      return json(403, { error: `host ${JSON.stringify(req.headers.host ?? '')} not allowed, expected 127.0.0.1, localhost or [::1]` });
    }
    const gated = await auth?.gate(req, path);
    if (gated) return gated;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return json(405, { error: `method ${req.method} not allowed, expected GET or HEAD` }, { allow: 'GET, HEAD' });
    }
    switch (path) {
      case '/':
        return staticFile('index.html');
      case '/health':
        return health();
      case '/health/ready':
        return ready();
      case '/ready':
        return activeHere();
      case '/metrics':
        return { status: 200, headers: { 'content-type': metrics.registry.contentType }, body: await exposition(metrics.registry) };
      case '/api/ops':
        return ops();
      case '/api/queue-summary':
        return report(params, queueSummaryParams, async ({ range, queues, bucketing }, { filters, groupBy }) => {
          const slice = groupBy !== null || Object.keys(filters).length ? { filters, groupBy, rules: config.etl } : null;
          const answer = await queueSummary(mart, range, queues, bucketing, config.reporting.serviceLevelFormula, slice);
          const head = { from: range.from.toISOString(), to: range.to.toISOString(), ...bucketing };
          return {
            json: {
              ...head,
              ...(slice ? { dimensions: filters, groupBy } : {}),
              serviceLevelSeconds: config.etl.serviceLevelSeconds,
              queueServiceLevelSeconds: config.etl.queueServiceLevelSeconds,
              shortAbandonSeconds: config.etl.shortAbandonSeconds,
              serviceLevelFormula: config.reporting.serviceLevelFormula,
              ...answer,
            },
            csv: () => queueSummaryCsv(answer, { ...head, filters: [...(queues ?? []), ...filterParts(filters)] }, groupBy),
          };
        }, 'group');
      case '/api/dimensions':
        return report(params, dimensionValuesParams, async ({ range, queues }) => {
          const answer = await dimensionValues(mart, range, queues, config.etl.dimensions);
          const head = { from: range.from.toISOString(), to: range.to.toISOString() };
          return { json: { ...head, ...answer }, csv: () => dimensionValuesCsv(answer.rows, { ...head, filters: queues ?? [] }) };
        });
      case '/api/agent-summary':
        return report(params, agentSummaryParams, async ({ range, agents, bucketing }) => {
          const answer = await agentSummary(mart, range, agents, bucketing);
          const head = { from: range.from.toISOString(), to: range.to.toISOString(), ...bucketing };
          return { json: { ...head, ...answer }, csv: () => agentSummaryCsv(answer, { ...head, filters: agents ?? [] }) };
        });
      case '/api/agent-states':
        return report(params, agentStatesParams, async ({ range, agent, tz }) => {
          const answer = await agentStates(mart, agent, range);
          const head = { agent, from: range.from.toISOString(), to: range.to.toISOString(), tz };
          return { json: { ...head, ...answer }, csv: () => agentStatesCsv(answer.rows, { ...head, filters: [agent] }) };
        });
      case '/api/interactions':
        return report(params, interactionsParams, async ({ lookup }, { filters }) => {
          const answer = await interactions(mart, lookup, filters);
          const range = 'range' in lookup ? lookup.range : null;
          const key = 'callId' in lookup ? lookup.callId : 'ani' in lookup ? lookup.ani : lookup.queue;
          const parts = { from: range?.from.toISOString(), to: range?.to.toISOString(), filters: [key, ...filterParts(filters)] };
          return { json: answer, csv: () => interactionsCsv(answer.rows, parts) };
        }, 'filter');
    }
    if (path.startsWith('/static/')) return staticFile(path.slice('/static/'.length));
    return notFound();
  }

  /**
   * Everything a request can make throw is inside the try, parsing its target included:
   * a rejection escaping here would end the process, so one request could stop the service.
   */
  async function respond(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    // The path only (cut short): query strings carry callers' numbers, which do not belong in logs.
    const path = (req.url ?? '/').split('?', 1)[0]!.slice(0, MAX_LOGGED_PATH);
    let reply: Reply;
    try {
      reply = await route(req, splitTarget(req.url ?? '/'));
    } catch (e) {
      logger.error('reporting: request failed', { site, method: req.method, path, error: (e as Error).stack });
      reply = json(500, { error: 'internal error' });
    }
    send(res, reply);
    metrics.request(path, reply.status, (Date.now() - started) / 1000);
    logger.debug('reporting: request', { site, method: req.method, path, status: reply.status, ms: Date.now() - started });
  }

  const server = createServer((req, res) => {
    respond(req, res).catch((e: unknown) => {
      // Only sending can fail here (the client went away): the answer is lost, the service stays.
      logger.warn('reporting: could not answer', { site, error: (e as Error).message });
      res.destroy();
    });
  });
  let closing: Promise<void> | null = null;

  return {
    listen(port = config.sites[site]!.reportingPort) {
      return new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const bound = (server.address() as AddressInfo).port;
          logger.info('reporting: listening', { site, url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/` });
          resolve(bound);
        });
      });
    },

    close() {
      closing ??= (async () => {
        if (server.listening) {
          await new Promise<void>((resolve, reject) => {
            server.close((e) => (e ? reject(e) : resolve()));
            server.closeIdleConnections();
          });
        }
        const client = await temporalClient?.catch(() => null);
        await client?.connection.close();
      })();
      return closing;
    },
  };
}
