/** The web client in English or Spanish (react-intl): the catalogues, the language in use,
 * and `translate` for code outside components (formatting helpers, error sentences). */
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { createIntl, createIntlCache, IntlProvider, useIntl, type IntlShape } from "react-intl";
import { en, type MessageId } from "./en";
import { es } from "./es";

export type { MessageId } from "./en";
export type Language = "en" | "es";
export const LANGUAGES: Record<Language, string> = { en: "English", es: "Español" };
type Values = Record<string, string | number>;

const CATALOGUES: Record<Language, Record<MessageId, string>> = { en, es };
const STORED = "callmeter.language";
const cache = createIntlCache();
const intlFor = (language: Language): IntlShape =>
  createIntl({ locale: language, messages: CATALOGUES[language], defaultLocale: "en" }, cache);
let current = intlFor("en");

/** Helpers (translate, formatCoins) speak `language` from now on; LanguageProvider calls it
 * on every render, tests call it directly. */
export function speak(language: Language): void {
  if (current.locale !== language) current = intlFor(language);
}

/** A message in the language in use (for code that is not a component). */
export function translate(id: MessageId, values?: Values): string {
  return current.formatMessage({ id }, values);
}

/** The language in use, as a BCP 47 tag for Intl formatting. */
export function currentLocale(): string {
  return current.locale;
}

export function isMessageId(id: string): id is MessageId {
  return Object.prototype.hasOwnProperty.call(en, id);
}

export function isLanguage(value: unknown): value is Language {
  return value === "en" || value === "es";
}

/** The user's choice, else this browser's last choice, else its first language. */
export function initialLanguage(chosen?: string | null, languages: readonly string[] = navigator.languages ?? []): Language {
  if (isLanguage(chosen)) return chosen;
  const stored = typeof localStorage === "undefined" ? null : localStorage.getItem(STORED);
  if (isLanguage(stored)) return stored;
  return languages[0]?.toLowerCase().startsWith("es") ? "es" : "en";
}

const LanguageContext = createContext<{ language: Language; setLanguage: (l: Language) => void }>({
  language: "en",
  setLanguage: () => {},
});

export function LanguageProvider({ children }: { children: ReactNode }) {
  const [language, choose] = useState<Language>(() => initialLanguage());
  speak(language); // before the children render: helpers translate in the same language
  useEffect(() => {
    document.documentElement.lang = language; // screen readers pronounce the page's language
  }, [language]);
  const value = useMemo(
    () => ({
      language,
      setLanguage: (next: Language) => {
        localStorage.setItem(STORED, next);
        choose(next);
      },
    }),
    [language],
  );
  return (
    <LanguageContext.Provider value={value}>
      <IntlProvider locale={language} messages={CATALOGUES[language]} defaultLocale="en">
        {children}
      </IntlProvider>
    </LanguageContext.Provider>
  );
}

export function useLanguage() {
  return useContext(LanguageContext);
}

/** `t(id, values)` in the page's language; a component that uses it re-renders on a change. */
export function useT(): (id: MessageId, values?: Values) => string {
  const intl = useIntl();
  return (id, values) => intl.formatMessage({ id }, values);
}
