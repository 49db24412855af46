import { Context } from '@temporalio/activity';

/**
 * Runs `fn` heartbeating every second. For activities with no progress of their own to
 * report (migrations, seeding, checks): without heartbeats, a worker killed while running
 * one is noticed only at its start-to-close timeout, minutes later; with them, at the
 * heartbeat timeout. Extraction and transform heartbeat per committed chunk instead, so
 * a chunk that hangs is noticed too.
 */
export async function heartbeating<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(), 1000);
  try {
    ctx.heartbeat();
    return await fn();
  } finally {
    clearInterval(timer);
  }
}
