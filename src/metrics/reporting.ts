/**
 * A reporting service's metrics: its requests (by route, never by raw path), its role and
 * whether its mart answers, and the DR procedure as the DR workflow reports it (phase,
 * site states, suspected sites, pending and overdue confirmations, parity failures during
 * a reintroduction), read when Prometheus scrapes. Every series carries `site`.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DrStatus } from '../workflows/dr-messages';

export const DR_PHASES = ['normal', 'failing-over', 'degraded', 'reintroducing'] as const;
export const SITE_STATES = ['active', 'failed', 'rebuilding'] as const;

/** The routes a request is counted under; anything else is `other`. */
export const ROUTES = ['/', '/health', '/health/ready', '/ready', '/metrics', '/api/ops', '/api/queue-summary', '/api/agent-summary', '/api/interactions', '/api/agent-states', '/api/dimensions', '/api/login', '/api/logout', '/api/me', '/static'] as const;

export interface ReportingMetricsDeps {
  site: string;
  sites: string[];
  /** The role now and whether the mart answered. */
  role: () => Promise<{ role: 'active' | 'standby'; mart: 'ok' | 'unreachable' }>;
  /** The DR workflow's status; 'none' when there is no DR workflow, null when Temporal does not answer. */
  dr: () => Promise<DrStatus | 'none' | null>;
}

export function createReportingMetrics({ site, sites, role, dr }: ReportingMetricsDeps) {
  const registry = new Registry();
  registry.setDefaultLabels({ site });
  const registers = [registry];
  const requests = new Counter({ name: 'twinmart_http_requests_total', help: 'HTTP requests answered, by route and status code.', labelNames: ['route', 'code'], registers });
  const duration = new Histogram({
    name: 'twinmart_http_request_duration_seconds',
    help: 'Seconds to answer an HTTP request, by route.',
    labelNames: ['route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });

  let view: Promise<{ role: Awaited<ReturnType<typeof role>>; dr: DrStatus | 'none' | null }> | null = null;
  const current = () =>
    (view ??= (async () => {
      const [r, d] = await Promise.all([role(), dr().catch(() => null)]);
      setTimeout(() => (view = null), 500).unref();
      return { role: r, dr: d };
    })());
  const status = async () => {
    const d = (await current()).dr;
    return d && d !== 'none' ? d : null;
  };

  new Gauge({
    name: 'twinmart_reporting_active',
    help: '1 when this site serves reports (its role is active), else 0 (standby).',
    registers,
    async collect() {
      this.set((await current()).role.role === 'active' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'twinmart_mart_up',
    help: '1 when the site mart answered the reporting service, else 0.',
    registers,
    async collect() {
      this.set((await current()).role.mart === 'ok' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'twinmart_dr_workflow_up',
    help: '1 when the DR workflow answered its status query through Temporal, else 0.',
    registers,
    async collect() {
      this.set((await status()) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'twinmart_dr_phase',
    help: 'The DR phase (1 for the current one, 0 for the others).',
    labelNames: ['phase'],
    registers,
    async collect() {
      const s = await status();
      this.reset();
      if (s) for (const p of DR_PHASES) this.labels(p).set(s.phase === p ? 1 : 0);
    },
  });
  new Gauge({
    name: 'twinmart_dr_site_state',
    help: 'Each site as the DR workflow holds it (1 for its state, 0 for the others).',
    labelNames: ['dr_site', 'state'],
    registers,
    async collect() {
      const s = await status();
      this.reset();
      if (s) for (const x of sites) for (const st of SITE_STATES) this.labels(x, st).set(s.sites[x] === st ? 1 : 0);
    },
  });
  new Gauge({
    name: 'twinmart_dr_reporting_site',
    help: 'Where the DR workflow serves reports: 1 for the active reporting site, 0 for the others.',
    labelNames: ['dr_site'],
    registers,
    async collect() {
      const s = await status();
      this.reset();
      if (s) for (const x of sites) this.labels(x).set(s.reporting.active === x ? 1 : 0);
    },
  });
  const counted = (name: string, help: string, count: (s: DrStatus) => number) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const s = await status();
        this.reset();
        if (s) this.set(count(s));
      },
    });
  counted('twinmart_dr_suspected_sites', 'Sites the DR probes suspect (failed probes in a row), not yet declared failed.', (s) => Object.keys(s.suspected).length);
  counted('twinmart_dr_pending_confirmations', 'Confirmations the DR procedure waits for (ETL confirmations, the operator, activities).', (s) => s.pending.length);
  counted('twinmart_dr_overdue_confirmations', 'Pending confirmations older than dr.confirmationTimeoutSeconds.', (s) => s.pending.filter((p) => p.overdue).length);
  counted('twinmart_dr_parity_failures', 'Parity checks in a row that did not match during the reintroduction under way (0 without one).', (s) => s.reintroduction?.parityFailures ?? 0);

  return {
    registry,
    /** Counts one answered request. */
    request(path: string, code: number, seconds: number): void {
      const route = path.startsWith('/static/') ? '/static' : (ROUTES as readonly string[]).includes(path) ? path : 'other';
      requests.labels(route, String(code)).inc();
      duration.labels(route).observe(seconds);
    },
  };
}
