import type { CallsPage } from "../api";
import { useAuth } from "../auth";
import { describeEndReason, formatCoins, formatDuration } from "../format";
import { useResource } from "../hooks";

export function HistoryPage() {
  const { user } = useAuth();
  const { data, error } = useResource<CallsPage>("/v1/calls?limit=50");
  const isHost = user.role === "host";
  return (
    <section className="card" aria-label="Call history">
      <h2>Call history</h2>
      {error && <p role="alert" className="error">{error}</p>}
      {data?.items.length === 0 && <p className="muted">No calls yet.</p>}
      <div className="table-scroll">
      <table>
        <thead>
          <tr><th>Call</th><th>With</th><th>Talk started</th><th>Duration</th><th>{isHost ? "Earned" : "Charged"}</th><th>Ended because</th></tr>
        </thead>
        <tbody>
          {data?.items.map((c) => (
            <tr key={c.id}>
              <td>#{c.id}</td>
              <td>{data.names[isHost ? c.client_id : c.host_id] ?? "—"}</td>
              <td>{c.started_at ? new Date(c.started_at).toLocaleString() : "—"}</td>
              <td>{formatDuration(c.billed_seconds)}</td>
              <td>{formatCoins(isHost ? c.host_earned : c.charged)}</td>
              <td>{c.status === "ended" ? describeEndReason(c.end_reason) : c.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
      </div>
    </section>
  );
}
