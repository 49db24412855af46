import { Context } from '@temporalio/activity';

/** Reports progress (a committed chunk or batch) to `heartbeating`, with details for the history. */
export type Progress = (details?: unknown) => void;

/**
 * Runs `fn` heartbeating every second while it still makes progress: as long as it
 * reported some (through the callback it gets) within `stallMs`, forever without one.
 * Heartbeats say the worker is alive; a load or a transform batch may take longer than
 * the heartbeat timeout on a busy mart (transform batches of 10 to 20 s at 5,000 events/s,
 * past the 10 s timeout, were retried while still running, and each retry then waited
 * on the transform lock without heartbeating until it timed out too). A statement that
 * hangs still ends the heartbeats, after `stallMs`, and the activity is retried.
 * Activities with no progress of their own (migrations, seeding, checks) pass no limit:
 * without heartbeats a killed worker is noticed only at the start-to-close timeout.
 */
export async function heartbeating<T>(fn: (progress: Progress) => Promise<T>, stallMs = Infinity): Promise<T> {
  const ctx = Context.current();
  let details: unknown;
  let lastProgress = Date.now();
  const beat = () => {
    if (Date.now() - lastProgress < stallMs) ctx.heartbeat(details);
  };
  // No beat at the start: the heartbeat timeout already counts from there, and an idle
  // cycle's activity, done within the second, then costs the server no heartbeat call.
  const timer = setInterval(beat, 1000);
  try {
    return await fn((d) => {
      details = d;
      lastProgress = Date.now();
      ctx.heartbeat(d);
    });
  } finally {
    clearInterval(timer);
  }
}
