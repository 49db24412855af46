/**
 * Writing a result down: bench/results/<date>.json (<date>-quick.json for --quick) and
 * the tables of BENCHMARKS.md between the markers of the run's kind; the prose around
 * them is left alone.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from '../paths';
import type { BenchResult } from './types';

const dash = '–';
function fmt(v: number | null | undefined, digits?: number): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return dash;
  if (digits !== undefined) return v.toFixed(digits);
  return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : String(v);
}
const pct = (v: number | null | undefined) => (v === null || v === undefined ? dash : `${Math.round(v * 100)}%`);

function table(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.map(String).join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

export function renderMarkdown(r: BenchResult): string {
  const out: string[] = [];
  const m = r.machine;
  const v = r.versions;
  out.push(
    `**${r.kind === 'quick' ? 'Quick run' : 'Full run'}** of ${r.startedAt.slice(0, 10)} (${r.startedAt.slice(11, 16)} UTC), ` +
      `\`${r.command}\`, ${fmt(r.durationSeconds, 0)} s. ${r.note}`,
    '',
    table(
      ['machine', 'versions', 'sizes'],
      [
        [
          `${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB, ${m.os}; load average ${m.loadAverageStart} at start, ${m.loadAverageEnd ?? dash} at end`,
          `Node ${v.node}, PostgreSQL ${v.postgres ?? dash}, ${v.temporalCli ?? 'Temporal CLI ' + dash}, twinmart ${v.twinmart.commit?.slice(0, 10) ?? dash}${v.twinmart.dirty ? ' (uncommitted changes)' : ''}`,
          `catch-up ${r.sizes.catchupCallEvents.map((n) => fmt(n)).join(' and ')} call events; freshness ${r.sizes.freshnessRates.join(', ')} events/s for ${r.sizes.freshnessWindowSeconds} s each after ${r.sizes.freshnessHistorySeconds} s of history` +
            (r.sizes.scalingSets ? `; scaling ${r.sizes.scalingSets.join(', ')} sets × ${fmt(r.sizes.scalingCallEvents)} call events` : '') +
            (r.sizes.rebuildCalls ? `; rebuild ${r.sizes.rebuildCalls.map((c) => fmt(c)).join(' and ')} calls` : ''),
        ],
      ],
    ),
    '',
    `Setup: ${r.settings.layout}; ETL cycle ${r.settings.cycleSeconds} s, chunk ${fmt(r.settings.chunkRows)} rows (at most ${fmt(r.settings.cycleChunks)} per member and cycle), transform batch ${fmt(r.settings.transformBatch)} calls; ${r.settings.postgres}.`,
    '',
  );

  out.push('#### Catch-up (events = rows extracted by one site: call + agent events over every member IDB)', '');
  const sizes = Object.entries(r.catchup.bySize);
  out.push(
    table(
      ['backlog', 'member rows', 'raw COPY', 'keyed raw COPY (distinct events)', 'no Temporal', 'Temporal (dc1)', 'Temporal / raw', 'Temporal / keyed (distinct events)', 'Temporal / no Temporal', 'dc2 on Temporal'],
      sizes.map(([, d]) => [
        `${fmt(d.callEvents)} call + ${fmt(d.agentEvents)} agent events`,
        fmt(d.memberRows),
        d.raw ? `${fmt(d.raw.eventsPerSecond)}/s (${fmt(d.raw.seconds, 1)} s)` : dash,
        d.keyedRaw ? `${fmt(d.keyedRaw.eventsPerSecond)}/s (${fmt(d.keyedRaw.seconds, 1)} s)` : dash,
        d.noTemporal ? `${fmt(d.noTemporal.eventsPerSecond)}/s (${fmt(d.noTemporal.seconds, 1)} s)` : dash,
        d.temporal ? `${fmt(d.temporal.eventsPerSecond)}/s (${fmt(d.temporal.seconds, 1)} s, ${d.temporal.cycles} cycles)` : dash,
        fmt(d.ratioToRawCopy, 2),
        fmt(d.ratioToKeyedCopy, 2),
        fmt(d.ratioToNoTemporal, 2),
        d.otherSite ? `${fmt(d.otherSite.eventsPerSecond)}/s (${fmt(d.otherSite.seconds, 1)} s)` : dash,
      ]),
    ),
    '',
  );

  const bw = r.bandwidth;
  if (bw) {
    out.push(
      `Bytes read by ${bw.site}'s catch-up (COPY data, as \`twinmart status\` counts it) per event landed: ` +
        `${fmt(bw.remoteBytesPerEvent)} from remote members (the WAN), ${fmt(bw.localBytesPerEvent)} from local ones; ` +
        `one full copy of an event is ${fmt(bw.fullRowBytesPerEvent)} bytes, so ${fmt(bw.remoteCopiesPerEvent, 2)} copies of each event crossed the WAN.`,
      '',
    );
    const side = (['full', 'lean'] as const).flatMap((k) => (bw[k] ? [[k, bw[k]] as const] : []));
    if (side.length) {
      out.push(
        `Full and lean extraction side by side (etl.extraction; no-Temporal loop, the same backlog into a fresh mart of ${bw.site}):`,
        '',
        table(
          ['extraction', 'catch-up events/s', 'remote B/event (copies)', 'local B/event (copies)'],
          side.map(([k, x]) => [
            k,
            `${fmt(x.eventsPerSecond)}/s (${fmt(x.seconds, 1)} s)`,
            `${fmt(x.remoteBytesPerEvent)} (${fmt(x.remoteCopiesPerEvent, 2)})`,
            `${fmt(x.localBytesPerEvent)} (${fmt(x.localCopiesPerEvent, 2)})`,
          ]),
        ),
        '',
      );
    }
  }

  const st = r.catchup.stages;
  if (st.noTemporal || Object.values(st.databaseShares).some((x) => x.length)) {
    out.push('#### Where the catch-up time goes (largest backlog)', '');
    if (st.noTemporal) {
      out.push(
        `No-Temporal loop, wall clock: extract (COPY + merge + cursor, sets in parallel) ${fmt(st.noTemporal.extractSeconds, 1)} s, ` +
          `transform ${fmt(st.noTemporal.transformSeconds, 1)} s (extract ${pct(st.noTemporal.extractShare)}).` +
          (st.temporalOutsideActivitiesSeconds !== null
            ? ` On Temporal, ${fmt(st.temporalOutsideActivitiesSeconds, 2)} s of the catch-up had no activity running (workflow tasks, queueing, the cycle timer).`
            : ''),
        '',
      );
    }
    const groups = [...new Set(Object.values(st.databaseShares).flatMap((g) => g.map((x) => x.group)))];
    if (groups.length) {
      const cols = Object.keys(st.databaseShares);
      out.push(
        'Server execution time by stage (pg_stat_statements, summed over connections running in parallel):',
        '',
        table(
          ['stage', ...cols],
          groups.map((g) => [
            g,
            ...cols.map((c) => {
              const x = st.databaseShares[c]!.find((y) => y.group === g);
              return x ? `${fmt(x.seconds, 2)} s (${pct(x.share)})` : dash;
            }),
          ]),
        ),
        '',
      );
    }
    const waitRows = Object.entries(st.waits ?? {}).flatMap(([variant, p]) =>
      p ? Object.entries(p.waits).map(([role, ws]) => [variant, role, fmt(p.samples[role]), ws.map((x) => `${x.wait} ${pct(x.share)}`).join(', ')]) : [],
    );
    if (waitRows.length) {
      out.push(
        'What the active database sessions were doing (pg_stat_activity sampled every 50 ms; Lock = waiting for another transaction, ClientRead = waiting for the client):',
        '',
        table(['variant', 'database', 'samples', 'share of samples'], waitRows),
        '',
      );
    }
    const t = Object.values(r.catchup.bySize).at(-1)?.temporal?.timings;
    if (t) {
      out.push(
        table(
          ['Temporal task', 'count', 'mean queue ms', 'mean run ms', 'max run ms'],
          [
            ...Object.entries(t.activities).map(([k, a]) => [`activity ${k}`, a.count, fmt(a.meanQueueMs), fmt(a.meanRunMs), fmt(a.maxRunMs)]),
            ['workflow task', t.workflowTasks.count, fmt(t.workflowTasks.meanQueueMs), fmt(t.workflowTasks.meanRunMs), dash],
          ],
        ),
        '',
      );
    }
  }

  out.push('#### Freshness (commit in an IDB to visible in interaction_fact)', '');
  out.push(
    table(
      ['target events/s', 'achieved events/s (rows/s)', 'events in the IDBs before', 'steady after s', 'probes', 'p50 s', 'p95 s', 'p99 s', 'max s', 'per site p50 / p99 / max s', 'missing'],
      Object.values(r.freshness).map((f) =>
        f.measured
          ? [
              fmt(f.targetEventsPerSecond),
              `${fmt(f.achievedEventsPerSecond)} (${fmt(f.achievedRowsPerSecond)})`,
              fmt(f.eventsBefore),
              f.steady === null ? dash : `${fmt(f.settleSeconds, 1)}${f.steady ? '' : ' (not steady)'}`,
              f.probes,
              fmt(f.p50Seconds, 2),
              fmt(f.p95Seconds, 2),
              fmt(f.p99Seconds, 2),
              fmt(f.maxSeconds, 2),
              Object.entries(f.sites)
                .map(([s, x]) => `${s} ${fmt(x.p50Seconds, 2)} / ${fmt(x.p99Seconds, 2)} / ${fmt(x.maxSeconds, 2)}`)
                .join('; '),
              f.missing,
            ]
          : [fmt(f.targetEventsPerSecond), f.note ?? 'not measured', dash, dash, dash, dash, dash, dash, dash, dash, dash],
      ),
    ),
    '',
  );

  const anchored = Object.values(r.freshness).filter((f) => f.logicalReplication);
  if (anchored.length) {
    const first = anchored[0]!.logicalReplication!;
    out.push(
      `The push-based anchor: PostgreSQL's logical replication of ${first.member} into a subscriber on ${first.site}'s mart server, ` +
        `against twinmart's freshness of the same probes in ${first.site}'s mart, polled alike.`,
      '',
      table(
        ['target events/s', 'probes', 'logical replication p50 / p99 s', `twinmart at ${first.site} p50 / p99 s`, 'ratio of p99s'],
        anchored.map((f) => {
          const a = f.logicalReplication!;
          return [fmt(f.targetEventsPerSecond), a.samples, `${fmt(a.p50Seconds, 3)} / ${fmt(a.p99Seconds, 3)}`, `${fmt(a.twinmart.p50Seconds, 2)} / ${fmt(a.twinmart.p99Seconds, 2)}`, fmt(a.ratioP99, 1)];
        }),
      ),
      '',
    );
  }

  for (const f of Object.values(r.freshness)) {
    if (!f.cpu) continue;
    const c = f.cpu;
    out.push(
      `CPU seconds per 1,000 events at ${fmt(f.targetEventsPerSecond)} events/s (${fmt(c.events)} events in ${fmt(c.windowSeconds, 1)} s): ` +
        Object.entries(c.cpuSecondsPer1000Events).map(([k, v]) => `${k} ${fmt(v, 3)}`).join(', ') +
        ` (${c.note}).`,
      '',
    );
  }

  out.push('#### Idle cost (nothing new)', '');
  const ni = r.idle.noTemporal;
  const ti = r.idle.temporal;
  out.push(
    table(
      ['', 'per cycle'],
      [
        ['no Temporal: extractMember × members + transformSite, wall', ni ? `${fmt(ni.msPerCycle)} ms (p50 ${fmt(ni.p50Ms)}, max ${fmt(ni.maxMs)})` : dash],
        ['no Temporal: database execution time (mart + IDBs)', ni ? `${fmt(ni.dbMsPerCycle)} ms in ${fmt(ni.statementsPerCycle)} statements` : dash],
        ['Temporal: cycle period (sleep included) / busy part', ti ? `${fmt(ti.secondsPerCycle, 3)} s / ${fmt(ti.busyMsPerCycle)} ms` : dash],
        ['Temporal: history events / bytes', ti ? `${fmt(ti.eventsPerCycle)} / ${fmt(ti.bytesPerCycle)}` : dash],
        ['Temporal: database execution time (mart / IDBs)', ti ? `${fmt(ti.dbMsPerCycle)} ms (${fmt(ti.martDbMsPerCycle)} / ${fmt(ti.idbDbMsPerCycle)})` : dash],
      ],
    ),
    '',
  );

  out.push('#### Temporal footprint', '');
  const fp = r.temporal.footprint;
  const loadRows = Object.entries(r.temporal.underLoad).flatMap(([rate, sites]) =>
    Object.entries(sites).map(([s, g]) => [`${rate} events/s, ${s}`, g ? `${fmt(g.eventsPerCycle)} / ${fmt(g.bytesPerCycle)}` : dash, g ? fmt(g.secondsPerCycle, 2) : dash]),
  );
  out.push(
    table(
      ['ETL history per cycle', 'events / bytes', 's per cycle'],
      [['idle, dc1', r.temporal.idle ? `${fmt(r.temporal.idle.eventsPerCycle)} / ${fmt(r.temporal.idle.bytesPerCycle)}` : dash, fmt(r.temporal.idle?.secondsPerCycle, 2)], ...loadRows],
    ),
    '',
  );
  if (fp) {
    const lp = fp.largestPayload;
    out.push(
      `Largest payload in an ETL history: ${lp ? `${fmt(lp.bytes)} bytes (${lp.eventType}${lp.name ? ` ${lp.name}` : ''}, ${lp.workflowId})` : dash}. ` +
        Object.entries(fp.continueAsNew)
          .map(([id, c]) =>
            c.continuedAsNew
              ? `${id}: ${c.continuedAsNew} continue-as-new at ${c.lengths.map((n) => fmt(n)).join(', ')} events (${c.sizes.map((n) => fmt(Math.round(n / 1024))).join(', ')} KiB), ${fmt(c.meanMinutesPerRun, 1)} min per run`
              : `${id}: no continue-as-new during the run (${c.runs} run)`,
          )
          .join('; ') +
        '.' +
        ` ETL state carried across a continue-as-new (status query size): ${Object.entries(fp.stateBytes).map(([id, n]) => `${id} ${fmt(n)} bytes`).join(', ')}.` +
        (fp.dr ? ` DR workflow: ${fmt(fp.dr.historyLength)} events, ${fmt(fp.dr.historySize)} bytes, largest payload ${fmt(fp.dr.largestPayload?.bytes)} bytes.` : ''),
      '',
    );
  }

  out.push('#### Memory and DR', '');
  const dr = r.dr;
  out.push(
    table(
      ['', ''],
      [
        ['worker peak RSS (VmHWM), main world', `${fmt(r.memory.peakRssMb)} MB (${Object.entries(r.memory.workers).map(([s, x]) => `${s} ${fmt(x)}`).join(', ')}; after catch-up ${Object.entries(r.memory.afterCatchupMb).map(([s, x]) => `${s} ${fmt(x)}`).join(', ')})`],
        ['failover RTO (declareSiteFailure to exclusions confirmed and reporting activated)', dr.failoverRtoSeconds !== null ? `${fmt(dr.failoverRtoSeconds, 2)} s, site ${dr.failedSite}${dr.reportingMoved ? ', reporting moved' : ', reporting did not move'}` : dash],
        [
          '  the survivor behind when the site failed',
          dr.survivorBehind
            ? `${fmt(dr.survivorBehind.rowsToExtract)} rows to extract, ${fmt(dr.survivorBehind.toTransform)} calls and agents to transform (${fmt(dr.survivorBehind.burstCalls)} calls written just before)`
            : dash,
        ],
        ['  the same end point from when the command was sent', fmt(dr.operatorRtoSeconds, 2) + ' s'],
        ['  of which exclusions confirmed / reporting activated', dr.failover ? `${fmt(dr.failover.declaredToExclusionsSeconds, 2)} s / +${fmt(dr.failover.exclusionsToReportingSeconds, 2)} s` : dash],
        [
          '  as the operator saw it: command answered / failover started / phase degraded',
          dr.failover ? `${fmt(dr.failover.commandAcceptedSeconds, 2)} s / ${fmt(dr.failover.commandToStartSeconds, 2)} s / ${fmt(dr.failover.wallSeconds, 2)} s after sending declareSiteFailure` : dash,
        ],
        [
          '  the namespace failover in it (a Temporal cluster per site: made active at the survivor before the command)',
          dr.namespaceFailoverSeconds != null ? `${fmt(dr.namespaceFailoverSeconds, 2)} s` : 'none (one Temporal service)',
        ],
        ['  failover steps (s after sending the command)', dr.failoverSteps ? Object.entries(dr.failoverSteps).map(([k, x]) => `${k} ${fmt(x, 2)}`).join(', ') : dash],
        [
          '  workflow tasks timed out during the failover',
          dr.workflowTaskTimeouts
            ? dr.workflowTaskTimeouts.length
              ? dr.workflowTaskTimeouts.map((t) => `${t.workflowId} ${t.timeoutType} at ${fmt(t.atSeconds, 2)} s`).join(', ')
              : 'none'
            : dash,
        ],
        ['site back as a wiped replacement (PostgreSQL, worker, reporting)', fmt(dr.restoreSeconds, 1) + ' s'],
        ['siteRebuilt to phase normal (migrate, seed, catch-up, inclusion, parity)', dr.rebuildToParitySeconds !== null ? `${fmt(dr.rebuildToParitySeconds, 1)} s` : dash],
        ['  steps (s after siteRebuilt)', dr.rebuildSteps ? Object.entries(dr.rebuildSteps).map(([k, x]) => `${k} ${fmt(x, 1)}`).join(', ') : dash],
        ['  seeded', dr.seeded ?? dash],
      ],
    ),
    '',
  );
  if (dr.note) out.push(`DR note: ${dr.note}.`, '');

  const rp = r.reports;
  if (rp) {
    out.push(
      '#### Reports over long ranges',
      '',
      `The queue summary over ${fmt(rp.queueDays)} days of ${fmt(rp.queues)} queues (${fmt(rp.queueRows)} rows of ag_queue_15min) and the agent summary over ` +
        `${fmt(rp.agentDays)} days of ${fmt(rp.agents)} agents (${fmt(rp.agentSpans)} state spans of ${fmt(rp.spanMinutes)} minutes), in ${rp.tz}, median of three:`,
      '',
      table(
        ['granularity', `queue summary, ${fmt(rp.queueDays)} days`, `agent summary, ${fmt(rp.agentDays)} days`],
        Object.keys(rp.queueSummaryMs).map((g) => [g, `${fmt(rp.queueSummaryMs[g as keyof typeof rp.queueSummaryMs], 1)} ms`, `${fmt(rp.agentSummaryMs[g as keyof typeof rp.agentSummaryMs], 1)} ms`]),
      ),
      '',
    );
  }

  if (r.scaling) {
    out.push('#### Scaling', '');
    if (r.scaling.sets.length) {
      out.push(
        table(
          ['HA sets', 'members', 'member rows', 'Temporal rows/s', 'seconds', 'cycles', 'worker peak RSS MB'],
          r.scaling.sets.map((p) => [p.sets, p.members, fmt(p.memberRows), fmt(p.eventsPerSecond), fmt(p.seconds, 1), p.cycles, fmt(p.workerPeakRssMb)]),
        ),
        '',
      );
    }
    if (r.scaling.rebuild.length) {
      out.push(
        'Growing backlogs: each site caught up alone on Temporal, then dc1 failed for real and rebuilt as a wiped replacement (migrate, seed from the survivor, catch-up, inclusion, parity):',
        '',
        table(
          ['calls', 'call events', 'member rows', 'catch-up rows/s (s)', 'worker peak RSS MB', 'failover RTO s', 'siteRebuilt to parity s', 'steps (s after siteRebuilt)'],
          r.scaling.rebuild.map((p) => [
            fmt(p.calls),
            fmt(p.callEvents),
            fmt(p.memberRows),
            Object.entries(p.catchup).map(([s, c]) => `${s} ${fmt(c.eventsPerSecond)} (${fmt(c.seconds, 1)})`).join('; '),
            Object.entries(p.workerPeakRssMb).map(([s, x]) => `${s} ${fmt(x)}`).join(', '),
            fmt(p.dr.failoverRtoSeconds, 2),
            fmt(p.dr.rebuildToParitySeconds, 1),
            Object.entries(p.dr.rebuildSteps ?? {}).map(([k, x]) => `${k} ${fmt(x, 1)}`).join(', '),
          ]),
        ),
        '',
      );
    }
    if (r.scaling.note) out.push(r.scaling.note, '');
  }
  if (r.errors.length) {
    out.push('#### Stages that failed', '', ...r.errors.map((e) => `- ${e.stage}: ${e.message.split('\n')[0]}`), '');
  }
  return out.join('\n');
}

const MARK = (kind: string, end: boolean) => `<!-- bench:${kind}:${end ? 'end' : 'begin'} -->`;

/** Writes the JSON result and this kind's tables in BENCHMARKS.md; returns the paths written. */
export function writeResults(r: BenchResult, root = repoRoot): string[] {
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${r.startedAt.slice(0, 10)}${r.kind === 'quick' ? '-quick' : ''}.json`);
  writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
  const md = join(root, 'BENCHMARKS.md');
  const block = `${MARK(r.kind, false)}\n${renderMarkdown(r)}\nResult file: \`${relative(root, file)}\`.\n${MARK(r.kind, true)}`;
  let text = existsSync(md) ? readFileSync(md, 'utf8') : '# Benchmarks\n';
  const begin = text.indexOf(MARK(r.kind, false));
  const end = text.indexOf(MARK(r.kind, true));
  if (begin >= 0 && end > begin) text = text.slice(0, begin) + block + text.slice(end + MARK(r.kind, true).length);
  else text = `${text.trimEnd()}\n\n## Latest ${r.kind} run\n\n${block}\n`;
  writeFileSync(md, text);
  return [relative(root, file), 'BENCHMARKS.md'];
}
