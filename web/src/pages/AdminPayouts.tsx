import { useRef, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router-dom";
import { request, type Host } from "../api";
import { useAuth } from "../auth";
import { formatDateTime, IntentKeys } from "../coins";
import { formatCoins } from "../format";
import { useResource } from "../hooks";
import { currentLocale, useT, type MessageId } from "../i18n";
import {
  ACTION_INPUT,
  actionDone,
  actionRequest,
  hostHistoryLine,
  PAYOUT_STATUSES,
  payoutErrorMessage,
  payoutMoney,
  payoutStatusLabel,
  payoutStatusTone,
  reviewActions,
  type Payout,
  type PayoutStatus,
  type ReviewAction,
  type ReviewItem,
  type ReviewPage,
} from "../payouts";

/** The status filter's words, and each action's button, its accessible name and its confirm button. */
const FILTER_NAMES: Record<PayoutStatus, MessageId> = {
  requested: "adminPayouts.filter.requested",
  approved: "adminPayouts.filter.approved",
  paid: "adminPayouts.filter.paid",
  failed: "adminPayouts.filter.failed",
  rejected: "adminPayouts.filter.rejected",
  reversed: "adminPayouts.filter.reversed",
};

const BUTTONS: Record<ReviewAction, MessageId> = {
  approve: "adminPayouts.action.approve",
  reject: "adminPayouts.action.reject",
  paid: "adminPayouts.action.paid",
  failed: "adminPayouts.action.failed",
  retry: "adminPayouts.action.retry",
};

const BUTTON_LABELS: Record<ReviewAction, MessageId> = {
  approve: "adminPayouts.actionLabel.approve",
  reject: "adminPayouts.actionLabel.reject",
  paid: "adminPayouts.actionLabel.paid",
  failed: "adminPayouts.actionLabel.failed",
  retry: "adminPayouts.actionLabel.retry",
};

const CONFIRM: Partial<Record<ReviewAction, MessageId>> = {
  reject: "adminPayouts.confirmReject",
  paid: "adminPayouts.action.paid",
  failed: "adminPayouts.action.failed",
};

function isStatus(raw: string | null): raw is PayoutStatus {
  return raw !== null && (PAYOUT_STATUSES as readonly string[]).includes(raw);
}

interface Open {
  id: number;
  action: ReviewAction;
  text: string;
}

export function AdminPayoutsPage() {
  const { token, user } = useAuth();
  const t = useT();
  const locale = currentLocale();
  const [params, setParams] = useSearchParams();
  const status: PayoutStatus = isStatus(params.get("status")) ? (params.get("status") as PayoutStatus) : "requested";
  const isAdmin = user.role === "admin";
  const first = useResource<ReviewPage>(isAdmin ? `/v1/admin/payouts?status=${status}&limit=20` : null, 15000);
  const hosts = useResource<Host[]>(isAdmin ? "/v1/hosts" : null);
  const [older, setOlder] = useState<{ status: PayoutStatus; items: ReviewItem[]; cursor: number | null } | null>(null);
  const [busy, setBusy] = useState<ReadonlySet<number>>(new Set());
  const [open, setOpen] = useState<Open | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [listError, setListError] = useState("");
  const inFlight = useRef(new Set<number>());
  const keys = useRef(new IntentKeys());

  if (!isAdmin) {
    return <section className="card" aria-label={t("adminPayouts.title")}><h1>{t("adminPayouts.title")}</h1><p>{t("adminPayouts.onlyAdmins")}</p></section>;
  }

  const names = new Map((hosts.data ?? []).map((h) => [h.id, h.display_name]));
  const hostName = (id: number) => {
    const name = names.get(id);
    return name ? t("adminPayouts.hostNamed", { name, id }) : t("adminPayouts.host", { id });
  };
  const olderHere = older?.status === status ? older : null;
  const next = olderHere ? olderHere.cursor : first.data?.next_before ?? null;
  const seen = new Set<number>();
  const items = [...(first.data?.items ?? []), ...(olderHere?.items ?? [])].filter(
    (i) => !seen.has(i.payout.id) && seen.add(i.payout.id),
  );

  function choose(s: PayoutStatus) {
    setOpen(null);
    setMessage(null);
    setParams(s === "requested" ? {} : { status: s });
  }

  async function loadMore() {
    if (next === null) return;
    try {
      const page = await request<ReviewPage>(`/v1/admin/payouts?status=${status}&limit=20&before=${next}`, { token });
      setOlder({ status, items: [...(olderHere?.items ?? []), ...page.items], cursor: page.next_before });
      setListError("");
    } catch (err) {
      setListError(payoutErrorMessage(err));
    }
  }

  function setBusyFor(id: number, on: boolean) {
    if (on) inFlight.current.add(id);
    else inFlight.current.delete(id);
    setBusy(new Set(inFlight.current));
  }

  async function act(payout: Payout, action: ReviewAction, text = "") {
    if (inFlight.current.has(payout.id)) return; // a double click: the first request decides
    const input = ACTION_INPUT[action];
    if (input && !text.trim()) {
      setMessage({ ok: false, text: t("adminPayouts.needText", { label: t(input.label) }) });
      return;
    }
    setBusyFor(payout.id, true);
    setMessage(null);
    const intent = `${action}:${payout.id}`;
    try {
      const { path, body } = actionRequest(action, payout.id, text);
      const out = await request<Payout>(path, {
        token,
        method: "POST",
        headers: { "Idempotency-Key": keys.current.keyFor(intent) },
        body,
      });
      keys.current.done(intent);
      setOpen(null);
      setMessage({ ok: out.status !== "failed", text: actionDone(out, locale) });
      // older pages: the new state, or gone once it left this filter (the first page is read again)
      setOlder((o) => o && {
        ...o,
        items: o.items.map((i) => (i.payout.id === out.id ? { ...i, payout: out } : i)).filter((i) => i.payout.status === o.status),
      });
    } catch (err) {
      setMessage({ ok: false, text: payoutErrorMessage(err) });
    } finally {
      setBusyFor(payout.id, false);
      void first.refresh();
    }
  }

  function confirm(event: FormEvent, payout: Payout) {
    event.preventDefault();
    if (open) void act(payout, open.action, open.text);
  }

  return (
    <div className="coins-page">
      <section className="card wide" aria-label={t("adminPayouts.title")}>
        <div className="coins-head">
          <div>
            <h1>{t("adminPayouts.title")}</h1>
            <p className="muted">{t("adminPayouts.intro")}</p>
          </div>
          <label className="filter">
            {t("adminPayouts.status")}
            <select value={status} onChange={(ev) => choose(ev.target.value as PayoutStatus)}>
              {PAYOUT_STATUSES.map((s) => <option key={s} value={s}>{t(FILTER_NAMES[s])}</option>)}
            </select>
          </label>
        </div>
        {message && <p role={message.ok ? "status" : "alert"} className={message.ok ? "ok" : "error"}
          data-testid="payout-message">{message.text}</p>}
        {(first.error || listError) && <p role="alert" className="error">{first.error || listError}</p>}
        {!first.data && !first.error && <p className="muted">{t("adminPayouts.loading")}</p>}
        {first.data && items.length === 0 && <p className="muted">{t(status === "requested" ? "adminPayouts.emptyRequested" : "adminPayouts.empty")}</p>}
        <ul className="receipts queue" aria-label={t("adminPayouts.list")}>
          {items.map(({ payout: p, host_history }) => {
            const working = busy.has(p.id);
            const here = open?.id === p.id ? open : null;
            const input = here ? ACTION_INPUT[here.action] : undefined;
            return (
              <li key={p.id} className="receipt" data-testid={`review-${p.id}`}>
                <div className="receipt-line">
                  <strong>#{p.id} · {hostName(p.host_id)}</strong>
                  <span className={`badge ${payoutStatusTone(p.status)}`}>{payoutStatusLabel(p.status, "admin")}</span>
                </div>
                <div className="receipt-line">
                  <span className="amount">{formatCoins(p.amount)} · {payoutMoney(p, locale)}</span>
                  <span className="muted small">
                    {t("adminPayouts.requestedAt", { date: formatDateTime(p.created_at, locale) })}
                    {p.reviewed_at && <>, {t("adminPayouts.reviewedAt", { date: formatDateTime(p.reviewed_at, locale) })}</>}
                    {p.settled_at && <>, {t("adminPayouts.settledAt", { date: formatDateTime(p.settled_at, locale) })}</>}
                  </span>
                </div>
                <p className="muted small">{t("adminPayouts.history", { history: hostHistoryLine(host_history) })}</p>
                {p.reference && <p className="small">{t("payouts.reference", { reference: p.reference })}</p>}
                {p.reason && <p className="small">{t("payouts.reason", { reason: p.reason })}</p>}
                {p.coins_returned > 0 && <p className="small">{t("adminPayouts.returned", { coins: formatCoins(p.coins_returned), count: p.coins_returned })}</p>}
                {here && input ? (
                  <form className="row review-form" onSubmit={(ev) => confirm(ev, p)} noValidate>
                    <label>
                      {t(input.label)}
                      <input autoFocus required maxLength={input.field === "reference" ? 255 : 500} value={here.text}
                        disabled={working} onChange={(ev) => setOpen({ ...here, text: ev.target.value })} />
                    </label>
                    <button type="submit" className={here.action === "paid" ? "" : "danger"} disabled={working}
                      aria-busy={working}>{working ? t("adminPayouts.working") : t(CONFIRM[here.action] ?? BUTTONS[here.action])}</button>
                    <button type="button" className="secondary" disabled={working} onClick={() => setOpen(null)}>{t("adminPayouts.cancel")}</button>
                  </form>
                ) : (
                  <div className="actions">
                    {reviewActions(p).map((action) => (
                      <button key={action} type="button" disabled={working} aria-busy={working}
                        className={action === "reject" || action === "failed" ? "secondary warn" : undefined}
                        aria-label={t(BUTTON_LABELS[action], { id: p.id })}
                        onClick={() => (ACTION_INPUT[action] ? setOpen({ id: p.id, action, text: "" }) : void act(p, action))}>
                        {working && !ACTION_INPUT[action] ? t("adminPayouts.working") : t(BUTTONS[action])}
                      </button>
                    ))}
                  </div>
                )}
              </li>
            );
          })}
        </ul>
        <div className="actions">
          {next !== null && first.data && <button type="button" className="link" onClick={() => void loadMore()}>{t("adminPayouts.more")}</button>}
          <button type="button" className="link" onClick={() => { setOlder(null); void first.refresh(); }}>{t("adminPayouts.refresh")}</button>
        </div>
      </section>
      <AdjustEarnings hostName={hostName} />
    </div>
  );
}

function AdjustEarnings({ hostName }: { hostName: (id: number) => string }) {
  const { token } = useAuth();
  const t = useT();
  const [form, setForm] = useState({ host_id: "", amount: "", reason: "" });
  const [sending, setSending] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const inFlight = useRef(false);
  const keys = useRef(new IntentKeys());

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (inFlight.current) return;
    const hostId = /^\d{1,15}$/.test(form.host_id.trim()) ? Number(form.host_id.trim()) : 0;
    const raw = form.amount.trim().replace(/^−/, "-").replace(/^\+/, "");
    const amount = /^-?\d{1,10}$/.test(raw) ? Number(raw) : 0;
    const reason = form.reason.trim();
    if (hostId < 1 || amount === 0 || reason.length < 3) {
      setMessage({ ok: false, text: t("adminPayouts.adjustBad") });
      return;
    }
    inFlight.current = true;
    setSending(true);
    setMessage(null);
    const intent = `adjust:${hostId}:${amount}:${reason}`;
    try {
      const out = await request<{ transfer_id: number }>("/v1/admin/earnings-adjustments", {
        token,
        headers: { "Idempotency-Key": keys.current.keyFor(intent) },
        body: { host_id: hostId, amount, reason },
      });
      keys.current.done(intent);
      setForm({ host_id: "", amount: "", reason: "" });
      setMessage({ ok: true, text: t(amount > 0 ? "adminPayouts.added" : "adminPayouts.tookBack", {
          coins: formatCoins(Math.abs(amount)), count: Math.abs(amount), host: hostName(hostId), transfer: out.transfer_id,
        }) });
    } catch (err) {
      setMessage({ ok: false, text: payoutErrorMessage(err) });
    } finally {
      inFlight.current = false;
      setSending(false);
    }
  }

  return (
    <form className="card adjust" aria-label={t("adminPayouts.adjustTitle")} onSubmit={(ev) => void submit(ev)} noValidate>
      <h2>{t("adminPayouts.adjustTitle")}</h2>
      <p className="muted small">{t("adminPayouts.adjustIntro")}</p>
      <div className="row">
        <label>{t("adminPayouts.adjustHost")}<input inputMode="numeric" value={form.host_id} disabled={sending}
          onChange={(ev) => setForm({ ...form, host_id: ev.target.value })} /></label>
        <label>{t("adminPayouts.adjustAmount")}<input value={form.amount} disabled={sending}
          onChange={(ev) => setForm({ ...form, amount: ev.target.value })} /></label>
        <label className="grow">{t("adminPayouts.adjustReason")}<input value={form.reason} maxLength={400} disabled={sending}
          onChange={(ev) => setForm({ ...form, reason: ev.target.value })} /></label>
        <button type="submit" disabled={sending} aria-busy={sending}>{t("adminPayouts.adjustSubmit")}</button>
      </div>
      {message && <p role={message.ok ? "status" : "alert"} className={message.ok ? "ok" : "error"}>{message.text}</p>}
    </form>
  );
}
