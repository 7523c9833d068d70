import { describe, expect, it } from "vitest";
import type { StatementLine } from "./api";
import { formatTalk } from "./format";
import { statementText } from "./pages/Wallet";

const line = (over: Partial<StatementLine>): StatementLine => ({
  id: 1, kind: "grant", amount: 10, balance_after: 10, created_at: "2026-11-24T12:00:00Z", call: null, ...over,
});

describe("the statement in words", () => {
  it("says who a call was with and how long a charge paid for, never the platform's split", () => {
    const call = { id: 7, with_user_id: 3, with_name: "Carol", seconds: 120 };
    expect(statementText(line({ kind: "call_charge", amount: -20, call }))).toBe("Call with Carol, 2 min");
    expect(statementText(line({ kind: "refund", call }))).toBe("Call refund, call with Carol");
    expect(statementText(line({ kind: "grant" }))).toBe("Coins granted");
  });
  it("says a tip's direction: to the host on the client's, from the client on the host's", () => {
    const call = { id: 7, with_user_id: 3, with_name: "Carol", seconds: null };
    expect(statementText(line({ kind: "tip", amount: -50, call }))).toBe("Tip to Carol");
    expect(statementText(line({ kind: "tip", amount: 50, call: { ...call, with_name: "Ana" } }))).toBe("Tip from Ana");
  });
  it("puts talk time in minutes and seconds", () => {
    expect([formatTalk(45), formatTalk(60), formatTalk(90), formatTalk(0)]).toEqual(["45 s", "1 min", "1 min 30 s", "0 s"]);
  });
});
