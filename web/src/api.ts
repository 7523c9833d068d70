/** The HTTP API: JSON in and out, errors as {error, detail} (plus a few structured fields). */

import type { components } from "./api.gen";
import { formatCoins } from "./format";
import { isMessageId, translate } from "./i18n";

// The API's shapes come from its OpenAPI document (`make api` regenerates src/api.gen.ts;
// `make test` fails when it is stale), so a field the server adds or renames breaks `tsc`.
type Schemas = components["schemas"];

export type Wallet = Schemas["WalletOut"];
export type User = Schemas["UserOut"];
export type Me = Schemas["MeOut"];
export type Call = Schemas["CallOut"];
export type Media = Schemas["MediaOut"];
export type Host = Schemas["HostOut"];
/** A page of calls, newest first, with the parties' display names by user id. */
export type CallsPage = Schemas["CallsPage"];
export type Entry = Schemas["EntryOut"];
/** A line of your statement: one event (a call's charge is one line, both its parts). */
export type StatementLine = Schemas["StatementLineOut"];
export type StatementPage = Schemas["StatementOut"];

/** Structured fields some errors carry next to `error` and `detail`. */
export interface ErrorFields {
  rate?: number; // rate_changed: the host's rate per interval now
  retry_after?: number; // ring_cooldown: seconds to wait
  matured?: number; // payout_exceeds_matured: coins withdrawable now
  maturing?: number; // payout_exceeds_matured: coins withdrawable later
  minimum?: number; // payout_below_minimum: the smallest payout
  pending?: number; // too_many_payouts: requests waiting for review
  field?: string; // validation_error: the first field the server refused
}

const NUMERIC_FIELDS = ["rate", "retry_after", "matured", "maturing", "minimum", "pending"] as const;

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    public detail: string,
    public fields: ErrorFields = {},
  ) {
    super(detail);
  }
}

/** What to fix, in a person's words, for the field the server refused (never its rule). */
function invalidField(field: string | undefined): string {
  const id = `field.${field?.split(".").pop() ?? ""}`;
  return translate(isMessageId(id) ? id : "field.other");
}

/** A sentence for a person, for every error the API returns. */
export function friendlyMessage(error: unknown): string {
  if (!(error instanceof ApiError)) {
    return translate("error.offline");
  }
  const needed = /(\d+) needed/.exec(error.detail);
  switch (error.code) {
    case "insufficient_funds":
      return needed ? translate("error.insufficientFundsNeeded", { needed: needed[1] }) : translate("error.insufficientFunds");
    case "host_busy":
      return translate("error.hostBusy");
    case "client_busy":
      return translate("error.clientBusy");
    case "host_unavailable":
      return translate("error.hostUnavailable");
    case "host_offline":
      return translate("error.hostOffline");
    case "rate_changed":
      return error.fields.rate === undefined
        ? translate("error.rateChanged")
        : translate("error.rateChangedTo", { coins: formatCoins(error.fields.rate) });
    case "ring_cooldown":
      return error.fields.retry_after === undefined
        ? translate("error.ringCooldown")
        : translate("error.ringCooldownFor", { seconds: error.fields.retry_after });
    case "invalid_credentials":
      return translate("error.invalidCredentials");
    case "rate_limited":
      return translate("error.rateLimited");
    case "validation_error":
      return invalidField(error.fields.field);
    case "busy":
      return translate("error.busy");
    case "not_authenticated":
      return translate("error.notAuthenticated");
    case "username_taken":
      return translate("error.usernameTaken");
    case "media_unavailable":
      return translate("error.mediaUnavailable");
    case "call_ended":
      return translate("error.callEnded");
    case "account_frozen":
      return translate("error.accountFrozen");
    case "payment_provider_unavailable":
      return translate("error.paymentUnavailable");
    case "too_many_purchases":
      return translate("error.tooManyPurchases");
    default:
      return error.detail || translate("error.failed", { status: error.status });
  }
}

export async function request<T>(
  path: string,
  options: { method?: string; body?: unknown; token?: string | null; headers?: Record<string, string> } = {},
): Promise<T> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.token) headers["Authorization"] = `Bearer ${options.token}`;
  const response = await fetch(path, {
    method: options.method ?? (options.body === undefined ? "GET" : "POST"),
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  const data: unknown = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const err = (data ?? {}) as { error?: string | { code?: string; message?: string }; detail?: string } & ErrorFields;
    const fields: ErrorFields = {};
    for (const name of NUMERIC_FIELDS) {
      const value = err[name];
      if (typeof value === "number") fields[name] = value;
    }
    if (typeof err.field === "string") fields.field = err.field;
    // {"error": code, "detail": sentence}; also {"error": {"code", "message"}}
    const nested = typeof err.error === "object" && err.error !== null ? err.error : null;
    const code = nested ? nested.code : typeof err.error === "string" ? err.error : undefined;
    const detail = nested ? nested.message : err.detail;
    throw new ApiError(response.status, code ?? "error", detail ?? response.statusText, fields);
  }
  return data as T;
}
