import { useEffect, useRef, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { ApiError, friendlyMessage, request, type Wallet } from "../api";
import { useAuth } from "../auth";
import { nextPollMs, parsePurchaseId, returnView, type Purchase } from "../coins";
import { formatCoins } from "../format";
import { useResource } from "../hooks";
import { useT } from "../i18n";

/** What was added to the wallet: "330 coins were added to your wallet (300 + 30 bonus)." */
function addedSentence(t: ReturnType<typeof useT>, coins: number, bonus: number): string {
  const total = coins + bonus;
  return bonus > 0
    ? t("coins.return.addedBonus", { count: total, total: formatCoins(total), bought: coins, bonus })
    : t("coins.return.added", { count: total, total: formatCoins(total) });
}

export function CoinsReturnPage() {
  const { token } = useAuth();
  const t = useT();
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
    <section className="card summary return" aria-label={t("coins.return.title")}>
      <h1>{t("coins.return.title")}</h1>
      {view.kind === "waiting" && (
        <div role="status" aria-live="polite">
          <p className="big" data-testid="return-state"><span className="spinner" aria-hidden="true" /> {t("coins.return.waiting")}</p>
          {view.slow && <p className="muted">{t("coins.return.slow")}</p>}
          {hiccup && <p className="muted">{hiccup} {t("coins.return.retrying")}</p>}
        </div>
      )}
      {view.kind === "paid" && (
        <div role="status">
          <p className="big ok" data-testid="return-state">{t("coins.return.paid")}</p>
          <p data-testid="coins-added">{addedSentence(t, view.purchase.coins, view.purchase.bonus_coins)}</p>
          <dl className="stats">
            <div><dt>{t("coins.return.balance")}</dt><dd data-testid="balance">{wallet.data ? formatCoins(wallet.data.balance) : "…"}</dd></div>
          </dl>
          <p className="actions">
            <Link to="/" className="button">{t("coins.return.callHost")}</Link>
            <Link to="/coins" className="button secondary">{t("coins.return.buyMore")}</Link>
          </p>
        </div>
      )}
      {view.kind === "review" && <p role="status" data-testid="return-state">{t("coins.return.review")}</p>}
      {view.kind === "failed" && (
        <p role="alert" className="error" data-testid="return-state">
          {view.purchase.status === "expired" ? t("coins.return.expired") : t("coins.return.failed")}
        </p>
      )}
      {view.kind === "cancelled" && <p role="status" className="big" data-testid="return-state">{t("coins.return.cancelled")}</p>}
      {view.kind === "missing" && <p role="alert" className="error" data-testid="return-state">{t("coins.return.missing")}</p>}
      {view.kind === "invalid" && <p role="alert" className="error" data-testid="return-state">{t("coins.return.invalid")}</p>}
      {view.kind === "error" && <p role="alert" className="error" data-testid="return-state">{view.message}</p>}
      {view.kind !== "paid" && view.kind !== "waiting" && (
        <p className="actions"><Link to="/coins" className="button">{t("coins.return.backToPacks")}</Link></p>
      )}
    </section>
  );
}
