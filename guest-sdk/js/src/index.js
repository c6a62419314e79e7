// @refract/sdk: writing Refract automations in JavaScript or TypeScript.
//
// An automation is a WebAssembly component of the `refract:automation@0.1.6` world
// (wit/automation.wit), built from your module by `refract-build` (esbuild, then ComponentizeJS).
// This module wraps the world's imports in plain JavaScript: JSON travels as values (parsed and
// serialized here), host errors become `RefractError`s with stable codes (the same as the Rust
// SDK's), and your handler's return value or thrown error becomes the run's output or
// `automation-error`. The `refract:automation/*` modules it imports only exist inside the
// component; the bundler leaves them to ComponentizeJS.

import * as events from 'refract:automation/events@0.1.6';
import * as http from 'refract:automation/http@0.1.6';
import * as stateHost from 'refract:automation/state@0.1.6';
import * as logging from 'refract:automation/logging@0.1.6';
import * as automations from 'refract:automation/automations@0.1.6';
import * as secretsHost from 'refract:automation/secrets@0.1.6';
import * as concurrentHost from 'refract:automation/concurrent@0.1.6';
import * as responseHost from 'refract:automation/response@0.1.6';
import * as timersHost from 'refract:automation/timers@0.1.6';

// ---------------------------------------------------------------------------------------------
// Errors

/** Codes of the errors the SDK raises for host errors (as in the Rust SDK). */
export const codes = Object.freeze({
  EMIT_FAILED: 'EmitFailed',
  WAIT_FAILED: 'WaitFailed',
  FETCH_FAILED: 'FetchFailed',
  STATE_FAILED: 'StateFailed',
  STREAM_FAILED: 'StreamFailed',
  CALL_FAILED: 'CallFailed',
  INVALID_JSON: 'InvalidJson',
  INVALID_OUTPUT: 'InvalidOutput',
  UNCAUGHT: 'Uncaught',
});

/** A failure the automation reports on purpose: becomes the run's `automation-error`. */
export class RefractError extends Error {
  /**
   * @param {string} code a stable, machine-readable code, e.g. `InvalidOrder`
   * @param {string} message for humans
   * @param {unknown} [details] optional structured details (any JSON value)
   */
  constructor(code, message, details) {
    super(message);
    this.name = 'RefractError';
    this.code = code;
    this.details = details;
  }
}

const camel = (tag) => tag.replace(/-([a-z])/g, (_, c) => c.toUpperCase());

// A host call's `err` arrives as a thrown ComponentError whose `payload` is the WIT variant
// (`{tag, val}`); `code` names the interface.
function hostError(code, e) {
  if (!e || typeof e !== 'object' || !('payload' in e)) throw e;
  const { tag, val } = e.payload;
  const text = typeof val === 'string' ? `: ${val}` : val === undefined ? '' : ` (${val})`;
  const details = { kind: camel(tag) };
  if (val !== undefined && typeof val !== 'object') details.value = typeof val === 'bigint' ? Number(val) : val;
  return new RefractError(code, `${tag}${text}`, details);
}

function guard(code, f) {
  try {
    return f();
  } catch (e) {
    throw hostError(code, e);
  }
}

function parse(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new RefractError(codes.INVALID_JSON, `${what} is not JSON: ${e.message}`, { kind: 'json' });
  }
}

function stringify(value, what) {
  const text = JSON.stringify(value === undefined ? null : value);
  if (text === undefined) throw new RefractError(codes.INVALID_JSON, `${what} cannot be serialized`, { kind: 'json' });
  return text;
}

// ---------------------------------------------------------------------------------------------
// The invocation

const decoder = new TextDecoder();

function httpRequest(raw) {
  return {
    method: raw.method,
    path: raw.path,
    query: raw.query,
    headers: raw.headers,
    body: raw.body,
    header(name) {
      const lower = name.toLowerCase();
      const found = raw.headers.find(([k]) => k === lower);
      return found ? found[1] : undefined;
    },
    text() {
      return decoder.decode(raw.body);
    },
    json() {
      return parse(decoder.decode(raw.body), 'the request body');
    },
  };
}

function event(raw) {
  return { id: raw.id, type: raw.type, payload: parse(raw.payload, 'the event payload'), source: parse(raw.source, 'the event source') };
}

function invocation(raw) {
  const t = raw.trigger;
  let trigger;
  switch (t.tag) {
    case 'event': trigger = { kind: 'event', event: event(t.val) }; break;
    case 'http': trigger = { kind: 'http', request: httpRequest(t.val) }; break;
    case 'schedule': trigger = { kind: 'schedule', schedule: { expression: t.val.expression, time: t.val.time } }; break;
    case 'call': trigger = { kind: 'call', arguments: parse(t.val, 'the call arguments') }; break;
    default: throw new RefractError('InvalidInvocation', `unknown trigger ${t.tag}`);
  }
  return {
    trigger,
    workspaceId: raw.workspaceId,
    automationSlug: raw.automationSlug,
    correlationId: raw.correlationId,
    userId: raw.userId,
    sessionId: raw.sessionId,
    config: parse(raw.config, 'the config'),
  };
}

