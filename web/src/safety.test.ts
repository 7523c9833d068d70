/** Nothing a person typed ever becomes markup: no source of the web client may use
 * dangerouslySetInnerHTML (a chat line, a bio, a name are always text). */
import { describe, expect, it } from "vitest";

const SOURCES = import.meta.glob(["./**/*.ts", "./**/*.tsx", "!./**/*.test.ts", "!./**/*.test.tsx"], {
  query: "?raw",
  import: "default",
  eager: true,
}) as Record<string, string>;

describe("the web client's sources", () => {
  it("never set HTML from a string", () => {
    expect(Object.keys(SOURCES).length).toBeGreaterThan(30);
    const offenders = Object.entries(SOURCES)
      .filter(([, text]) => /dangerouslySetInnerHTML|\.innerHTML\s*=|insertAdjacentHTML|document\.write/.test(text))
      .map(([path]) => path);
    expect(offenders).toEqual([]);
  });
});
