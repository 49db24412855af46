/**
 * Which member's copy of an event a mart keeps, and the order members are read in.
 * Pure (no I/O): the workflow bundle imports it as well as the activities.
 */

interface Ranked {
  id: string;
  site: string;
  sourceId: string;
  /** Position in the set's member list. */
  index: number;
}

/**
 * Lower is better: list order (session coverage is added per row in SQL). Never the
 * mart's own site: both marts must keep the same version of an event, or parity cannot
 * match (docs/architecture.md, "The extraction contract").
 */
export function qualityBase(member: Pick<Ranked, 'index'>): number {
  return member.index;
}

/** Loaded less than a full chunk in its last cycle: its next delta is likely small too. */
export function caughtUp(lastRows: number | null, chunkRows: number): boolean {
  return lastRows !== null && lastRows < chunkRows;
}

/**
 * Lanes of one cycle: lanes run in parallel, the members of a lane one after another.
 * The members of a set hold the same events, and a better member that loads after a
 * worse one rewrites every row the other just wrote: a third of a catch-up's time, and
 * half of the staged rows in steady cycles at 5,000 events/s when partners loaded at
 * once. So each set loads in turn, best first, and its partners' copies only probe keys
 * already there. A member found unreachable last cycle gets a lane of its own, so its
 * connection timeout never holds up its partner. Best is the same at every site, so a
 * mart may read a remote member first: reading its own first made the better remote copy
 * rewrite those rows.
 *
 * `localSite` (lean extraction): that site's members load first, in full, and their
 * partners as keys and checksums after them, so little of a set crosses the WAN; a better
 * partner then only takes over the kept version of rows it holds the same.
 */
export function extractionLanes<T extends Ranked>(
  members: T[],
  down: (memberId: string) => boolean = () => false,
  localSite?: string,
): T[][] {
  const sets = new Map<string, T[]>();
  for (const m of members) sets.set(m.sourceId, [...(sets.get(m.sourceId) ?? []), m]);
  return [...sets.values()].flatMap((set) => {
    const remote = (m: T) => (localSite !== undefined && m.site !== localSite ? 1 : 0);
    const up = set.filter((m) => !down(m.id)).sort((a, b) => remote(a) - remote(b) || qualityBase(a) - qualityBase(b));
    const alone = set.filter((m) => down(m.id)).map((m) => [m]);
    return [...(up.length ? [up] : []), ...alone];
  });
}

/**
 * Whether lean extraction at `localSite` reads `member` as keys and checksums: every
 * member but the one its set loads first (extractionLanes), the local one where there is
 * one. When that one is down this one's keys are all missing and it reads them in full.
 */
export function readsLean<T extends Ranked>(member: T, members: T[], localSite: string): boolean {
  const set = members.filter((m) => m.sourceId === member.sourceId);
  return extractionLanes(set, () => false, localSite)[0]![0]!.id !== member.id;
}
