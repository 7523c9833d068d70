// `make test`: src/api.gen.ts must be what openapi.json generates (openapi.json itself is
// checked against the server by tests/test_openapi_document.py). Stale? Run `make api`.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const out = join(mkdtempSync(join(tmpdir(), "api-types-")), "api.gen.ts");
execFileSync("node_modules/.bin/openapi-typescript", ["openapi.json", "-o", out], { stdio: "ignore" });
if (readFileSync(out, "utf8") !== readFileSync("src/api.gen.ts", "utf8")) {
  console.error("web/src/api.gen.ts is stale: run `make api` and commit the result");
  process.exit(1);
}
console.log("web/src/api.gen.ts matches web/openapi.json");
