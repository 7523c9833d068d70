import { request } from "../api";
import { isLanguage, LANGUAGES, useLanguage, useT, type Language } from "./index";

/** English or Spanish, kept on the user (and in this browser) when signed in. */
export function LanguagePicker({ token }: { token?: string }) {
  const t = useT();
  const { language, setLanguage } = useLanguage();
  const pick = (next: Language) => {
    setLanguage(next);
    if (token) void request("/v1/me", { method: "PUT", token, body: { language: next } }).catch(() => {});
  };
  return (
    <label className="language">
      <span className="sr-only">{t("nav.language")}</span>
      <select aria-label={t("nav.language")} value={language} onChange={(e) => isLanguage(e.target.value) && pick(e.target.value)}>
        {Object.entries(LANGUAGES).map(([code, name]) => <option key={code} value={code} lang={code}>{name}</option>)}
      </select>
    </label>
  );
}

