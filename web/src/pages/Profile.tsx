/** A host's profile: what clients see before they call. */
import { useEffect, useState, type ChangeEvent, type FormEvent } from "react";
import { friendlyMessage, request, type Host } from "../api";
import { useAuth } from "../auth";

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
      setMessage("Profile saved.");
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
      setMessage("Choose a JPEG, PNG or WebP picture.");
      return;
    }
    if (file.size > MAX_PICTURE_BYTES) {
      setMessage("The picture is larger than 2 MB.");
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
      setMessage("Picture saved.");
    } catch {
      setMessage("The picture could not be used. Try another one.");
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-label="Profile">
      <h2>Profile</h2>
      <div className="profile-head">
        {me.avatar_url ? <img className="avatar" src={me.avatar_url} alt="" /> : <span className="avatar empty" aria-hidden="true" />}
        <label className="button secondary file">
          {me.avatar_url ? "Change picture" : "Add a picture"}
          <input type="file" accept="image/jpeg,image/png,image/webp" onChange={(e) => void upload(e)} disabled={busy} />
        </label>
      </div>
      <form onSubmit={save}>
        <label>Display name<input required maxLength={64} value={form.display_name}
          onChange={(e) => setForm({ ...form, display_name: e.target.value })} /></label>
        <label>About you<textarea maxLength={1000} rows={3} value={form.bio}
          onChange={(e) => setForm({ ...form, bio: e.target.value.replace(/\n/g, " ") })} /></label>
        <label>Languages (two-letter codes: es, en)<input value={form.languages}
          onChange={(e) => setForm({ ...form, languages: e.target.value })} /></label>
        <label>Topics (comma-separated)<input value={form.tags}
          onChange={(e) => setForm({ ...form, tags: e.target.value })} /></label>
        <button type="submit" disabled={busy}>Save profile</button>
      </form>
      {message && <p role="status">{message}</p>}
    </section>
  );
}
