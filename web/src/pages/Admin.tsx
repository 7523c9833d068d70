import { useRef, useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { ApiError, friendlyMessage, request, type CallsPage } from "../api";
import { IntentKeys } from "../coins";
import { useAuth } from "../auth";
import { formatCoins, formatDuration } from "../format";
import { useResource } from "../hooks";
import type { ReviewPage } from "../payouts";

interface LedgerCheck {
  ok: boolean;
  problems: string[];
  totals: Record<string, number>;
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
export function callsQuery(filter: { status: string; user_id: string; since: string; until: string }): string {
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
      return `Call #${id} ended; charged ${formatCoins(out.call.charged)}.`;
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
      return `Granted ${formatCoins(Number(amount))} to user #${user_id}.`;
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
      return `Refunded ${formatCoins(out.refunded)} on call #${call_id}.`;
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
      return result.ok ? "Ledger check passed." : `Ledger check found ${result.problems.length} problem(s).`;
    });

  return (
    <div className="grid">
      {message && <p role="status" className="card">{message}</p>}
      <section className="card wide" aria-label="Users">
        <h2>Users</h2>
        <form className="row" onSubmit={searchUsers} role="search" aria-label="Find a user">
          <label>Name or username<input value={query} maxLength={64} onChange={(e) => setQuery(e.target.value)} /></label>
          <button type="submit">Find</button>
        </form>
        {users?.length === 0 && <p className="muted">Nobody matches.</p>}
        {users && users.length > 0 && (
          <div className="table-scroll">
            <table>
              <thead><tr><th>User</th><th>Role</th><th>Balance</th><th /></tr></thead>
              <tbody>
                {users.map((u) => (
                  <tr key={u.id} data-testid="user-row">
                    <td><strong>{u.display_name}</strong> <span className="muted">@{u.username} · #{u.id}{u.frozen ? " · frozen" : ""}</span></td>
                    <td>{u.role}</td>
                    <td>{u.balance === null ? "—" : formatCoins(u.balance)}</td>
                    <td className="row">
                      {u.role === "client" && (
                        <button type="button" className="secondary" onClick={() => setGrant({ ...EMPTY_GRANT, user_id: String(u.id) })}>
                          Grant…
                        </button>
                      )}
                      {u.role !== "admin" && (
                        <button type="button" className="secondary" onClick={() => setFilter({ ...filter, user_id: String(u.id) })}>
                          Calls
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
      <section className="card wide" aria-label="Calls">
        <h2>Calls</h2>
        <div className="row filters">
          <label>Status
            <select value={filter.status} onChange={(e) => setFilter({ ...filter, status: e.target.value })}>
              {STATUSES.map((st) => <option key={st} value={st}>{st || "any"}</option>)}
            </select>
          </label>
          <label>User id<input inputMode="numeric" value={filter.user_id} onChange={(e) => setFilter({ ...filter, user_id: e.target.value })} /></label>
          <label>From<input type="date" value={filter.since} onChange={(e) => setFilter({ ...filter, since: e.target.value })} /></label>
          <label>To<input type="date" value={filter.until} onChange={(e) => setFilter({ ...filter, until: e.target.value })} /></label>
        </div>
        {calls.error && <p role="alert" className="error">{calls.error}</p>}
        {calls.data?.items.length === 0 && <p className="muted">No calls.</p>}
        <div className="table-scroll">
        <table>
          <thead>
            <tr><th>Call</th><th>Client</th><th>Host</th><th>Status</th><th>Billed</th><th>Charged</th><th>Refunded</th><th /></tr>
          </thead>
          <tbody>
            {calls.data?.items.map((c) => (
              <tr key={c.id} data-testid="call-row">
                <td>#{c.id}<br /><span className="muted small">{new Date(c.created_at).toLocaleString()}</span></td>
                <td>{calls.data?.names[c.client_id] ?? "—"} <span className="muted">#{c.client_id}</span></td>
                <td>{calls.data?.names[c.host_id] ?? "—"} <span className="muted">#{c.host_id}</span></td>
                <td>{c.status === "ended" ? `ended (${c.end_reason ?? ""})` : c.status}</td>
                <td>{formatDuration(c.billed_seconds)}</td><td>{formatCoins(c.charged)}</td><td>{formatCoins(c.refunded)}</td>
                <td>
                  {c.status !== "ended" && (
                    <button type="button" className="danger" onClick={() => void endCall(c.id)}
                      aria-label={`Force end call ${c.id}`}>Force end</button>
                  )}
                  {c.status === "ended" && c.charged > c.refunded && (
                    <button type="button" className="secondary" aria-label={`Refund call ${c.id}`}
                      onClick={() => setRefund({ ...EMPTY_REFUND, call_id: String(c.id) })}>Refund…</button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        </div>
      </section>
      <form className="card" onSubmit={submitGrant} aria-label="Grant coins">
        <h2>Grant coins</h2>
        <label>Client user id<input required inputMode="numeric" value={grant.user_id}
          onChange={(e) => setGrant({ ...grant, user_id: e.target.value })} /></label>
        <label>Amount<input required inputMode="numeric" value={grant.amount}
          onChange={(e) => setGrant({ ...grant, amount: e.target.value })} /></label>
        <label>Note<input value={grant.note} maxLength={500}
          onChange={(e) => setGrant({ ...grant, note: e.target.value })} /></label>
        <button type="submit" disabled={sending === "grant"}>{sending === "grant" ? "Granting…" : "Grant"}</button>
      </form>
      <form className="card" onSubmit={submitRefund} aria-label="Refund a call">
        <h2>Refund a call</h2>
        <label>Call id<input required inputMode="numeric" value={refund.call_id}
          onChange={(e) => setRefund({ ...refund, call_id: e.target.value })} /></label>
        <label>Amount (empty: all that is left)<input inputMode="numeric" value={refund.amount}
          onChange={(e) => setRefund({ ...refund, amount: e.target.value })} /></label>
        <label>Reason<input required maxLength={500} value={refund.reason}
          onChange={(e) => setRefund({ ...refund, reason: e.target.value })} /></label>
        <button type="submit" disabled={sending === "refund"}>{sending === "refund" ? "Refunding…" : "Refund"}</button>
      </form>
      <section className="card" aria-label="Ledger check">
        <h2>Ledger check</h2>
        <button type="button" onClick={() => void runCheck()}>Run ledger check</button>
        {check && (
          <>
            <p data-testid="ledger-ok" className={check.ok ? "ok" : "error"}>
              {check.ok ? "Every invariant holds." : "Problems found:"}
            </p>
            <ul>{check.problems.map((p) => <li key={p}>{p}</li>)}</ul>
            <dl className="stats">
              {Object.entries(check.totals).map(([k, v]) => (
                <div key={k}><dt>{k}</dt><dd>{v.toLocaleString("en-US")}</dd></div>
              ))}
            </dl>
          </>
        )}
      </section>
      <section className="card" aria-label="Payouts to review">
        <h2>Payouts to review</h2>
        {toReview.error && <p role="alert" className="error">{toReview.error}</p>}
        {toReview.data && (
          <p data-testid="payouts-to-review">
            {toReview.data.items.length === 0
              ? "No payout requests are waiting."
              : `${toReview.data.items.length}${toReview.data.next_before !== null ? "+" : ""} payout ${toReview.data.items.length === 1 ? "request is" : "requests are"} waiting for review.`}
          </p>
        )}
        <p className="actions"><Link to="/admin/payouts" className="button secondary">Open the payouts queue</Link></p>
      </section>
    </div>
  );
}
