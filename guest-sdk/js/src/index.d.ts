// Types of @refract/sdk: the `refract:automation@0.1.6` world (wit/automation.wit) as seen from
// JavaScript. JSON values travel parsed (`Json`); the SDK serializes and parses at the boundary.

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** An event of the workspace, as delivered to automations. */
export interface Event {
  /** `<milliseconds>-<sequence>`, unique within the workspace. */
  id: string;
  /** e.g. `orders.created`. */
  type: string;
  /** The payload (an object). */
  payload: any;
  /** The envelope's `source` (workspace, user, correlation id, ...). */
  source: any;
}

/** A request that reached the automation's webhook. */
export interface HttpRequest {
  /** Upper-case method. */
  method: string;
  /** The path as received by the gateway. */
  path: string;
  /** Decoded query parameters, in order; a repeated name appears several times. */
  query: [string, string][];
  /** Lower-case names, credentials removed by the gateway. */
  headers: [string, string][];
  /** The raw body. */
  body: Uint8Array;
  /** The first value of header `name` (case-insensitive). */
  header(name: string): string | undefined;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON; throws `InvalidJson` when it is not. */
  json<T = any>(): T;
}

/** What started the run. */
export type Trigger =
  | { kind: 'event'; event: Event }
  | { kind: 'http'; request: HttpRequest }
  | { kind: 'schedule'; schedule: { expression: string; time: string } }
  | { kind: 'call'; arguments: any };

/** Everything a run is given. */
export interface Invocation {
  trigger: Trigger;
  workspaceId: string;
  automationSlug: string;
  /** Shared by everything one trigger causes. */
  correlationId: string;
  userId?: string;
  sessionId?: string;
  /** The automation's config with secrets resolved. */
  config: any;
}

/** An output with HTTP parts (made by `respond`). */
export interface Output {
  readonly body: unknown;
  readonly status: number;
  readonly headers: [string, string][];
}

/** What a handler returns: an `Output` from `respond`, or any JSON value (the body, status 200). */
export type HandlerResult = Output | Json | undefined | void;

/**
 * The shape of the module's default export (or its `handler` export). A thrown `RefractError`
 * is the run's `automation-error`; any other throw is `{code: "Uncaught"}`.
 */
export type Handler = (invocation: Invocation) => HandlerResult | Promise<HandlerResult>;

/** An output with a status (100 to 599) and headers. */
export function respond(
  body: unknown,
  options?: { status?: number; headers?: Record<string, string> | [string, string][] },
): Output;

/** Adapts a handler to the world's `run` export (refract-build does it for you). */
export function adapt(handler: Handler): (raw: unknown) => Promise<unknown>;

/** A failure the automation reports on purpose. */
export class RefractError extends Error {
  constructor(code: string, message: string, details?: unknown);
  /** A stable, machine-readable code, e.g. `InvalidOrder`. */
  code: string;
  /** Structured details (JSON). SDK errors carry `{kind}`: the host error's case. */
  details?: unknown;
}

/** The codes of the errors the SDK raises for host errors (the Rust SDK's). */
export const codes: {
  readonly EMIT_FAILED: 'EmitFailed';
  readonly WAIT_FAILED: 'WaitFailed';
  readonly FETCH_FAILED: 'FetchFailed';
  readonly STATE_FAILED: 'StateFailed';
  readonly STREAM_FAILED: 'StreamFailed';
  readonly CALL_FAILED: 'CallFailed';
  readonly INVALID_JSON: 'InvalidJson';
  readonly INVALID_OUTPUT: 'InvalidOutput';
  readonly UNCAUGHT: 'Uncaught';
};

/** Publishes an event; returns its id. Throws `EmitFailed`. */
export function emit(
  type: string,
  payload: object,
  options?: { target?: { userId?: string; sessionId?: string; userTopic?: string }; persist?: boolean },
): string;

/** One condition an awaited event must meet. */
export interface Condition {
  type: string;
  /** Equality filters: a dotted path into the event (`payload.order.id`) and its value. */
  filters?: Record<string, Json>;
  /** Shorthand for the filter `source.correlationId`. */
  correlationId?: string;
}

/** Waits for a matching event (published after the call), or `null` after `timeoutMs`. Throws `WaitFailed`. */
export function wait(conditions: Condition | Condition[], timeoutMs: number): Event | null;

/** An outbound request's options. */
export interface FetchInit {
  method?: string;
  headers?: Record<string, string> | [string, string][];
  /** A string or bytes as is; any other value as JSON (with `content-type: application/json`). */
  body?: string | Uint8Array | Json;
}

/** The remote server's answer, whatever its status. */
export interface Response {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
  header(name: string): string | undefined;
  text(): string;
  json<T = any>(): T;
}

/** Sends a request under the workspace's egress policy. Throws `FetchFailed` when there is no response. */
export function fetch(url: string, init?: FetchInit): Response;

/** Where a variable lives. */
export type Scope = 'global' | 'user' | 'session' | 'run' | 'socket';

/** Context variables. Throws `StateFailed`. */
export const state: {
  get<T = any>(scope: Scope, path: string): T | undefined;
  set(scope: Scope, path: string, value: Json | object): void;
  delete(scope: Scope, path: string): void;
  rateLimit(
    name: string,
    consumer: string,
    limit: number,
    windowSecs: number,
    consume?: number,
  ): { ok: boolean; remaining: number; retryAfter: number };
  createUserTopic(topic: string, userIds?: string[]): any | null;
  joinUserTopic(topic: string, userIds?: string[], create?: boolean): any[];
  switchIdentity(identity: { userId?: string; sessionId?: string }): { userId?: string; sessionId?: string };
  setConfig(path: string, value: Json | object | undefined): void;
};

/** Log lines (non-strings are written as JSON). */
export const log: {
  trace(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
};

/** Runs another automation of the workspace; its output body. A callee's error is rethrown as is. */
export function call<T = any>(slug: string, args?: object): T;

/** The workspace's secrets. */
export const secrets: {
  get<T = any>(name: string): T | undefined;
};

/** A started call that ended. */
export type Done =
  | { ticket: bigint; kind: 'fetch'; ok: true; value: Response }
  | { ticket: bigint; kind: 'wait'; ok: true; value: Event | null }
  | { ticket: bigint; kind: 'call'; ok: true; value: any }
  | { ticket: bigint; kind: 'fetch' | 'wait' | 'call'; ok: false; error: RefractError };

/** Fetches, waits and calls in flight together; `null` from a start: make the blocking call. */
export const concurrent: {
  startFetch(url: string, init?: FetchInit): bigint | null;
  startWait(conditions: Condition | Condition[], timeoutMs: number): bigint | null;
  startCall(slug: string, args?: object): bigint | null;
  nextDone(): Done[];
};

/** A webhook's answer as server-sent events while the run goes on. Throws `StreamFailed`. */
export const stream: {
  start(status?: number, headers?: Record<string, string> | [string, string][], keepAliveMs?: number): void;
  send(chunk: Json | object): void;
};

/** Pauses the run (wall clock, not CPU); `false` at once when the run has no time left for it. */
export function sleep(ms: number): boolean;
