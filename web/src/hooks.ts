import { useCallback, useEffect, useState } from "react";
import { friendlyMessage, request } from "./api";
import { useAuth } from "./App";

/** GET `path` now and whenever `refresh()` is called (or every `everyMs`). */
export function useResource<T>(path: string | null, everyMs?: number) {
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
