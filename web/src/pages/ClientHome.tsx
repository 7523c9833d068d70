import { useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { ApiError, friendlyMessage, request, type Call, type Host, type Media, type Wallet } from "../api";
import { useAuth } from "../auth";
import { formatRate } from "../format";
import { useResource } from "../hooks";
import { saveMedia } from "../session";
import { Statement, WalletCard } from "./Wallet";

const PRESENCE: Record<Host["presence"], string> = {
  online: "online",
  busy: "in a call",
  away: "away",
  offline: "offline",
};

export function ClientHome() {
  const { token } = useAuth();
  const navigate = useNavigate();
  const wallet = useResource<Wallet>("/v1/wallet", 5000);
  const hosts = useResource<Host[]>("/v1/hosts", 5000);
  const [error, setError] = useState("");
  const [needsCoins, setNeedsCoins] = useState(false);

  async function callHost(host: Host) {
    setError("");
    setNeedsCoins(false);
    try {
      // the rate shown is the rate agreed to: if the host changed it, the server refuses
      const body = { host_id: host.id, expected_rate: host.rate };
      const out = await request<{ call: Call; media: Media }>("/v1/calls", { token, body });
      saveMedia(out.call.id, out.media);
      navigate(`/calls/${out.call.id}`);
    } catch (e) {
      setError(friendlyMessage(e));
      setNeedsCoins(e instanceof ApiError && e.code === "insufficient_funds");
      void wallet.refresh();
      if (e instanceof ApiError && ["rate_changed", "host_offline", "host_unavailable", "host_busy"].includes(e.code)) {
        void hosts.refresh();
      }
    }
  }

  return (
    <div className="grid">
      <WalletCard wallet={wallet.data} action={<Link to="/coins" className="button">Buy coins</Link>} />
      <section className="card" aria-label="Hosts">
        <h2>Hosts</h2>
        {error && (
          <p role="alert" className="error">
            {error}
            {needsCoins && <> <Link to="/coins">Buy coins</Link></>}
          </p>
        )}
        {hosts.data?.length === 0 && <p className="muted">No hosts yet.</p>}
        <ul className="hosts">
          {hosts.data?.map((h) => (
            <li key={h.id}>
              <span>
                <strong>{h.display_name}</strong>
                <span className="muted"> · {formatRate(h.rate, h.interval_seconds)}</span>
              </span>
              <span className={h.presence === "online" ? "badge on" : "badge off"} data-testid={`presence-${h.id}`}>
                {PRESENCE[h.presence]}
              </span>
              <button type="button" disabled={h.presence !== "online"} onClick={() => void callHost(h)}
                aria-label={`Call ${h.display_name}`}>
                Call
              </button>
            </li>
          ))}
        </ul>
      </section>
      <Statement />
    </div>
  );
}
