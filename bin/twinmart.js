#!/usr/bin/env node
// Entry of the `twinmart` command; the code is compiled to dist/ by `npm run build`.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const entry = join(__dirname, '..', 'dist', 'src', 'cli', 'index.js');
if (!existsSync(entry)) {
  process.stderr.write('twinmart is not built yet: run `npm run build` (or `npm run demo` / `npm test`, which build first)\n');
  process.exit(2);
}
require(entry)
  .main(process.argv.slice(2))
  .then((code) => process.exit(code), (e) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
