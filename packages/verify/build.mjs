// Builds the package twice from one source: ESM into dist/esm and CommonJS into dist/cjs, each
// with its own declarations, and marks dist/cjs as CommonJS so Node and TypeScript read it so.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync(new URL('./dist', import.meta.url), { recursive: true, force: true });
for (const project of ['tsconfig.esm.json', 'tsconfig.cjs.json']) {
  execFileSync(process.execPath, [tsc, '-p', new URL(project, import.meta.url).pathname], { stdio: 'inherit' });
}
writeFileSync(new URL('./dist/cjs/package.json', import.meta.url), '{ "type": "commonjs" }\n');
writeFileSync(new URL('./dist/esm/package.json', import.meta.url), '{ "type": "module" }\n');
