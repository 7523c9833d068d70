import { createIntl } from "react-intl";
import { describe, expect, it } from "vitest";
import { en, type MessageId } from "./en";
import { es } from "./es";

const VALUES = {
  count: 2, coins: "2", minutes: 3, seconds: 4, name: "Ana", time: "1 min", kind: "x", caller: "Ana", rate: "10",
  reason: "r", quality: "q", n: 2, per: "p", needed: 3, status: 500,
  price: "€1.00", total: "3", bought: 2, bonus: 1, id: 9, money: "€1.00", minimum: "1", matured: "2", when: "soon",
  reference: "R-1", what: "Payout #9", history: "h", date: "today", label: "L", host: "Ana", transfer: 4, who: "Ana",
};

describe("the catalogues", () => {
  it("have the same messages, each valid ICU in its language", () => {
    expect(Object.keys(es).sort()).toEqual(Object.keys(en).sort());
    for (const [locale, messages] of [["en", en], ["es", es]] as const) {
      const errors: unknown[] = [];
      const intl = createIntl({ locale, messages, onError: (e) => errors.push(e) });
      for (const id of Object.keys(messages) as MessageId[]) {
        const text = intl.formatMessage({ id }, VALUES);
        expect(text, `${locale} ${id}`).not.toBe(id);
        expect(text).not.toMatch(/[{}]/);
      }
      expect(errors).toEqual([]);
    }
  });
  it("say coins with the language's plural and numbers", () => {
    const say = (locale: "en" | "es", count: number) =>
      createIntl({ locale, messages: locale === "en" ? en : es }).formatMessage({ id: "coins" }, { count });
    expect([say("en", 1), say("en", 12345)]).toEqual(["1 coin", "12,345 coins"]);
    expect([say("es", 1), say("es", 12345)]).toEqual(["1 moneda", "12.345 monedas"]);
  });
});
