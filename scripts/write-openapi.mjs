// Writes the API's OpenAPI document, as GET /openapi.json serves it, to the path given: the
// portal's API types are generated from it at build time, so a route that changes under the UI
// fails the UI's type check. Runs the compiled app (dist/) on a throwaway in-memory database.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { buildApp } from '../dist/app.js';
import { SecretBox } from '../dist/domain/secret-box.js';
import { openStore } from '../dist/store/kysely-store.js';
import { openDialect } from '../dist/store/open.js';

const out = process.argv[2];
if (!out) {
  console.error('usage: node scripts/write-openapi.mjs <output.json>');
  process.exit(2);
}
const store = await openStore(openDialect({ kind: 'sqlite', path: ':memory:' }));
const app = await buildApp({
  store,
  secrets: new SecretBox(randomBytes(32)),
  targetPolicy: { allowInsecure: false, allowedCidrs: [] },
  logger: false,
  portal: false,
});
await app.ready();
const document = app.swagger();
await app.close();
await store.close();
mkdirSync(dirname(resolve(out)), { recursive: true });
writeFileSync(out, `${JSON.stringify(document, null, 2)}\n`);
