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

/** Lower is better: own site first, then list order (session coverage is added per row in SQL). */
export function qualityBase(member: Pick<Ranked, 'site' | 'index'>, martSite: string): number {
  return (member.site === martSite ? 0 : 100) + member.index;
}

/** Loaded less than a full chunk in its last cycle: its next delta is likely small too. */
export function caughtUp(lastRows: number | null, chunkRows: number): boolean {
  return lastRows !== null && lastRows < chunkRows;
}

/**
 * Lanes of one cycle: lanes run in parallel, the members of a lane one after another.
 * The members of a set hold the same events; when the better member loaded second it
 * rewrote every row the other had just written (a third of a catch-up's time). So a set
 * that is behind (a member never loaded, or one loaded a full chunk last cycle) loads in
 * turn, best first, and its partners' copies then only probe keys already there. Small
 * deltas load at once: in turn, each cycle would wait for the members one by one. A
 * member found unreachable last cycle gets a lane of its own, so its connection timeout
 * never holds up its partner. `lastRows` is what a member loaded in its last cycle, null
 * before its first.
 */
export function extractionLanes<T extends Ranked>(
  members: T[],
  martSite: string,
  lastRows: (memberId: string) => number | null,
  chunkRows: number,
  down: (memberId: string) => boolean = () => false,
): T[][] {
  const sets = new Map<string, T[]>();
  for (const m of members) sets.set(m.sourceId, [...(sets.get(m.sourceId) ?? []), m]);
  return [...sets.values()].flatMap((set) => {
    const up = set.filter((m) => !down(m.id)).sort((a, b) => qualityBase(a, martSite) - qualityBase(b, martSite));
    const behind = up.some((m) => !caughtUp(lastRows(m.id), chunkRows));
    const alone = set.filter((m) => down(m.id)).map((m) => [m]);
    return [...(behind ? [up] : up.map((m) => [m])), ...alone];
  });
}
