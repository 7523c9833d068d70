/** The HTTP API: JSON in and out, errors as {error, detail} (plus a few structured fields). */

import type { components, paths } from "./api.gen";
import { formatCoins } from "./format";
import { isMessageId, translate, type MessageId } from "./i18n";

// The API's shapes come from its OpenAPI document (`make api` regenerates src/api.gen.ts;
// `make test` fails when it is stale), so a field the server adds or renames breaks `tsc`.
type Schemas = components["schemas"];

/** A path of the server's document with its `{parameters}` filled in:
 * "/v1/calls/{call_id}/end" is `/v1/calls/${string}/end`. */
type Filled<P extends string> = P extends `${infer Head}{${string}}${infer Tail}` ? `${Head}${string}${Filled<Tail>}` : P;
/** Every address the client may ask for: a path the OpenAPI document has (with a query
 * string or not). A path the server renames or drops fails `tsc`, as a changed shape does. */
export type ApiPath = Filled<keyof paths & string>;
export type ApiUrl = ApiPath | `${ApiPath}?${string}`;

/** `url` with more query parameters: still an address of the document. */
export function withQuery(url: ApiUrl, query: string): ApiUrl {
  return `${url}${url.includes("?") ? "&" : "?"}${query}` as ApiUrl;
}

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
/** A line of a call's chat: text, a tip or one of the call's own events. */
export type Message = Schemas["MessageOut"];
export type MessagesPage = Schemas["MessagesPage"];
export type Receipt = Schemas["ReceiptOut"];

/** Every `error` code the server answers with (its OpenAPI document lists them). */
export type ErrorCode = Schemas["ErrorOut"]["error"];

/** Structured fields some errors carry next to `error` and `detail`. */
export interface ErrorFields {
  needed?: number; // insufficient_funds: the coins the request needed
  rate?: number; // rate_changed: the host's rate per interval now
  retry_after?: number; // ring_cooldown: seconds to wait
  matured?: number; // payout_exceeds_matured: coins withdrawable now
  maturing?: number; // payout_exceeds_matured: coins withdrawable later
  minimum?: number; // payout_below_minimum: the smallest payout
  pending?: number; // too_many_payouts: requests waiting for review
  field?: string; // validation_error: the first field the server refused
}

const NUMERIC_FIELDS = ["needed", "rate", "retry_after", "matured", "maturing", "minimum", "pending"] as const;

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

/** Whether a failed request has a known result: the server answered and refused (4xx), so
 * nothing happened and the next submit is a new intent. A 5xx or no answer at all leaves
 * the result unknown: a retry sends the same key (Idempotency-Key, client_msg_id). */
export function resultKnown(error: unknown): boolean {
  return error instanceof ApiError && error.status < 500;
}

/** What to fix, in a person's words, for the field the server refused (never its rule). */
function invalidField(field: string | undefined): string {
  const id = `field.${field?.split(".").pop() ?? ""}`;
  return translate(isMessageId(id) ? id : "field.other");
}

type Sentence = MessageId | ((fields: ErrorFields, status: number) => string);

/** A sentence for each code: `tsc` fails when the server lists a code this lacks, and the
 * server's English `detail` never reaches a person. */
const SENTENCES: Record<ErrorCode, Sentence> = {
  account_frozen: "error.accountFrozen",
  adjustment_exceeds_earnings: "error.adjustmentExceedsEarnings",
  bad_request: "error.badRequest",
  busy: "error.busy",
  call_ended: "error.callEnded",
  client_busy: "error.clientBusy",
  concurrent_update: "error.tryAgain",
  database_unavailable: "error.unavailable",
  dispute_open: "error.disputeOpen",
  error: (_, status) => translate("error.failed", { status }),
  forbidden: "error.forbidden",
  host_busy: "error.hostBusy",
  host_offline: "error.hostOffline",
  host_unavailable: "error.hostUnavailable",
  idempotency_conflict: "error.idempotencyConflict",
  insufficient_funds: (f) =>
    f.needed === undefined
      ? translate("error.insufficientFunds")
      : translate("error.insufficientFundsNeeded", { needed: f.needed }),
  internal_error: "error.internal",
  invalid_call_state: "error.callChanged",
  invalid_credentials: "error.invalidCredentials",
  invalid_payout_state: "error.payoutChanged",
  invalid_webhook: "error.badRequest",
  invalid_webhook_event: "error.badRequest",
  ledger_error: "error.ledger",
  media_unavailable: "error.mediaUnavailable",
  message_limit_reached: "error.messageLimit",
  message_rate_limited: "error.messageRate",
  method_not_allowed: "error.badRequest",
  not_acceptable: "error.badRequest",
  not_authenticated: "error.notAuthenticated",
  not_found: "error.notFound",
  payload_too_large: "error.tooLarge",
  payment_provider_unavailable: "error.paymentUnavailable",
  payout_below_minimum: (f) =>
    f.minimum === undefined ? translate("error.payoutBelowMinimum") : translate("error.payoutMinimum", { coins: formatCoins(f.minimum) }),
  payout_exceeds_matured: (f) =>
    f.matured === undefined ? translate("error.payoutExceeds") : translate("error.payoutMatured", { coins: formatCoins(f.matured) }),
  payouts_not_enabled: "error.payoutsNotEnabled",
  rate_changed: (f) =>
    f.rate === undefined ? translate("error.rateChanged") : translate("error.rateChangedTo", { coins: formatCoins(f.rate) }),
  rate_limited: "error.rateLimited",
  refund_blocked_by_payout: "error.refundBlockedByPayout",
  refund_exceeds_charge: "error.refundExceedsCharge",
  request_header_fields_too_large: "error.requestIncomplete",
  request_timeout: "error.requestIncomplete",
  retry_later: "error.busy",
  ring_cooldown: (f) =>
    f.retry_after === undefined ? translate("error.ringCooldown") : translate("error.ringCooldownFor", { seconds: f.retry_after }),
  signal_limit_reached: "error.signalLimit",
  signal_rate_limited: "error.signalRate",
  too_many_payouts: (f) =>
    f.pending === undefined ? translate("error.tooManyPayouts") : translate("error.tooManyPayoutsPending", { count: f.pending }),
  too_many_purchases: "error.tooManyPurchases",
  tip_window_closed: "error.tipWindowClosed",
  too_many_streams: "error.tooManyStreams",
  unsupported_media_type: "error.unsupportedType",
  username_taken: "error.usernameTaken",
  validation_error: (f) => invalidField(f.field),
};

export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(SENTENCES, code);
}

/** A sentence for a person, in the user's language, for every error the API returns. */
export function friendlyMessage(error: unknown): string {
  if (!(error instanceof ApiError)) {
    return translate("error.offline");
  }
  if (!isErrorCode(error.code)) return translate("error.failed", { status: error.status });
  const sentence = SENTENCES[error.code];
  return typeof sentence === "function" ? sentence(error.fields, error.status) : translate(sentence);
}

export async function request<T>(
  path: ApiUrl,
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
