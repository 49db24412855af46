#!/usr/bin/env node
// The image's HEALTHCHECK (the slim image has no curl): exit 0 when the URL answers 200
// within 3 s. The URL is the first argument or TWINMART_HEALTH_URL, e.g. a reporting
// service's http://127.0.0.1:8401/health (/ready would mark a standby unhealthy and get
// it restarted for being what it should be).
const url = process.argv[2] ?? process.env.TWINMART_HEALTH_URL;
if (!url) {
  process.stderr.write('health check: no URL; pass it or set TWINMART_HEALTH_URL (a reporting service\'s /health)\n');
  process.exit(2);
}
fetch(url, { signal: AbortSignal.timeout(3_000) }).then(
  (r) => {
    if (r.ok) process.exit(0);
    process.stderr.write(`health check failed: ${url} answers ${r.status}\n`);
    process.exit(1);
  },
  (e) => {
    process.stderr.write(`health check failed: ${url}: ${e.cause?.code ?? e.name}\n`);
    process.exit(1);
  },
);
