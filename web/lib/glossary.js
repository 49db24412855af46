/**
 * What each figure means, shown as a tooltip on hover and on keyboard focus (a title
 * attribute alone is neither reachable by keyboard nor read reliably).
 */
import { h } from './dom.js';

export const GLOSSARY = {
  offered: 'Offered: calls that started in the interval, those still in progress included.',
  answered: 'Answered: answered calls that have ended.',
  abandoned: 'Abandoned: calls whose caller hung up before an agent answered, short abandons included.',
  abandonedShort: 'Short abandon: the caller hung up within the short-abandon threshold (etl.shortAbandonSeconds); it counts against neither service level nor abandon rate.',
  serviceLevel: 'Service level: calls answered within the threshold, as a percentage of answered and abandoned calls (short abandons left out; reporting.serviceLevelFormula can choose another common variant).',
  asa: 'ASA, average speed of answer: the waiting time of answered calls divided by the answered calls.',
  abandonRate: 'Abandon rate: abandoned calls as a percentage of offered calls, short abandons left out of both.',
  aht: 'AHT, average handle time: for a queue, talk time per answered call; for an agent, talk plus after-call work per call handled.',
  occupancy: 'Occupancy: talk plus after-call work, as a percentage of the time the agent was ready or in after-call work.',
  calls: 'Calls handled: calls answered in the range whose last handling agent is this one.',
  talk: 'Talk: total talk time of the calls handled.',
};

let terms = 0;

/** A column heading or label with its definition. */
export function term(key, label) {
  const id = 'term-' + key + '-' + ++terms;
  return h('span', { class: 'term', tabindex: '0', 'aria-describedby': id, dataset: { term: key } },
    label,
    h('span', { class: 'term__tip', role: 'tooltip', id }, GLOSSARY[key]));
}
