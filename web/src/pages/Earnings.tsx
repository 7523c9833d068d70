import { useEffect, useRef, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router-dom";
import { ApiError, request } from "../api";
import { useAuth } from "../auth";
import { formatDateTime, formatPrice, IntentKeys } from "../coins";
import { formatCoins } from "../format";
import { useOlderPages, useResource } from "../hooks";
import { currentLocale, useT } from "../i18n";
import {
  checkWithdrawal,
  coinsAsMoney,
  holdSentence,
  parseCoins,
  payoutErrorMessage,
  payoutMoney,
  payoutNotes,
  payoutStatusLabel,
  payoutStatusTone,
  safeExternalUrl,
  setupNote,
  withdrawView,
  type Earnings,
  type Payout,
  type PayoutsPage,
} from "../payouts";

export function EarningsPage() {
  const { token, user } = useAuth();
  const t = useT();
  const locale = currentLocale();
  const [params] = useSearchParams();
  const setup = params.get("setup");
  const isHost = user.role === "host";
  const [waitingForStripe, setWaitingForStripe] = useState(setup === "done");
  // Back from Stripe: poll until the account.updated webhook has enabled payouts.
  const earnings = useResource<Earnings>(isHost ? "/v1/earnings" : null, waitingForStripe ? 3000 : 15000);
  const history = useResource<PayoutsPage>(isHost ? "/v1/payouts?limit=10" : null, 15000);
  const [amount, setAmount] = useState("");
  const [sending, setSending] = useState(false);
  const [opening, setOpening] = useState(false);
  const [error, setError] = useState("");
  const [done, setDone] = useState("");
  const inFlight = useRef(false);
  const keys = useRef(new IntentKeys());
  const e = earnings.data;

  useEffect(() => {
    if (e?.payouts_enabled) setWaitingForStripe(false);
  }, [e?.payouts_enabled]);

  // Back from Stripe through the browser's cache: the page is live again.
  useEffect(() => {
    const onShow = (event: PageTransitionEvent) => {
      if (event.persisted) {
        inFlight.current = false;
        setOpening(false);
        setSending(false);
      }
    };
    window.addEventListener("pageshow", onShow);
    return () => window.removeEventListener("pageshow", onShow);
  }, []);

  if (!isHost) {
    return <section className="card" aria-label={t("earnings.title")}><h1>{t("earnings.title")}</h1><p>{t("earnings.onlyHosts")}</p></section>;
  }

  async function withdraw(event: FormEvent) {
    event.preventDefault();
    if (inFlight.current || !e) return; // a double click: the first request decides
    const check = checkWithdrawal(amount, e, locale);
    setDone("");
    if (!check.ok) {
      setError(check.message);
      return;
    }
    inFlight.current = true;
    setSending(true);
    setError("");
    const intent = `withdraw:${check.amount}`;
    const key = keys.current.keyFor(intent); // a retry of the same amount reuses it
    try {
      const payout = await request<Payout>("/v1/payouts", {
        token,
        headers: { "Idempotency-Key": key },
        body: { amount: check.amount },
      });
      keys.current.done(intent);
      setAmount("");
      setDone(t("earnings.requested", { id: payout.id, coins: formatCoins(payout.amount), money: payoutMoney(payout, locale) }));
    } catch (err) {
      setError(payoutErrorMessage(err, e, locale));
    } finally {
      inFlight.current = false;
      setSending(false);
      void earnings.refresh(); // the server's numbers, whatever happened
      void history.refresh();
    }
  }

  async function openSetup() {
    if (inFlight.current) return;
    inFlight.current = true;
    setOpening(true);
    setError("");
    try {
      const out = await request<{ url: string }>("/v1/payouts/account-link", { token, method: "POST" });
      const url = safeExternalUrl(out.url, window.location.origin);
      if (!url) throw new Error("bad setup url");
      window.location.assign(url); // stays disabled: the page is leaving
    } catch (err) {
      inFlight.current = false;
      setOpening(false);
      setError(err instanceof ApiError ? payoutErrorMessage(err, e, locale) : t("earnings.setupFailed"));
    }
  }

  const note = setupNote(setup, e?.payouts_enabled);
  const view = e ? withdrawView(e) : null;
  const typed = parseCoins(amount);
  const money = (coins: number) => (e ? coinsAsMoney(coins, e.rate, e.currency, locale) : "");

  return (
    <div className="coins-page earnings-page">
      <section className="card wide" aria-label={t("earnings.title")}>
        <h1>{t("earnings.title")}</h1>
        <p className="muted">
          {t("earnings.intro")}
          {e && <> {t("earnings.perCoin", { money: formatPrice(e.rate, e.currency, locale) })}</>}
        </p>
        {note && <p className="notice" role="status" data-testid="setup-note">{note}</p>}
        {earnings.error && <p role="alert" className="error">{earnings.error}</p>}
        {!e && !earnings.error && <p className="muted">{t("earnings.loading")}</p>}
        {e && (
          <dl className="stats earnings-stats">
            <Stat id="matured" label={t("earnings.matured")} coins={e.matured} money={money(e.matured)} note={t("earnings.maturedNote")} main />
            <Stat id="maturing" label={t("earnings.maturing")} coins={e.maturing} money={money(e.maturing)} note={holdSentence(e.hold_days)} />
            <Stat id="pending" label={t("earnings.pending")} coins={e.pending} money={money(e.pending)} note={t("earnings.pendingNote")} />
            <Stat id="paid" label={t("earnings.paid")} coins={e.paid} money={money(e.paid)} note={t("earnings.paidNote")} />
          </dl>
        )}
      </section>
      <div className="grid">
        {e && view === "setup" && (
          <section className="card" aria-label={t("earnings.setupTitle")}>
            <h2>{t("earnings.setupTitle")}</h2>
            <p>{t("earnings.setupIntro")}</p>
            {error && <p role="alert" className="error">{error}</p>}
            <button type="button" disabled={opening} aria-busy={opening} onClick={() => void openSetup()}>
              {opening ? t("earnings.setupOpening") : t("earnings.setupButton")}
            </button>
          </section>
        )}
        {e && view !== "setup" && (
          <form className="card" aria-label={t("earnings.withdraw")} onSubmit={(event) => void withdraw(event)} noValidate>
            <h2>{t("earnings.withdraw")}</h2>
            <p className="muted small">{e.provider === "stripe" ? t("earnings.stripe") : t("earnings.manual")}</p>
            {view === "not-yet" && <p data-testid="not-yet">{t("earnings.notYet", { count: e.minimum, minimum: formatCoins(e.minimum), matured: formatCoins(e.matured) })}</p>}
            <label>
              {t("earnings.amount")}
              <input name="amount" inputMode="numeric" autoComplete="off" value={amount} disabled={sending}
                aria-describedby="withdraw-hint" onChange={(ev) => { setAmount(ev.target.value); setError(""); setDone(""); }} />
            </label>
            <p id="withdraw-hint" className="muted small" aria-live="polite" data-testid="withdraw-money">
              {typed !== null && typed > 0 ? t("earnings.receive", { money: money(typed) })
                : t("earnings.limits", { minimum: formatCoins(e.minimum), matured: formatCoins(e.matured) })}
            </p>
            {error && <p role="alert" className="error">{error}</p>}
            {done && <p role="status" className="ok">{done}</p>}
            <div className="actions">
              <button type="button" className="secondary" disabled={sending || e.matured <= 0}
                onClick={() => { setAmount(String(e.matured)); setError(""); setDone(""); }}>
                {t("earnings.useAll", { coins: formatCoins(e.matured) })}
              </button>
              <button type="submit" disabled={sending} aria-busy={sending}>{sending ? t("earnings.sending") : t("earnings.submit")}</button>
            </div>
          </form>
        )}
        <PayoutHistory first={history} locale={locale} />
      </div>
    </div>
  );
}

function Stat({ id, label, coins, money, note, main = false }: {
  id: string; label: string; coins: number; money: string; note: string; main?: boolean;
}) {
  return (
    <div className={main ? "main" : undefined}>
      <dt>{label}</dt>
      <dd data-testid={id}>{formatCoins(coins)}</dd>
      <dd className="money" data-testid={`${id}-money`}>{money}</dd>
      <dd className="muted small">{note}</dd>
    </div>
  );
}

function PayoutHistory({ first, locale }: {
  first: { data: PayoutsPage | null; error: string };
  locale: string;
}) {
  const t = useT();
  const { items, next, loadMore, error } = useOlderPages<Payout>(first, "/v1/payouts", payoutErrorMessage);
  return (
    <section className="card" aria-label={t("earnings.history")}>
      <h2>{t("earnings.history")}</h2>
      {(first.error || error) && <p role="alert" className="error">{first.error || error}</p>}
      {first.data && items.length === 0 && <p className="muted">{t("earnings.noHistory")}</p>}
      <ul className="receipts">
        {items.map((p) => (
          <li key={p.id} className="receipt" data-testid="payout">
            <div className="receipt-line">
              <strong>{formatCoins(p.amount)}</strong>
              <span>{payoutMoney(p, locale)}</span>
            </div>
            <div className="receipt-line">
              <span className="muted small">{formatDateTime(p.created_at, locale)} · #{p.id}</span>
              <span className={`badge ${payoutStatusTone(p.status)}`}>{payoutStatusLabel(p.status)}</span>
            </div>
            {payoutNotes(p).map((n) => <p key={n} className="muted small">{n}</p>)}
          </li>
        ))}
      </ul>
      {next !== null && first.data && (
        <button type="button" className="link" onClick={() => void loadMore()}>{t("earnings.more")}</button>
      )}
    </section>
  );
}
