/**
 * What each figure means, shown as a tooltip on hover and on keyboard focus (a title
 * attribute alone is neither reachable by keyboard nor read reliably).
 */
import { h } from './dom.js';

export const GLOSSARY = {
  offered: 'Offered: calls that started in the interval (in progress included).',
  answered: 'Answered: answered calls that have ended.',
  abandoned: 'Abandoned: calls the caller hung up before an agent answered.',
  abandonedShort: 'Short abandon: abandoned within the short-abandon threshold; not counted against the service level.',
  serviceLevel: 'Service level: answered within the threshold, as a percentage of offered calls.',
  asa: 'ASA, average speed of answer: total waiting time of answered calls divided by answered calls.',
  abandonRate: 'Abandon rate: abandoned calls as a percentage of offered calls.',
  aht: 'AHT, average handle time: talk plus after-call work per handled call.',
  occupancy: 'Occupancy: time on calls and after-call work, as a percentage of the time the agent was available or busy.',
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
