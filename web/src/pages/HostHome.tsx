import { useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { friendlyMessage, request, type Host, type Wallet } from "../api";
import { useAuth } from "../auth";
import { formatRate } from "../format";
import { useResource } from "../hooks";
import { ProfileCard } from "./Profile";
import { Statement, WalletCard } from "./Wallet";
import { useT } from "../i18n";

export function HostHome() {
  const t = useT();
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
      setMessage(t("host.saved"));
    } catch (e) {
      setMessage(friendlyMessage(e));
    }
  }

  function submitRate(event: FormEvent) {
    event.preventDefault();
    const value = Number(rate);
    if (!Number.isInteger(value) || value <= 0) {
      setMessage(t("host.rateWhole"));
      return;
    }
    void update({ rate: value });
  }

  return (
    <div className="grid">
      <WalletCard title={t("wallet.earnings")} wallet={earnings.data}
        action={<Link to="/earnings" className="button secondary">{t("host.withdraw")}</Link>} />
      <section className="card" aria-label={t("host.availability")}>
        <h2>{t("host.availability")}</h2>
        {me && (
          <>
            <p data-testid="my-presence">
              {me.presence === "away" ? t("host.away") : t("host.online")}
            </p>
            {notifications === "default" && (
              <button type="button" className="secondary" onClick={() => void askNotifications()}>
                {t("host.notify")}
              </button>
            )}
            <label className="inline">
              <input type="checkbox" checked={me.accepting_calls}
                onChange={(e) => void update({ accepting_calls: e.target.checked })} />
              {t("host.accepting")}
            </label>
            <form onSubmit={submitRate} className="row">
              <label>
                {t("host.rateLabel", { per: me.interval_seconds === 60 ? t("host.perMinute") : t("host.perSeconds", { seconds: me.interval_seconds }) })}
                <input name="rate" inputMode="numeric" placeholder={String(me.rate)} value={rate}
                  onChange={(e) => setRate(e.target.value)} />
              </label>
              <button type="submit">{t("host.saveRate")}</button>
            </form>
            <p className="muted">{t("host.currentRate", { rate: formatRate(me.rate, me.interval_seconds) })}</p>
          </>
        )}
        {message && <p role="status">{message}</p>}
      </section>
      {me && <ProfileCard me={me} saved={hosts.refresh} />}
      <Statement />
    </div>
  );
}
