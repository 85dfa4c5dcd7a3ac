// Declarations emitted from a class with #private fields say `#private;`, which makes the class
// nominal: no other declaration of the same shape is assignable to it, so gateway.d.ts (which
// declares no private fields, as it should) could never be. The public API is structural: this
// drops the marker from build/types/ before drift.ts compares the shapes.

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

const dir = new URL('../../build/types/', import.meta.url);
for (const name of readdirSync(dir).filter((n) => n.endsWith('.d.ts'))) {
  const file = new URL(name, dir);
  writeFileSync(file, readFileSync(file, 'utf8').replace(/^[ \t]*#private;\n/gm, ''));
}
