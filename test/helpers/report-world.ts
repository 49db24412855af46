/**
 * A throwaway migrated mart on the local PostgreSQL and a reporting service over it, for
 * the report tests: facts are written in SQL by the test, or staged and transformed by
 * the real transform. The database is dropped by `close(true)` (a failed run keeps it).
 */
import { randomUUID } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { Client, type Pool } from 'pg';
import { parseConfig, type Config } from '../../src/config';
import { Pools, withPgClient } from '../../src/db';
import type { Logger } from '../../src/logger';
import { setReportingRole } from '../../src/mart/control';
import { migrateMart } from '../../src/mart/migrate';
import { createReportingServer, type ReportingServer } from '../../src/reporting/server';

export const PG_SERVER = 'postgres://postgres@127.0.0.1:5432';
export const SITE = 'dc1';

export const admin = <T>(fn: (c: Client) => Promise<T>): Promise<T> => withPgClient(`${PG_SERVER}/postgres`, fn);

/** A site config over `martUrl`; `etl` and `reporting` keys are added to the defaults. */
export function reportConfig(martUrl: string, etl: Record<string, unknown> = {}, reporting: Record<string, unknown> = {}): Config {
  return parseConfig({
    temporal: {},
    etl: { serviceLevelSeconds: 20, ...etl },
    reporting: { primary: SITE, ...reporting },
    sites: {
      dc1: { mart: martUrl, reportingPort: 8401 },
      dc2: { mart: `${martUrl}_dc2_unused`, reportingPort: 8402 },
    },
    sources: {
      'sw-voice-1': [
        { id: 'idb-voice-1-dc1', site: 'dc1', url: `${PG_SERVER}/unused_idb_1` },
        { id: 'idb-voice-1-dc2', site: 'dc2', url: `${PG_SERVER}/unused_idb_2` },
      ],
    },
  });
}

/** The service's own warnings and errors, on stderr: a test that fails shows why the service refused. */
export const quietLogger: Logger = {
  debug() {},
  info() {},
  warn: (message, fields) => {
    if (message.startsWith('reporting:')) process.stderr.write(`warn ${message} ${JSON.stringify(fields ?? {})}\n`);
  },
  error: (message, fields) => void process.stderr.write(`error ${message} ${JSON.stringify(fields ?? {})}\n`),
};

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  body: any;
}

/** A request with exactly this target. */
export function get(port: number, target: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: target }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const body: unknown = res.headers['content-type']?.startsWith('application/json') ? JSON.parse(text) : null;
        resolve({ status: res.statusCode!, headers: res.headers, text, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export interface ReportWorld {
  mart: Pool;
  url: string;
  /** A reporting service over the mart with this config (the role set active); closed by close(). */
  serve(config: Config): Promise<number>;
  close(dropDatabase: boolean): Promise<void>;
}

/** `timezone`: the database's session time zone, which must never leak into answers. */
export async function openReportWorld(name: string, timezone = 'Asia/Kathmandu'): Promise<ReportWorld> {
  const db = `twinmart_${name}_${process.pid}_${randomUUID().slice(0, 8)}`;
  await admin(async (c) => {
    await c.query(`create database ${db}`);
    await c.query(`alter database ${db} set timezone = '${timezone}'`);
  });
  const url = `${PG_SERVER}/${db}`;
  const pools = new Pools();
  const mart = pools.get(url);
  await migrateMart(mart);
  await setReportingRole(mart, 'active', SITE);
  const servers: { server: ReportingServer; pools: Pools }[] = [];
  return {
    mart,
    url,
    async serve(config) {
      const serverPools = new Pools();
      const server = createReportingServer({ config, site: SITE, pools: serverPools, logger: quietLogger });
      servers.push({ server, pools: serverPools });
      return server.listen(0);
    },
    async close(dropDatabase) {
      for (const s of servers) {
        await s.server.close();
        await s.pools.end();
      }
      await pools.end();
      if (dropDatabase) await admin((c) => c.query(`drop database if exists ${db} with (force)`));
      else process.stderr.write(`${name}: database ${db} kept for inspection (${url})\n`);
    },
  };
}
