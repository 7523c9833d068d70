import { useCallback, useEffect, useRef, useState } from "react";
import { friendlyMessage, request, withQuery, type ApiUrl } from "./api";
import { useAuth } from "./auth";

/** GET `path` now and whenever `refresh()` is called (or every `everyMs`). */
export function useResource<T>(path: ApiUrl | null, everyMs?: number) {
  const { token } = useAuth();
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState("");
  const refresh = useCallback(async () => {
    if (!path) return;
    try {
      setData(await request<T>(path, { token }));
      setError("");
    } catch (e) {
      setError(friendlyMessage(e));
    }
  }, [path, token]);
  useEffect(() => {
    void refresh();
    if (!everyMs) return;
    const timer = setInterval(() => void refresh(), everyMs);
    return () => clearInterval(timer);
  }, [refresh, everyMs]);
  return { data, error, refresh };
}

/** A clock for display only (countdowns); never used for money. */
export function useNow(everyMs = 500): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

/** A list read newest first, a page at a time: the first page (refreshed by its owner) and
 * the older pages "Show older" loaded after it, without repeats. `errorText` words a
 * failure to load an older page. */
export function useOlderPages<T extends { id: number }>(
  first: { data: { items: T[]; next_before: number | null } | null },
  path: ApiUrl,
  errorText: (e: unknown) => string = friendlyMessage,
) {
  const { token } = useAuth();
  const [older, setOlder] = useState<T[]>([]);
  const [cursor, setCursor] = useState<number | null | undefined>(undefined); // undefined: from the first page
  const [error, setError] = useState("");
  const next = cursor === undefined ? first.data?.next_before ?? null : cursor;

  // The first page is read again now and then; when new items pushed some of it past its
  // end, the older pages loaded before would leave a gap: read them again from its end.
  const firstEnd = first.data?.next_before;
  const loaded = useRef(0);
  loaded.current = older.length;
  useEffect(() => {
    if (firstEnd === undefined || firstEnd === null || loaded.current === 0) return;
    let stale = false;
    const limit = Math.min(200, loaded.current);
    request<{ items: T[]; next_before: number | null }>(
      withQuery(path, `limit=${limit}&before=${firstEnd}`), { token },
    )
      .then((page) => {
        if (stale) return;
        setOlder(page.items);
        setCursor(page.next_before);
      })
      .catch(() => {
        /* the next "Show older" reads on from where the list ends */
      });
    return () => {
      stale = true;
    };
  }, [firstEnd, path, token]);

  async function loadMore() {
    if (next === null) return;
    try {
      const page = await request<{ items: T[]; next_before: number | null }>(
        withQuery(path, `limit=10&before=${next}`), { token },
      );
      setOlder((o) => [...o, ...page.items]);
      setCursor(page.next_before);
      setError("");
    } catch (e) {
      setError(errorText(e));
    }
  }

  const seen = new Set<number>();
  const items = [...(first.data?.items ?? []), ...older].filter((p) => !seen.has(p.id) && seen.add(p.id));
  return { items, next, loadMore, error };
}
