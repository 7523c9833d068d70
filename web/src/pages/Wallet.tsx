import type { ReactNode } from "react";
import type { Entry, Wallet } from "../api";
import { entryKindLabel } from "../coins";
import { formatCoins, formatSignedCoins } from "../format";
import { useResource } from "../hooks";

export function WalletCard({ title = "Wallet", wallet, action }: { title?: string; wallet: Wallet | null; action?: ReactNode }) {
  return (
    <section className="card" aria-label={title}>
      <h2>{title}</h2>
      {wallet ? (
        <dl className="stats">
          <div><dt>Balance</dt><dd data-testid="balance">{formatCoins(wallet.balance)}</dd></div>
          <div><dt>Held</dt><dd data-testid="held">{formatCoins(wallet.held)}</dd></div>
          <div><dt>Available</dt><dd data-testid="available">{formatCoins(wallet.available)}</dd></div>
        </dl>
      ) : (
        <p className="muted">Loading…</p>
      )}
      {action && <p className="actions">{action}</p>}
    </section>
  );
}

export function Entries() {
  const { data, error } = useResource<{ items: Entry[] }>("/v1/wallet/entries?limit=10", 5000);
  return (
    <section className="card" aria-label="Recent entries">
      <h2>Recent entries</h2>
      {error && <p role="alert" className="error">{error}</p>}
      {data && data.items.length === 0 && <p className="muted">No entries yet.</p>}
      <ul className="entries">
        {data?.items.map((e) => (
          <li key={e.id}>
            <span>{entryKindLabel(e.kind)}{e.call_id ? ` · call ${e.call_id}` : ""}</span>
            <span className={e.amount < 0 ? "debit" : "credit"}>{formatSignedCoins(e.amount)}</span>
            <span className="muted">→ {formatCoins(e.balance_after)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}
