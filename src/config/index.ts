/**
 * The one configuration module: the YAML file of docs/contracts.md, validated with
 * zod once at start-up and passed down as a plain object. `${VAR}` in a URL is taken
 * from the environment here, so secrets never sit in the file or in workflow input.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

import type { RunLimits } from '../workflows/runs';
import { SERVICE_LEVEL_FORMULAS } from '../reporting/figures';
import { PASSWORD_HASH } from '../reporting/password';
import { OBJECT_ID, SITE_ID } from './ids';

export { OBJECT_ID, SITE_ID };

/** An attrs key that becomes a report dimension: it appears in query parameter names (`dim.<key>`). */
export const DIMENSION_KEY = /^[A-Za-z][A-Za-z0-9_]{0,39}$/;
const MAX_DIMENSIONS = 8;

const siteId = z.string().regex(SITE_ID, `a site id matching ${SITE_ID}`);
const objectId = z.string().regex(OBJECT_ID, `an id matching ${OBJECT_ID}`);
const pgUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\//, 'a postgres:// URL (secrets as ${VAR})');

/** A schedule given as an interval: `30m`, `1h`, `1d`. */
export const SCHEDULE_INTERVAL = /^[1-9][0-9]*[smhd]$/;
/** Else a cron expression of 5 to 7 fields, or a @-macro; Temporal checks the fields themselves. */
const SCHEDULE_CRON = /^(@(yearly|annually|monthly|weekly|daily|hourly)|\S+( \S+){4,6})$/;

const memberSchema = z.strictObject({
  id: objectId,
  site: siteId,
  /** How the ETL reads the IDB: a role with USAGE on schema idb and SELECT on its tables only. */
  url: pgUrl,
  /** How `twinmart sim` writes it, as its collector would; default `url`. */
  collectorUrl: pgUrl.optional(),
});

