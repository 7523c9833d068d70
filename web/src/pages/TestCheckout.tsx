import { useEffect, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { friendlyMessage, request } from "../api";
import { coinsWithBonus, formatPrice, safeCheckoutUrl, type TestCheckoutSession } from "../coins";
import { currentLocale, useT } from "../i18n";

type Action = "pay" | "fail" | "cancel";

/** The stand-in for a payment provider's hosted checkout (provider "test"): outside the
 * app's shell, reachable without logging in (the session id is the capability). */
export function TestCheckoutPage({ token }: { token: string | null }) {
  const sessionId = useParams().sessionId ?? "";
  const [session, setSession] = useState<TestCheckoutSession | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState<Action | null>(null);
  const t = useT();
  const locale = currentLocale();
  const path = `/v1/test-checkout/${encodeURIComponent(sessionId)}` as const;

  useEffect(() => {
    let cancelled = false;
    request<TestCheckoutSession>(path, { token })
      .then((s) => !cancelled && setSession(s))
      .catch((e: unknown) => !cancelled && setError(`${t("checkout.unreachable")} ${friendlyMessage(e)}`));
    return () => {
      cancelled = true;
    };
  }, [path, token]);

  async function act(action: Action) {
    if (busy) return;
    setBusy(action);
    setError("");
    try {
      const out = await request<{ redirect_url: string }>(`${path}/${action}`, { token, method: "POST" });
      const url = safeCheckoutUrl(out.redirect_url, window.location.origin);
      if (!url) throw new Error(t("checkout.unreachable"));
      window.location.assign(url);
    } catch (e) {
      setBusy(null);
      setError(friendlyMessage(e));
    }
  }

  const price = session ? formatPrice(session.unit_amount, session.currency, locale) : "";
  return (
    <div className="test-checkout">
      <div className="test-banner" role="note" data-testid="test-banner">
        <strong>{t("checkout.banner")}</strong>
        <span>{t("checkout.bannerDetail")}</span>
      </div>
      <main className="narrow">
        <section className="card" aria-label={t("checkout.title")}>
          <h1>{t("checkout.title")}</h1>
          {!session && !error && <p className="muted">{t("checkout.loading")}</p>}
          {error && <p role="alert" className="error">{error}</p>}
          {session && (
            <>
              <dl className="stats single">
                <div><dt>{t("checkout.product")}</dt><dd>{coinsWithBonus(session.coins, session.bonus_coins)}</dd></div>
                <div><dt>{t("checkout.amount")}</dt><dd data-testid="amount">{price}</dd></div>
                <div><dt>{t("checkout.reference")}</dt><dd>#{session.purchase_id}</dd></div>
              </dl>
              {session.status === "open" ? (
                <div className="checkout-actions">
                  <button type="button" disabled={busy !== null} onClick={() => void act("pay")}>
                    {busy === "pay" ? t("checkout.working") : t("checkout.pay", { price })}
                  </button>
                  <button type="button" className="danger" disabled={busy !== null} onClick={() => void act("fail")}>
                    {busy === "fail" ? t("checkout.working") : t("checkout.fail")}
                  </button>
                  <button type="button" className="secondary" disabled={busy !== null} onClick={() => void act("cancel")}>
                    {busy === "cancel" ? t("checkout.working") : t("checkout.cancel")}
                  </button>
                </div>
              ) : (
                <>
                  <p>{session.status === "complete" ? t("checkout.complete") : t("checkout.expired")}</p>
                  <Link to="/coins">{t("checkout.back")}</Link>
                </>
              )}
            </>
          )}
        </section>
      </main>
    </div>
  );
}
