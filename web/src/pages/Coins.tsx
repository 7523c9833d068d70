import { useEffect, useRef, useState } from "react";
import { ApiError, friendlyMessage, request, type Wallet } from "../api";
import { useAuth } from "../auth";
import {
  afterPurchase,
  bestValuePackId,
  coinsWithBonus,
  defaultCurrency,
  formatDateTime,
  formatPrice,
  IntentKeys,
  packsIn,
  pricePerCoin,
  purchaseNotes,
  purchaseStatusLabel,
  purchaseStatusTone,
  safeCheckoutUrl,
  type CoinPack,
  type CoinPacks,
  type Purchase,
  type PurchaseCreated,
  type PurchasesPage,
} from "../coins";
import { formatCoins } from "../format";
import { useOlderPages, useResource } from "../hooks";
import { currentLocale, useT } from "../i18n";
import { WalletCard } from "./Wallet";

/** Currency codes with their symbols: the same in every language. */
const CURRENCY_NAMES: Record<string, string> = { eur: "EUR €", usd: "USD $" };
const CURRENCY_KEY = "callmeter.currency";

export function BuyCoinsPage() {
  const { token, user } = useAuth();
  const t = useT();
  const locale = currentLocale();
  const packs = useResource<CoinPacks>(user.role === "client" ? "/v1/coin-packs" : null);
  const wallet = useResource<Wallet>(user.role === "client" ? "/v1/wallet" : null, 10000);
  const [chosen, setChosen] = useState<string | null>(() => localStorage.getItem(CURRENCY_KEY));
  const [buying, setBuying] = useState<string | null>(null);
  const [error, setError] = useState("");
  const inFlight = useRef(false);
  const keys = useRef(new IntentKeys());

  // Back from the checkout through the browser's cache: the page is live again.
  useEffect(() => {
    const onShow = (event: PageTransitionEvent) => {
      if (event.persisted) {
        inFlight.current = false;
        setBuying(null);
      }
    };
    window.addEventListener("pageshow", onShow);
    return () => window.removeEventListener("pageshow", onShow);
  }, []);

  if (user.role !== "client") {
    return <section className="card" aria-label={t("coins.title")}><h2>{t("coins.title")}</h2><p>{t("coins.onlyClients")}</p></section>;
  }

  const offered = packs.data?.currencies ?? [];
  const currency =
    chosen && offered.includes(chosen) ? chosen : defaultCurrency(typeof navigator === "undefined" ? [] : navigator.languages, offered);
  const choose = (c: string) => {
    setChosen(c);
    localStorage.setItem(CURRENCY_KEY, c); // the next visit opens in it
  };
  const shown = packs.data ? packsIn(packs.data.items, currency) : [];
  const best = bestValuePackId(shown);

  async function buy(pack: CoinPack) {
    if (inFlight.current) return; // a double click: the first request decides
    inFlight.current = true;
    setBuying(pack.id);
    setError("");
    const key = keys.current.keyFor(pack.id); // reused by a retry of the same pack
    try {
      const out = await request<PurchaseCreated>("/v1/purchases", {
        token,
        headers: { "Idempotency-Key": key },
        body: { pack_id: pack.id },
      });
      const url = afterPurchase(out, window.location.origin);
      if (!url) throw new Error("bad checkout url");
      keys.current.done(pack.id);
      window.location.assign(url); // stays disabled: the page is leaving
    } catch (e) {
      inFlight.current = false;
      setBuying(null);
      if (e instanceof ApiError && e.code === "forbidden") setError(t("coins.onlyClients"));
      else if (e instanceof ApiError && e.code === "not_found") {
        setError(t("coins.packGone"));
        void packs.refresh();
      } else if (e instanceof ApiError) setError(friendlyMessage(e));
      else if (e instanceof Error && e.message === "bad checkout url") setError(t("coins.badCheckout"));
      else setError(friendlyMessage(e));
    }
  }

  return (
    <div className="coins-page">
      <section className="card wide" aria-label={t("coins.title")}>
        <div className="coins-head">
          <div>
            <h1>{t("coins.title")}</h1>
            <p className="muted">{t("coins.intro")}</p>
          </div>
          {offered.length > 1 && (
            <div role="group" aria-label={t("coins.currency")} className="segmented">
              {offered.map((c) => (
                <button key={c} type="button" aria-pressed={c === currency}
                  className={c === currency ? "" : "secondary"} onClick={() => choose(c)}>
                  {CURRENCY_NAMES[c] ?? c.toUpperCase()}
                </button>
              ))}
            </div>
          )}
        </div>
        {packs.data?.provider === "test" && <p className="notice" data-testid="test-mode">{t("coins.testMode")}</p>}
        {error && <p role="alert" className="error">{error}</p>}
        {packs.error && <p role="alert" className="error">{packs.error}</p>}
        {!packs.data && !packs.error && <p className="muted">{t("coins.loading")}</p>}
        {packs.data && shown.length === 0 && <p className="muted">{t("coins.noPacks")}</p>}
        <ul className="packs" aria-label={t("coins.packs")}>
          {shown.map((pack) => {
            const price = formatPrice(pack.unit_amount, pack.currency, locale);
            const isBest = pack.id === best;
            return (
              <li key={pack.id} className={isBest ? "pack best" : "pack"} data-testid={`pack-${pack.id}`}>
                {isBest && <span className="ribbon">{t("coins.bestValue")}</span>}
                <p className="pack-coins">{formatCoins(pack.coins)}</p>
                <p className="pack-bonus">{pack.bonus_coins > 0 ? t("coins.bonus", { bonus: pack.bonus_coins }) : "\u00a0"}</p>
                <p className="pack-price">{price}</p>
                <p className="muted small">
                  {t("coins.total", { coins: formatCoins(pack.total_coins) })}<br />
                  {t("coins.perCoin", { price: pricePerCoin(pack, locale) })}
                </p>
                <button type="button" disabled={buying !== null} aria-busy={buying === pack.id}
                  aria-label={t("coins.buyLabel", { coins: formatCoins(pack.total_coins), price })} onClick={() => void buy(pack)}>
                  {buying === pack.id ? t("coins.buying") : t("coins.buy")}
                </button>
              </li>
            );
          })}
        </ul>
      </section>
      <div className="grid">
        <WalletCard title={t("coins.balanceTitle")} wallet={wallet.data} />
        <PurchaseHistory locale={locale} />
      </div>
    </div>
  );
}