const configSchema = z
  .strictObject({
    temporal: z.strictObject({
      address: z.string().min(1).default('127.0.0.1:7233'),
      namespace: z.string().min(1).default('default'),
      /** Name of the environment variable holding a Temporal Cloud API key. */
      apiKeyEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).optional(),
      /**
       * Longest a workflow task may take, and so how long a worker that died holding one
       * holds its workflow (the server's default of 10 s went into failover times).
       */
      workflowTaskTimeoutSeconds: z.number().min(1).max(60).default(3),
      /** A run continues as new at this many history events, so replaying it fits in that timeout. */
      runHistoryEvents: z.number().int().min(50).max(50_000).default(1000),
      tls: z
        .strictObject({
          serverName: z.string().optional(),
          caFile: z.string().optional(),
          certFile: z.string().optional(),
          keyFile: z.string().optional(),
        })
        .optional(),
    }),
    etl: z
      .strictObject({
        cycleSeconds: z.number().positive().max(3600).default(1),
        serviceLevelSeconds: z.number().int().positive().max(3600).default(20),
        /** Per queue, a service-level threshold other than serviceLevelSeconds (queues differ in what they promise). */
        queueServiceLevelSeconds: z.record(z.string().min(1), z.number().int().positive().max(3600)).default({}),
        /**
         * A call abandoned after less waiting than this is a short abandon (a misdial, a caller
         * who changed their mind): counted, but not against the service level or abandon rate.
         */
        shortAbandonSeconds: z.number().int().min(0).max(3600).default(5),
        /** Rows per committed chunk of one member's delta. */
        chunkRows: z.number().int().min(1).max(1_000_000).default(50_000),
        /**
         * Chunks one member commits per cycle at most: a long backlog loads over several
         * cycles, each followed by a transform and a cycle boundary where commands apply.
         */
        cycleChunks: z.number().int().min(1).max(10_000).default(4),
        /** Calls per transform transaction. */
        transformBatch: z.number().int().min(1).max(1_000_000).default(20_000),
        /** An activity not heard from for this long is retried elsewhere. */
        heartbeatSeconds: z.number().positive().max(600).default(10),
        /**
         * A load or transform that commits nothing for this long counts as hung: it stops
         * heartbeating and is retried. Until then it heartbeats, however long a chunk takes.
         */
        stallSeconds: z.number().positive().max(3600).default(60),
        /** How long an extraction may wait for an IDB connection before the member counts as down. */
        connectTimeoutSeconds: z.number().positive().max(120).default(3),
        /**
         * An IDB that sends nothing for this long while a statement waits for it (a paused
         * server, a network that drops packets) counts as unreachable for the cycle.
         */
        idbTimeoutSeconds: z.number().positive().max(600).default(30),
        /** A call longer than this is an absurd duration: its late events are discarded. */
        maxCallSeconds: z.number().int().positive().default(86_400),
        /**
         * How the members of a set are read: `full`, every row of each; `lean`, one member
         * in full (the local one where there is one) and the others as keys and checksums,
         * and in full only the rows the mart does not hold with the same content
         * (docs/architecture.md, "Lean extraction").
         * The marts end the same either way. `full` until lean has run in production.
         */
        extraction: z.enum(['full', 'lean']).default('full'),
        /**
         * Keys of the attached data (idb.call_event.attrs) the transform keeps with each call
         * (interaction_fact.dims), which the reports filter and group by. Under etl because
         * they decide what the mart keeps; on a change the next transform recomputes the calls
         * it still can (src/etl/transform.ts).
         */
        dimensions: z
          .array(z.string().regex(DIMENSION_KEY, 'a dimension key of a letter, then letters, digits or _ (at most 40 characters)'))
          .max(MAX_DIMENSIONS, `at most ${MAX_DIMENSIONS} dimensions`)
          .refine((keys) => new Set(keys).size === keys.length, 'a dimension key given twice')
          .default([]),
      })
      .prefault({}),
    dr: z
      .strictObject({
        /** After this the DR workflow says in its status what it still waits for, and keeps waiting. */
        confirmationTimeoutSeconds: z.number().positive().default(120),
        /** Health probe of every active site while idle. */
        probeSeconds: z.number().positive().default(10),
        /** Consecutive failed probes before a site is suspected. */
        probeFailures: z.number().int().min(1).default(3),
        /** Fail a suspected site over without the operator's word. Off unless chosen. */
        autoFailover: z.boolean().default(false),
        /** Parity during reintroduction covers 15-minute intervals closed at least this long ago. */
        paritySettleSeconds: z.number().min(0).default(60),
      })
      .prefault({}),
    /**
     * What the mart keeps (docs/retention.md). Staging, the load audit and discards only
     * serve loading and the transform, and would otherwise grow without end; facts and
     * aggregates are what reports read, kept longer. Whole days: the cutoffs are dates, not tuning.
     */
    retention: z
      .strictObject({
        stagingDays: z.number().int().min(1).max(3650).default(30),
        factDays: z.number().int().min(1).max(36500).default(400),
        /** Rows one purge batch deletes at most, each batch a transaction of its own under the transform lock. */
        batchRows: z.number().int().min(100).max(1_000_000).default(10_000),
        /** When each site's retention runs: an interval (`30m`, `1h`, `1d`) or a cron expression (UTC). */
        schedule: z
          .string()
          .refine((v) => SCHEDULE_INTERVAL.test(v) || SCHEDULE_CRON.test(v), 'an interval such as "1h" or "30m", or a cron expression such as "0 3 * * *"')
          .default('1h'),
      })
      .prefault({})
      .refine((r) => r.factDays >= r.stagingDays, {
        path: ['factDays'],
        message: 'must be at least retention.stagingDays: a fact whose staged events are kept could be recomputed after it was purged',
      }),
    reporting: z.strictObject({
      primary: siteId,
      /** Which calls the service level counts (docs/reporting-api.md, "Figures"): contact centers differ. */
      serviceLevelFormula: z.enum(SERVICE_LEVEL_FORMULAS).default('answered-over-handled'),
      /** Who may use the reporting services; required to listen beyond loopback (README, Security). */
      auth: z
        .strictObject({
          /** Environment variable holding the secret that signs session cookies. */
          sessionSecretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).default('TWINMART_SESSION_SECRET'),
          sessionHours: z.number().positive().max(24 * 30).default(12),
          users: z.record(
            z.string().regex(/^[a-z][a-z0-9._-]{0,63}$/, 'a user name of lowercase letters, digits, . _ -'),
            z.strictObject({
              /** From `twinmart hash-password`; a user without one can only come through the proxy. */
              passwordHash: z.string().regex(PASSWORD_HASH, 'a hash made by `twinmart hash-password`').optional(),
              role: z.enum(['supervisor', 'operator']),
            }),
          ),
          /** A reverse proxy that authenticates users itself and names them in `header`. */
          proxy: z.strictObject({ header: z.string().regex(/^[A-Za-z0-9-]+$/), trustedProxy: z.ipv4().or(z.ipv6()) }).optional(),
        })
        .optional(),
    }),
    sites: z
      .record(
        siteId,
        z.strictObject({
          /** The ETL's role (twinmart_etl): loads, transforms, DR probes and checks. */
          mart: pgUrl,
          /** The mart's owner, which the site's worker migrates and seeds the mart as; default `mart`. */
          martOwner: pgUrl.optional(),
          /** The read-only role of the reporting service (twinmart_reporting); default `mart`, with a warning. */
          reportingMart: pgUrl.optional(),
          reportingPort: z.number().int().min(1).max(65535),
          /** Where the site's worker serves Prometheus metrics (`/metrics`); absent: it serves none. */
          metricsPort: z.number().int().min(1).max(65535).optional(),
          /** Where that site's workers reach its reporting service; default http://127.0.0.1:<reportingPort>. */
          reportingUrl: z.string().regex(/^https?:\/\/[^\s/]+\/?$/, 'an http(s)://host[:port] URL').optional(),
          /**
           * The Temporal cluster at this site (docs/architecture.md, "Temporal per site"):
           * the site's processes connect to `address`; `cluster` is its cluster name, so the
           * DR procedure knows where the namespace is active. Absent: the top-level
           * `temporal` serves this site.
           */
          temporal: z.strictObject({ address: z.string().min(1), cluster: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'a cluster name') }).optional(),
        }),
      )
      .refine((s) => Object.keys(s).length > 0, 'at least one site'),
    sources: z.record(objectId, z.array(memberSchema).min(1, 'at least one member')),
  })
  .superRefine((c, ctx) => {
    const sites = Object.keys(c.sites);
    const clusters = new Map<string, string>();
    for (const [site, s] of Object.entries(c.sites)) {
      if (!s.temporal) continue;
      const other = clusters.get(s.temporal.cluster);
      if (other !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['sites', site, 'temporal', 'cluster'], message: `cluster "${s.temporal.cluster}" is already the cluster of ${other}` });
      }
      clusters.set(s.temporal.cluster, site);
    }
    if (!sites.includes(c.reporting.primary)) {
      ctx.addIssue({
        code: 'custom',
        path: ['reporting', 'primary'],
        message: `expected one of the sites (${sites.join(', ')}), got "${c.reporting.primary}"`,
      });
    }
    const seen = new Map<string, string>();
    for (const [sourceId, members] of Object.entries(c.sources)) {
      members.forEach((m, i) => {
        if (!sites.includes(m.site)) {
          ctx.addIssue({
            code: 'custom',
            path: ['sources', sourceId, i, 'site'],
            message: `expected one of the sites (${sites.join(', ')}), got "${m.site}"`,
          });
        }
        const other = seen.get(m.id);
        if (other !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['sources', sourceId, i, 'id'],
            message: `member id "${m.id}" is already used in sources.${other}; member ids must be unique`,
          });
        }
        seen.set(m.id, sourceId);
      });
    }
  });

