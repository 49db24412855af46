/** pg_snapshot text is `xmin:xmax:xip,…`; xids are 64-bit, so compared as bigint. */
function parts(snapshot: string): [bigint, bigint] {
  const m = /^(\d+):(\d+):[\d,]*$/.exec(snapshot);
  if (!m) throw new Error(`not a pg_snapshot: "${snapshot}"`);
  return [BigInt(m[1]!), BigInt(m[2]!)];
}
export const snapshotXmin = (s: string): bigint => parts(s)[0];
export const snapshotXmax = (s: string): bigint => parts(s)[1];
