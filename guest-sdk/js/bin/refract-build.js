#!/usr/bin/env node
// refract-build: bundles an automation module (JavaScript or TypeScript) with esbuild and turns
// it into a WebAssembly component of the `refract:automation` world with ComponentizeJS.
//
//   refract-build [entry] [-o dist/component.wasm]
//
// The entry defaults to package.json's `refract.entry`, else the first of src/index.ts,
// src/index.js, index.ts, index.js. The module's default export (or its `handler` export) is
// the handler; `@refract/sdk`'s `adapt` makes it the world's `run` export.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const sdkDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function fail(message) {
  console.error(`refract-build: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const args = { entry: undefined, out: 'dist/component.wasm' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-o' || a === '--out') args.out = argv[++i];
    else if (a === '-h' || a === '--help') {
      console.log('usage: refract-build [entry] [-o dist/component.wasm]');
      process.exit(0);
    } else if (a.startsWith('-')) fail(`unknown option ${a}`);
    else args.entry = a;
  }
  return args;
}

function findEntry(cwd) {
  const pkgPath = join(cwd, 'package.json');
  const pkg = existsSync(pkgPath) ? JSON.parse(readFileSync(pkgPath, 'utf8')) : {};
  if (pkg.refract?.entry) return resolve(cwd, pkg.refract.entry);
  for (const c of ['src/index.ts', 'src/index.js', 'index.ts', 'index.js']) {
    if (existsSync(join(cwd, c))) return join(cwd, c);
  }
  fail('no entry: pass one, set "refract": {"entry": ...} in package.json, or create src/index.ts or src/index.js');
}

// The WIT of the world: shipped in the package (copied at pack time), else the repository's.
function findWit() {
  const candidates = [process.env.REFRACT_WIT, join(sdkDir, 'wit'), join(sdkDir, '..', '..', 'wit')];
  for (const c of candidates) {
    if (c && existsSync(join(c, 'automation.wit'))) return c;
  }
  fail(`no automation.wit found (looked in ${candidates.filter(Boolean).join(', ')}); set REFRACT_WIT`);
}

const cwd = process.cwd();
const args = parseArgs(process.argv.slice(2));
const entry = args.entry ? resolve(cwd, args.entry) : findEntry(cwd);
if (!existsSync(entry)) fail(`${entry} does not exist`);
const out = resolve(cwd, args.out);
const wit = findWit();

const started = Date.now();
const work = mkdtempSync(join(tmpdir(), 'refract-build-'));
try {
  const { build } = await import('esbuild');
  const { componentize } = await import('@bytecodealliance/componentize-js');

  // The shim: the user's handler adapted to `run`.
  const shim = join(work, 'entry.js');
  writeFileSync(
    shim,
    `import * as user from ${JSON.stringify(entry)};\n` +
      `import { adapt } from ${JSON.stringify(join(sdkDir, 'src', 'index.js'))};\n` +
      // Read by name at run time: a module exports one of the two.
      `const pick = (name) => user[name];\n` +
      `export const run = adapt(pick('default') ?? pick('handler'));\n`,
  );
  const bundle = join(work, 'bundle.js');
  await build({
    entryPoints: [shim],
    outfile: bundle,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    external: ['refract:automation/*'],
    // `@refract/sdk` resolves to this package whichever copy the user's module names.
    alias: { '@refract/sdk': join(sdkDir, 'src', 'index.js') },
    mainFields: ['module', 'main'],
    logLevel: 'warning',
  });
  const bundled = Date.now();

  const { component } = await componentize({
    sourcePath: bundle,
    witPath: wit,
    worldName: 'automation',
    // No wasi:http (the host does not link it): outbound HTTP goes through `fetch` of the SDK.
    disableFeatures: ['http', 'fetch-event'],
  });
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, component);
  console.error(
    `refract-build: ${out} (${component.length} bytes; bundle ${bundled - started} ms, componentize ${Date.now() - bundled} ms)`,
  );
} catch (e) {
  fail(e && e.message ? e.message : String(e));
} finally {
  rmSync(work, { recursive: true, force: true });
}
