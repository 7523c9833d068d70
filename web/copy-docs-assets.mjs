// The API's /docs (Swagger UI) and /redoc pages load their scripts from here, not from a
// CDN: they work offline and behind a strict Content-Security-Policy.
import { copyFileSync, mkdirSync } from "node:fs";

const out = "dist/docs-assets";
mkdirSync(out, { recursive: true });
for (const [from, to] of [
  ["node_modules/swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui-bundle.js"],
  ["node_modules/swagger-ui-dist/swagger-ui.css", "swagger-ui.css"],
  ["node_modules/swagger-ui-dist/favicon-32x32.png", "favicon-32x32.png"],
  ["node_modules/redoc/bundles/redoc.standalone.js", "redoc.standalone.js"],
]) {
  copyFileSync(from, `${out}/${to}`);
}