export type ConfigInput = z.input<typeof configSchema>;
type Parsed = z.output<typeof configSchema>;
export type Member = Parsed['sources'][string][number] & { sourceId: string; index: number };

export interface Config extends Parsed {
  /** Absolute path of the file it came from (for messages and child processes). */
  file: string;
  /** Every member of every HA set, in file order, with its set and position in it. */
  members: Member[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Replaces `${VAR}` with the environment's value; a missing variable is an error naming the key. */
function expandEnv(value: string, path: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const v = env[name];
    if (v === undefined) {
      throw new ConfigError(`${path}: environment variable ${name} is not set (referenced as \${${name}})`);
    }
    return v;
  });
}

function formatIssues(file: string, error: z.ZodError): string {
  const lines = error.issues.map((i) => {
    const path = i.path.length ? i.path.map(String).join('.') : '(top level)';
    // zod reports a bad record key generically; its nested issues say what was expected.
    const nested = i.code === 'invalid_key' ? i.issues.map((n) => n.message).join('; ') : '';
    return `  ${path}: ${nested ? `invalid key, expected ${nested}` : i.message}`;
  });
  return `invalid config ${file}:\n${lines.join('\n')}`;
}

/**
 * Why an expanded URL is not one connection string, or null. It is parsed for real: a
 * password with an unencoded `@` or `/` would otherwise move the host into the user
 * part or the database name, and twinmart would connect somewhere else without a word.
 * The message never quotes the URL, which may hold a password.
 */
