import { useRef, useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { ApiError, friendlyMessage, request, type ApiUrl, type CallsPage } from "../api";
import { IntentKeys } from "../coins";
import { useAuth } from "../auth";
import { describeEndReason, formatCoins, formatDuration } from "../format";
import { currentLocale, isMessageId, translate, useT } from "../i18n";
import { useResource } from "../hooks";
import type { ReviewPage } from "../payouts";

interface LedgerCheck {
  ok: boolean;
  problems: string[];
  totals: Record<string, number>;
}

/** A ledger check total in words ("paid_out" → "Paid out"); a name this page does not know
 * yet reads as the server spells it. */
export function totalName(key: string): string {
  const id = `admin.total.${key}`;
  return isMessageId(id) ? translate(id) : key.replace(/_/g, " ");
}

const EMPTY_GRANT = { user_id: "", amount: "", note: "" };
const EMPTY_REFUND = { call_id: "", amount: "", reason: "" };

/** Whether a failed money request has a known result: the server answered and refused
 * (4xx), so nothing happened and the next submit is a new intent. A 5xx or no answer at
 * all leaves the result unknown: the next submit retries with the same key. */
export function resultKnown(error: unknown): boolean {
  return error instanceof ApiError && error.status < 500;
}

interface AdminUser {
  id: number;
  username: string;
  display_name: string;
  role: "client" | "host" | "admin";
  frozen: boolean;
  balance: number | null;
  held: number | null;
}

const STATUSES = ["", "ringing", "connecting", "active", "ended"] as const;

/** The admin's call list query: status, one user's calls, a period (local dates). */
export function callsQuery(filter: { status: string; user_id: string; since: string; until: string }): ApiUrl {
  const params = new URLSearchParams({ limit: "50" });
  if (filter.status) params.set("status", filter.status);
  if (/^[1-9][0-9]*$/.test(filter.user_id)) params.set("user_id", filter.user_id);
  const day = (text: string, after = 0): string | null => {
    const at = new Date(`${text}T00:00:00`);
    at.setDate(at.getDate() + after);
    const year = at.getFullYear();
    // a date the input allows but no server time can hold (year 20261) filters nothing
    return Number.isNaN(at.getTime()) || year < 1970 || year > 9000 ? null : at.toISOString();
  };
  const since = filter.since ? day(filter.since) : null;
  const until = filter.until ? day(filter.until, 1) : null; // through the end of that day
  if (since) params.set("since", since);
  if (until) params.set("until", until);
  return `/v1/admin/calls?${params.toString()}`;
}

export function AdminPage() {
  const t = useT();
  const { token } = useAuth();
  const [filter, setFilter] = useState({ status: "", user_id: "", since: "", until: "" });
  const calls = useResource<CallsPage>(callsQuery(filter), 3000);
  const [query, setQuery] = useState("");
  const [users, setUsers] = useState<AdminUser[] | null>(null);
  const toReview = useResource<ReviewPage>("/v1/admin/payouts?status=requested&limit=50", 30000);
  const [check, setCheck] = useState<LedgerCheck | null>(null);
  const [message, setMessage] = useState("");
  const [grant, setGrant] = useState(EMPTY_GRANT);
  const [refund, setRefund] = useState(EMPTY_REFUND);
  // A money form sends one request at a time and keeps its Idempotency-Key until the
  // result is known: a double click or a retry after a lost answer moves coins once.
  const [sending, setSending] = useState<"grant" | "refund" | null>(null);
  const inFlight = useRef(false);
  const keys = useRef(new IntentKeys());

  async function act(work: () => Promise<string>) {
    setMessage("");
    try {
      setMessage(await work());
    } catch (e) {
      setMessage(friendlyMessage(e));
    }
  }

  const endCall = (id: number) =>
    act(async () => {
      const out = await request<{ call: { charged: number } }>(`/v1/admin/calls/${id}/end`, { token, method: "POST" });
      await calls.refresh();
      return translate("admin.ended", { id, coins: formatCoins(out.call.charged) });
    });

  async function moveCoins(form: "grant" | "refund", intent: string, work: (key: string) => Promise<string>) {
    if (inFlight.current) return; // a double click: the first request decides
    inFlight.current = true;
    setSending(form);
    setMessage("");
    const key = keys.current.keyFor(intent);
    try {
      setMessage(await work(key));
      keys.current.done(intent);
      if (form === "grant") setGrant(EMPTY_GRANT);
      else setRefund(EMPTY_REFUND);
    } catch (e) {
      if (resultKnown(e)) keys.current.done(intent);
      setMessage(friendlyMessage(e));
    } finally {
      inFlight.current = false;
      setSending(null);
    }
  }

  const submitGrant = (event: FormEvent) => {
    event.preventDefault();
    const { user_id, amount, note } = grant;
    void moveCoins("grant", `grant:${user_id}:${amount}:${note}`, async (key) => {
      await request("/v1/admin/grants", {
        token,
        headers: { "Idempotency-Key": key },
        body: { user_id: Number(user_id), amount: Number(amount), note: note || undefined },
      });
      return translate("admin.granted", { coins: formatCoins(Number(amount)), id: user_id });
    });
  };

  const submitRefund = (event: FormEvent) => {
    event.preventDefault();
    const { call_id, amount, reason } = refund;
    void moveCoins("refund", `refund:${call_id}:${amount}:${reason}`, async (key) => {
      const out = await request<{ refunded: number }>(`/v1/admin/calls/${call_id}/refund`, {
        token,
        headers: { "Idempotency-Key": key },
        body: { reason, ...(amount ? { amount: Number(amount) } : {}) },
      });
      return translate("admin.refunded", { coins: formatCoins(out.refunded), id: call_id });
    });
  };

  async function searchUsers(event: FormEvent) {
    event.preventDefault();
    try {
      const q = encodeURIComponent(query.trim());
      const page = await request<{ items: AdminUser[] }>(`/v1/admin/users?limit=20${q ? `&q=${q}` : ""}`, { token });
      setUsers(page.items);
    } catch (e) {
      setMessage(friendlyMessage(e));
    }
  }

  const runCheck = () =>
    act(async () => {
      const result = await request<LedgerCheck>("/v1/admin/ledger/check", { token });
      setCheck(result);
      return result.ok ? translate("admin.checkPassed") : translate("admin.checkFailed", { count: result.problems.length });
    });

  return (
    <div className="grid">
      {message && <p role="status" className="card">{message}</p>}
      <section className="card wide" aria-label={t("admin.users")}>
        <h2>{t("admin.users")}</h2>
        <form className="row" onSubmit={searchUsers} role="search" aria-label={t("admin.findUser")}>
          <label>{t("admin.nameOrUsername")}<input value={query} maxLength={64} onChange={(e) => setQuery(e.target.value)} /></label>
          <button type="submit">{t("admin.find")}</button>
        </form>
        {users?.length === 0 && <p className="muted">{t("admin.nobody")}</p>}
        {users && users.length > 0 && (
          <div className="table-scroll">
            <table>
              <thead><tr><th>{t("admin.user")}</th><th>{t("admin.role")}</th><th>{t("wallet.balance")}</th><th /></tr></thead>
              <tbody>
                {users.map((u) => (
                  <tr key={u.id} data-testid="user-row">
                    <td><strong>{u.display_name}</strong> <span className="muted">@{u.username} · #{u.id}{u.frozen ? ` · ${t("admin.frozen")}` : ""}</span></td>
                    <td>{t(`role.${u.role}`)}</td>
                    <td>{u.balance === null ? "—" : formatCoins(u.balance)}</td>
                    <td className="row">
                      {u.role === "client" && (
                        <button type="button" className="secondary" onClick={() => setGrant({ ...EMPTY_GRANT, user_id: String(u.id) })}>
                          {t("admin.grantFor")}
                        </button>
                      )}
                      {u.role !== "admin" && (
                        <button type="button" className="secondary" onClick={() => setFilter({ ...filter, user_id: String(u.id) })}>
                          {t("admin.calls")}
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section className="card wide" aria-label={t("admin.calls")}>
        <h2>{t("admin.calls")}</h2>
        <div className="row filters">
          <label>{t("call.status")}
            <select value={filter.status} onChange={(e) => setFilter({ ...filter, status: e.target.value })}>
              {STATUSES.map((st) => <option key={st} value={st}>{st ? t(`status.${st}`) : t("admin.any")}</option>)}
            </select>
          </label>
          <label>{t("admin.userId")}<input inputMode="numeric" value={filter.user_id} onChange={(e) => setFilter({ ...filter, user_id: e.target.value })} /></label>
          <label>{t("admin.from")}<input type="date" value={filter.since} onChange={(e) => setFilter({ ...filter, since: e.target.value })} /></label>
          <label>{t("admin.to")}<input type="date" value={filter.until} onChange={(e) => setFilter({ ...filter, until: e.target.value })} /></label>
        </div>
        {calls.error && <p role="alert" className="error">{calls.error}</p>}
        {calls.data?.items.length === 0 && <p className="muted">{t("admin.noCalls")}</p>}
        <div className="table-scroll">
        <table>
          <thead>
            <tr><th>{t("history.call")}</th><th>{t("admin.client")}</th><th>{t("admin.host")}</th><th>{t("call.status")}</th><th>{t("admin.billed")}</th><th>{t("history.charged")}</th><th>{t("admin.refundedColumn")}</th><th /></tr>
          </thead>
          <tbody>
            {calls.data?.items.map((c) => (
              <tr key={c.id} data-testid="call-row">
                <td>#{c.id}<br /><span className="muted small">{new Date(c.created_at).toLocaleString(currentLocale())}</span></td>
                <td>{calls.data?.names[c.client_id] ?? "—"} <span className="muted">#{c.client_id}</span></td>
                <td>{calls.data?.names[c.host_id] ?? "—"} <span className="muted">#{c.host_id}</span></td>
                <td>{c.status === "ended" ? t("admin.endedWhy", { reason: describeEndReason(c.end_reason) }) : t(`status.${c.status}`)}</td>
                <td>{formatDuration(c.billed_seconds)}</td><td>{formatCoins(c.charged)}</td><td>{formatCoins(c.refunded)}</td>
                <td>
                  {c.status !== "ended" && (
                    <button type="button" className="danger" onClick={() => void endCall(c.id)}
                      aria-label={t("admin.forceEndCall", { id: c.id })}>{t("admin.forceEnd")}</button>
                  )}
                  {c.status === "ended" && c.charged > c.refunded && (
                    <button type="button" className="secondary" aria-label={t("admin.refundCall", { id: c.id })}
                      onClick={() => setRefund({ ...EMPTY_REFUND, call_id: String(c.id) })}>{t("admin.refundFor")}</button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        </div>
      </section>
      <form className="card" onSubmit={submitGrant} aria-label={t("admin.grantCoins")}>
        <h2>{t("admin.grantCoins")}</h2>
        <label>{t("admin.clientUserId")}<input required inputMode="numeric" value={grant.user_id}
          onChange={(e) => setGrant({ ...grant, user_id: e.target.value })} /></label>
        <label>{t("admin.amount")}<input required inputMode="numeric" value={grant.amount}
          onChange={(e) => setGrant({ ...grant, amount: e.target.value })} /></label>
        <label>{t("admin.note")}<input value={grant.note} maxLength={500}
          onChange={(e) => setGrant({ ...grant, note: e.target.value })} /></label>
        <button type="submit" disabled={sending === "grant"}>{sending === "grant" ? t("admin.granting") : t("admin.grant")}</button>
      </form>
      <form className="card" onSubmit={submitRefund} aria-label={t("admin.refundACall")}>
        <h2>{t("admin.refundACall")}</h2>
        <label>{t("admin.callId")}<input required inputMode="numeric" value={refund.call_id}
          onChange={(e) => setRefund({ ...refund, call_id: e.target.value })} /></label>
        <label>{t("admin.refundAmount")}<input inputMode="numeric" value={refund.amount}
          onChange={(e) => setRefund({ ...refund, amount: e.target.value })} /></label>
        <label>{t("admin.reason")}<input required maxLength={500} value={refund.reason}
          onChange={(e) => setRefund({ ...refund, reason: e.target.value })} /></label>
        <button type="submit" disabled={sending === "refund"}>{sending === "refund" ? t("admin.refunding") : t("admin.refund")}</button>
      </form>
      <section className="card" aria-label={t("admin.ledgerCheck")}>
        <h2>{t("admin.ledgerCheck")}</h2>
        <button type="button" onClick={() => void runCheck()}>{t("admin.runCheck")}</button>
        {check && (
          <>
            <p data-testid="ledger-ok" className={check.ok ? "ok" : "error"}>
              {check.ok ? t("admin.invariantsHold") : t("admin.problems")}
            </p>
            <ul>{check.problems.map((p) => <li key={p}>{p}</li>)}</ul>
            <dl className="stats">
              {Object.entries(check.totals).map(([k, v]) => (
                <div key={k}><dt>{totalName(k)}</dt><dd>{v.toLocaleString(currentLocale())}</dd></div>
              ))}
            </dl>
          </>
        )}
      </section>
      <section className="card" aria-label={t("admin.payoutsToReview")}>
        <h2>{t("admin.payoutsToReview")}</h2>
        {toReview.error && <p role="alert" className="error">{toReview.error}</p>}
        {toReview.data && (
          <p data-testid="payouts-to-review">
            {toReview.data.next_before !== null
              ? t("admin.waitingMore", { count: toReview.data.items.length })
              : t("admin.waiting", { count: toReview.data.items.length })}
          </p>
        )}
        <p className="actions"><Link to="/admin/payouts" className="button secondary">{t("admin.openQueue")}</Link></p>
      </section>
    </div>
  );
}
