/**
 * Operations view, for the operator: the DR phase and timeline, and per site its ETL
 * cycles and per member its state, lag and freshness. Refreshed by the page every few seconds.
 */
import { api } from '../lib/api.js';
import { $, badge, clear, h, showAlert } from '../lib/dom.js';
import { fmtAgo, fmtInt, fmtOne, timeFormats } from '../lib/format.js';

const PHASE_TONE = { normal: 'ok', 'failing-over': 'bad', degraded: 'warn', reintroducing: 'info' };
const SITE_TONE = { active: 'ok', failed: 'bad', rebuilding: 'info' };
const MEMBER_TONE = { ok: 'ok', unreachable: 'bad', error: 'bad', excluded: 'warn', pending: 'muted', superseded: 'muted', removed: 'warn' };
/** A member last read longer ago than these is shown late, then stale (the ETL reads every few seconds). */
const LATE_S = 60;
const STALE_S = 300;

let fmt = timeFormats('UTC');
let ago = (iso) => fmtAgo(iso, 'UTC');

export async function load(ctx) {
  fmt = ctx.fmt;
  ago = (iso) => fmtAgo(iso, ctx.state.tz);
  const ops = await api('/api/ops');
  showAlert($('#ops-error'), ops && ops.error ? 'Temporal: ' + ops.error : null, 'warn');
  renderDr(ops ? ops.dr : null);
  renderEtl(ops ? ops.etl : null, ops ? ops.lag : null);
  $('#ops-updated').textContent = 'updated ' + fmt.timeSec(Date.now());
  document.body.dataset.opsLoaded = 'true';
  return ops;
}

/** How long ago a member was last read, toned by how late that is. */
function freshness(iso) {
  if (!iso) return badge('never read', 'bad');
  const s = (Date.now() - Date.parse(iso)) / 1000;
  return badge(ago(iso), s > STALE_S ? 'bad' : s > LATE_S ? 'warn' : 'ok', { title: iso });
}

/** Per failed member, what each survivor had not read of it when last measured: the bound on what may be lost. */
function unreadTable(unread) {
  const members = Object.entries(unread || {});
  if (!members.length) return null;
  const lag = (l) => (l ? fmtInt(l.rowsBehind) + ' events, ' + (l.secondsBehind == null ? '?' : fmtOne(l.secondsBehind)) + ' s (measured ' + ago(l.measuredAt) + ')' : 'never measured');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data data--compact data--wrap', id: 'dr-unread' },
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Failed member'), h('th', { scope: 'col' }, 'Unread by the survivors at most'))),
    h('tbody', null, members.map(([m, bySite]) => h('tr', null,
      h('td', { class: 'mono' }, m),
      h('td', null, Object.entries(bySite).map(([site, l]) => h('div', null, site + ': ' + lag(l)))))))));
}

function section(title, ...children) {
  return h('div', { class: 'ops-section' }, h('h4', null, title), ...children);
}

