// Builds the portal into dist/ui, served by countersign at /ui (src/api/portal-assets.ts). Preact's
// JSX is compiled by Vite's own esbuild: no Babel. Nothing is inlined into index.html, so the
// strict Content-Security-Policy (script-src 'self') holds.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  publicDir: false,
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: fileURLToPath(new URL('../dist/ui', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    // Vite's modulepreload polyfill would be an inline script; every browser we support has it.
    modulePreload: { polyfill: false },
    // Small files stay files: an inlined data: URL for a script or a font would break the CSP.
    assetsInlineLimit: 0,
    target: 'es2022',
    reportCompressedSize: false,
  },
});
