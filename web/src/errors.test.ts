/** Every error code the server's OpenAPI document lists reads as a sentence of our own, in
 * English and in Spanish: the server's English `detail` never reaches a person. */
import { afterEach, describe, expect, it } from "vitest";
import { ApiError, friendlyMessage, isErrorCode } from "./api";
import { speak } from "./i18n";
import openapi from "../openapi.json?raw";

const document = JSON.parse(openapi) as {
  components: { schemas: { ErrorOut: { properties: { error: { enum: string[] } } } } };
};
const CODES = document.components.schemas.ErrorOut.properties.error.enum;
const DETAIL = "an English sentence from the server";

afterEach(() => speak("en"));

describe("the server's error codes", () => {
  it("are listed in the OpenAPI document", () => {
    expect(CODES.length).toBeGreaterThan(40);
    expect(CODES).toContain("insufficient_funds");
    expect(CODES).toContain("validation_error");
  });

  it.each(CODES)("%s has a sentence in English and in Spanish", (code) => {
    expect(isErrorCode(code)).toBe(true);
    const error = new ApiError(409, code, DETAIL);
    speak("en");
    const english = friendlyMessage(error);
    speak("es");
    const spanish = friendlyMessage(error);
    for (const sentence of [english, spanish]) {
      expect(sentence).not.toContain(DETAIL);
      expect(sentence).not.toMatch(/[{}]/);
      expect(sentence.length).toBeGreaterThan(10);
    }
    expect(spanish).not.toBe(english);
  });

  it("use the structured fields in the user's language", () => {
    const cases: [ApiError, string, string][] = [
      [new ApiError(402, "insufficient_funds", DETAIL, { needed: 1200 }), "Not enough coins, 1,200 needed.", "No tienes monedas suficientes: hacen falta 1200."],
      [new ApiError(409, "too_many_payouts", DETAIL, { pending: 1 }), "1 payout request is waiting for review. Wait until they are reviewed.", "1 solicitud de retiro espera revisión. Espera a que se revisen."],
      [new ApiError(422, "payout_below_minimum", DETAIL, { minimum: 500 }), "A payout is at least 500 coins.", "Un retiro es de al menos 500 monedas."],
    ];
    for (const [error, english, spanish] of cases) {
      speak("en");
      expect(friendlyMessage(error)).toBe(english);
      speak("es");
      expect(friendlyMessage(error)).toBe(spanish);
    }
  });

  it("an unknown code (a newer server) still reads as a sentence, not the server's English", () => {
    expect(friendlyMessage(new ApiError(418, "teapot", DETAIL))).toBe("Request failed (418).");
  });
});
