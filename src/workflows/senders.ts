/**
 * Who sent each DR command. Temporal records the sending client's identity with every
 * signal and accepted update in the workflow's history, but workflow code is not shown
 * it; so a handler notes where its message is in the history (the update's id, or the
 * signal's name and how many of that name this run received before it) and a control
 * activity reads the identities from the history afterwards. The timeline then says who
 * declared a failure and who confirmed reporting.
 */
import { currentUpdateInfo, condition, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { ControlActivities } from '../activities/dr';
import { CONTROL_QUEUE } from './names';

/** Where a command is in a run's history: an update by id, a signal by name and position. */
export interface SenderRef {
  runId: string;
  update?: string;
  signal?: string;
  /** 0-based: this run's how-manieth signal of that name. */
  nth?: number;
}

/** A timeline or rejection entry whose sender is looked up (`sender`) or known (`by`). */
export interface Attributable {
  by?: string;
  sender?: SenderRef;
}

/** Counts this run's signals per name; call `ref` from every handler invocation, accepted or not. */
export function senderRefs(): { signal(name: string): SenderRef; update(): SenderRef } {
  const counts: Record<string, number> = {};
  return {
    signal(name) {
      const nth = counts[name] ?? 0;
      counts[name] = nth + 1;
      return { runId: workflowInfo().runId, signal: name, nth };
    },
    update() {
      return { runId: workflowInfo().runId, update: currentUpdateInfo()!.id };
    },
  };
}

/**
 * Runs for the life of the workflow run: whenever entries wait for their sender, one
 * activity looks them all up. Refs carried over a continue-as-new name their own run.
 */
export async function attributeSenders(waiting: () => Attributable[]): Promise<never> {
  const { commandSenders } = proxyActivities<ControlActivities>({
    taskQueue: CONTROL_QUEUE,
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 5 },
  });
  for (;;) {
    await condition(() => waiting().length > 0);
    const entries = waiting();
    // Not known after the retries (the history is gone): recorded as unknown rather than looked up forever.
    const found = await commandSenders({ refs: entries.map((e) => e.sender!) }).catch(() => entries.map(() => null));
    entries.forEach((e, i) => {
      e.by = found[i] ?? 'unknown';
      delete e.sender;
    });
  }
}
