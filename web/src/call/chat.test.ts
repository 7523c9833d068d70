import { afterEach, describe, expect, it } from "vitest";
import type { Message } from "../api";
import { speak } from "../i18n";
import { merge, pieces, systemText, unread } from "./chat";

afterEach(() => speak("en"));

function line(id: number, sender_id: number | null, body = "x", kind: Message["kind"] = "text"): Message {
  return { id, call_id: 1, sender_id, kind, body, amount: null, client_msg_id: null, created_at: "2026-11-24T10:00:00Z" };
}

describe("a message's text", () => {
  it("marks web addresses and leaves everything else as text", () => {
    expect(pieces("see https://example.com/a?b=1, or http://x.org.")).toEqual([
      { text: "see " },
      { href: "https://example.com/a?b=1" },
      { text: ", or " },
      { href: "http://x.org" },
      { text: "." },
    ]);
    // markup is text: nothing here is an address or an element
    expect(pieces('<img src=x onerror="alert(1)">')).toEqual([{ text: '<img src=x onerror="alert(1)">' }]);
    expect(pieces("javascript:alert(1)")).toEqual([{ text: "javascript:alert(1)" }]);
    expect(pieces("")).toEqual([]);
  });
});

describe("the call's own lines", () => {
  it("are put in words in the user's language", () => {
    expect(systemText("connected")).toBe("The call connected.");
    expect(systemText("charged:10")).toBe("Charged 10 coins.");
    expect(systemText("ended:insufficient_funds")).toBe("The call ended: the coins ran out.");
    speak("es");
    expect(systemText("charged:1")).toBe("Cobrado: 1 moneda.");
    expect(systemText("low_balance")).toMatch(/^Saldo bajo/);
    expect(systemText("ended:client_hangup")).toBe("La llamada terminó: el cliente colgó.");
  });
});

describe("the messages a page holds", () => {
  it("are each held once, oldest first, whether read from the history or the stream", () => {
    const history = [line(1, 7), line(3, 8)];
    expect(merge(history, [line(2, 7), line(3, 8, "again")]).map((m) => [m.id, m.body])).toEqual([
      [1, "x"],
      [2, "x"],
      [3, "again"],
    ]);
    expect(merge(history, [])).toBe(history);
  });
  it("count as unread when the other party sent them after the last one seen", () => {
    const all = [line(1, 7), line(2, 8), line(3, null, "charged:10", "system"), line(4, 8, "50", "tip")];
    expect(unread(all, 7, 0)).toBe(2);
    expect(unread(all, 7, 2)).toBe(1);
    expect(unread(all, 8, 0)).toBe(1);
    expect(unread(all, 8, 4)).toBe(0);
  });
});
