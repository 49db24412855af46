// The theme (system, light or dark), set before the page is drawn so a dark screen never
// flashes white: a classic script in <head>, since the CSP allows no inline script. The
// choice is kept in the browser; the page hears of changes by the "twinmart-theme" event.
(function () {
  'use strict';
  const KEY = 'twinmart-theme';
  const systemDark = matchMedia('(prefers-color-scheme: dark)');
  const choice = () => localStorage.getItem(KEY) || 'system';

  function apply() {
    const c = choice();
    document.documentElement.dataset.theme = c === 'dark' || (c === 'system' && systemDark.matches) ? 'dark' : 'light';
    const select = document.getElementById('theme');
    if (select) select.value = c;
    document.dispatchEvent(new Event('twinmart-theme'));
  }

  apply();
  systemDark.addEventListener('change', apply);
  document.addEventListener('DOMContentLoaded', () => {
    const select = document.getElementById('theme');
    if (!select) return; // the sign-in page follows the choice without offering it
    select.value = choice();
    select.addEventListener('change', () => {
      localStorage.setItem(KEY, select.value);
      apply();
    });
  });
})();