function urlProblem(url: string): string | null {
  const HINT = 'percent-encode @ / : ? # in the user or password (%40 %2F %3A %3F %23)';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `not a valid postgres:// URL (${HINT})`;
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') return 'expected a postgres:// URL';
  if (!u.hostname && !u.searchParams.has('host')) return 'no host in the URL';
  const authority = url.slice(url.indexOf('//') + 2).split(/[/?#]/, 1)[0]!;
  const rest = url.slice(url.indexOf('//') + 2 + authority.length).split(/[?#]/, 1)[0]!;
  if (authority.split('@').length > 2 || rest.includes('@')) return `more than one @ in the URL (${HINT})`;
  if (rest.split('/').length > 2) return `the database name holds a / (${HINT})`;
  return null;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * Temporal's own client environment (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_API_KEY, TEMPORAL_TLS*, as its CLI and SDKs read them) fills what the file's
 * `temporal` leaves out; what the file says wins, so one file means one deployment.
 */
function withTemporalEnv(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  if (!isObject(raw) || !isObject(raw.temporal)) return raw;
  const t = { ...raw.temporal };
  if (t.address === undefined && env.TEMPORAL_ADDRESS) t.address = env.TEMPORAL_ADDRESS;
  if (t.namespace === undefined && env.TEMPORAL_NAMESPACE) t.namespace = env.TEMPORAL_NAMESPACE;
  if (t.apiKeyEnv === undefined && env.TEMPORAL_API_KEY) t.apiKeyEnv = 'TEMPORAL_API_KEY';
  if (t.tls === undefined && env.TEMPORAL_TLS !== 'false') {
    const files = Object.entries({
      caFile: env.TEMPORAL_TLS_SERVER_CA_CERT_PATH,
      certFile: env.TEMPORAL_TLS_CLIENT_CERT_PATH,
      keyFile: env.TEMPORAL_TLS_CLIENT_KEY_PATH,
      serverName: env.TEMPORAL_TLS_SERVER_NAME,
    }).filter(([, v]) => v);
    if (files.length || env.TEMPORAL_TLS === 'true') t.tls = Object.fromEntries(files);
  }
  return { ...raw, temporal: t };
}

/** Validates an already-parsed config object. `file` is only used in messages. */
export function parseConfig(raw: unknown, file = '(inline)', env: NodeJS.ProcessEnv = process.env): Config {
  const result = configSchema.safeParse(withTemporalEnv(raw, env));
  if (!result.success) throw new ConfigError(formatIssues(file, result.error));
  const c = result.data;
  const errors: string[] = [];
  const expand = (v: string, path: string): string => {
    try {
      return expandEnv(v, path, env);
    } catch (e) {
      errors.push(`  ${(e as Error).message}`);
      return v;
    }
  };
  const expandUrl = (v: string, path: string): string => {
    const url = expand(v, path);
    const problem = urlProblem(url);
    if (problem) errors.push(`  ${path}: ${problem}`);
    return url;
  };
  for (const [site, s] of Object.entries(c.sites)) {
    s.mart = expandUrl(s.mart, `sites.${site}.mart`);
    if (s.martOwner !== undefined) s.martOwner = expandUrl(s.martOwner, `sites.${site}.martOwner`);
    if (s.reportingMart !== undefined) s.reportingMart = expandUrl(s.reportingMart, `sites.${site}.reportingMart`);
  }
  const members: Member[] = [];
  for (const [sourceId, list] of Object.entries(c.sources)) {
    list.forEach((m, index) => {
      m.url = expandUrl(m.url, `sources.${sourceId}.${index}.url`);
      if (m.collectorUrl !== undefined) m.collectorUrl = expandUrl(m.collectorUrl, `sources.${sourceId}.${index}.collectorUrl`);
      members.push({ ...m, sourceId, index });
    });
  }
  if (errors.length) throw new ConfigError(`invalid config ${file}:\n${errors.join('\n')}`);
  return { ...c, file, members };
}

export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    // yaml's message quotes the offending line, which may hold a password: position and code only.
    const err = e as { code?: string; linePos?: { line: number; col: number }[] };
    const at = err.linePos?.[0] ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
    throw new ConfigError(`config ${file} is not valid YAML${at}${err.code ? ` (${err.code})` : ''}`);
  }
  return parseConfig(raw, file, env);
}

export function memberById(config: Config, id: string): Member {
  const m = config.members.find((x) => x.id === id);
  if (!m) throw new ConfigError(`no member "${id}" in config ${config.file}`);
  return m;
}

/** The Temporal frontend a site's processes use: the site's own cluster if it has one, else the top-level one. */
export function temporalAddress(config: Config, site?: string): string {
  return (site && config.sites[site]?.temporal?.address) || config.temporal.address;
}

/** Sites with a Temporal cluster of their own, with its name: the namespace fails over between these. */
export function siteClusters(config: Config): { site: string; address: string; cluster: string }[] {
  return Object.entries(config.sites).flatMap(([site, s]) => (s.temporal ? [{ site, ...s.temporal }] : []));
}

/** The URL the site's worker migrates and seeds its mart with. */
export function martOwnerUrl(config: Config, site: string): string {
  const s = config.sites[site]!;
  return s.martOwner ?? s.mart;
}

/** The URL a site's reporting service reads its mart with, and a warning when it falls back to the ETL's. */
export function reportingMartUrl(config: Config, site: string): { url: string; warning?: string } {
  const s = config.sites[site]!;
  if (s.reportingMart !== undefined) return { url: s.reportingMart };
  return {
    url: s.mart,
    warning: `sites.${site}.reportingMart is not set: reporting reads the mart as the ETL's role (sites.${site}.mart); give it the read-only twinmart_reporting role (README, Security)`,
  };
}

export function reportingUrl(config: Config, site: string): string {
  const s = config.sites[site]!;
  return (s.reportingUrl ?? `http://127.0.0.1:${s.reportingPort}`).replace(/\/$/, '');
}

export function siteIds(config: Config): string[] {
  return Object.keys(config.sites);
}

export function assertSite(config: Config, site: string): void {
  if (!(site in config.sites)) {
    throw new ConfigError(`unknown site "${site}": config ${config.file} has ${siteIds(config).join(', ')}`);
  }
}

/** What the workflows need of `temporal` to bound their runs (see src/workflows/runs.ts). */
export function runLimits(config: Config): RunLimits {
  return { taskTimeoutSeconds: config.temporal.workflowTaskTimeoutSeconds, historyEvents: config.temporal.runHistoryEvents };
}
