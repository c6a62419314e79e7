// counter: a counter in the workspace's global state, incremented once per run; returns the
// new count. The state path is `config.key` (default `counter.value`).

import { RefractError, state } from '@refract/sdk';

export default function handler(inv) {
  const path = typeof inv.config.key === 'string' ? inv.config.key : 'counter.value';
  // Nothing stored yet counts as 0; a stored value that is not a number fails the run.
  const stored = state.get('global', path) ?? 0;
  if (typeof stored !== 'number') {
    throw new RefractError('InvalidJson', `the state at ${path} is not a number`, { kind: 'json' });
  }
  const count = stored + 1;
  state.set('global', path, count);
  return { count };
}
