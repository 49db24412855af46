/** The traffic simulator: contact-center events into the IDBs of every HA set member. */
export { runSim } from './run';
export { applyIdbSchema } from './idb';
export { SimOptionsError } from './plan';
export type { MalformedKind, Media } from './model';
export type {
  CallWindow,
  GapOption,
  GapReport,
  LateCommitOption,
  LateCommitReport,
  MalformedOption,
  MalformedRow,
  MemberSimCounts,
  SimOptions,
  SimProgress,
  SimResult,
  SourceSimCounts,
} from './types';
