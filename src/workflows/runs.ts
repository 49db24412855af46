/**
 * How long a run of a never-ending workflow may grow. A worker that dies holding a
 * workflow task holds that workflow (a failover's commands among them) until the task
 * times out, so the task timeout is short; a task may replay its whole run, so runs
 * continue as new early enough for a replay to fit well within that timeout.
 */
import { makeContinueAsNewFunc, workflowInfo, type Workflow } from '@temporalio/workflow';

/** From `temporal.workflowTaskTimeoutSeconds` and `temporal.runHistoryEvents` (numbers only). */
export interface RunLimits {
  taskTimeoutSeconds: number;
  historyEvents: number;
}

export interface RunBound<F extends Workflow> {
  /** The run should end: its history reached the limit, or the server suggests it. */
  full(): boolean;
  /** Continues as new with the configured task timeout, whatever this run was started with. */
  continueAsNew: (...args: Parameters<F>) => Promise<never>;
}

/** The start option that gives a run the configured task timeout; none without limits. */
export function taskTimeoutOption(limits: RunLimits | undefined): { workflowTaskTimeout?: number } {
  return limits ? { workflowTaskTimeout: limits.taskTimeoutSeconds * 1000 } : {};
}

/**
 * The limits come from an activity result, so they are recorded in the run's history:
 * a run whose result predates them (undefined) replays as it ran, ending only when the
 * server suggests it.
 */
export function boundRun<F extends Workflow>(limits: RunLimits | undefined): RunBound<F> {
  return {
    full: () =>
      workflowInfo().continueAsNewSuggested || (limits !== undefined && workflowInfo().historyLength >= limits.historyEvents),
    continueAsNew: makeContinueAsNewFunc<F>(taskTimeoutOption(limits)),
  };
}
