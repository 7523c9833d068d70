import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router-dom";
import { friendlyMessage, request, type Call, type Host, type Media, type Wallet } from "../api";
import { useAuth } from "../App";
import { formatCoins } from "../format";
import { useResource } from "../hooks";
import { saveMedia } from "../session";
import { Entries, WalletCard } from "./Wallet";

export function HostHome() {
  const { token, user } = useAuth();
  const navigate = useNavigate();
  const earnings = useResource<Wallet>("/v1/wallet", 5000);
  const hosts = useResource<Host[]>("/v1/hosts");
  // An incoming call is the newest call of ours that is ringing.
  const calls = useResource<{ items: Call[] }>("/v1/calls?limit=5", 1500);
  const me = hosts.data?.find((h) => h.id === user.id);
  const [rate, setRate] = useState("");
  const [message, setMessage] = useState("");
  const ringing = calls.data?.items.find((c) => c.status === "ringing" && c.host_id === user.id);

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

  async function answer(call: Call, accept: boolean) {
    try {
      if (accept) {
        const out = await request<{ call: Call; media: Media }>(`/v1/calls/${call.id}/accept`, { token, method: "POST" });
        saveMedia(call.id, out.media);
        navigate(`/calls/${call.id}`);
      } else {
        await request(`/v1/calls/${call.id}/decline`, { token, method: "POST" });
        await calls.refresh();
      }
    } catch (e) {
      setMessage(friendlyMessage(e));
      await calls.refresh();
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
      {ringing && (
        <section className="card ringing" role="alertdialog" aria-label="Incoming call">
          <h2>Incoming call</h2>
          <p>A client is calling at {formatCoins(ringing.rate)} per {ringing.interval_seconds} s.</p>
          <div className="row">
            <button type="button" onClick={() => void answer(ringing, true)}>Accept</button>
            <button type="button" className="secondary" onClick={() => void answer(ringing, false)}>Decline</button>
          </div>
        </section>
      )}
      <WalletCard title="Earnings" wallet={earnings.data}
        action={<Link to="/earnings" className="button secondary">Withdraw earnings</Link>} />
      <section className="card" aria-label="Availability">
        <h2>Availability</h2>
        {me && (
          <>
            <label className="inline">
              <input type="checkbox" checked={me.accepting_calls}
                onChange={(e) => void update({ accepting_calls: e.target.checked })} />
              Accepting calls
            </label>
            <form onSubmit={submitRate} className="row">
              <label>
                Rate (coins per interval)
                <input name="rate" inputMode="numeric" placeholder={String(me.rate)} value={rate}
                  onChange={(e) => setRate(e.target.value)} />
              </label>
              <button type="submit">Save rate</button>
            </form>
            <p className="muted">Current rate: {formatCoins(me.rate)} per interval.</p>
          </>
        )}
        {message && <p role="status">{message}</p>}
      </section>
      <Entries />
    </div>
  );
}
