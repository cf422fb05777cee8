// Builds the self-hosted GraphiQL bundle into internal/web/static/playground:
// graphiql.js, graphiql.css and THIRD_PARTY_LICENSES.txt. The Go server
// embeds those files, so `go run .` never needs Node.js.
import { build } from 'esbuild';
import { readFileSync, writeFileSync, mkdirSync, rmSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(here, '../../internal/web/static/playground');

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

const result = await build({
  absWorkingDir: here,
  entryPoints: ['src/index.jsx'],
  entryNames: 'graphiql',
  outdir,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020', 'chrome90', 'firefox90', 'safari15'],
  minify: true,
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  // Licenses go to one text file beside the bundle (below) instead of
  // scattered comments inside it.
  legalComments: 'none',
  // GraphiQL inlines its fonts as data: URLs; anything else a stylesheet
  // points at is inlined too, so the page never fetches from another host.
  loader: { '.woff': 'dataurl', '.woff2': 'dataurl', '.ttf': 'dataurl', '.svg': 'dataurl', '.png': 'dataurl' },
  metafile: true,
  logLevel: 'warning',
});

// GraphiQL's stylesheet inlines 34 font subsets as data: URLs (~350 KiB).
// Moving each into its own file lets the browser fetch only the subsets a
// page uses (unicode-range), and their content-hashed names let the Go
// server cache them as immutable.
const cssPath = join(outdir, 'graphiql.css');
let fontCount = 0;
const css = readFileSync(cssPath, 'utf8').replace(/@font-face\{[^}]*\}/g, (face) => {
  const family = (face.match(/font-family:\s*"?([^;"}]+)"?/) ?? [, 'font'])[1].trim().toLowerCase().replace(/[^a-z0-9]+/g, '-');
  const weight = (face.match(/font-weight:\s*(\d+)/) ?? [, '400'])[1];
  const italic = /font-style:\s*italic/.test(face) ? 'i' : '';
  return face.replace(/url\(\s*["']?data:font\/(woff2?);base64,([^)"']+)["']?\s*\)/g, (_, ext, b64) => {
    const data = Buffer.from(b64, 'base64');
    const name = `${family}-${weight}${italic}.${contentHash(data)}.${ext}`;
    mkdirSync(join(outdir, 'fonts'), { recursive: true });
    writeFileSync(join(outdir, 'fonts', name), data);
    fontCount++;
    return `url(fonts/${name})`;
  });
});
writeFileSync(cssPath, css);

// Collect the license of every npm package that ended up in the bundle.
const pkgs = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/^(.*node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/]+)/);
  if (!m) continue;
  const dir = join(here, m[1]);
  if (pkgs.has(dir)) continue;
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const licenseFile = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
  pkgs.set(dir, {
    name: pkg.name,
    version: pkg.version,
    license: typeof pkg.license === 'string' ? pkg.license : JSON.stringify(pkg.license ?? pkg.licenses ?? 'UNKNOWN'),
    text: licenseFile
      ? readFileSync(join(dir, licenseFile), 'utf8').trim()
      : '(The package ships no license file; its package.json declares the license above.)',
  });
}
const entries = [...pkgs.values()].sort((a, b) => a.name.localeCompare(b.name));
writeFileSync(
  join(outdir, 'THIRD_PARTY_LICENSES.txt'),
  'Third-party software bundled into graphiql.js, graphiql.css and fonts/\n\n' +
    'The fonts in fonts/ are Roboto and Fira Code, taken from the stylesheet of\n' +
    '@graphiql/react; both are published by their authors under the SIL Open\n' +
    'Font License 1.1 (Roboto earlier also under Apache-2.0).\n\n' +
    entries.map((p) => `${'='.repeat(72)}\n${p.name}@${p.version} (${p.license})\n${'='.repeat(72)}\n${p.text}\n`).join('\n'),
);

// contentHash must match contentHash in internal/web/static.go: the server
// treats a file whose name carries its own hash as immutable.
function contentHash(data) {
  return createHash('sha256').update(data).digest('hex').slice(0, 12);
}

// Report sizes, and any absolute URL left in the output so a reviewer sees
// at once whether a rebuild started pointing at another host.
const kib = (n) => (n / 1024).toFixed(1).padStart(7) + ' KiB';
for (const f of ['graphiql.js', 'graphiql.css', 'THIRD_PARTY_LICENSES.txt']) {
  const buf = readFileSync(join(outdir, f));
  console.log(`${f.padEnd(26)} ${kib(buf.length)}  (gzip ${kib(gzipSync(buf, { level: 9 }).length)})`);
}
const fontBytes = readdirSync(join(outdir, 'fonts')).reduce((n, f) => n + readFileSync(join(outdir, 'fonts', f)).length, 0);
console.log(`${`fonts/ (${fontCount} files)`.padEnd(26)} ${kib(fontBytes)}  (fetched per unicode-range, already compressed)`);
const hosts = new Map();
for (const f of ['graphiql.js', 'graphiql.css']) {
  const text = readFileSync(join(outdir, f), 'utf8');
  for (const [, host] of text.matchAll(/https?:\/\/([a-z0-9.-]+)/gi)) {
    hosts.set(host, (hosts.get(host) ?? 0) + 1);
  }
}
console.log('hosts named in the bundle (must only be inert strings, see internal/web tests):');
for (const [host, n] of [...hosts].sort()) console.log(`  ${host} x${n}`);