// ---------------------------------------------------------------------------------------------
// The output

const OUTPUT = Symbol.for('refract.output');

/**
 * An output with HTTP parts: `respond(body, {status, headers})`. A handler may also return any
 * JSON value (the body, status 200).
 */
export function respond(body, { status = 200, headers = {} } = {}) {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  return { [OUTPUT]: true, body, status, headers: list.map(([k, v]) => [String(k), String(v)]) };
}

function output(value) {
  if (value && value[OUTPUT]) {
    const { status } = value;
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new RefractError(codes.INVALID_OUTPUT, `status ${status} is outside 100 to 599`, { kind: 'invalidOutput' });
    }
    return { body: stringify(value.body, 'the output'), http: { status, headers: value.headers } };
  }
  return { body: stringify(value, 'the output'), http: undefined };
}

function automationError(e) {
  if (e instanceof RefractError) {
    return { code: String(e.code), message: String(e.message), details: e.details === undefined ? undefined : JSON.stringify(e.details) };
  }
  if (e instanceof Error) {
    return { code: codes.UNCAUGHT, message: `${e.name}: ${e.message}`, details: JSON.stringify({ kind: 'uncaught', name: e.name }) };
  }
  return { code: codes.UNCAUGHT, message: String(e), details: JSON.stringify({ kind: 'uncaught' }) };
}

/**
 * Adapts `handler(invocation)` (sync or async) to the world's `run` export. `refract-build`
 * calls it for you with your module's default (or `handler`) export.
 */
export function adapt(handler) {
  if (typeof handler !== 'function') {
    throw new TypeError('the automation module must export a handler: `export default async function (invocation) {...}`');
  }
  return async function run(raw) {
    try {
      return { tag: 'ok', val: output(await handler(invocation(raw))) };
    } catch (e) {
      return { tag: 'err', val: automationError(e) };
    }
  };
}

// ---------------------------------------------------------------------------------------------
// events

/** Publishes an event of `type` with `payload` (an object); returns its id. */
export function emit(type, payload, { target, persist = true } = {}) {
  const t = target === undefined ? undefined : stringify(target, 'the target');
  return guard(codes.EMIT_FAILED, () => events.emit(type, stringify(payload, 'the payload'), t, persist));
}

function conditions(list) {
  return list.map((c) => {
    const filters = Object.entries(c.filters ?? {});
    if (c.correlationId !== undefined) filters.push(['source.correlationId', c.correlationId]);
    return { type: c.type, filters: filters.map(([k, v]) => [k, stringify(v, 'a filter value')]) };
  });
}

/**
 * Waits until an event meets one of `conditions` (`{type, filters?: {path: value}, correlationId?}`)
 * or `timeoutMs` passes; the event, or `null` on timeout.
 */
export function wait(conds, timeoutMs) {
  const list = Array.isArray(conds) ? conds : [conds];
  const found = guard(codes.WAIT_FAILED, () => events.wait(conditions(list), timeoutMs >>> 0));
  return found === undefined ? null : event(found);
}

// ---------------------------------------------------------------------------------------------
// http

function request(url, init = {}) {
  const headers = Array.isArray(init.headers) ? init.headers : Object.entries(init.headers ?? {});
  let body = init.body;
  if (typeof body === 'string') body = new TextEncoder().encode(body);
  else if (body !== undefined && !(body instanceof Uint8Array)) {
    body = new TextEncoder().encode(stringify(body, 'the request body'));
    if (!headers.some(([k]) => k.toLowerCase() === 'content-type')) headers.push(['content-type', 'application/json']);
  }
  return {
    method: (init.method ?? 'GET').toUpperCase(),
    url,
    headers: headers.map(([k, v]) => [String(k), String(v)]),
    body,
  };
}

function response(raw) {
  return {
    status: raw.status,
    headers: raw.headers,
    body: raw.body,
    header(name) {
      const found = raw.headers.find(([k]) => k === name.toLowerCase());
      return found ? found[1] : undefined;
    },
    text() {
      return decoder.decode(raw.body);
    },
    json() {
      return parse(decoder.decode(raw.body), 'the response body');
    },
  };
}

/**
 * Sends a request under the workspace's egress policy: `fetch(url, {method, headers, body})`
 * (a string or bytes body as is; any other value as JSON). Any status is a response.
 */
export function fetch(url, init) {
  return response(guard(codes.FETCH_FAILED, () => http.fetch(request(url, init))));
}

// ---------------------------------------------------------------------------------------------
// state

