// The workflow bundle's entry: every workflow type the control queue serves.
export { siteEtlWorkflow } from './etl';
export { drWorkflow } from './dr';
export { drProbeWorkflow } from './probes';
export { retentionWorkflow } from './retention';
