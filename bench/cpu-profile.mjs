// Preloaded into a daemon with NODE_OPTIONS=--import (which refuses --cpu-prof): the same
// .cpuprofile `node --cpu-prof` writes, into CPU_PROF_DIR when the process exits.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: 1000 });
session.post('Profiler.start');
process.on('exit', () => {
  // A session on the main thread answers synchronously, so this runs to the end inside 'exit'.
  session.post('Profiler.stop', (err, r) => {
    if (!err) writeFileSync(join(process.env.CPU_PROF_DIR ?? '.', `daemon-${process.pid}.cpuprofile`), JSON.stringify(r.profile));
  });
});