/** Context variables in a scope: `global`, `user`, `session`, `run` (or `socket`). */
export const state = {
  get(scope, path) {
    const v = guard(codes.STATE_FAILED, () => (scope === 'socket' ? stateHost.socketGet(path) : stateHost.get(scope, path)));
    return v === undefined ? undefined : parse(v, `the state at ${path}`);
  },
  set(scope, path, value) {
    const v = stringify(value, 'the value');
    guard(codes.STATE_FAILED, () => (scope === 'socket' ? stateHost.socketSet(path, v) : stateHost.set(scope, path, v)));
  },
  delete(scope, path) {
    guard(codes.STATE_FAILED, () => (scope === 'socket' ? stateHost.socketDelete(path) : stateHost.delete(scope, path)));
  },
  rateLimit(name, consumer, limit, windowSecs, consume = 1) {
    return guard(codes.STATE_FAILED, () => stateHost.rateLimit(name, consumer, limit, windowSecs, consume));
  },
  createUserTopic(topic, userIds = []) {
    const e = guard(codes.STATE_FAILED, () => stateHost.createUserTopic(topic, userIds));
    return e === undefined ? null : parse(e, 'the event');
  },
  joinUserTopic(topic, userIds = [], create = false) {
    return guard(codes.STATE_FAILED, () => stateHost.joinUserTopic(topic, userIds, create)).map((e) => parse(e, 'the event'));
  },
  switchIdentity({ userId, sessionId }) {
    return guard(codes.STATE_FAILED, () => stateHost.switchIdentity(userId, sessionId));
  },
  setConfig(path, value) {
    const v = value === undefined ? undefined : stringify(value, 'the value');
    guard(codes.STATE_FAILED, () => stateHost.setConfig(path, v));
  },
};

// ---------------------------------------------------------------------------------------------
// logging

const line = (args) => args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');

/** Log lines, tagged by the host with the run's ids. */
export const log = {
  trace: (...args) => logging.log('trace', line(args)),
  debug: (...args) => logging.log('debug', line(args)),
  info: (...args) => logging.log('info', line(args)),
  warn: (...args) => logging.log('warn', line(args)),
  error: (...args) => logging.log('error', line(args)),
};

// ---------------------------------------------------------------------------------------------
// automations

function callError(e) {
  if (e && typeof e === 'object' && 'payload' in e && e.payload.tag === 'failed') {
    const { code, message, details } = e.payload.val;
    return new RefractError(code, message, details === undefined ? undefined : JSON.parse(details));
  }
  return hostError(codes.CALL_FAILED, e);
}

/** Runs the automation `slug` with `args` (an object); its output body. A callee's error is rethrown as is. */
export function call(slug, args = {}) {
  let out;
  try {
    out = automations.call(slug, stringify(args, 'the arguments'));
  } catch (e) {
    throw callError(e);
  }
  return parse(out, 'the output');
}

// ---------------------------------------------------------------------------------------------
// secrets

/** The workspace's secrets, read by name (`undefined` when missing). */
export const secrets = {
  get(name) {
    const v = secretsHost.get(name);
    return v === undefined ? undefined : parse(v, `the secret ${name}`);
  },
};

// ---------------------------------------------------------------------------------------------
// concurrent

/**
 * Fetches, waits and calls in flight together. Each `start*` returns a ticket (a bigint), or
 * `null` when the host refuses more in flight (then make the blocking call). `nextDone()`
 * blocks until one or more ended: `[{ticket, kind, ok, value | error}]`.
 */
export const concurrent = {
  startFetch(url, init) {
    return concurrentHost.startFetch(request(url, init)) ?? null;
  },
  startWait(conds, timeoutMs) {
    return concurrentHost.startWait(conditions(Array.isArray(conds) ? conds : [conds]), timeoutMs >>> 0) ?? null;
  },
  startCall(slug, args = {}) {
    return concurrentHost.startCall(slug, stringify(args, 'the arguments')) ?? null;
  },
  nextDone() {
    return concurrentHost.nextDone().map(({ ticket, outcome }) => {
      const { tag, val } = outcome;
      const kind = tag === 'fetched' ? 'fetch' : tag === 'waited' ? 'wait' : 'call';
      if (val.tag === 'err') {
        const e = { payload: val.val };
        const error = kind === 'fetch' ? hostError(codes.FETCH_FAILED, e) : kind === 'wait' ? hostError(codes.WAIT_FAILED, e) : callError(e);
        return { ticket, kind, ok: false, error };
      }
      const value = kind === 'fetch' ? response(val.val) : kind === 'wait' ? (val.val === undefined ? null : event(val.val)) : parse(val.val, 'the output');
      return { ticket, kind, ok: true, value };
    });
  },
};

// ---------------------------------------------------------------------------------------------
// response, timers

/** A webhook's answer streamed as server-sent events while the run goes on. */
export const stream = {
  start(status = 200, headers = {}, keepAliveMs) {
    const list = (Array.isArray(headers) ? headers : Object.entries(headers)).map(([k, v]) => [String(k), String(v)]);
    guard(codes.STREAM_FAILED, () => responseHost.start(status, list, keepAliveMs));
  },
  send(chunk) {
    guard(codes.STREAM_FAILED, () => responseHost.send(stringify(chunk, 'the chunk')));
  },
};

/** Pauses the run for `ms` (wall clock, not CPU); `false` when the run has no time left for it. */
export function sleep(ms) {
  return timersHost.sleep(ms >>> 0);
}
