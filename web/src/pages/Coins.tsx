import { useEffect, useRef, useState } from "react";
import { ApiError, friendlyMessage, request, type Wallet } from "../api";
import { useAuth } from "../auth";
import {
  afterPurchase,
  bestValuePackId,
  browserLocale,
  defaultCurrency,
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
import { WalletCard } from "./Wallet";

/** Every sentence of this page (English for now). */
const TEXT = {
  title: "Buy coins",
  intro: "Coins pay for calls by the interval. Bigger packs come with bonus coins.",
  testMode: "Test mode: payments are simulated by the built-in test provider, no money moves.",
  currency: "Currency",
  loading: "Loading…",
  noPacks: "No coin packs are offered in this currency.",
  bestValue: "Best value",
  coins: (n: number) => formatCoins(n),
  bonus: (n: number) => `+${n.toLocaleString("en-US")} bonus`,
  total: (n: number) => `${formatCoins(n)} in total`,
  perCoin: (price: string) => `${price} per coin`,
  buy: "Buy",
  buying: "Opening checkout…",
  buyLabel: (coins: number, price: string) => `Buy ${formatCoins(coins)} for ${price}`,
  onlyClients: "Only client accounts can buy coins.",
  packGone: "That pack is no longer offered; the list has been refreshed.",
  badCheckout: "The payment page could not be opened. Nothing was charged; try again.",
  history: "Your purchases",
  noHistory: "No purchases yet.",
  more: "Show older purchases",
  continuePayment: "Continue to payment",
  receiptCoins: (coins: number, bonus: number) =>
    bonus > 0 ? `${formatCoins(coins + bonus)} (${coins.toLocaleString("en-US")} + ${bonus.toLocaleString("en-US")} bonus)` : formatCoins(coins),
  date: (iso: string, locale?: string) =>
    new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso)),
  balanceTitle: "Your coins",
};

const CURRENCY_NAMES: Record<string, string> = { eur: "EUR €", usd: "USD $" };
const CURRENCY_KEY = "callmeter.currency";

export function BuyCoinsPage() {
  const { token, user } = useAuth();
  const locale = browserLocale();
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
    return <section className="card" aria-label={TEXT.title}><h2>{TEXT.title}</h2><p>{TEXT.onlyClients}</p></section>;
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
      if (e instanceof ApiError && e.code === "forbidden") setError(TEXT.onlyClients);
      else if (e instanceof ApiError && e.code === "not_found") {
        setError(TEXT.packGone);
        void packs.refresh();
      } else if (e instanceof ApiError) setError(friendlyMessage(e));
      else if (e instanceof Error && e.message === "bad checkout url") setError(TEXT.badCheckout);
      else setError(friendlyMessage(e));
    }
  }

  return (
    <div className="coins-page">
      <section className="card wide" aria-label={TEXT.title}>
        <div className="coins-head">
          <div>
            <h1>{TEXT.title}</h1>
            <p className="muted">{TEXT.intro}</p>
          </div>
          {offered.length > 1 && (
            <div role="group" aria-label={TEXT.currency} className="segmented">
              {offered.map((c) => (
                <button key={c} type="button" aria-pressed={c === currency}
                  className={c === currency ? "" : "secondary"} onClick={() => choose(c)}>
                  {CURRENCY_NAMES[c] ?? c.toUpperCase()}
                </button>
              ))}
            </div>
          )}
        </div>
        {packs.data?.provider === "test" && <p className="notice" data-testid="test-mode">{TEXT.testMode}</p>}
        {error && <p role="alert" className="error">{error}</p>}
        {packs.error && <p role="alert" className="error">{packs.error}</p>}
        {!packs.data && !packs.error && <p className="muted">{TEXT.loading}</p>}
        {packs.data && shown.length === 0 && <p className="muted">{TEXT.noPacks}</p>}
        <ul className="packs" aria-label="Coin packs">
          {shown.map((pack) => {
            const price = formatPrice(pack.unit_amount, pack.currency, locale);
            const isBest = pack.id === best;
            return (
              <li key={pack.id} className={isBest ? "pack best" : "pack"} data-testid={`pack-${pack.id}`}>
                {isBest && <span className="ribbon">{TEXT.bestValue}</span>}
                <p className="pack-coins">{TEXT.coins(pack.coins)}</p>
                <p className="pack-bonus">{pack.bonus_coins > 0 ? TEXT.bonus(pack.bonus_coins) : "\u00a0"}</p>
                <p className="pack-price">{price}</p>
                <p className="muted small">
                  {TEXT.total(pack.total_coins)}<br />{TEXT.perCoin(pricePerCoin(pack, locale))}
                </p>
                <button type="button" disabled={buying !== null} aria-busy={buying === pack.id}
                  aria-label={TEXT.buyLabel(pack.total_coins, price)} onClick={() => void buy(pack)}>
                  {buying === pack.id ? TEXT.buying : TEXT.buy}
                </button>
              </li>
            );
          })}
        </ul>
      </section>
      <div className="grid">
        <WalletCard title={TEXT.balanceTitle} wallet={wallet.data} />
        <PurchaseHistory locale={locale} />
      </div>
    </div>
  );
}

function PurchaseHistory({ locale }: { locale: string | undefined }) {
  const first = useResource<PurchasesPage>("/v1/purchases?limit=10", 10000);
  const { items, next, loadMore, error } = useOlderPages<Purchase>(first, "/v1/purchases");
  return (
    <section className="card" aria-label={TEXT.history}>
      <h2>{TEXT.history}</h2>
      {(first.error || error) && <p role="alert" className="error">{first.error || error}</p>}
      {first.data && items.length === 0 && <p className="muted">{TEXT.noHistory}</p>}
      <ul className="receipts">
        {items.map((p) => (
          <li key={p.id} className="receipt" data-testid="receipt">
            <div className="receipt-line">
              <strong>{TEXT.receiptCoins(p.coins, p.bonus_coins)}</strong>
              <span>{formatPrice(p.unit_amount, p.currency, locale)}</span>
            </div>
            <div className="receipt-line">
              <span className="muted small">{TEXT.date(p.paid_at ?? p.created_at, locale)} · #{p.id}</span>
              <span className={`badge ${purchaseStatusTone(p)}`}>{purchaseStatusLabel(p)}</span>
            </div>
            {purchaseNotes(p, locale).map((note) => <p key={note} className="muted small">{note}</p>)}
            {p.status === "pending" && p.checkout_url && safeCheckoutUrl(p.checkout_url, window.location.origin) && (
              <a href={safeCheckoutUrl(p.checkout_url, window.location.origin)!} className="small">{TEXT.continuePayment}</a>
            )}
          </li>
        ))}
      </ul>
      {next !== null && first.data && (
        <button type="button" className="link" onClick={() => void loadMore()}>{TEXT.more}</button>
      )}
    </section>
  );
}
