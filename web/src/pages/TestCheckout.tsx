import { useEffect, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { friendlyMessage, request } from "../api";
import { browserLocale, formatPrice, safeCheckoutUrl, type TestCheckoutSession } from "../coins";
import { formatCoins } from "../format";

/** Every sentence of this page (English for now). */
const TEXT = {
  banner: "TEST PAYMENT",
  bannerDetail: "This is the built-in test payment provider. No money moves and no card is needed: the buttons below only decide what the test payment does.",
  title: "Test checkout",
  loading: "Loading…",
  item: (coins: number, bonus: number) =>
    bonus > 0 ? `${formatCoins(coins + bonus)} (${coins.toLocaleString("en-US")} + ${bonus.toLocaleString("en-US")} bonus)` : formatCoins(coins),
  product: "Coins",
  amount: "Amount",
  reference: "Purchase",
  pay: (price: string) => `Pay ${price} (test)`,
  fail: "Simulate a failed payment",
  cancel: "Cancel and go back",
  working: "Working…",
  complete: "This test checkout is already paid.",
  expired: "This test checkout has expired. Nothing was charged.",
  back: "Back to coin packs",
  unreachable: "This test checkout could not be loaded.",
};

type Action = "pay" | "fail" | "cancel";

/** The stand-in for a payment provider's hosted checkout (provider "test"): outside the
 * app's shell, reachable without logging in (the session id is the capability). */
export function TestCheckoutPage({ token }: { token: string | null }) {
  const sessionId = useParams().sessionId ?? "";
  const [session, setSession] = useState<TestCheckoutSession | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState<Action | null>(null);
  const locale = browserLocale();
  const path = `/v1/test-checkout/${encodeURIComponent(sessionId)}`;

  useEffect(() => {
    let cancelled = false;
    request<TestCheckoutSession>(path, { token })
      .then((s) => !cancelled && setSession(s))
      .catch((e: unknown) => !cancelled && setError(`${TEXT.unreachable} ${friendlyMessage(e)}`));
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
      if (!url) throw new Error(TEXT.unreachable);
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
        <strong>{TEXT.banner}</strong>
        <span>{TEXT.bannerDetail}</span>
      </div>
      <main className="narrow">
        <section className="card" aria-label={TEXT.title}>
          <h1>{TEXT.title}</h1>
          {!session && !error && <p className="muted">{TEXT.loading}</p>}
          {error && <p role="alert" className="error">{error}</p>}
          {session && (
            <>
              <dl className="stats single">
                <div><dt>{TEXT.product}</dt><dd>{TEXT.item(session.coins, session.bonus_coins)}</dd></div>
                <div><dt>{TEXT.amount}</dt><dd data-testid="amount">{price}</dd></div>
                <div><dt>{TEXT.reference}</dt><dd>#{session.purchase_id}</dd></div>
              </dl>
              {session.status === "open" ? (
                <div className="checkout-actions">
                  <button type="button" disabled={busy !== null} onClick={() => void act("pay")}>
                    {busy === "pay" ? TEXT.working : TEXT.pay(price)}
                  </button>
                  <button type="button" className="danger" disabled={busy !== null} onClick={() => void act("fail")}>
                    {busy === "fail" ? TEXT.working : TEXT.fail}
                  </button>
                  <button type="button" className="secondary" disabled={busy !== null} onClick={() => void act("cancel")}>
                    {busy === "cancel" ? TEXT.working : TEXT.cancel}
                  </button>
                </div>
              ) : (
                <>
                  <p>{session.status === "complete" ? TEXT.complete : TEXT.expired}</p>
                  <Link to="/coins">{TEXT.back}</Link>
                </>
              )}
            </>
          )}
        </section>
      </main>
    </div>
  );
}