function renderDr(dr) {
  const body = clear($('#dr-body'));
  if (!dr) {
    body.append(h('p', { class: 'muted' }, 'DR workflow status not available (workflow twinmart-dr not running or Temporal not reachable).'));
    return;
  }
  const rep = dr.reporting || {};
  const facts = h('dl', { class: 'facts' },
    h('div', null, h('dt', null, 'Phase'), h('dd', null, badge(dr.phase, PHASE_TONE[dr.phase] || 'muted', { id: 'dr-phase' }))),
    h('div', null, h('dt', null, 'Reporting active at'), h('dd', { id: 'dr-reporting' }, rep.active || '—', rep.primary && rep.primary !== rep.active ? h('span', { class: 'muted' }, ' (primary ' + rep.primary + ')') : null)),
    h('div', null, h('dt', null, 'Awaiting confirmation'), h('dd', null, rep.awaitingConfirmation ? badge('confirmReporting ' + rep.awaitingConfirmation, 'warn') : h('span', { class: 'muted' }, 'no'))),
    h('div', null, h('dt', null, 'Last failover RTO'), h('dd', { id: 'dr-rto', class: 'num' }, dr.lastFailover && dr.lastFailover.rtoSeconds != null ? fmtOne(dr.lastFailover.rtoSeconds) + ' s' : '—',
      dr.lastFailover ? h('span', { class: 'muted' }, ' (' + dr.lastFailover.site + ', ' + ago(dr.lastFailover.declaredAt) + ')') : null)),
  );
  body.append(facts);

  const sites = Object.entries(dr.sites || {});
  if (sites.length) {
    body.append(section('Sites', h('div', { class: 'chips' }, sites.map(([s, st]) => h('span', { class: 'chip' }, h('span', { class: 'chip__name' }, s), badge(st, SITE_TONE[st] || 'muted'))))));
  }

  const pending = dr.pending || [];
  body.append(section('Pending confirmations',
    pending.length
      ? h('ul', { class: 'plain-list' }, pending.map((p) => h('li', null,
          badge(p.kind, p.overdue ? 'bad' : 'muted'), ' ', h('strong', null, p.what), ' · ', p.site, ' · since ', ago(p.since),
          p.overdue ? h('span', { class: 'overdue' }, ' overdue') : null)))
      : h('p', { class: 'muted' }, 'none')));

  const suspected = Object.entries(dr.suspected || {});
  body.append(section('Suspected failures',
    suspected.length
      ? h('ul', { class: 'plain-list' }, suspected.map(([s, v]) => h('li', null, badge(s, 'bad'), ' ', v.failures + ' failed probes since ' + ago(v.since), h('div', { class: 'muted small' }, v.reason))))
      : h('p', { class: 'muted' }, 'none')));

  if (dr.dataLoss) {
    const dl = dr.dataLoss;
    const loss = dl.potentialLoss || [];
    body.append(section('Data-loss report · failure of ' + dl.failedSite + ' · ' + fmt.ts(dl.at),
      h('p', null, loss.length ? h('span', null, badge('potential loss', 'bad'), ' sets with no surviving member: ', h('strong', null, loss.join(', '))) : badge('no potential loss: every set has a surviving member', 'ok')),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data data--compact data--wrap' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'HA set'), h('th', { scope: 'col' }, 'Surviving members'), h('th', { scope: 'col' }, 'Last event per surviving site'))),
        h('tbody', null, (dl.sets || []).map((s) => h('tr', { class: loss.includes(s.sourceId) ? 'row-bad' : null },
          h('td', { class: 'mono' }, s.sourceId),
          h('td', null, s.survivingMembers && s.survivingMembers.length ? s.survivingMembers.join(', ') : h('span', { class: 'text-bad' }, 'none')),
          h('td', null, s.lastEventBySite ? Object.entries(s.lastEventBySite).map(([site, ts]) => h('div', null, site + ': ' + (ts ? fmt.ts(ts) : 'no events'))) : '—')))))),
      unreadTable(dl.unreadByMember)));
  }

  if (dr.reintroduction) {
    const r = dr.reintroduction;
    body.append(section('Reintroduction', h('p', null, r.site + ' since ' + ago(r.at) + ' · caught up: ' + (r.caughtUp ? 'yes' : 'no') + (r.parity ? ' · parity: ' + r.parity : ''))));
  }
  const cfg = dr.configuration;
  if (cfg && cfg.differing && cfg.differing.length) {
    body.append(h('div', { class: 'alert alert--error', id: 'dr-config-differs' },
      'Configuration differs between ' + Object.keys(cfg.digests).join(', ') + ' in ' + cfg.differing.join(', ') +
      ': the marts would keep different facts, and a reintroduction refuses to start.'));
  }
  if (dr.lastError) body.append(h('div', { class: 'alert alert--error' }, 'Last error: ' + dr.lastError));

  const drill = dr.lastDrill;
  if (drill || dr.drilling) {
    body.append(section('Last DR drill' + (dr.drilling ? ' (a drill of ' + dr.drilling + ' is running)' : ''),
      drill ? h('div', { id: 'dr-drill' },
        h('p', null, badge(drill.ready ? 'ready' : 'not ready', drill.ready ? 'ok' : 'bad'), ' failover of ', h('strong', null, drill.site),
          ' · ' + fmt.ts(drill.at) + ' (' + ago(drill.at) + ')'),
        drill.problems.length ? h('ul', { class: 'plain-list' }, drill.problems.map((p) => h('li', { class: 'text-bad' }, p))) : null,
        h('p', null, drill.exposure.length
          ? h('span', null, badge('exposed', 'warn'), ' sets with no member at a survivor: ', h('strong', null, drill.exposure.map((e) => e.sourceId).join(', ')))
          : h('span', { class: 'muted' }, 'every HA set has a surviving member'))) : null));
  }

  const timeline = (dr.timeline || []).slice(-10).reverse();
  body.append(section('Timeline (last ' + timeline.length + ')',
    timeline.length
      ? h('ol', { class: 'steps' }, timeline.map((t) => h('li', null,
          h('span', { class: 'steps__time num', title: t.at }, fmt.ts(t.at)),
          h('span', { class: 'steps__step' }, t.step, t.site ? h('span', { class: 'muted' }, ' · ' + t.site) : null,
            t.by ? h('span', { class: 'muted steps__by' }, ' · by ' + t.by) : null),
          t.detail ? h('span', { class: 'steps__detail muted' }, t.detail) : null)))
      : h('p', { class: 'muted' }, 'no DR steps yet')));

  if ((dr.rejected || []).length) {
    const last = dr.rejected.slice(-3).reverse();
    body.append(section('Rejected commands', h('ul', { class: 'plain-list' }, last.map((r) => h('li', null, h('strong', null, r.command), ' · ' + r.reason + ' · ' + ago(r.at) + (r.by ? ' · by ' + r.by : ''))))));
  }
}

/**
 * A member's lag as this site's mart last measured it (the DR probe): rows it had not read
 * and how old its last read was. Other sites' marts measure their own, shown at their service.
 */
