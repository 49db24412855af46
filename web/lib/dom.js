/** DOM helpers: elements are built from text nodes only, never HTML, since the page shows text callers chose. */

export const $ = (sel, root = document) => root.querySelector(sel);

/** Builds an element; strings become text nodes, arrays (however nested) their items. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function showAlert(el, message, kind) {
  el.hidden = !message;
  el.className = 'alert' + (kind ? ' alert--' + kind : '');
  el.textContent = message || '';
}

export function badge(text, tone, attrs) {
  return h('span', Object.assign({ class: 'badge badge--' + (tone || 'muted') }, attrs || {}), text);
}
