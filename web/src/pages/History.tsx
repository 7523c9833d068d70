import type { Call } from "../api";
import { useAuth } from "../auth";
import { describeEndReason, formatCoins, formatDuration } from "../format";
import { useResource } from "../hooks";

export function HistoryPage() {
  const { user } = useAuth();
  const { data, error } = useResource<{ items: Call[] }>("/v1/calls?limit=50");
  return (
    <section className="card" aria-label="Call history">
      <h2>Call history</h2>
      {error && <p role="alert" className="error">{error}</p>}
      {data?.items.length === 0 && <p className="muted">No calls yet.</p>}
      <table>
        <thead>
          <tr><th>Call</th><th>Started</th><th>Duration</th><th>{user.role === "host" ? "Earned" : "Charged"}</th><th>Ended because</th></tr>
        </thead>
        <tbody>
          {data?.items.map((c) => (
            <tr key={c.id}>
              <td>#{c.id}</td>
              <td>{new Date(c.created_at).toLocaleString()}</td>
              <td>{formatDuration(c.billed_seconds)}</td>
              <td>{formatCoins(user.role === "host" ? c.host_earned : c.charged)}</td>
              <td>{c.status === "ended" ? describeEndReason(c.end_reason) : c.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
