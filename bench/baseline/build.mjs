// Bundles the handler the way Amplify Gen 2's defineFunction does (aws-cdk-lib NodejsFunction
// with Amplify's defaults: ESM, minified, source maps, AWS SDK bundled, the CJS shim injected),
// into dist/handler.mjs. The SSM-secrets banner Amplify adds is left out: this function has no
// secrets, so that banner does nothing at run time.
import { build } from "esbuild";
import { writeFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
mkdirSync(path.join(here, "dist"), { recursive: true });
const shim = path.join(here, "dist", "cjs_shim.mjs");
// Amplify's lambda-shims/cjs_shim.ts: lets bundled CommonJS code call require() in ESM.
writeFileSync(
  shim,
  'import { createRequire } from "node:module";\nglobalThis.require = createRequire(import.meta.url);\n',
);

await build({
  entryPoints: [path.join(here, "amplify/auth/post-confirmation/handler.ts")],
  outfile: path.join(here, "dist/handler.mjs"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  minify: true,
  sourcemap: true,
  inject: [shim],
  alias: { "$amplify/env/post-confirmation": path.join(here, "amplify/env/post-confirmation.ts") },
  logLevel: "error",
});
