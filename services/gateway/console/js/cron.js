// The next fire time of a UTC cron expression (5 fields, or 6 with leading seconds), for
// display only: the runtime is the authority. Syntax outside plain cron (L, W, #, @yearly…)
// returns null, and the console then shows the expression without a next run.

const NAMES = {
  jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6, jul: 7, aug: 8, sep: 9, oct: 10, nov: 11, dec: 12,
  sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6,
};

function value(text, min, max) {
  const n = /^\d+$/.test(text) ? Number(text) : NAMES[text.toLowerCase()];
  if (n === undefined || n < min || n > max) throw new Error(`bad value ${text}`);
  return n;
}

/** The set of allowed values of one field, and whether it was restricted. */
function parseField(text, min, max) {
  const set = new Set();
  for (const part of text.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : value(stepText, 1, max);
    let lo;
    let hi;
    if (range === '*' || range === '?') {
      lo = min; hi = max;
    } else if (range.includes('-')) {
      const [a, b] = range.split('-');
      lo = value(a, min, max); hi = value(b, min, max);
    } else {
      lo = value(range, min, max);
      hi = stepText === undefined ? lo : max;
    }
    for (let v = lo; v <= hi; v += step) set.add(v);
  }
  return { set, any: text === '*' || text === '?' };
}

export function parseCron(expr) {
  const parts = String(expr).trim().split(/\s+/);
  if (parts.length !== 5 && parts.length !== 6) return null;
  const f = parts.length === 5 ? ['0', ...parts] : parts;
  try {
    const dow = parseField(f[5], 0, 7);
    if (dow.set.has(7)) dow.set.add(0);
    return {
      sec: parseField(f[0], 0, 59), min: parseField(f[1], 0, 59), hour: parseField(f[2], 0, 23),
      dom: parseField(f[3], 1, 31), month: parseField(f[4], 1, 12), dow,
    };
  } catch {
    return null;
  }
}

function dayMatches(c, t) {
  const dom = c.dom.set.has(t.getUTCDate());
  const dow = c.dow.set.has(t.getUTCDay());
  if (!c.dom.any && !c.dow.any) return dom || dow;
  return dom && dow;
}

/** The first time strictly after `from` that `expr` matches, or null. */
export function nextRun(expr, from) {
  const c = parseCron(expr);
  if (!c) return null;
  const t = new Date(Math.floor(from.getTime() / 1000) * 1000 + 1000);
  for (let i = 0; i < 200000; i += 1) {
    if (!c.month.set.has(t.getUTCMonth() + 1)) {
      t.setUTCMonth(t.getUTCMonth() + 1, 1); t.setUTCHours(0, 0, 0);
    } else if (!dayMatches(c, t)) {
      t.setUTCDate(t.getUTCDate() + 1); t.setUTCHours(0, 0, 0);
    } else if (!c.hour.set.has(t.getUTCHours())) {
      t.setUTCHours(t.getUTCHours() + 1, 0, 0);
    } else if (!c.min.set.has(t.getUTCMinutes())) {
      t.setUTCMinutes(t.getUTCMinutes() + 1, 0);
    } else if (!c.sec.set.has(t.getUTCSeconds())) {
      t.setUTCSeconds(t.getUTCSeconds() + 1);
    } else {
      return t;
    }
  }
  return null;
}
