import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `check` every `everyMs` until it returns a value; throws after `timeoutMs` naming what was awaited and what was last seen. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | null | undefined | false>,
  timeoutMs = 60_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = 'nothing yet';
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (e) {
      // The client's ServiceError says only which call failed; its cause says why.
      const cause = (e as { cause?: unknown }).cause;
      last = cause instanceof Error ? `${(e as Error).message}: ${cause.message}` : (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what} (last: ${String(last)})`);
    await sleep(everyMs);
  }
}
