import { useEffect, useRef, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { ApiError, friendlyMessage, request, type Wallet } from "../api";
import { useAuth } from "../auth";
import { nextPollMs, parsePurchaseId, returnView, type Purchase } from "../coins";
import { formatCoins } from "../format";
import { useResource } from "../hooks";

/** Every sentence of this page (English for now). */
const TEXT = {
  title: "Your purchase",
  waiting: "Payment received, adding your coins…",
  slow: "This is taking longer than usual. Your coins appear in your wallet as soon as the payment is confirmed; you can leave this page.",
  paid: "Coins added",
  added: (coins: number, bonus: number) =>
    bonus > 0
      ? `${formatCoins(coins + bonus)} were added to your wallet (${coins.toLocaleString("en-US")} + ${bonus.toLocaleString("en-US")} bonus).`
      : `${formatCoins(coins)} were added to your wallet.`,
  balance: "Balance now",
  callHost: "Call a host",
  buyMore: "Buy more coins",
  review: "Your payment needs a check by our team. The coins are added once it is done (or the payment is refunded); nothing else is needed from you.",
  failed: "The payment did not go through. Nothing was charged.",
  expired: "The checkout expired before it was paid. Nothing was charged.",
  cancelled: "Payment cancelled, nothing was charged.",
  backToPacks: "Back to coin packs",
  missing: "This purchase was not found.",
  invalid: "This link does not name a purchase.",
  retrying: "Still checking…",
};

export function CoinsReturnPage() {
  const { token } = useAuth();
  const [params] = useSearchParams();
  const purchaseId = parsePurchaseId(params.get("purchase"));
  const result = params.get("result");
  const started = useRef(Date.now());
  const [purchase, setPurchase] = useState<Purchase | null>(null);
  const [notFound, setNotFound] = useState(false);
  const [fatalError, setFatalError] = useState<string | null>(null);
  const [hiccup, setHiccup] = useState(""); // a failed read; the next one may work
  const [elapsedMs, setElapsedMs] = useState(0);
  const [reads, setReads] = useState(0); // completed reads: each schedules the next
  const [due, setDue] = useState(0); // reads asked for

  const view = returnView({ purchaseId, result, purchase, notFound, fatalError, elapsedMs });

  // Read the purchase whenever one is due.
  useEffect(() => {
    if (purchaseId === null) return;
    let cancelled = false;
    request<Purchase>(`/v1/purchases/${purchaseId}`, { token })
      .then((p) => {
        if (cancelled) return;
        setPurchase(p);
        setHiccup("");
      })
      .catch((e: unknown) => {
        if (cancelled) return;
        if (e instanceof ApiError && e.status === 404) setNotFound(true);
        else if (e instanceof ApiError && (e.status === 401 || e.status === 403)) setFatalError(friendlyMessage(e));
        else setHiccup(friendlyMessage(e)); // offline, 5xx: keep trying
      })
      .finally(() => {
        if (cancelled) return;
        setElapsedMs(Date.now() - started.current);
        setReads((n) => n + 1);
      });
    return () => {
      cancelled = true;
    };
  }, [purchaseId, token, due]);

  // ... and the next one after each completed read, while there is something to wait for.
  const delay = reads > 0 ? nextPollMs(view) : null;
  useEffect(() => {
    if (delay === null) return;
    const timer = setTimeout(() => setDue((n) => n + 1), delay);
    return () => clearTimeout(timer);
  }, [delay, reads]);

  const wallet = useResource<Wallet>(view.kind === "paid" ? "/v1/wallet" : null);

  return (
    <section className="card summary return" aria-label={TEXT.title}>
      <h1>{TEXT.title}</h1>
      {view.kind === "waiting" && (
        <div role="status" aria-live="polite">
          <p className="big" data-testid="return-state"><span className="spinner" aria-hidden="true" /> {TEXT.waiting}</p>
          {view.slow && <p className="muted">{TEXT.slow}</p>}
          {hiccup && <p className="muted">{hiccup} {TEXT.retrying}</p>}
        </div>
      )}
      {view.kind === "paid" && (
        <div role="status">
          <p className="big ok" data-testid="return-state">{TEXT.paid}</p>
          <p data-testid="coins-added">{TEXT.added(view.purchase.coins, view.purchase.bonus_coins)}</p>
          <dl className="stats">
            <div><dt>{TEXT.balance}</dt><dd data-testid="balance">{wallet.data ? formatCoins(wallet.data.balance) : "…"}</dd></div>
          </dl>
          <p className="actions">
            <Link to="/" className="button">{TEXT.callHost}</Link>
            <Link to="/coins" className="button secondary">{TEXT.buyMore}</Link>
          </p>
        </div>
      )}
      {view.kind === "review" && <p role="status" data-testid="return-state">{TEXT.review}</p>}
      {view.kind === "failed" && (
        <p role="alert" className="error" data-testid="return-state">
          {view.purchase.status === "expired" ? TEXT.expired : TEXT.failed}
        </p>
      )}
      {view.kind === "cancelled" && <p role="status" className="big" data-testid="return-state">{TEXT.cancelled}</p>}
      {view.kind === "missing" && <p role="alert" className="error" data-testid="return-state">{TEXT.missing}</p>}
      {view.kind === "invalid" && <p role="alert" className="error" data-testid="return-state">{TEXT.invalid}</p>}
      {view.kind === "error" && <p role="alert" className="error" data-testid="return-state">{view.message}</p>}
      {view.kind !== "paid" && view.kind !== "waiting" && (
        <p className="actions"><Link to="/coins" className="button">{TEXT.backToPacks}</Link></p>
      )}
    </section>
  );
}