function lagCells(lag, etlSite, memberId) {
  const l = lag && lag.site === etlSite && lag.members ? lag.members[memberId] : null;
  if (!l) return [h('td', { class: 'num muted' }, '—'), h('td', { class: 'num muted' }, '—')];
  const measured = 'measured ' + ago(l.measuredAt);
  return [
    h('td', { class: 'num', title: measured, dataset: { rowsBehind: l.rowsBehind } }, fmtInt(l.rowsBehind)),
    h('td', { class: 'num', title: measured }, l.secondsBehind == null ? 'never read' : fmtOne(l.secondsBehind) + ' s'),
  ];
}

function renderEtl(etl, lag) {
  const body = clear($('#etl-body'));
  const sites = Object.entries(etl || {});
  if (!sites.length) {
    body.append(h('p', { class: 'muted' }, 'No ETL status available.'));
    return;
  }
  for (const [site, st] of sites) {
    const card = h('div', { class: 'etl-site', dataset: { site } });
    if (!st) {
      card.append(h('div', { class: 'etl-site__head' }, h('strong', null, site), badge('not running', 'bad')),
        h('p', { class: 'muted small' }, 'Workflow twinmart-etl-' + site + ' is not running or did not answer.'));
      body.append(card);
      continue;
    }
    const lc = st.lastCycle;
    card.append(
      h('div', { class: 'etl-site__head' }, h('strong', null, site), st.paused ? badge('paused', 'warn') : badge('running', 'ok'),
        (st.excludedSites || []).length ? badge('excluding ' + st.excludedSites.join(', '), 'warn') : null),
      h('dl', { class: 'facts facts--inline' },
        h('div', null, h('dt', null, 'Cycle'), h('dd', { class: 'num' }, fmtInt(st.cycle))),
        h('div', null, h('dt', null, 'Last cycle'), h('dd', { title: lc ? lc.finishedAt : '' }, lc ? ago(lc.finishedAt) : 'none yet',
          lc ? h('span', { class: 'muted' }, ' (' + fmtOne((Date.parse(lc.finishedAt) - Date.parse(lc.startedAt)) / 1000) + ' s' + (lc.interrupted ? ', interrupted' : '') + ')') : null)),
        h('div', null, h('dt', null, 'Rows last cycle'), h('dd', { class: 'num' }, lc ? fmtInt(lc.rows) : '—')),
        h('div', null, h('dt', null, 'Excluded sites'), h('dd', null, (st.excludedSites || []).length ? st.excludedSites.join(', ') : 'none')),
      ),
    );
    const cycles = (st.recentCycles || []).slice(-10).reverse();
    if (cycles.length) {
      card.append(h('details', { class: 'etl-cycles' },
        h('summary', null, 'Last ' + cycles.length + ' cycles'),
        h('table', { class: 'data data--compact', dataset: { etlCycles: site } },
          h('caption', { class: 'visually-hidden' }, 'The last cycles of the ETL of ' + site + ', newest first'),
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Finished'), h('th', { scope: 'col', class: 'num' }, 'Seconds'),
            h('th', { scope: 'col', class: 'num' }, 'Rows'), h('th', { scope: 'col', class: 'num' }, 'Facts'))),
          h('tbody', null, cycles.map((c) => h('tr', null,
            h('td', { title: c.finishedAt }, ago(c.finishedAt) + (c.interrupted ? ' (interrupted)' : '')),
            h('td', { class: 'num' }, fmtOne((Date.parse(c.finishedAt) - Date.parse(c.startedAt)) / 1000)),
            h('td', { class: 'num' }, fmtInt(c.rows)), h('td', { class: 'num' }, fmtInt(c.facts))))))));
    }
    const members = Object.entries(st.members || {});
    card.append(h('div', { class: 'table-wrap' }, h('table', { class: 'data data--compact', dataset: { etlMembers: site } },
      h('caption', { class: 'visually-hidden' }, 'Members read by the ETL of ' + site),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Member'), h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col', class: 'num' }, 'Rows behind'), h('th', { scope: 'col', class: 'num' }, 'Cursor age'),
        h('th', { scope: 'col' }, 'Freshness'), h('th', { scope: 'col', class: 'num' }, 'Rows loaded'))),
      h('tbody', null, members.length ? members.map(([id, m]) => h('tr', { dataset: { member: id, state: m.state } },
        h('td', null, h('div', { class: 'mono' }, id), h('div', { class: 'muted small' }, m.sourceId + ' · ' + m.site)),
        h('td', null, badge(m.state, MEMBER_TONE[m.state] || 'muted'), m.lastError ? h('div', { class: 'muted small clip', title: m.lastError }, m.lastError) : null),
        lagCells(lag, site, id),
        h('td', { class: 'nowrap', dataset: { freshness: '' } }, freshness(m.lastOkAt)),
        h('td', { class: 'num' }, fmtInt(m.rowsTotal), h('div', { class: 'muted small' }, '+' + fmtInt(m.lastRows) + ' last cycle')))) : h('tr', { class: 'empty' }, h('td', { colspan: 6 }, 'no members'))))));
    body.append(card);
  }
}

