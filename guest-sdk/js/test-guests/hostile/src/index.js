// A hostile guest for the sandbox tests: `?mode=loop` spins forever, `?mode=memory` allocates
// until something stops it; anything else answers `{ok: true}`.

export default function handler(inv) {
  const req = inv.trigger.kind === 'http' ? inv.trigger.request : undefined;
  const mode = req?.query.find(([k]) => k === 'mode')?.[1];
  if (mode === 'loop') {
    let n = 0;
    for (;;) n = (n + 1) | 0;
  }
  if (mode === 'memory') {
    const hoard = [];
    // A mebibyte per step: the linear memory grows until the limit refuses it.
    for (;;) hoard.push(new Uint8Array(1 << 20));
  }
  return { ok: true };
}
