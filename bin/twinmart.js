#!/usr/bin/env node
// Entry of the `twinmart` command. The code runs compiled from dist/; a clone installed
// without scripts (or never built) is built here on first use.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const entry = join(__dirname, '..', 'dist', 'src', 'cli', 'index.js');
if (!existsSync(entry) && !require('../scripts/build').build()) {
  process.stderr.write('twinmart: the build failed (see above); `npm ci` installs what it needs\n');
  process.exit(1);
}
require(entry)
  .main(process.argv.slice(2))
  .then((code) => process.exit(code), (e) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
