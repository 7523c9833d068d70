import { useRef, useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { ApiError, friendlyMessage, request, type Call } from "../api";
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

export function AdminPage() {
  const { token } = useAuth();
  const live = useResource<{ items: Call[] }>("/v1/admin/calls?status=active", 2000);
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
      const out = await request<{ call: Call }>(`/v1/admin/calls/${id}/end`, { token, method: "POST" });
      await live.refresh();
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

  const runCheck = () =>
    act(async () => {
      const result = await request<LedgerCheck>("/v1/admin/ledger/check", { token });
      setCheck(result);
      return result.ok ? "Ledger check passed." : `Ledger check found ${result.problems.length} problem(s).`;
    });

  return (
    <div className="grid">
      {message && <p role="status" className="card">{message}</p>}
      <section className="card wide" aria-label="Live calls">
        <h2>Live calls</h2>
        {live.data?.items.length === 0 && <p className="muted">No calls in progress.</p>}
        <div className="table-scroll">
        <table>
          <thead>
            <tr><th>Call</th><th>Client</th><th>Host</th><th>Billed</th><th>Charged</th><th>Held</th><th /></tr>
          </thead>
          <tbody>
            {live.data?.items.map((c) => (
              <tr key={c.id}>
                <td>#{c.id}</td><td>#{c.client_id}</td><td>#{c.host_id}</td>
                <td>{formatDuration(c.billed_seconds)}</td><td>{formatCoins(c.charged)}</td><td>{formatCoins(c.held)}</td>
                <td><button type="button" className="danger" onClick={() => void endCall(c.id)}
                  aria-label={`Force end call ${c.id}`}>Force end</button></td>
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
