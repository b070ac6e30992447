// Bundle the widgets into ../nbtrack/static/ (committed, so pip installs need no Node).
//   node build.mjs          write the bundle
//   node build.mjs --check  build into a scratch folder; fail if it differs from the committed one
import { build } from "esbuild";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const committed = new URL("../nbtrack/static/", import.meta.url).pathname;
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "nbtrack-static-")) : committed;

await build({
  entryPoints: {
    compare: "src/compare.js", live: "src/live.js", registry: "src/registry.js",
    loader: "src/loader.js", // the `_esm` that fetches a bundle from the kernel once per page
    charts: "src/charts.js", // plotly's charts, fetched by the compare dashboard when needed
  },
  bundle: true,
  format: "esm",
  minify: true,
  legalComments: "eof",
  target: "es2020",
  outdir: out,
  logLevel: "warning",
  loader: { ".css": "empty" }, // plotly's optional map styles: not used
  // a page with an AMD loader (VS Code's widget host has requirejs) must not make bundled UMD
  // modules (d3 inside plotly) register with it instead of exporting: no `define` in bundles
  define: { global: "globalThis", define: "undefined" },
});
for (const name of ["compare.css", "live.css", "registry.css"]) copyFileSync(`src/${name}`, join(out, name));

if (check) {
  const built = readdirSync(out).sort();
  const stale = built.filter((name) => {
    try {
      return !readFileSync(join(out, name)).equals(readFileSync(join(committed, name)));
    } catch {
      return true;
    }
  });
  const extra = readdirSync(committed).filter((name) => !built.includes(name));
  if (stale.length || extra.length) {
    console.error(`nbtrack/static is out of date (${[...stale, ...extra].join(", ")}): ` +
      "run `npm run build` in js/ and commit the result.");
    process.exit(1);
  }
  console.log("nbtrack/static matches its sources.");
}
