import { useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { ApiError, friendlyMessage, request, type ApiUrl, type Call, type Host, type Media, type Wallet } from "../api";
import { useAuth } from "../auth";
import { formatRate } from "../format";
import { useResource } from "../hooks";
import { saveMedia } from "../session";
import { useT, type MessageId } from "../i18n";
import { Statement, WalletCard } from "./Wallet";

const LANGUAGES: [string, string][] = [["es", "Español"], ["en", "English"], ["pt", "Português"], ["fr", "Français"], ["de", "Deutsch"], ["it", "Italiano"]];

/** The host list, narrowed as the client asks (the server filters). */
export function hostsQuery(search: { q: string; language: string; tag: string }): ApiUrl {
  const params = new URLSearchParams();
  if (search.q.trim()) params.set("q", search.q.trim());
  if (search.language) params.set("language", search.language);
  if (search.tag.trim()) params.set("tag", search.tag.trim());
  const query = params.toString();
  return query ? `/v1/hosts?${query}` : "/v1/hosts";
}

const PRESENCE = {
  online: "presence.online",
  busy: "presence.busy",
  away: "presence.away",
  offline: "presence.offline",
} as const satisfies Record<Host["presence"], MessageId>;

export function ClientHome() {
  const t = useT();
  const { token } = useAuth();
  const navigate = useNavigate();
  const wallet = useResource<Wallet>("/v1/wallet", 5000);
  const [search, setSearch] = useState({ q: "", language: "", tag: "" });
  const hosts = useResource<Host[]>(hostsQuery(search), 5000);
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
      <WalletCard wallet={wallet.data} action={<Link to="/coins" className="button">{t("nav.buyCoins")}</Link>} />
      <section className="card" aria-label={t("hosts.title")}>
        <h2>{t("hosts.title")}</h2>
        {error && (
          <p role="alert" className="error">
            {error}
            {needsCoins && <> <Link to="/coins">{t("nav.buyCoins")}</Link></>}
          </p>
        )}
        <div className="row filters" role="search" aria-label={t("hosts.find")}>
          <label>{t("hosts.search")}<input value={search.q} maxLength={64} onChange={(e) => setSearch({ ...search, q: e.target.value })} /></label>
          <label>{t("hosts.language")}
            <select value={search.language} onChange={(e) => setSearch({ ...search, language: e.target.value })}>
              <option value="">{t("hosts.anyLanguage")}</option>
              {LANGUAGES.map(([code, name]) => <option key={code} value={code}>{name}</option>)}
            </select>
          </label>
          <label>{t("hosts.topic")}<input value={search.tag} maxLength={24} onChange={(e) => setSearch({ ...search, tag: e.target.value })} /></label>
        </div>
        {hosts.data?.length === 0 && <p className="muted">{t("hosts.none")}</p>}
        <ul className="hosts">
          {hosts.data?.map((h) => (
            <li key={h.id} data-testid="host">
              {h.avatar_url ? <img className="avatar" src={h.avatar_url} alt="" /> : <span className="avatar empty" aria-hidden="true" />}
              <span className="host-info">
                <strong>{h.display_name}</strong>
                <span className="muted"> · {formatRate(h.rate, h.interval_seconds)}</span>
                {h.bio && <span className="bio">{h.bio}</span>}
                {(h.languages.length > 0 || h.tags.length > 0) && (
                  <span className="muted small">{[...h.languages.map((l) => l.toUpperCase()), ...h.tags].join(" · ")}</span>
                )}
              </span>
              <span className={h.presence === "online" ? "badge on" : "badge off"} data-testid={`presence-${h.id}`}>
                {t(PRESENCE[h.presence])}
              </span>
              <button type="button" disabled={h.presence !== "online"} onClick={() => void callHost(h)}
                aria-label={t("hosts.callName", { name: h.display_name })}>
                {t("hosts.call")}
              </button>
            </li>
          ))}
        </ul>
      </section>
      <Statement />
    </div>
  );
}
