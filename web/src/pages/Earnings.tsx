import { useEffect, useRef, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router-dom";
import { ApiError, request } from "../api";
import { useAuth } from "../auth";
import { browserLocale, formatPrice, IntentKeys } from "../coins";
import { formatCoins } from "../format";
import { useOlderPages, useResource } from "../hooks";
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

/** Every sentence of this page (English for now; shared payout words are in payouts.ts). */
const TEXT = {
  title: "Earnings",
  intro: "What your calls have earned, and the payouts you asked for.",
  onlyHosts: "Only host accounts have earnings.",
  loading: "Loading…",
  matured: "Withdrawable now",
  maturedNote: "Matured earnings you can withdraw.",
  maturing: "Maturing",
  pending: "Pending review",
  pendingNote: "Requested, waiting for an admin's review.",
  paid: "Paid out",
  paidNote: "Paid to you so far.",
  perCoin: (money: string) => `Each coin pays ${money}.`,
  withdraw: "Withdraw",
  manual: "Our team reviews each request, then pays it; the payment's reference appears in your payouts below.",
  stripe: "Approved payouts are sent to your Stripe account.",
  amount: "Amount in coins",
  useAll: (coins: number) => `Use all matured (${formatCoins(coins)})`,
  receive: (money: string) => `You receive ${money}.`,
  limits: (minimum: number, matured: number) => `At least ${formatCoins(minimum)}, at most ${formatCoins(matured)} now.`,
  submit: "Request payout",
  sending: "Sending…",
  requested: (p: Payout, locale?: string) =>
    `Payout #${p.id} of ${formatCoins(p.amount)} (${payoutMoney(p, locale)}) requested. It is reviewed shortly; follow it below.`,
  notYet: (minimum: number, matured: number) =>
    `You can withdraw once ${formatCoins(minimum)} have matured (${formatCoins(matured)} so far).`,
  setupTitle: "Set up payouts",
  setupIntro: "Payouts are sent to a Stripe account in your name. Set it up once: Stripe asks who you are and where to send the money.",
  setupButton: "Set up payouts",
  setupOpening: "Opening Stripe…",
  setupFailed: "The setup page could not be opened. Try again in a moment.",
  history: "Your payouts",
  noHistory: "No payouts yet.",
  more: "Show older payouts",
  date: (iso: string, locale?: string) =>
    new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso)),
};

export function EarningsPage() {
  const { token, user } = useAuth();
  const locale = browserLocale();
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
    return <section className="card" aria-label={TEXT.title}><h1>{TEXT.title}</h1><p>{TEXT.onlyHosts}</p></section>;
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
      setDone(TEXT.requested(payout, locale));
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
      setError(err instanceof ApiError ? payoutErrorMessage(err, e, locale) : TEXT.setupFailed);
    }
  }

  const note = setupNote(setup, e?.payouts_enabled);
  const view = e ? withdrawView(e) : null;
  const typed = parseCoins(amount);
  const money = (coins: number) => (e ? coinsAsMoney(coins, e.rate, e.currency, locale) : "");

  return (
    <div className="coins-page earnings-page">
      <section className="card wide" aria-label={TEXT.title}>
        <h1>{TEXT.title}</h1>
        <p className="muted">
          {TEXT.intro}
          {e && <> {TEXT.perCoin(formatPrice(e.rate, e.currency, locale))}</>}
        </p>
        {note && <p className="notice" role="status" data-testid="setup-note">{note}</p>}
        {earnings.error && <p role="alert" className="error">{earnings.error}</p>}
        {!e && !earnings.error && <p className="muted">{TEXT.loading}</p>}
        {e && (
          <dl className="stats earnings-stats">
            <Stat id="matured" label={TEXT.matured} coins={e.matured} money={money(e.matured)} note={TEXT.maturedNote} main />
            <Stat id="maturing" label={TEXT.maturing} coins={e.maturing} money={money(e.maturing)} note={holdSentence(e.hold_days)} />
            <Stat id="pending" label={TEXT.pending} coins={e.pending} money={money(e.pending)} note={TEXT.pendingNote} />
            <Stat id="paid" label={TEXT.paid} coins={e.paid} money={money(e.paid)} note={TEXT.paidNote} />
          </dl>
        )}
      </section>
      <div className="grid">
        {e && view === "setup" && (
          <section className="card" aria-label={TEXT.setupTitle}>
            <h2>{TEXT.setupTitle}</h2>
            <p>{TEXT.setupIntro}</p>
            {error && <p role="alert" className="error">{error}</p>}
            <button type="button" disabled={opening} aria-busy={opening} onClick={() => void openSetup()}>
              {opening ? TEXT.setupOpening : TEXT.setupButton}
            </button>
          </section>
        )}
        {e && view !== "setup" && (
          <form className="card" aria-label={TEXT.withdraw} onSubmit={(event) => void withdraw(event)} noValidate>
            <h2>{TEXT.withdraw}</h2>
            <p className="muted small">{e.provider === "stripe" ? TEXT.stripe : TEXT.manual}</p>
            {view === "not-yet" && <p data-testid="not-yet">{TEXT.notYet(e.minimum, e.matured)}</p>}
            <label>
              {TEXT.amount}
              <input name="amount" inputMode="numeric" autoComplete="off" value={amount} disabled={sending}
                aria-describedby="withdraw-hint" onChange={(ev) => { setAmount(ev.target.value); setError(""); setDone(""); }} />
            </label>
            <p id="withdraw-hint" className="muted small" aria-live="polite" data-testid="withdraw-money">
              {typed !== null && typed > 0 ? TEXT.receive(money(typed)) : TEXT.limits(e.minimum, e.matured)}
            </p>
            {error && <p role="alert" className="error">{error}</p>}
            {done && <p role="status" className="ok">{done}</p>}
            <div className="actions">
              <button type="button" className="secondary" disabled={sending || e.matured <= 0}
                onClick={() => { setAmount(String(e.matured)); setError(""); setDone(""); }}>
                {TEXT.useAll(e.matured)}
              </button>
              <button type="submit" disabled={sending} aria-busy={sending}>{sending ? TEXT.sending : TEXT.submit}</button>
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
  locale: string | undefined;
}) {
  const { items, next, loadMore, error } = useOlderPages<Payout>(first, "/v1/payouts", payoutErrorMessage);
  return (
    <section className="card" aria-label={TEXT.history}>
      <h2>{TEXT.history}</h2>
      {(first.error || error) && <p role="alert" className="error">{first.error || error}</p>}
      {first.data && items.length === 0 && <p className="muted">{TEXT.noHistory}</p>}
      <ul className="receipts">
        {items.map((p) => (
          <li key={p.id} className="receipt" data-testid="payout">
            <div className="receipt-line">
              <strong>{formatCoins(p.amount)}</strong>
              <span>{payoutMoney(p, locale)}</span>
            </div>
            <div className="receipt-line">
              <span className="muted small">{TEXT.date(p.created_at, locale)} · #{p.id}</span>
              <span className={`badge ${payoutStatusTone(p.status)}`}>{payoutStatusLabel(p.status)}</span>
            </div>
            {payoutNotes(p).map((n) => <p key={n} className="muted small">{n}</p>)}
          </li>
        ))}
      </ul>
      {next !== null && first.data && (
        <button type="button" className="link" onClick={() => void loadMore()}>{TEXT.more}</button>
      )}
    </section>
  );
}
