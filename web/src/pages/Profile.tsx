/** A host's profile: what clients see before they call. */
import { useEffect, useState, type ChangeEvent, type FormEvent } from "react";
import { friendlyMessage, request, type Host } from "../api";
import { useAuth } from "../auth";
import { useT } from "../i18n";

/** "es, EN , pt" → ["es", "en", "pt"]; the server checks each is a two-letter code. */
export function splitList(text: string, lower = false): string[] {
  return text
    .split(",")
    .map((part) => (lower ? part.trim().toLowerCase() : part.trim()))
    .filter(Boolean);
}

const MAX_PICTURE_BYTES = 2 * 1024 * 1024;

export function ProfileCard({ me, saved }: { me: Host; saved: () => Promise<void> }) {
  const { token } = useAuth();
  const t = useT();
  const [form, setForm] = useState({ display_name: "", bio: "", languages: "", tags: "" });
  const [message, setMessage] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    setForm({
      display_name: me.display_name,
      bio: me.bio,
      languages: me.languages.join(", "),
      tags: me.tags.join(", "),
    });
  }, [me.display_name, me.bio, me.languages, me.tags]);

  async function save(event: FormEvent) {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setMessage("");
    try {
      await request<Host>("/v1/hosts/me", {
        method: "PUT",
        token,
        body: {
          display_name: form.display_name,
          bio: form.bio,
          languages: splitList(form.languages, true),
          tags: splitList(form.tags),
        },
      });
      await saved();
      setMessage(t("profile.saved"));
    } catch (e) {
      setMessage(friendlyMessage(e));
    } finally {
      setBusy(false);
    }
  }

  async function upload(event: ChangeEvent<HTMLInputElement>) {
    const file = event.target.files?.[0];
    event.target.value = "";
    if (!file) return;
    setMessage("");
    if (!["image/jpeg", "image/png", "image/webp"].includes(file.type)) {
      setMessage(t("profile.pictureType"));
      return;
    }
    if (file.size > MAX_PICTURE_BYTES) {
      setMessage(t("profile.pictureSize"));
      return;
    }
    setBusy(true);
    try {
      const response = await fetch("/v1/hosts/me/avatar", {
        method: "PUT",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": file.type },
        body: file,
      });
      if (!response.ok) throw new Error(String(response.status));
      await saved();
      setMessage(t("profile.pictureSaved"));
    } catch {
      setMessage(t("profile.pictureFailed"));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-label={t("profile.title")}>
      <h2>{t("profile.title")}</h2>
      <div className="profile-head">
        {me.avatar_url ? <img className="avatar" src={me.avatar_url} alt="" /> : <span className="avatar empty" aria-hidden="true" />}
        <label className="button secondary file">
          {me.avatar_url ? t("profile.changePicture") : t("profile.addPicture")}
          <input type="file" accept="image/jpeg,image/png,image/webp" onChange={(e) => void upload(e)} disabled={busy} />
        </label>
      </div>
      <form onSubmit={save}>
        <label>{t("profile.displayName")}<input required maxLength={64} value={form.display_name}
          onChange={(e) => setForm({ ...form, display_name: e.target.value })} /></label>
        <label>{t("profile.about")}<textarea maxLength={1000} rows={3} value={form.bio}
          onChange={(e) => setForm({ ...form, bio: e.target.value.replace(/\n/g, " ") })} /></label>
        <label>{t("profile.languages")}<input value={form.languages}
          onChange={(e) => setForm({ ...form, languages: e.target.value })} /></label>
        <label>{t("profile.topics")}<input value={form.tags}
          onChange={(e) => setForm({ ...form, tags: e.target.value })} /></label>
        <button type="submit" disabled={busy}>{t("profile.save")}</button>
      </form>
      {message && <p role="status">{message}</p>}
    </section>
  );
}
