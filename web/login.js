// Signs in with /api/login (which sets the session cookie), then opens the dashboard at the view that asked for it.
(function () {
  'use strict';
  const form = document.getElementById('login-form');
  const error = document.getElementById('login-error');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = JSON.stringify({ user: form.user.value, password: form.password.value });
    let res;
    try {
      res = await fetch('/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    } catch (e) {
      res = null;
    }
    if (res && res.ok) {
      // Only a query string of the dashboard is taken from ?next=, so the page can send nobody elsewhere.
      const next = new URLSearchParams(location.search).get('next') || '';
      location.assign('/' + (next.startsWith('?') ? next : ''));
      return;
    }
    let message = 'reporting service not reachable';
    if (res) {
      const answer = await res.json().catch(() => null);
      message = (answer && answer.error) || 'HTTP ' + res.status;
    }
    error.textContent = message;
    error.hidden = false;
    form.password.select();
  });
})();
