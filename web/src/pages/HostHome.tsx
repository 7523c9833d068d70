import { useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { friendlyMessage, request, type Host, type Wallet } from "../api";
import { useAuth } from "../auth";
import { formatRate } from "../format";
import { useResource } from "../hooks";
import { ProfileCard } from "./Profile";
import { Statement, WalletCard } from "./Wallet";

export function HostHome() {
  const { token, user } = useAuth();
  const earnings = useResource<Wallet>("/v1/wallet", 5000);
  const hosts = useResource<Host[]>("/v1/hosts");
  const me = hosts.data?.find((h) => h.id === user.id);
  const [rate, setRate] = useState("");
  const [message, setMessage] = useState("");
  const [notifications, setNotifications] = useState(() =>
    typeof Notification === "undefined" ? "unsupported" : Notification.permission,
  );

  async function askNotifications() {
    setNotifications(await Notification.requestPermission());
  }

  async function update(body: { rate?: number; accepting_calls?: boolean }) {
    setMessage("");
    try {
      await request<Host>("/v1/hosts/me", { method: "PUT", token, body });
      await hosts.refresh();
      setMessage("Saved.");
    } catch (e) {
      setMessage(friendlyMessage(e));
    }
  }

  function submitRate(event: FormEvent) {
    event.preventDefault();
    const value = Number(rate);
    if (!Number.isInteger(value) || value <= 0) {
      setMessage("The rate is a whole number of coins.");
      return;
    }
    void update({ rate: value });
  }

  return (
    <div className="grid">
      <WalletCard title="Earnings" wallet={earnings.data}
        action={<Link to="/earnings" className="button secondary">Withdraw earnings</Link>} />
      <section className="card" aria-label="Availability">
        <h2>Availability</h2>
        {me && (
          <>
            <p data-testid="my-presence">
              {me.presence === "away" ? "You are away: clients cannot call you." : "You are online while a page of yours is open: clients can call you."}
            </p>
            {notifications === "default" && (
              <button type="button" className="secondary" onClick={() => void askNotifications()}>
                Notify me of incoming calls
              </button>
            )}
            <label className="inline">
              <input type="checkbox" checked={me.accepting_calls}
                onChange={(e) => void update({ accepting_calls: e.target.checked })} />
              Accepting calls
            </label>
            <form onSubmit={submitRate} className="row">
              <label>
                Rate (coins per {me.interval_seconds === 60 ? "minute" : `${me.interval_seconds} s`})
                <input name="rate" inputMode="numeric" placeholder={String(me.rate)} value={rate}
                  onChange={(e) => setRate(e.target.value)} />
              </label>
              <button type="submit">Save rate</button>
            </form>
            <p className="muted">Current rate: {formatRate(me.rate, me.interval_seconds)}.</p>
          </>
        )}
        {message && <p role="status">{message}</p>}
      </section>
      {me && <ProfileCard me={me} saved={hosts.refresh} />}
      <Statement />
    </div>
  );
}