function PurchaseHistory({ locale }: { locale: string }) {
  const t = useT();
  const first = useResource<PurchasesPage>("/v1/purchases?limit=10", 10000);
  const { items, next, loadMore, error } = useOlderPages<Purchase>(first, "/v1/purchases");
  return (
    <section className="card" aria-label={t("coins.history")}>
      <h2>{t("coins.history")}</h2>
      {(first.error || error) && <p role="alert" className="error">{first.error || error}</p>}
      {first.data && items.length === 0 && <p className="muted">{t("coins.noHistory")}</p>}
      <ul className="receipts">
        {items.map((p) => (
          <li key={p.id} className="receipt" data-testid="receipt">
            <div className="receipt-line">
              <strong>{coinsWithBonus(p.coins, p.bonus_coins)}</strong>
              <span>{formatPrice(p.unit_amount, p.currency, locale)}</span>
            </div>
            <div className="receipt-line">
              <span className="muted small">{formatDateTime(p.paid_at ?? p.created_at, locale)} · #{p.id}</span>
              <span className={`badge ${purchaseStatusTone(p)}`}>{purchaseStatusLabel(p)}</span>
            </div>
            {purchaseNotes(p, locale).map((note) => <p key={note} className="muted small">{note}</p>)}
            {p.status === "pending" && p.checkout_url && safeCheckoutUrl(p.checkout_url, window.location.origin) && (
              <a href={safeCheckoutUrl(p.checkout_url, window.location.origin)!} className="small">{t("coins.continuePayment")}</a>
            )}
          </li>
        ))}
      </ul>
      {next !== null && first.data && (
        <button type="button" className="link" onClick={() => void loadMore()}>{t("coins.more")}</button>
      )}
    </section>
  );
}
